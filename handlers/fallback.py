"""Whatever no other router took: unknown commands, stickers, photos, stale or forged buttons.

Always the last router: each case gets a short friendly answer and the main menu.
"""

from __future__ import annotations

import logging

from aiogram import F, Router
from aiogram.enums import ChatType
from aiogram.types import CallbackQuery, Message
from aiogram.utils.callback_answer import CallbackAnswer
from aiogram.utils.i18n import gettext as _

from handlers import render
from handlers.common import show
from handlers.render import Screen
from handlers.screen_cache import ScreenCache

logger = logging.getLogger(__name__)


def _with_menu(screens: ScreenCache, text: str) -> Screen:
    return Screen(text, screens.render(render.main_menu).markup)


async def on_unknown_command(message: Message, screens: ScreenCache) -> None:
    await show(message, _with_menu(screens, _("I don't know that command. Here is the menu:")))


async def on_other_message(message: Message, screens: ScreenCache) -> None:
    """Stickers, photos, voice notes, locations…: the bot reads only text."""
    await show(
        message,
        _with_menu(screens, _("I can only read text. Type a country's name, or use the menu:")),
    )


async def on_stale_button(
    query: CallbackQuery, callback_answer: CallbackAnswer, screens: ScreenCache
) -> None:
    """A button from an old message, or data nobody sends: answer, then show the menu."""
    logger.info("Unhandled callback data %r from %s", query.data, query.from_user.id)
    callback_answer.text = _("This button is out of date. Here is the menu.")
    await show(query, screens.render(render.main_menu))


def create_router() -> Router:
    """A fresh router each call: a router can belong to one dispatcher only."""
    router = Router(name="fallback")
    router.message.register(
        on_unknown_command, F.chat.type == ChatType.PRIVATE, F.text.startswith("/")
    )
    router.message.register(on_other_message, F.chat.type == ChatType.PRIVATE)
    router.callback_query.register(on_stale_button)
    return router
