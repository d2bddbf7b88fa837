"""Who a call to eSIM Go is for: each client method has a default, background loops mark theirs."""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from contextvars import ContextVar
from enum import IntEnum
from typing import Any, ParamSpec, TypeVar


class Priority(IntEnum):
    """Budget classes, most urgent first."""

    PAID = 0  # a paid order being bought or reconciled: money is already taken
    INTERACTIVE = 1  # someone is looking at the screen, waiting for the answer
    BACKGROUND = 2  # polling and syncing that nobody waits on


# An undecorated client method is treated as a call someone waits on.
_call_priority: ContextVar[Priority] = ContextVar(
    "esimgo_call_priority", default=Priority.INTERACTIVE
)
_background: ContextVar[bool] = ContextVar("esimgo_background_work", default=False)

P = ParamSpec("P")
R = TypeVar("R")


def current_priority() -> Priority:
    """The class of the call made now; in background work all but paid calls are background."""
    priority = _call_priority.get()
    if priority is not Priority.PAID and _background.get():
        return Priority.BACKGROUND
    return priority


def call_priority(
    priority: Priority,
) -> Callable[[Callable[P, Awaitable[R]]], Callable[P, Coroutine[Any, Any, R]]]:
    """Decorate a client method with the budget class of the requests it makes."""

    def decorate(method: Callable[P, Awaitable[R]]) -> Callable[P, Coroutine[Any, Any, R]]:
        @functools.wraps(method)
        async def with_priority(*args: P.args, **kwargs: P.kwargs) -> R:
            token = _call_priority.set(priority)
            try:
                return await method(*args, **kwargs)
            finally:
                _call_priority.reset(token)

        return with_priority

    return decorate


@contextlib.contextmanager
def background_work() -> Iterator[None]:
    """Mark the eSIM Go calls made inside as background (poll and sync loops)."""
    token = _background.set(True)
    try:
        yield
    finally:
        _background.reset(token)


@contextlib.contextmanager
def paid_work() -> Iterator[None]:
    """Mark the eSIM Go calls made inside as a paid order's (e.g. reading an eSIM while its
    purchase is reconciled): they go before every call nobody has paid for."""
    token = _call_priority.set(Priority.PAID)
    try:
        yield
    finally:
        _call_priority.reset(token)
