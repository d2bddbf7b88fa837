"""The operators' words for figures and the attention list (HTML, English: admin-only)."""

from __future__ import annotations

import html
from collections.abc import Sequence
from decimal import Decimal

from babel.numbers import format_currency, format_percent

from services.admin.dashboard import AttentionItem, AttentionReason
from services.admin.figures import PeriodFigures
from services.admin.supplier import SupplierStatus
from services.pricing import Price, format_price

_REASONS = {
    AttentionReason.REFUND_DUE: "refund due by hand",
    AttentionReason.FAILED: "failed, refund not through",
    AttentionReason.FULFILLING_LATE: "fulfilling past the deadline",
    AttentionReason.PAID_WAITING: "paid, no worker took it",
    AttentionReason.NOT_RECEIVED: "bought, never reached the buyer",
}


def reason_text(reason: AttentionReason) -> str:
    return _REASONS[reason]


def usd(value: Decimal) -> str:
    return format_currency(value, "USD", locale="en")


def _prices(prices: Sequence[Price]) -> str:
    return " + ".join(format_price(p, "en") for p in prices) or "0"


def period_lines(figures: PeriodFigures) -> list[str]:
    conversion = (
        f"{figures.invoices_paid} of {figures.invoices_sent} invoices paid "
        f"({format_percent(figures.conversion, '#0.#%', locale='en')})"
        if figures.conversion is not None
        else "no invoices sent"
    )
    return [
        f"Paid orders: {figures.paid_orders} ({figures.new_esims} new eSIMs, "
        f"{figures.topups} top-ups)",
        f"Revenue: {_prices(figures.revenue)} ≈ {usd(figures.revenue_usd)}",
        f"eSIM Go cost: {usd(figures.esimgo_cost)}",
        f"Refunds: {figures.refunds} · {_prices(figures.refunded)} ≈ {usd(figures.refunded_usd)}",
        f"Margin: {usd(figures.margin_usd)}",
        f"Conversion: {conversion}",
    ]


def attention_lines(items: Sequence[AttentionItem]) -> list[str]:
    if not items:
        return ["✅ Nothing needs attention."]
    lines = [f"⚠️ <b>Needs attention</b> ({len(items)})"]
    for item in items:
        lines.append(
            f"• <code>{html.escape(item.public_id)}</code> {reason_text(item.reason)} · "
            f"{format_price(item.price, 'en')} · user <code>{item.user_id}</code>"
        )
    return lines


def supplier_lines(status: SupplierStatus) -> list[str]:
    """The eSIM Go balance, how long it lasts, and the warning line when it is low."""
    if status.balance is None:
        return [f"⚠️ eSIM Go balance unknown: {html.escape(status.error or 'no answer')}"]
    currency = html.escape(status.currency)
    lines = [f"eSIM Go balance: {status.balance:,.2f} {currency}"]
    runway = status.runway_days
    if runway is None:
        lines.append("Runway: nothing spent in the last 7 days")
    else:
        lines.append(
            f"Runway: about {runway:,.1f} days at the last 7 days' spend "
            f"({usd(status.daily_spend)} a day)"
        )
    if status.low and status.warn_below is not None:
        lines.append(
            f"⚠️ <b>Below the warning level of {status.warn_below:,.2f} {currency}</b>: top up "
            "the eSIM Go account before orders start failing."
        )
    return lines
