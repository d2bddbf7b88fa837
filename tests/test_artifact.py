"""What we ship is what we test: the wheel holds every file the program loads at run time, and
installed on its own it speaks Russian and migrates an empty database."""

from __future__ import annotations

import json
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import sysconfig
import tomllib
import zipfile
from importlib import metadata
from pathlib import Path

import pytest
from alembic.script import ScriptDirectory
from babel.messages.pofile import read_po
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from db.migrate import alembic_config
from services.i18n import LOCALES_DIR

ROOT = Path(__file__).resolve().parent.parent
# The import packages the wheel installs (pyproject's packages.find).
PACKAGES = ("bot", "handlers", "services", "db", "migrations")
# A real-looking token and key: placeholders stop start-up before it reaches the database.
START_ENV = {"BOT_TOKEN": "123456:artifact-test-token", "ESIMGO_API_KEY": "artifact-test-key"}


def _project_files() -> list[str]:
    """What a clone of the repository holds (tracked, plus new files not ignored)."""
    listing = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout.decode()
    return sorted({name for name in listing.split("\0") if name and (ROOT / name).is_file()})


def _package_files() -> set[str]:
    return {name for name in _project_files() if name.split("/")[0] in PACKAGES}


def _run(
    args: list[str | Path], cwd: Path | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    command = [str(a) for a in args]
    result = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=90)
    assert result.returncode == 0, f"{command} failed:\n{result.stdout}\n{result.stderr}"
    return result


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel built from a clean copy of the project, as `pip wheel .` in a clone builds it.
    No build isolation: setuptools comes from the lock (dev), so no download happens here."""
    source = tmp_path_factory.mktemp("source")
    for name in _project_files():
        (source / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, source / name)
    dist = tmp_path_factory.mktemp("dist")
    _run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--quiet",
            "--disable-pip-version-check",
            "--no-deps",
            "--no-build-isolation",
            "--wheel-dir",
            dist,
            source,
        ]
    )
    (built,) = dist.glob("esimbot-*.whl")
    return built


def _runtime_files() -> set[str]:
    """The data files the program itself opens: its translations and its migrations."""
    locales = LOCALES_DIR.relative_to(ROOT).as_posix()
    migrations = Path(alembic_config("sqlite://").get_main_option("script_location") or "")
    migrations_dir = migrations.relative_to(ROOT).as_posix()
    return {
        name
        for name in _package_files()
        if name.startswith((f"{locales}/", f"{migrations_dir}/")) or name.endswith("py.typed")
    }


def test_wheel_holds_every_file_the_program_loads(wheel: Path) -> None:
    shipped = set(zipfile.ZipFile(wheel).namelist())
    runtime = _runtime_files()
    # Guard against a vacuous pass: these are the kinds of file the program loads.
    assert any(name.endswith(".po") and "/ru/" in name for name in runtime)
    assert any(name.endswith("script.py.mako") for name in runtime)
    assert any("/versions/0001_" in name for name in runtime)
    assert any(name.endswith("py.typed") for name in runtime)
    assert not sorted(runtime - shipped), f"missing from the wheel: {sorted(runtime - shipped)}"
    missing = sorted(_package_files() - shipped)
    assert not missing, f"missing from the wheel: {missing}"


def _installed_wheel(wheel: Path, venv: Path) -> Path:
    """A fresh virtual environment holding only our wheel; its dependencies come from the
    project's own environment (installed from the same lock) through a .pth line. A plain
    path line adds that directory without running its .pth files, so the project's editable
    install stays inactive there and every import of ours resolves to the wheel's copy."""
    _run([sys.executable, "-m", "venv", "--without-pip", venv])
    python = venv / "bin" / "python"
    _run(
        [
            sys.executable,
            "-m",
            "pip",
            "--python",
            python,
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "--no-deps",
            "--no-index",
            wheel,
        ]
    )
    probe = "import sysconfig; print(sysconfig.get_paths()['purelib'])"
    site_packages = Path(_run([python, "-c", probe]).stdout.strip())
    dependencies = sysconfig.get_paths()["purelib"]
    (site_packages / "project-dependencies.pth").write_text(dependencies + "\n")
    return python


def _a_russian_translation() -> tuple[str, str]:
    for po_file in sorted((LOCALES_DIR / "ru" / "LC_MESSAGES").glob("*.po")):
        with po_file.open("rb") as fp:
            for message in read_po(fp, locale="ru"):
                english, russian = message.id, message.string
                translated = bool(russian) and russian != english and not message.fuzzy
                if isinstance(english, str) and translated:
                    return english, str(russian)
    raise AssertionError("no Russian translation in the source catalogues")


PROBE = """
import json, sys
import bot, migrations, services
from services.i18n import Translator
modules = [m.__file__ for m in (bot, migrations, services)]
print(json.dumps({"modules": modules, "ru": Translator().gettext(sys.argv[1], "ru")}))
"""


