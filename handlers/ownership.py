"""Buttons that name an eSIM or an order work only for their owner.

`OwnedOnly` checks it once for a whole router (as browse's RequireCatalogue checks the
catalogue): the handler receives the user's own eSIM or order as `owned`; a forged or stale id
gets an alert and the screen stays as it was.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from aiogram import BaseMiddleware
from aiogram.types import CallbackQuery, TelegramObject
from aiogram.utils.callback_answer import CallbackAnswer
from aiogram.utils.i18n import gettext as _

from handlers.callbacks import Owned
from services.i18n import N_
from services.myesims import EsimView, MyEsimsService, OrderView

NOT_YOURS = N_("This eSIM or order is not available. Open /myesims for yours.")


def alert(callback_answer: CallbackAnswer, text: str) -> None:
    """Answer the button with `text` in a box the user must close."""
    callback_answer.text = text
    callback_answer.show_alert = True


def refuse(callback_answer: CallbackAnswer, text: str = NOT_YOURS) -> None:
    """The eSIM or order a button names is not the presser's (or no longer exists)."""
    alert(callback_answer, _(text))


class OwnedOnly(BaseMiddleware):
    """For callback data with an `owned()` reference: the handler runs only for its owner."""

    def __init__(self, refusal: str = NOT_YOURS) -> None:
        self._refusal = refusal

    async def __call__(
        self,
        handler: Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]],
        event: TelegramObject,
        data: dict[str, Any],
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
