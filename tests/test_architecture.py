"""The house rules DESIGN.md sets for the code itself: each layer imports only the layers below
it, without function-local imports to dodge a cycle, and functions stay short."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("bot", "handlers", "services", "db")
# bot → handlers → services → db: what each layer must never import.
FORBIDDEN = {
    "handlers": {"bot", "db"},
    "services": {"bot", "handlers"},
    "db": {"bot", "handlers", "services"},
}
HANDLER_LINES = 25
FUNCTION_LINES = 50
# The command line loads a command's modules only when that command runs.
LAZY_IMPORTS = {"bot/cli.py"}


def _modules() -> Iterator[tuple[str, ast.Module]]:
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            yield path.relative_to(ROOT).as_posix(), ast.parse(path.read_text("utf-8"))


def _imported(node: ast.AST) -> list[str]:
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
        return [node.module]
    return []


def _functions(tree: ast.Module) -> Iterator[ast.FunctionDef | ast.AsyncFunctionDef]:
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            yield node


def test_each_layer_imports_only_the_layers_below_it() -> None:
    wrong = [
        f"{name}:{node.lineno} imports {module}"
        for name, tree in _modules()
        for node in ast.walk(tree)
        for module in _imported(node)
        if module.split(".")[0] in FORBIDDEN.get(name.split("/")[0], set())
    ]
    assert not wrong, "\n".join(wrong)


def test_our_modules_are_imported_at_the_top_of_a_module() -> None:
    local = [
        f"{name}:{inner.lineno} {function.name}() imports {module}"
        for name, tree in _modules()
        if name not in LAZY_IMPORTS
        for function in _functions(tree)
        for inner in ast.walk(function)
        for module in _imported(inner)
        if module.split(".")[0] in PACKAGES
    ]
    assert not local, "\n".join(local)


def test_handlers_and_functions_stay_short() -> None:
    long = []
    for name, tree in _modules():
        for function in _functions(tree):
            lines = (function.end_lineno or function.lineno) - function.lineno + 1
            handler = name.startswith("handlers/") and function.name.startswith("on_")
            limit = HANDLER_LINES if handler else FUNCTION_LINES
            if lines > limit:
                long.append(f"{name}:{function.lineno} {function.name}: {lines} lines")
    assert not long, "\n".join(long)
