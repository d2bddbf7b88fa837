"""Every CallbackData factory of the bot, and the packed links that services put under messages.

`origin` fields remember where the user came from so Back returns there. They are short codes:
"p" the Buy screen, "s" a search, "a<page>" the A–Z list, "r<page>.<region>" a region's list.
Anything else (stale or forged) leads back to the Buy screen.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from aiogram.filters.callback_data import CallbackData

from services.reminders import ReminderButtons

ORIGIN_BUY = "p"
ORIGIN_SEARCH = "s"
_PAGE = re.compile(r"[0-9]{1,4}")


class MenuCallback(CallbackData, prefix="menu"):
    """Main-menu navigation: the menu itself, Buy, Help, Language, My eSIMs."""

    action: Literal["main", "buy", "help", "language", "myesims"]


class LanguageCallback(CallbackData, prefix="lang"):
    code: str


class CountryListCallback(CallbackData, prefix="cl"):
    """Lists of countries: regions, one region's countries, or everything A–Z (paged)."""

    view: Literal["regions", "region", "az"]
    page: int = 0
    region: str = ""


class CountryCallback(CallbackData, prefix="co"):
    """A country's plans (paged); `origin` is where Back leads."""

    iso: str
    origin: str = ORIGIN_BUY
    page: int = 0


class BundleCallback(CallbackData, prefix="bu"):
    """A bundle's card ("show") or buying it ("buy"); iso/origin/page lead Back to the list."""

    action: Literal["show", "buy"]
    bundle: str
    iso: str = ""
    origin: str = ORIGIN_BUY
    page: int = 0


class NoopCallback(CallbackData, prefix="noop"):
    """Buttons that only label something (page counter, section header)."""

    what: str = ""


class OrderCallback(CallbackData, prefix="po"):
    """Pay for or cancel one order (public id); the owner is checked on every press."""

    action: Literal["pay", "cancel"]
    order: str


class MyEsimsCallback(CallbackData, prefix="me"):
    """/myesims navigation; `id` is an eSIM id ("esim", "qr") or an order id ("order", "oqr")."""

    action: Literal["list", "esim", "order", "qr", "oqr"]
    id: int = 0
    page: int = 0

    def owned(self) -> Owned | None:
        if self.action in ("esim", "qr"):
            return Owned("esim", self.id)
        if self.action in ("order", "oqr"):
            return Owned("order", self.id)
        return None


class InstallHelpCallback(CallbackData, prefix="ih"):
    """Install steps; `esim_id` 0 comes from under a delivered QR photo (Back → the list)."""

    esim_id: int = 0

    def owned(self) -> Owned | None:
        return Owned("esim", self.esim_id) if self.esim_id else None


class TopUpCallback(CallbackData, prefix="topup"):
    """Top up an eSIM the user owns: the first page of its plans."""

    esim_id: int


class TopUpPageCallback(CallbackData, prefix="tupp"):
    """One page of the plans offered for an eSIM (the first page is `TopUpCallback`)."""

    esim_id: int
    page: int = 0


class TopUpPickCallback(CallbackData, prefix="tup"):
    """A bundle chosen for an eSIM: compatibility check, then the confirm card."""

    esim_id: int
    bundle: str
    page: int = 0


class SupportCallback(CallbackData, prefix="sup"):
    """Pick an order to ask about (`id`), a general question, or cancel."""

    action: Literal["order", "other", "cancel"]
    id: int = 0

    def owned(self) -> Owned | None:
        return Owned("order", self.id) if self.action == "order" else None


class DoctorCallback(CallbackData, prefix="dr"):
    """The eSIM doctor on one eSIM: check it, ask to / refresh the network, open a ticket."""

    action: Literal["check", "ask_refresh", "refresh", "ticket"]
    esim_id: int

    def owned(self) -> Owned | None:
        return Owned("esim", self.esim_id)


class RefundCallback(CallbackData, prefix="rf"):
    """Refund an unused order ("ask" confirms first); `esim_id` is the card Back leads to."""

    action: Literal["ask", "do"]
    order_id: int
    esim_id: int = 0

    def owned(self) -> Owned | None:
        return Owned("order", self.order_id)


class PhoneCheckCallback(CallbackData, prefix="pc"):
    """A step of "Will it work on my phone?"; `bundle`/`iso`: the plan card it started from."""

    step: str
    bundle: str = ""
    iso: str = ""


