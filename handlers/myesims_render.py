"""Screens of /myesims (and the order titles /paysupport shows) as text + inline keyboard; no I/O:
the views of services.myesims come in, a Screen goes out.

Texts go through aiogram's gettext (the i18n middleware sets the language); plans, dates and
prices are formatted by services.formatting in `Wording.lang`, the same language.
"""

from __future__ import annotations

import html
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from aiogram.types import InlineKeyboardButton, InlineKeyboardMarkup
from aiogram.utils.i18n import gettext as _
from babel.dates import format_timedelta

from handlers.callbacks import (
    GiftCallback,
    InstallHelpCallback,
    MenuCallback,
    MyEsimsCallback,
    TopUpCallback,
)
from handlers.render import Screen, back_button, button
from services.catalogue import Catalogue
from services.formatting import bundle_title, date_medium, date_short, order_title
from services.i18n import N_, Translator
from services.myesims import (
    BundleView,
    EsimDetail,
    EsimEntry,
    EsimView,
    Freshness,
    ListPage,
    OrderStatus,
    OrderView,
)
from services.pricing import format_price
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


@dataclass(frozen=True, slots=True)
class Wording:
    """How the user's eSIMs and orders read in one language (plain text; escape for HTML)."""

    catalogue: Catalogue
    translator: Translator
    lang: str

    def order_title(self, order: OrderView) -> str:
        """`🇹🇭 Thailand · 1 GB · 7 days`."""
        bundle = self.catalogue.by_name(order.bundle_name)
        return order_title(order, bundle, self.lang, self.translator)

    def bundle_title(self, bundle_name: str, orders: Sequence[OrderView]) -> str:
        """A plan on an eSIM, titled like the order that bought it (else from the catalogue)."""
        order = next((o for o in orders if o.bundle_name == bundle_name), None)
        if order is not None:
            return self.order_title(order)
        found = self.catalogue.by_name(bundle_name)
        if found is None:
            return bundle_name
        return bundle_title(found, self.lang, self.translator)

    def esim_title(self, orders: Sequence[OrderView], current: BundleView | None) -> str | None:
        """Named after the plan it shows (the active one), else its latest purchase."""
        if current is not None:
            return self.bundle_title(current.bundle_name, orders)
        latest = max(orders, key=lambda o: o.created_at, default=None)
        return self.order_title(latest) if latest is not None else None

    def esim_status(self, esim: EsimView, bundles: Sequence[BundleView]) -> str:
        """The eSIM's state in words: not installed yet, ready, in use, used up, expired."""
        installed = is_installed(esim.profile_status, esim.first_installed_at)
        state = esim_state(installed, [b.state for b in bundles])
        return state_label(state, self.lang, self.translator)

    def price(self, order: OrderView) -> str:
        return format_price(order.price, self.lang)


def order_status(order: OrderView) -> str:
    label = ORDER_STATUS_LABELS.get(order.status)
    return _(label) if label is not None else order.status


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


# -- the list -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Line:
    """One entry of the list as shown."""

    callback: MyEsimsCallback
    title: str
    status: str
    when: datetime


def _line(item: EsimEntry | OrderView, words: Wording, page: int, gifts: Collection[int]) -> _Line:
    if isinstance(item, OrderView):
        callback = MyEsimsCallback(action="order", id=item.id, page=page)
        return _Line(callback, words.order_title(item), order_status(item), item.created_at)
    current = group_bundles(item.bundles).current
    title = words.esim_title(item.orders, current) or item.esim.iccid
    status = words.esim_status(item.esim, item.bundles)
    if item.esim.id in gifts:
        status = _("🎁 a gift, not claimed yet")
    left = percent_left(current, words.lang, words.translator) if current is not None else None
    if left is not None:
        status = f"{status} · {left}"
    callback = MyEsimsCallback(action="esim", id=item.esim.id, page=page)
    return _Line(callback, title, status, item.when)


