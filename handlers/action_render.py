"""Services' screens as plain data (services.actions) rendered as aiogram screens: each Action
becomes this bot's CallbackData, or a URL button, for the place the screen stands.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

from aiogram.filters.callback_data import CallbackData
from aiogram.types import InlineKeyboardButton, InlineKeyboardMarkup

from handlers.callbacks import (
    BundleCallback,
    CountryCallback,
    DoctorCallback,
    InstallHelpCallback,
    MenuCallback,
    MyEsimsCallback,
    RefundCallback,
    TopUpCallback,
    phone_check_data,
)
from handlers.render import Screen
from services.actions import Action, ActionButton, TextScreen

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Place:
    """Where a screen stands: the eSIM it is about (0: none), the plan a check started from and
    the country it was browsed in, and where Back leads."""

    back: CallbackData
    esim_id: int = 0
    bundle: str = ""
    iso: str = ""


def esim_place(esim_id: int, *, iso: str = "") -> Place:
    """A screen about one eSIM: Back returns to its card."""
    return Place(MyEsimsCallback(action="esim", id=esim_id), esim_id=esim_id, iso=iso)


def plan_place(bundle: str, iso: str) -> Place:
    """The phone check from a plan's card (Back to the card), or from the menu (no plan)."""
    if not bundle:
        return Place(MenuCallback(action="main"))
    return Place(BundleCallback(action="show", bundle=bundle, iso=iso), bundle=bundle, iso=iso)


DoctorAction = Literal["check", "ask_refresh", "refresh", "ticket"]


def _doctor(action: DoctorAction) -> Callable[[ActionButton, Place], CallbackData]:
    return lambda b, p: DoctorCallback(action=action, esim_id=p.esim_id)


def _refund(action: Literal["ask", "do"]) -> Callable[[ActionButton, Place], CallbackData]:
    return lambda b, p: RefundCallback(action=action, order_id=int(b.value), esim_id=p.esim_id)


_TARGETS: dict[Action, Callable[[ActionButton, Place], CallbackData]] = {
    Action.INSTALL_HELP: lambda b, p: InstallHelpCallback(esim_id=p.esim_id),
    Action.SHOW_QR: lambda b, p: MyEsimsCallback(action="qr", id=p.esim_id),
    Action.DIAGNOSE: _doctor("check"),
    Action.ASK_REFRESH: _doctor("ask_refresh"),
    Action.REFRESH: _doctor("refresh"),
    Action.TICKET: _doctor("ticket"),
    Action.TOPUP: lambda b, p: TopUpCallback(esim_id=p.esim_id),
    Action.PLAN: lambda b, p: BundleCallback(action="show", bundle=b.value, iso=p.iso),
    Action.COUNTRY: lambda b, p: CountryCallback(iso=b.value),
    Action.BACK: lambda b, p: p.back,
    Action.ASK_REFUND: _refund("ask"),
    Action.REFUND: _refund("do"),
    Action.PHONE_CHECK: lambda b, p: phone_check_data(b.value, p.bundle, p.iso),
    Action.BUY: lambda b, p: BundleCallback(action="buy", bundle=b.value, iso=p.iso),
    Action.BROWSE: lambda b, p: MenuCallback(action="buy"),
    Action.MENU: lambda b, p: MenuCallback(action="main"),
    Action.MY_ESIMS: lambda b, p: MenuCallback(action="myesims"),
}


def keyboard_button(button: ActionButton, place: Place) -> InlineKeyboardButton | None:
    """The button as Telegram shows it; None when it cannot be (a name too long for callback
    data): the screen goes out without it rather than not at all."""
    if button.url:
        return InlineKeyboardButton(text=button.text, url=button.url)
    try:
        data = _TARGETS[button.action](button, place).pack()
    except (KeyError, ValueError) as exc:
        log.warning("button %s (%r) cannot be shown: %s", button.action, button.value, exc)
        return None
    return InlineKeyboardButton(text=button.text, callback_data=data)


def keyboard_rows(
    rows: Sequence[Sequence[ActionButton]], place: Place
) -> list[list[InlineKeyboardButton]]:
    rendered = ([shown for b in row if (shown := keyboard_button(b, place))] for row in rows)
    return [row for row in rendered if row]


def render_screen(screen: TextScreen, place: Place) -> Screen:
    rows = keyboard_rows(screen.buttons, place)
    return Screen(screen.text, InlineKeyboardMarkup(inline_keyboard=rows))
