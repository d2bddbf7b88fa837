"""Screens of /myesims as text + inline keyboard; no I/O (rows come in, a Screen goes out).

Texts go through aiogram's gettext (the i18n middleware sets the language); dates and prices
are formatted for `lang`, the same language, passed explicitly for Babel.
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from aiogram.filters.callback_data import CallbackData
from aiogram.types import InlineKeyboardButton, InlineKeyboardMarkup
from aiogram.utils.i18n import gettext as _
from babel.dates import format_date, format_timedelta

from db.models import Esim, EsimBundle, Order, OrderStatus
from handlers.callbacks import MenuCallback
from handlers.render import Screen, back_button, button, clamp_page, format_data, format_days
from services.catalogue import Catalogue
from services.countries import country_name, flag, region_name
from services.i18n import N_, Translator
from services.pricing import Price, format_price
from services.usage import (
    esim_state,
    finished_line,
    group_bundles,
    is_installed,
    percent_left,
    plan_line,
    state_label,
)

ENTRIES_PER_PAGE = 8
HISTORY_LIMIT = 10
FINISHED_LIMIT = 3
# Under this age the shown state is simply "just now".
JUST_NOW = timedelta(minutes=1)

ORDER_STATUS_LABELS: dict[str, str] = {
    OrderStatus.AWAITING_PAYMENT: N_("awaiting payment"),
    OrderStatus.CANCELLED: N_("cancelled"),
    OrderStatus.PAID: N_("paid, preparing your eSIM"),
    OrderStatus.FULFILLING: N_("paid, preparing your eSIM"),
    OrderStatus.DELIVERED: N_("delivered"),
    OrderStatus.FAILED: N_("not delivered, refund in progress"),
    OrderStatus.REFUNDED: N_("refunded"),
    OrderStatus.REFUND_DUE: N_("not delivered, refund in progress"),
}


class MyEsimsCallback(CallbackData, prefix="me"):
    """/myesims navigation; `id` is an eSIM id ("esim", "qr") or an order id ("order", "oqr")."""

    action: Literal["list", "esim", "order", "qr", "oqr"]
    id: int = 0
    page: int = 0


class InstallHelpCallback(CallbackData, prefix="ih"):
    """Install steps; `esim_id` 0 comes from under a delivered QR photo (Back → the list)."""

    esim_id: int = 0


class TopUpCallback(CallbackData, prefix="topup"):
    """Top up an eSIM the user owns (handled by handlers.topup)."""

    esim_id: int


@dataclass(frozen=True, slots=True)
class Entry:
    """One line of the list: an eSIM (with its orders) or an order that has no eSIM."""

    kind: Literal["esim", "order"]
    id: int
    title: str
    status: str
    when: datetime


@dataclass(frozen=True, slots=True)
class Freshness:
    """How current the shown state is: whether reading eSIM Go just now worked, and when it
    last did."""

    refreshed: bool
    polled_at: datetime | None
    now: datetime


# -- formatting -----------------------------------------------------------------------------


def format_day(moment: datetime, lang: str) -> str:
    """Mar 12, 2025 / 12 мар. 2025 г."""
    return format_date(moment.date(), format="medium", locale=lang)


def format_short_day(moment: datetime, lang: str) -> str:
    """Mar 12 / 12 мар."""
    return format_date(moment.date(), format="MMM d" if lang == "en" else "d MMM", locale=lang)


def area_label(order: Order, lang: str) -> str:
    """🇹🇭 Thailand, or a region's name for multi-country plans."""
    code = (order.country_code or "").strip()
    if len(code) == 2 and code.isalpha():
        emoji = flag(code)
        name = country_name(code, lang, order.country_name)
        return f"{emoji} {name}" if emoji else name
    if order.country_name:
        return "🌍 " + region_name(order.country_name, lang)
    return "🌍"


