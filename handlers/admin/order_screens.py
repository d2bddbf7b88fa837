"""/order's screens (admins, English): the orders found, one order's story with its action
buttons (an action that does not fit shows why instead), and the confirmation of an action."""

from __future__ import annotations

import html
from collections.abc import Sequence
from datetime import datetime

from aiogram.types import InlineKeyboardButton, InlineKeyboardMarkup

from handlers.callbacks import AdminOrderCallback
from handlers.render import Screen, button
from services.admin.lookup import LiveEsim, OrderLine, OrderStory
from services.admin.order_rules import OrderAction
from services.pricing import format_price

# Telegram's 4096 characters, with room for a result line above the story.
STORY_LIMIT = 3800
EVENTS_SHOWN = 25
ACTION_NAMES = {
    OrderAction.RETRY: "Retry fulfilment",
    OrderAction.REFUND: "Refund",
    OrderAction.RESEND: "Resend the eSIM",
    OrderAction.RESOLVE: "Mark resolved",
}
ACTION_ICONS = {
    OrderAction.RETRY: "🔁",
    OrderAction.REFUND: "↩️",
    OrderAction.RESEND: "📨",
    OrderAction.RESOLVE: "✅",
}
CONFIRM_TEXTS = {
    OrderAction.RETRY: "Send it back to fulfilment? The worker orders it from eSIM Go again.",
    OrderAction.REFUND: "Refund {price} to user {user}? Stars go back at once; for a card "
    "payment, confirm only after you have paid it back yourself.",
    OrderAction.RESEND: "Send the eSIM to the buyer again?",
    OrderAction.RESOLVE: "Mark it resolved? It leaves the attention list.",
}
MONEY_ONLY = "↩️ Refund the money only"
USAGE = (
    "Usage: <code>/order &lt;public id | ICCID | Telegram user id | @username&gt;</code>\n"
    "For example <code>/order @traveller</code>."
)


def _at(moment: datetime | None) -> str:
    return f"{moment:%Y-%m-%d %H:%M:%S}" if moment is not None else "—"


def _line(order: OrderLine) -> str:
    return (
        f"{order.public_id} · {order.status} · {order.bundle_name} · "
        f"{format_price(order.price, 'en')} · {order.created_at:%Y-%m-%d}"
    )


def found_screen(query: str, orders: Sequence[OrderLine]) -> Screen:
    """Several matches (each a button), or none."""
    if not orders:
        text = f"Nothing found for <code>{html.escape(query)}</code>.\n\n{USAGE}"
    else:
        text = f"🔎 {len(orders)} orders for <code>{html.escape(query)}</code>, newest first:"
    rows = [
        [button(_line(order), AdminOrderCallback(step="show", order=order.public_id))]
        for order in orders
    ]
    return Screen(text, InlineKeyboardMarkup(inline_keyboard=rows))


def _head(story: OrderStory) -> list[str]:
    line = story.line
    who = f"user <code>{line.user_id}</code>"
    if line.username:
        who += f" (@{html.escape(line.username)})"
    place = f" · {line.country_code}" if line.country_code else ""
    cost = f"{story.cost.normalize():f} {html.escape(story.cost_currency)}"
    lines = [
        f"📦 <b>Order <code>{html.escape(line.public_id)}</code></b> · {line.status}",
        f"Plan: {html.escape(line.bundle_name)}{place} · {line.kind}",
        f"Buyer: {who}",
        f"Price: {format_price(line.price, 'en')} · eSIM Go cost: {cost}",
        f"Created {_at(line.created_at)} · paid {_at(line.paid_at)} · "
        f"delivered {_at(story.delivered_at)} · refunded {_at(story.refunded_at)} (UTC)",
        f"Attempts: {story.attempts}",
    ]
    for label, value in (
        ("ICCID", story.iccid),
        ("eSIM Go order", story.esimgo_order_reference),
        ("Telegram charge", story.telegram_payment_charge_id),
        ("Provider charge", story.provider_payment_charge_id),
    ):
        if value:
            lines.append(f"{label}: <code>{html.escape(value)}</code>")
    if story.failure_reason:
        lines.append(f"Last error: {html.escape(story.failure_reason[:300])}")
    return lines