class GiftCallback(CallbackData, prefix="gift"):
    """Buy an order (`order`: public id) as a gift; a pending gift (`id`) shared again, or
    taken back: asked first ("ask"), then done ("keep"). Services check the presser's own."""

    action: Literal["buy", "share", "ask", "keep"]
    order: str = ""
    id: int = 0


class ReminderCallback(CallbackData, prefix="rem"):
    """Reminders turned on or off (/reminders, and the button under each reminder)."""

    action: Literal["on", "off"]


class AdminOrderCallback(CallbackData, prefix="ao"):
    """Admins only: an order's story ("show"), an action's confirmation ("ask"), the action
    ("do"; "money": a Refund of the money only, when eSIM Go could not be asked to take the
    plan back); `action` is an OrderAction value."""

    step: Literal["show", "ask", "do", "money"]
    order: str
    action: Literal["", "retry", "refund", "resend", "resolve"] = ""


class TicketCallback(CallbackData, prefix="tk"):
    """Admins only: close a support ticket, from under its copy or from the /tickets list."""

    ticket: int
    where: Literal["copy", "list"] = "copy"


class BroadcastCallback(CallbackData, prefix="bc"):
    """Admins only: a broadcast draft's audience ("all", "buyers" or a language), Send, Cancel."""

    action: Literal["audience", "send", "cancel"]
    id: int
    audience: str = ""


@dataclass(frozen=True, slots=True)
class Owned:
    """What a button names that only its owner may open: an eSIM or an order, by id."""

    kind: Literal["esim", "order"]
    id: int


def install_help_callback_data() -> str:
    """The "Step-by-step instructions" button under a delivered QR photo."""
    return InstallHelpCallback().pack()


def open_esim_callback_data(esim_id: int) -> str:
    """The button under a delivered top-up (and the list's entries) that opens an eSIM."""
    return MyEsimsCallback(action="esim", id=esim_id).pack()


def gift_take_back_callback_data(gift_id: int) -> str:
    """ "Take it back" under a gift's claim link: asks first."""
    return GiftCallback(action="ask", id=gift_id).pack()


def reminder_buttons() -> ReminderButtons:
    """Under reminders: turn them off, pay the order (its invoice again, as "Pay" does after
    checking owner and price), the eSIM's install help (owner checked there too)."""
    return ReminderButtons(
        turn_off=ReminderCallback(action="off").pack(),
        pay=lambda public_id: OrderCallback(action="pay", order=public_id).pack(),
        install_help=lambda esim_id: InstallHelpCallback(esim_id=esim_id).pack(),
    )


def topup_callback_data(esim_id: int) -> str:
    """The "Top up" button of an eSIM, under notifications and in /myesims."""
    return TopUpCallback(esim_id=esim_id).pack()


def phone_check_data(step: str, bundle: str = "", iso: str = "") -> PhoneCheckCallback:
    """A step of the phone check, carrying the plan while it fits in callback data (a name
    too long goes without it: the check then asks for a country at step 3)."""
    data = PhoneCheckCallback(step=step, bundle=bundle, iso=iso)
    try:
        data.pack()
    except ValueError:
        return PhoneCheckCallback(step=step)
    return data


@dataclass(frozen=True, slots=True)
class Origin:
    """A decoded `origin`: which list to go Back to."""

    kind: Literal["buy", "search", "az", "region"]
    page: int = 0
    region: str = ""


def az_origin(page: int) -> str:
    return f"a{page}"


def region_origin(region: str, page: int) -> str:
    return f"r{page}.{region}"


def parse_origin(origin: str) -> Origin:
    """Decode an origin code; unknown or malformed codes mean the Buy screen."""
    if origin == ORIGIN_SEARCH:
        return Origin("search")
    if origin.startswith("a") and _PAGE.fullmatch(origin[1:]):
        return Origin("az", page=int(origin[1:]))
    if origin.startswith("r") and "." in origin:
        page, _, region = origin[1:].partition(".")
        if _PAGE.fullmatch(page) and region:
            return Origin("region", page=int(page), region=region)
    return Origin("buy")


class SandboxCallback(CallbackData, prefix="sbx"):
    """Sandbox mode: "Simulate payment" under the simulated invoice of an order (public id)."""

    action: Literal["pay"]
    order: str
