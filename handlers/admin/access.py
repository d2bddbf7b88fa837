"""Who may use the operator's side: ADMIN_IDS, in their private chat with the bot.

A router-wide filter: for anyone else every admin handler is skipped at once, so their update
goes on to the other routers exactly as if no admin command or button existed (an unknown
command, a stale button: the menu).
"""

from __future__ import annotations

from collections.abc import Collection

from aiogram.enums import ChatType
from aiogram.types import CallbackQuery, Message


async def is_admin(event: Message | CallbackQuery, admin_ids: Collection[int]) -> bool:
    """Async on purpose: aiogram runs a synchronous filter in a thread."""
    if event.from_user is None or event.from_user.id not in admin_ids:
        return False
    message = event if isinstance(event, Message) else event.message
    return message is None or message.chat.type == ChatType.PRIVATE
