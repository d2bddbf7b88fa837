"""/reminders: reminders of an unpaid order and of an eSIM not installed, on or off; the same
switch sits under every reminder ("No more reminders")."""

from __future__ import annotations

from aiogram import Router
from aiogram.filters import Command
from aiogram.types import CallbackQuery, InlineKeyboardMarkup, Message

from handlers.callbacks import MenuCallback, ReminderCallback
from handlers.common import show
from handlers.filters import is_command
from handlers.render import Screen, back_button, button
from services.reminders import ReminderService


def setting_screen(reminders: ReminderService, enabled: bool, lang: str) -> Screen:
    text, label = reminders.setting_text(enabled, lang)
    flip = ReminderCallback(action="off" if enabled else "on")
    rows = [[button(label, flip)], [back_button(MenuCallback(action="main"))]]
    return Screen(text, InlineKeyboardMarkup(inline_keyboard=rows))


async def on_reminders(message: Message, reminders: ReminderService, language: str) -> None:
    if message.from_user is None:
        return
    enabled = await reminders.enabled(message.from_user.id)
    await show(message, setting_screen(reminders, enabled, language))


async def on_switch(
    query: CallbackQuery,
    callback_data: ReminderCallback,
    reminders: ReminderService,
    language: str,
) -> None:
    enabled = callback_data.action == "on"
    await reminders.set_enabled(query.from_user.id, enabled)
    await show(query, setting_screen(reminders, enabled, language))


def create_router() -> Router:
    """A fresh router each call: a router can belong to one dispatcher only."""
    router = Router(name="reminders")
    router.message.filter(is_command)
    router.message.register(on_reminders, Command("reminders"))
    router.callback_query.register(on_switch, ReminderCallback.filter())
    return router