def test_installed_wheel_speaks_russian_and_migrates_an_empty_database(
    wheel: Path, tmp_path: Path
) -> None:
    venv = tmp_path / "venv"
    python = _installed_wheel(wheel, venv)
    # A bare environment and a working directory without .env: only what the test sets.
    database = tmp_path / "empty.db"
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": str(tmp_path),
        "DATABASE_URL": f"sqlite+aiosqlite:///{database}",
        **START_ENV,
    }
    migrated = _run([venv / "bin" / "esimbot", "migrate"], cwd=tmp_path, env=env)
    assert "database is up to date" in migrated.stdout

    heads = ScriptDirectory.from_config(alembic_config("sqlite://")).get_heads()
    with sqlite3.connect(database) as conn:
        versions = [row[0] for row in conn.execute("SELECT version_num FROM alembic_version")]
    assert versions == heads

    english, russian = _a_russian_translation()
    answer = json.loads(_run([python, "-c", PROBE, english], cwd=tmp_path, env=env).stdout)
    for module_file in answer["modules"]:
        assert Path(module_file).resolve().is_relative_to(venv.resolve()), module_file
    assert answer["ru"] == russian


def _pins(lock: str) -> dict[str, Requirement]:
    """A lock file's pins by normalised name; each must carry at least one hash."""
    text = (ROOT / lock).read_text().replace("\\\n", " ")
    pins: dict[str, Requirement] = {}
    for line in text.splitlines():
        if not line.strip() or line.startswith((" ", "#")):
            continue
        requirement, _, hashes = line.partition(" --hash=")
        assert hashes, f"{lock}: {requirement.strip()} has no hash"
        pin = Requirement(requirement)
        pins[canonicalize_name(pin.name)] = pin
    return pins


def _declared() -> dict[str, list[Requirement]]:
    """What pyproject.toml asks for, by the lock file that must satisfy it."""
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    runtime = pyproject["project"]["dependencies"]
    dev = pyproject["project"]["optional-dependencies"]["dev"]
    return {
        "requirements-build.lock": [Requirement(r) for r in pyproject["build-system"]["requires"]],
        "requirements.lock": [Requirement(r) for r in runtime],
        "requirements-dev.lock": [Requirement(r) for r in [*runtime, *dev]],
    }


def test_lock_files_pin_everything_pyproject_asks_for() -> None:
    for lock, requirements in _declared().items():
        pins = _pins(lock)
        for wanted in requirements:
            if wanted.marker is not None and not wanted.marker.evaluate():
                continue
            pin = pins.get(canonicalize_name(wanted.name))
            assert pin is not None, f"{lock} has no {wanted.name}: run `make lock`"
            (version,) = (spec.version for spec in pin.specifier)
            assert wanted.specifier.contains(version, prereleases=True), (
                f"{lock} pins {wanted.name}=={version}, outside {wanted}: run `make lock`"
            )


def test_image_runs_the_versions_the_tests_run() -> None:
    """requirements.lock (the Dockerfile) agrees with requirements-dev.lock (make install),
    and this environment holds exactly the dev lock's versions."""
    runtime, dev = _pins("requirements.lock"), _pins("requirements-dev.lock")
    for name, pin in runtime.items():
        assert name in dev and dev[name].specifier == pin.specifier, f"{name}: {pin} vs dev"
    for name, pin in dev.items():
        if pin.marker is None or pin.marker.evaluate():
            try:
                installed = metadata.version(name)
            except metadata.PackageNotFoundError:
                pytest.fail(f"{name} is locked but not installed: run `make install`")
            assert pin.specifier.contains(installed, prereleases=True), (
                f"{name}: {installed} installed, the lock says {pin.specifier}: run `make install`"
            )


def test_image_is_built_from_an_exact_base_and_the_locks() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    base = re.search(r"^ARG PYTHON_IMAGE=(\S+)$", dockerfile, re.MULTILINE)
    assert base is not None
    exact = r"python:\d+\.\d+\.\d+-slim-[a-z]+(@sha256:[0-9a-f]{64})?"
    assert re.fullmatch(exact, base[1]), f"base image {base[1]} is not an exact release"
    stages = re.findall(r"^FROM (\S+)", dockerfile, re.MULTILINE)
    assert stages and all(stage == "${PYTHON_IMAGE}" for stage in stages)
    installs = re.findall(r"pip install ([^&\n]+)", dockerfile)
    assert installs
    for install in installs:
        from_lock = re.search(r"--require-hashes -r \S*requirements(-build)?\.lock", install)
        own_wheel = re.fullmatch(r"--no-deps \S+/esimbot-\*\.whl\s*", install)
        assert from_lock or own_wheel, f"Dockerfile installs outside the locks: {install}"