def list_screen(listed: ListPage, words: Wording, gifts: Collection[int] = frozenset()) -> Screen:
    """eSIMs (state in words, % of data left; `gifts`: ids of eSIMs that are gifts nobody has
    claimed yet) and orders without an eSIM, newest first."""
    if not listed.entries:
        return empty_screen()
    page, pages = listed.number, listed.pages
    shown = [_line(item, words, page, gifts) for item in listed.entries]
    lines = [_("📱 <b>My eSIMs and orders</b>"), ""]
    for line in shown:
        lines.append(
            _("<b>{title}</b>\n{status} · {date}").format(
                title=html.escape(line.title),
                status=html.escape(line.status),
                date=date_medium(line.when, words.lang),
            )
        )
    lines += ["", _("Tap one to see its details.")]
    # The date tells apart two orders of the same plan (a refunded one and its re-purchase).
    rows = [
        [button(f"{line.title} · {date_short(line.when, words.lang)}", line.callback)]
        for line in shown
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


def _history_line(order: OrderView, words: Wording) -> str:
    return _("• {date} — {plan} — {price} — {status} (order <code>{order}</code>)").format(
        date=date_medium(order.created_at, words.lang),
        plan=html.escape(words.order_title(order)),
        price=words.price(order),
        status=html.escape(order_status(order)),
        order=html.escape(order.public_id),
    )


def _plans_lines(detail: EsimDetail, words: Wording) -> list[str]:
    """The plan shown with its usage, then queued and finished plans."""
    groups = group_bundles(detail.bundles)
    current = groups.current
    lines = []
    if current is not None:
        lines.append(html.escape(plan_line(current, words.lang, words.translator)))
    if groups.queued:
        lines += ["", _("<b>Queued</b> — each starts when the plan before it ends:")]
        lines += [
            "• " + html.escape(words.bundle_title(b.bundle_name, detail.orders))
            for b in groups.queued
        ]
    finished = [b for b in groups.finished if b is not current][:FINISHED_LIMIT]
    if finished:
        lines += ["", _("<b>Finished</b>")]
        for b in finished:
            plan = words.bundle_title(b.bundle_name, detail.orders)
            outcome = finished_line(b, words.lang, words.translator)
            lines.append(f"• {html.escape(plan)} — {html.escape(outcome)}")
    return lines


def esim_screen(
    detail: EsimDetail,
    words: Wording,
    page: int = 0,
    more: Sequence[list[InlineKeyboardButton]] = (),
    gift_id: int | None = None,
) -> Screen:
    """An eSIM: its plan and usage, queued and finished plans, purchases; QR, install, top up,
    then the `more` rows (the doctor, Refund) above Back. A gift nobody has claimed yet
    (`gift_id`) shows no QR: its link again, or take it back."""
    esim, orders = detail.esim, detail.orders
    title = words.esim_title(orders, group_bundles(detail.bundles).current) or esim.iccid
    lines = [
        f"<b>{html.escape(title)}</b>",
        _("Status: {status}").format(status=html.escape(words.esim_status(esim, detail.bundles))),
        *_plans_lines(detail, words),
        "",
        _("ICCID: <code>{iccid}</code>").format(iccid=html.escape(esim.iccid)),
    ]
    if orders:
        lines += ["", _("<b>Purchases</b>")]
        lines += [_history_line(order, words) for order in orders[:HISTORY_LIMIT]]
    note = freshness_note(detail.freshness, words.lang)
    lines += ["", "<i>" + html.escape(note) + "</i>"]
    rows: list[list[InlineKeyboardButton]] = []
    if gift_id is not None:
        lines[1:1] = [_("🎁 A gift nobody has claimed yet.")]
        rows += gift_rows(gift_id)
    elif esim.has_qr:
        rows.append([button(_("🔳 Show QR again"), MyEsimsCallback(action="qr", id=esim.id))])
    rows.append([button(_("📖 How to install"), InstallHelpCallback(esim_id=esim.id))])
    rows.append([button(_("➕ Top up"), TopUpCallback(esim_id=esim.id))])
    rows.extend(more)
    rows.append([back_button(MyEsimsCallback(action="list", page=page))])
    return Screen("\n".join(lines), InlineKeyboardMarkup(inline_keyboard=rows))


def gift_rows(gift_id: int) -> list[list[InlineKeyboardButton]]:
    return [
        [button(_("🔗 Share link again"), GiftCallback(action="share", id=gift_id))],
        [button(_("↩️ Take back"), GiftCallback(action="ask", id=gift_id))],
    ]


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


def order_screen(order: OrderView, words: Wording, page: int = 0) -> Screen:
    """An order without an eSIM row: what it was, its status in words, what happens next."""
    lines = [
        _("<b>Order <code>{order}</code></b>").format(order=html.escape(order.public_id)),
        _("Plan: {plan}").format(plan=html.escape(words.order_title(order))),
        _("Price: {price}").format(price=words.price(order)),
        _("Date: {date}").format(date=date_medium(order.created_at, words.lang)),
        _("Status: {status}").format(status=html.escape(order_status(order))),
    ]
    if order.iccid:
        lines.append(_("ICCID: <code>{iccid}</code>").format(iccid=html.escape(order.iccid)))
    note = _ORDER_NOTES.get(order.status)
    if note is not None:
        lines += ["", _(note)]
    rows: list[list[InlineKeyboardButton]] = []
    if order.lpa:
        rows.append([button(_("🔳 Show QR again"), MyEsimsCallback(action="oqr", id=order.id))])
        rows.append([button(_("📖 How to install"), InstallHelpCallback())])
    rows.append([back_button(MyEsimsCallback(action="list", page=page))])
    return Screen("\n".join(lines), InlineKeyboardMarkup(inline_keyboard=rows))


def install_help_screen(text: str, esim_id: int) -> Screen:
    back = (
        MyEsimsCallback(action="esim", id=esim_id) if esim_id else MyEsimsCallback(action="list")
    )
    return Screen(text, InlineKeyboardMarkup(inline_keyboard=[[back_button(back)]]))
