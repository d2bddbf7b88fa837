"""A successful payment whose update failed to be handled (stored, answered).

Telegram delivers a webhook update again after a 5xx, but long polling has confirmed it by
then. A Stars payment is found again in Telegram's ledger (services.payment_reconciler); a card
payment is in no ledger we can read, so the admins hear of it at once, with the provider's
charge id to find it by.
"""

from __future__ import annotations

import html
import logging

from services.admin_alerts import AdminAlerts
from services.messenger import Messenger
from services.pricing import Price, format_price

log = logging.getLogger(__name__)


async def report_unstored_payment(
    alerts: AdminAlerts,
    messenger: Messenger,
    *,
    user_id: int,
    payload: str,
    amount: int,
    currency: str,
    charge_id: str,
    provider_charge_id: str | None,
) -> None:
    price = Price(amount, currency)
    if price.is_stars:
        log.warning(
            "Stars payment %s for order %s not stored; the ledger reconciliation will find it",
            charge_id,
            payload,
        )
        return
    await alerts.alert(
        messenger,
        f"🚨 A card payment may not be stored: {html.escape(format_price(price, 'en'))} from "
        f"user {user_id} for order <code>{html.escape(payload)}</code>, Telegram charge "
        f"<code>{html.escape(charge_id)}</code>, provider charge "
        f"<code>{html.escape(provider_charge_id or '—')}</code>. If the order is not paid, "
        "record or refund the payment by hand.",
    )