def plan_title(order: Order, catalogue: Catalogue, lang: str) -> str:
    """`🇹🇭 Thailand · 1 GB · 7 days` (plain text; escape it for HTML)."""
    bundle = catalogue.by_name(order.bundle_name)
    if bundle is None:
        size = order.bundle_name
    else:
        size = f"{format_data(bundle, lang)} · {format_days(bundle.duration_days)}"
    return f"{area_label(order, lang)} · {size}"


def bundle_title(
    bundle_name: str, orders: Sequence[Order], catalogue: Catalogue, lang: str
) -> str:
    """A bundle row's plan, titled like the order that bought it (else from the catalogue)."""
    order = next((o for o in orders if o.bundle_name == bundle_name), None)
    if order is not None:
        return plan_title(order, catalogue, lang)
    found = catalogue.by_name(bundle_name)
    if found is None:
        return bundle_name
    place = "🌍"
    if found.countries:
        first = found.countries[0]
        emoji = flag(first.iso)
        if emoji:
            place = f"{emoji} {country_name(first.iso, lang, first.name)}"
        else:
            place = f"🌍 {region_name(first.name, lang)}"
    return f"{place} · {format_data(found, lang)} · {format_days(found.duration_days)}"


def order_status(order: Order) -> str:
    label = ORDER_STATUS_LABELS.get(order.status)
    return _(label) if label is not None else order.status


def esim_status(
    esim: Esim, bundles: Sequence[EsimBundle], translator: Translator, lang: str
) -> str:
    """The eSIM's state in words: not installed yet, ready, in use, used up, expired."""
    installed = is_installed(esim.profile_status, esim.first_installed_at)
    return state_label(esim_state(installed, [b.state for b in bundles]), lang, translator)


def esim_title(
    esim: Esim,
    orders: Sequence[Order],
    current: EsimBundle | None,
    catalogue: Catalogue,
    lang: str,
) -> str:
    """Named after the plan it shows (the active one), else its latest purchase."""
    if current is not None:
        return bundle_title(current.bundle_name, orders, catalogue, lang)
    latest = max(orders, key=lambda o: o.created_at, default=None)
    return plan_title(latest, catalogue, lang) if latest is not None else esim.iccid


def freshness_note(freshness: Freshness, lang: str) -> str:
    """`Updated 5 minutes ago`, or that eSIM Go could not be read and how old the data is."""
    polled = freshness.polled_at
    age = freshness.now - polled if polled is not None else None
    ago = (
        format_timedelta(-age, add_direction=True, locale=lang)
        if age is not None and age >= JUST_NOW
        else None
    )
    if freshness.refreshed:
        if ago is None:
            return _("🔄 Updated just now")
        return _("🔄 Updated {ago}").format(ago=ago)
    if polled is None:
        return _("⚠️ Couldn't refresh just now; showing what we know.")
    if ago is None:
        return _("⚠️ Couldn't refresh just now; this was updated less than a minute ago.")
    return _("⚠️ Couldn't refresh just now; this was updated {ago}.").format(ago=ago)


def order_price(order: Order, lang: str) -> str:
    return format_price(Price(order.price, order.price_currency), lang)


# -- the list -------------------------------------------------------------------------------


def build_entries(
    esims: Sequence[Esim],
    orders: Sequence[Order],
    bundles: Mapping[str, Sequence[EsimBundle]],
    catalogue: Catalogue,
    translator: Translator,
    lang: str,
) -> list[Entry]:
    """eSIMs (state in words, % of data left) and orders without an eSIM, newest first.

    Only stored state: listing never calls eSIM Go.
    """
    by_iccid: dict[str, list[Order]] = {}
    for order in orders:
        if order.iccid:
            by_iccid.setdefault(order.iccid, []).append(order)
    entries: list[Entry] = []
    for esim in esims:
        mine = by_iccid.get(esim.iccid, [])
        rows = bundles.get(esim.iccid, ())
        current = group_bundles(rows).current
        title = esim_title(esim, mine, current, catalogue, lang)
        when = max([esim.created_at, *(o.created_at for o in mine)])
        status = esim_status(esim, rows, translator, lang)
        left = percent_left(current, lang, translator) if current is not None else None
        if left is not None:
            status = f"{status} · {left}"
        entries.append(Entry("esim", esim.id, title, status, when))
    owned = {esim.iccid for esim in esims}
    for order in orders:
        if order.iccid and order.iccid in owned:
            continue
        title = plan_title(order, catalogue, lang)
        entries.append(Entry("order", order.id, title, order_status(order), order.created_at))
    entries.sort(key=lambda e: (e.when, e.kind == "esim", e.id), reverse=True)
    return entries


