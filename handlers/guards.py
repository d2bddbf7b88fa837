"""Router-wide guards: middlewares that stop an update before its handler when it cannot be
served, and hand the handler what they checked.

`RequireCatalogue` needs a catalogue to browse; `OwnedOnly` lets a button that names an eSIM or
an order work only for its owner (the handler receives it as `owned`; a forged or stale id gets
an alert and the screen stays as it was); `PrivateChatOnly` keeps buying, paying, QR codes and
top-ups in the user's private chat.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from aiogram import BaseMiddleware, Bot
from aiogram.enums import ChatType
from aiogram.types import (
    CallbackQuery,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    Message,
    TelegramObject,
)
from aiogram.utils.callback_answer import CallbackAnswer
from aiogram.utils.i18n import gettext as _

from handlers import render
from handlers.callbacks import Owned
from handlers.common import show
from handlers.render import Screen
from services.catalogue import CatalogueService
from services.i18n import N_
from services.myesims import EsimView, MyEsimsService, OrderView

NextHandler = Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]]
NOT_YOURS = N_("This eSIM or order is not available. Open /myesims for yours.")


def alert(callback_answer: CallbackAnswer, text: str) -> None:
    """Answer the button with `text` in a box the user must close."""
    callback_answer.text = text
    callback_answer.show_alert = True


def refuse(callback_answer: CallbackAnswer, text: str = NOT_YOURS) -> None:
    """The eSIM or order a button names is not the presser's (or no longer exists)."""
    alert(callback_answer, _(text))


class RequireCatalogue(BaseMiddleware):
    """Browsing needs a catalogue: with none (no snapshot and eSIM Go down) say so and stop.

    Handlers behind it receive the loaded catalogue as `current`.
    """

    async def __call__(
        self, handler: NextHandler, event: TelegramObject, data: dict[str, Any]
    ) -> Any:
        catalogue: CatalogueService = data["catalogue"]
        if catalogue.catalogue.is_empty:
            assert isinstance(event, CallbackQuery | Message)
            await show(event, render.catalogue_unavailable())
            return None
        data["current"] = catalogue.catalogue
        return await handler(event, data)


class OwnedOnly(BaseMiddleware):
    """For callback data with an `owned()` reference: the handler runs only for its owner."""

    def __init__(self, refusal: str = NOT_YOURS) -> None:
        self._refusal = refusal

    async def __call__(
        self, handler: NextHandler, event: TelegramObject, data: dict[str, Any]
    ) -> Any:
        named = getattr(data.get("callback_data"), "owned", None)
        wanted: Owned | None = named() if callable(named) else None
        if wanted is None or not isinstance(event, CallbackQuery):
            return await handler(event, data)
        myesims: MyEsimsService = data["myesims"]
        found: EsimView | OrderView | None
        if wanted.kind == "esim":
            found = await myesims.esim(wanted.id, event.from_user.id)
        else:
            found = await myesims.order(wanted.id, event.from_user.id)
        if found is None:
            refuse(data["callback_answer"], self._refusal)
            return None
        data["owned"] = found
        return await handler(event, data)


def in_private_chat(event: TelegramObject) -> bool:
    """A message or a button in the user's own chat with the bot (a button on an inline
    message, posted anywhere, is not)."""
    message = event.message if isinstance(event, CallbackQuery) else event
    return isinstance(message, Message) and message.chat.type == ChatType.PRIVATE


def private_chat_screen(bot_username: str) -> Screen:
    """Why not here, and a button into the private chat."""
    text = _(
        "🔒 Buying, paying and eSIM QR codes happen only in our private chat: a QR code "
        "lets whoever scans it first install the eSIM. Tap below to continue there."
    )
    link = InlineKeyboardButton(
        text=_("💬 Open the private chat"), url=f"https://t.me/{bot_username}"
    )
    return Screen(text, InlineKeyboardMarkup(inline_keyboard=[[link]]))


class PrivateChatOnly(BaseMiddleware):
    """The handler runs only in the user's private chat; anywhere else (a group, a channel, an
    inline message) the bot offers a button into it instead."""

    async def __call__(
        self, handler: NextHandler, event: TelegramObject, data: dict[str, Any]
    ) -> Any:
        if in_private_chat(event) or not isinstance(event, CallbackQuery | Message):
            return await handler(event, data)
        bot: Bot = data["bot"]
        me = await bot.me()  # asked once, then remembered by aiogram
        await show(event, private_chat_screen(me.username or ""))
        return None
