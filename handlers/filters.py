"""Router-wide message filters: text a router cannot answer skips all its handlers at once."""

from __future__ import annotations

from aiogram.types import Message


async def is_command(message: Message) -> bool:
    """For routers that answer only commands: a typed search need not fail each Command filter.

    Async on purpose: aiogram runs a synchronous filter in a thread.
    """
    return _command_text(message)


async def is_command_or_in_a_form(message: Message, raw_state: str | None = None) -> bool:
    """For routers that answer commands, and any text while one of their forms is open."""
    return raw_state is not None or _command_text(message)


def _command_text(message: Message) -> bool:
    # aiogram's Command filter reads a photo's caption too.
    return (message.text or message.caption or "").startswith("/")