def _open(entry: Entry, page: int) -> MyEsimsCallback:
    return MyEsimsCallback(action=entry.kind, id=entry.id, page=page)


def list_screen(entries: Sequence[Entry], lang: str, page: int = 0) -> Screen:
    if not entries:
        return empty_screen()
    page, pages = clamp_page(page, len(entries), ENTRIES_PER_PAGE)
    shown = entries[page * ENTRIES_PER_PAGE : (page + 1) * ENTRIES_PER_PAGE]
    lines = [_("📱 <b>My eSIMs and orders</b>"), ""]
    for entry in shown:
        lines.append(
            _("<b>{title}</b>\n{status} · {date}").format(
                title=html.escape(entry.title),
                status=html.escape(entry.status),
                date=format_day(entry.when, lang),
            )
        )
    lines += ["", _("Tap one to see its details.")]
    # The date tells apart two orders of the same plan (a refunded one and its re-purchase).
    rows = [
        [button(f"{entry.title} · {format_short_day(entry.when, lang)}", _open(entry, page))]
        for entry in shown
    ]
    if pages > 1:
        nav = []
        if page > 0:
            nav.append(button("‹", MyEsimsCallback(action="list", page=page - 1)))
        if page < pages - 1:
            nav.append(button("›", MyEsimsCallback(action="list", page=page + 1)))
        rows.append(nav)
    rows.append([back_button(MenuCallback(action="main"))])
    return Screen("\n".join(lines), InlineKeyboardMarkup(inline_keyboard=rows))


def empty_screen() -> Screen:
    text = _(
        "📱 You have no eSIMs yet.\n\nBuy one for your next trip — it arrives here in a minute."
    )
    rows = [
        [button(_("🛒 Buy eSIM"), MenuCallback(action="buy"))],
        [back_button(MenuCallback(action="main"))],
    ]
    return Screen(text, InlineKeyboardMarkup(inline_keyboard=rows))


# -- details --------------------------------------------------------------------------------


def _history_line(order: Order, catalogue: Catalogue, lang: str) -> str:
    return _("• {date} — {plan} — {price} — {status} (order <code>{order}</code>)").format(
        date=format_day(order.created_at, lang),
        plan=html.escape(plan_title(order, catalogue, lang)),
        price=order_price(order, lang),
        status=html.escape(order_status(order)),
        order=html.escape(order.public_id),
    )