def _history(story: OrderStory) -> list[str]:
    lines = ["", "<b>Events</b>"]
    events = story.events[-EVENTS_SHOWN:]
    if len(story.events) > len(events):
        lines.append(f"… {len(story.events) - len(events)} earlier")
    for event in events:
        by = f" by {html.escape(event.actor)}" if event.actor else ""
        note = f" — {html.escape(event.note[:120])}" if event.note else ""
        lines.append(f"{_at(event.at)} {event.from_status or '—'} → {event.to_status}{by}{note}")
    if not story.events:
        lines.append("none recorded")
    for action in story.actions:
        note = f" — {html.escape(action.note[:200])}" if action.note else ""
        lines.append(
            f"{_at(action.at)} admin <code>{action.admin_id}</code>: {action.action} "
            f"{action.outcome}{note}"
        )
    return lines


def _live(live: LiveEsim | None) -> list[str]:
    if live is None:
        return []
    lines = ["", "<b>The eSIM at eSIM Go now</b>"]
    if live.details is None:
        return [*lines, f"Not known: {html.escape(live.error or 'no answer')}"]
    installed = live.details.first_installed_at
    lines.append(
        f"Profile: {html.escape(live.details.profile_status or 'unknown')}"
        + (f" · first installed {_at(installed)}" if installed else "")
    )
    for bundle in live.bundles:
        left = ""
        if bundle.remaining_bytes is not None and bundle.initial_bytes:
            left = (
                f" · {bundle.remaining_bytes / 1e6:,.0f} of {bundle.initial_bytes / 1e6:,.0f} MB"
            )
        lines.append(f"{html.escape(bundle.bundle_name)}: {html.escape(bundle.state)}{left}")
    return lines


def story_screen(
    story: OrderStory, result: str | None = None, *, money_only: bool = False
) -> Screen:
    """The order's story; a button for each action that fits, the reason for each that does
    not. `result`: what the last action did, shown on top; `money_only`: a Refund eSIM Go
    could not be asked for may return the money only (its button first)."""
    lines = [f"<b>{html.escape(result)}</b>", ""] if result else []
    lines += [*_head(story), *_history(story), *_live(story.live), "", "<b>Actions</b>"]
    rows: list[list[InlineKeyboardButton]] = []
    if money_only and story.refusals[OrderAction.REFUND] is None:
        data = AdminOrderCallback(step="money", order=story.line.public_id, action="refund")
        rows.append([button(MONEY_ONLY, data)])
    for action, reason in story.refusals.items():
        if reason is None:
            data = AdminOrderCallback(step="ask", order=story.line.public_id, action=action.value)
            rows.append([button(f"{ACTION_ICONS[action]} {ACTION_NAMES[action]}", data)])
        else:
            lines.append(f"✖️ {ACTION_NAMES[action]}: {html.escape(reason)}")
    refresh = AdminOrderCallback(step="show", order=story.line.public_id)
    rows.append([button("🔄 Refresh", refresh)])
    return Screen(_fit(lines), InlineKeyboardMarkup(inline_keyboard=rows))


def _fit(lines: list[str]) -> str:
    """Whole lines up to STORY_LIMIT: a line cut in half could break its HTML."""
    kept: list[str] = []
    room = STORY_LIMIT
    for line in lines:
        if len(line) + 1 > room:
            kept.append("…")
            break
        kept.append(line)
        room -= len(line) + 1
    return "\n".join(kept)


def confirm_screen(story: OrderStory, action: OrderAction) -> Screen:
    line = story.line
    question = CONFIRM_TEXTS[action].format(
        price=format_price(line.price, "en"), user=line.user_id
    )
    if action is OrderAction.REFUND:
        question = f"{question}\n\n{story.refund_effect}"
    text = (
        f"{ACTION_ICONS[action]} {ACTION_NAMES[action]} · order "
        f"<code>{html.escape(line.public_id)}</code> "
        f"({line.status}, {html.escape(line.bundle_name)})\n\n{html.escape(question)}"
    )
    yes = AdminOrderCallback(step="do", order=line.public_id, action=action.value)
    no = AdminOrderCallback(step="show", order=line.public_id)
    rows = [[button(f"Yes: {ACTION_NAMES[action]}", yes), button("✖️ Cancel", no)]]
    return Screen(text, InlineKeyboardMarkup(inline_keyboard=rows))
