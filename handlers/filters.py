"""Router-wide message filters: text a router cannot answer skips all its handlers at once."""

from __future__ import annotations

from aiogram.enums import ChatType
from aiogram.types import Message


async def is_command(message: Message) -> bool:
    """For routers that answer only commands: a typed search need not fail each Command filter.

    Async on purpose: aiogram runs a synchronous filter in a thread.
    """
    return _command_text(message)


async def is_command_or_in_a_form(message: Message, raw_state: str | None = None) -> bool:
    """For routers that answer commands, and any text while one of their forms is open."""
    return raw_state is not None or _command_text(message)


async def is_start_with_payload(message: Message) -> bool:
    """For the start links' router: plain /start (most updates) skips its deep-link parsing."""
    words = (message.text or "").split(maxsplit=1)  # any whitespace, as aiogram splits
    return len(words) == 2 and words[0].partition("@")[0] == "/start"


async def may_be_a_reply(message: Message, raw_state: str | None = None) -> bool:
    """For the support replies' router: only a reply, or a message while one of the user's forms
    is open, in a private chat can be meant for the support team."""
    private = message.chat.type == ChatType.PRIVATE
    return private and (raw_state is not None or message.reply_to_message is not None)


def _command_text(message: Message) -> bool:
    # aiogram's Command filter reads a photo's caption too.
    return (message.text or message.caption or "").startswith("/")