def esim_screen(
    esim: Esim,
    orders: Sequence[Order],
    bundles: Sequence[EsimBundle],
    catalogue: Catalogue,
    translator: Translator,
    lang: str,
    freshness: Freshness,
    page: int = 0,
) -> Screen:
    """An eSIM: its plan and usage, queued and finished plans, purchases; QR, install, top up."""
    groups = group_bundles(bundles)
    current = groups.current
    lines = [
        f"<b>{html.escape(esim_title(esim, orders, current, catalogue, lang))}</b>",
        _("Status: {status}").format(
            status=html.escape(esim_status(esim, bundles, translator, lang))
        ),
    ]
    if current is not None:
        lines.append(html.escape(plan_line(current, lang, translator)))
    if groups.queued:
        lines += ["", _("<b>Queued</b> — each starts when the plan before it ends:")]
        lines += [
            "• " + html.escape(bundle_title(b.bundle_name, orders, catalogue, lang))
            for b in groups.queued
        ]
    finished = [b for b in groups.finished if b is not current][:FINISHED_LIMIT]
    if finished:
        lines += ["", _("<b>Finished</b>")]
        for b in finished:
            plan = bundle_title(b.bundle_name, orders, catalogue, lang)
            outcome = finished_line(b, lang, translator)
            lines.append(f"• {html.escape(plan)} — {html.escape(outcome)}")
    lines += ["", _("ICCID: <code>{iccid}</code>").format(iccid=html.escape(esim.iccid))]
    if orders:
        lines += ["", _("<b>Purchases</b>")]
        lines += [_history_line(order, catalogue, lang) for order in orders[:HISTORY_LIMIT]]
    lines += ["", "<i>" + html.escape(freshness_note(freshness, lang)) + "</i>"]
    rows: list[list[InlineKeyboardButton]] = []
    if esim.lpa or (esim.smdp_address and esim.matching_id):
        rows.append([button(_("🔳 Show QR again"), MyEsimsCallback(action="qr", id=esim.id))])
    rows.append([button(_("📖 How to install"), InstallHelpCallback(esim_id=esim.id))])
    rows.append([button(_("➕ Top up"), TopUpCallback(esim_id=esim.id))])
    rows.append([back_button(MyEsimsCallback(action="list", page=page))])
    return Screen("\n".join(lines), InlineKeyboardMarkup(inline_keyboard=rows))


_ORDER_NOTES: dict[str, str] = {
    OrderStatus.AWAITING_PAYMENT: N_(
        "This order has not been paid. Unpaid orders are cancelled after a day."
    ),
    OrderStatus.CANCELLED: N_("This order was cancelled; nothing was charged."),
    OrderStatus.PAID: N_("Payment received. Your eSIM will arrive in this chat shortly."),
    OrderStatus.FULFILLING: N_("Payment received. Your eSIM will arrive in this chat shortly."),
    OrderStatus.FAILED: N_("We could not issue this eSIM; your payment is being refunded."),
    OrderStatus.REFUND_DUE: N_("We could not issue this eSIM; your payment is being refunded."),
    OrderStatus.REFUNDED: N_("We could not issue this eSIM; your payment was refunded."),
}


def order_screen(order: Order, catalogue: Catalogue, lang: str, page: int = 0) -> Screen:
    """An order without an eSIM row: what it was, its status in words, what happens next."""
    lines = [
        _("<b>Order <code>{order}</code></b>").format(order=html.escape(order.public_id)),
        _("Plan: {plan}").format(plan=html.escape(plan_title(order, catalogue, lang))),
        _("Price: {price}").format(price=order_price(order, lang)),
        _("Date: {date}").format(date=format_day(order.created_at, lang)),
        _("Status: {status}").format(status=html.escape(order_status(order))),
    ]
    if order.iccid:
        lines.append(_("ICCID: <code>{iccid}</code>").format(iccid=html.escape(order.iccid)))
    note = _ORDER_NOTES.get(order.status)
    if note is not None:
        lines += ["", _(note)]
    rows: list[list[InlineKeyboardButton]] = []
    if order.qr_code:
        rows.append([button(_("🔳 Show QR again"), MyEsimsCallback(action="oqr", id=order.id))])
        rows.append([button(_("📖 How to install"), InstallHelpCallback())])
    rows.append([back_button(MyEsimsCallback(action="list", page=page))])
    return Screen("\n".join(lines), InlineKeyboardMarkup(inline_keyboard=rows))


def install_help_screen(text: str, esim_id: int) -> Screen:
    back = (
        MyEsimsCallback(action="esim", id=esim_id) if esim_id else MyEsimsCallback(action="list")
    )
    return Screen(text, InlineKeyboardMarkup(inline_keyboard=[[back_button(back)]]))
