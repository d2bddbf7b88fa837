"""/start main menu, /help, /language and main-menu navigation; `show` edits one message."""

from __future__ import annotations

import logging

from aiogram import F, Router
from aiogram.exceptions import TelegramBadRequest
from aiogram.filters import Command, CommandStart
from aiogram.types import CallbackQuery, Message
from aiogram.utils.callback_answer import CallbackAnswer
from aiogram.utils.i18n import I18n
from aiogram.utils.i18n import gettext as _

from handlers import render
from handlers.callbacks import LanguageCallback, MenuCallback, NoopCallback
from handlers.filters import is_command
from handlers.render import Screen
from handlers.screen_cache import ScreenCache
from services.i18n import SUPPORTED_LANGUAGES
from services.profiles import UserProfiles

logger = logging.getLogger(__name__)


async def show(event: Message | CallbackQuery, screen: Screen) -> None:
    """Edit the pressed button's message in place; typed input, or a message that cannot be
    edited (too old, a photo, deleted), gets a new message instead."""
    if isinstance(event, Message):
        await event.answer(screen.text, reply_markup=screen.markup)
        return
    message = event.message
    if isinstance(message, Message) and message.text is not None:
        try:
            await message.edit_text(screen.text, reply_markup=screen.markup)
            return
        except TelegramBadRequest as exc:
            if "message is not modified" in exc.message:
                return
            logger.info("Cannot edit message %s, sending a new one: %s", message.message_id, exc)
    if message is not None:
        await message.answer(screen.text, reply_markup=screen.markup)
    elif event.bot is not None:
        await event.bot.send_message(event.from_user.id, screen.text, reply_markup=screen.markup)


async def on_main_menu(event: Message | CallbackQuery, screens: ScreenCache) -> None:
    """/start and every "main menu" button."""
    await show(event, screens.render(render.main_menu))


async def on_help(event: Message | CallbackQuery, screens: ScreenCache) -> None:
    await show(event, screens.render(render.help_screen))


async def on_language(event: Message | CallbackQuery, language: str) -> None:
    await show(event, render.language_screen(language))


async def on_language_chosen(
    query: CallbackQuery,
    callback_data: LanguageCallback,
    profiles: UserProfiles,
    i18n: I18n,
    callback_answer: CallbackAnswer,
    screens: ScreenCache,
) -> None:
    code = callback_data.code
    if code not in SUPPORTED_LANGUAGES:
        callback_answer.text = _("This button is out of date.")
        await show(query, screens.render(render.main_menu))
        return
    await profiles.store_language(query.from_user.id, code)
    # Answer and redraw in the new language from here on.
    i18n.current_locale = code
    callback_answer.text = _("Language: English") if code == "en" else _("Language: Russian")
    await show(query, screens.render(render.main_menu))


async def on_noop(query: CallbackQuery) -> None:
    """Page counters and headers: the answer (by the middleware) just stops the spinner."""


def create_router() -> Router:
    """A fresh router each call: a router can belong to one dispatcher only."""
    router = Router(name="common")
    router.message.filter(is_command)
    router.message.register(on_main_menu, CommandStart())
    router.message.register(on_help, Command("help"))
    router.message.register(on_language, Command("language"))
    router.callback_query.register(on_main_menu, MenuCallback.filter(F.action == "main"))
    router.callback_query.register(on_help, MenuCallback.filter(F.action == "help"))
    router.callback_query.register(on_language, MenuCallback.filter(F.action == "language"))
    router.callback_query.register(on_language_chosen, LanguageCallback.filter())
    router.callback_query.register(on_noop, NoopCallback.filter())
    return router
