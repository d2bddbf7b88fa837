"""Screens described as plain data: a text and buttons that name an action.

Services build them in an explicit language; handlers render them, turning each action into
their own CallbackData (or a URL button) — so texts are testable without aiogram.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class Action(enum.StrEnum):
    """What a button does; `value` carries its argument where one is needed."""

    INSTALL_IPHONE = "install_iphone"  # url
    INSTALL_ANDROID = "install_android"  # url
    INSTALL_HELP = "install_help"
    SHOW_QR = "show_qr"
    DIAGNOSE = "diagnose"  # run the eSIM doctor (again)
    ASK_REFRESH = "ask_refresh"  # the network-refresh confirmation
    REFRESH = "refresh"
    TOPUP = "topup"
    PLAN = "plan"  # value: a bundle name (its card)
    COUNTRY = "country"  # value: an ISO code (its plans)
    TICKET = "ticket"  # open a support ticket with the diagnosis
    BACK = "back"  # the screen this flow started from (the eSIM, the bundle card)
    ASK_REFUND = "ask_refund"  # value: an order id
    REFUND = "refund"  # value: an order id
    PHONE_CHECK = "phone_check"  # value: a PhoneCheckStep
    BUY = "buy"  # value: a bundle name
    BROWSE = "browse"  # choose a country
    MENU = "menu"
    MY_ESIMS = "my_esims"


@dataclass(frozen=True, slots=True)
class ActionButton:
    action: Action
    text: str
    value: str = ""
    url: str = ""


@dataclass(frozen=True, slots=True)
class TextScreen:
    """HTML text and rows of buttons."""

    text: str
    buttons: tuple[tuple[ActionButton, ...], ...] = ()

    def actions(self) -> list[Action]:
        return [button.action for row in self.buttons for button in row]
