"""Card payments an admin must refund by hand (orders in `refund_due`) are recalled to the
admins once a day until someone resolves them: one alert is easy to miss."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from db.base import utcnow
from db.models import Order, OrderStatus
from db.repositories.gifts import GiftRepository
from services.admin_alerts import AdminAlerts, alert_html
from services.messenger import Messenger
from services.pricing import Price, format_price

log = logging.getLogger(__name__)

REMIND_EVERY = timedelta(days=1)
CHECK_EVERY_SECONDS = 60 * 60
BATCH = 100

REMINDER = (
    "💸 <b>Still waiting for a refund by hand</b> since {since}: order <code>{order}</code>, "
    "user <code>{user}</code>, {price}, charge <code>{charge}</code>, provider charge "
    "<code>{provider_charge}</code>. Why: {why}\n"
    "Refund it with the payment provider, then mark the order resolved."
)


class RefundDueReminder:
    """Alerts once per UTC day for each order that has waited a day or more in refund_due."""

    def __init__(
        self,
        session_factory: async_sessionmaker[AsyncSession],
        alerts: AdminAlerts,
        *,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self._session_factory = session_factory
        self._alerts = alerts
        self._clock = clock

    async def remind(self, messenger: Messenger) -> int:
        """Queue today's reminders; returns how many were new."""
        now = self._clock()
        async with self._session_factory() as session:
            waiting = list(
                await session.scalars(
                    select(Order)
                    .where(
                        Order.status == OrderStatus.REFUND_DUE.value,
                        # The day it moved there, the move itself was announced.
                        Order.updated_at <= now - REMIND_EVERY,
                    )
                    .order_by(Order.id)
                    .limit(BATCH)
                )
            )
            # A claimed gift's order names its claimant; the buyer paid and is paid back.
            payers = {o.id: await GiftRepository(session).payer_id(o) for o in waiting}
        sent = 0
        for order in waiting:
            text = alert_html(
                REMINDER,
                since=order.updated_at.strftime("%Y-%m-%d %H:%M UTC"),
                order=order.public_id,
                user=payers[order.id],
                price=format_price(Price(order.price, order.price_currency), "en"),
                charge=order.telegram_payment_charge_id or "—",
                provider_charge=order.provider_payment_charge_id or "—",
                why=order.failure_reason or "—",
            )
            key = f"refund-due:{order.public_id}:{now.date().isoformat()}"
            sent += await self._alerts.alert_once(messenger, key, text)
        return sent

    async def run(self, messenger: Messenger) -> None:
        """Check every hour, until cancelled."""
        while True:
            try:
                await self.remind(messenger)
            except Exception:
                log.exception("refund reminders failed; next try in an hour")
            await asyncio.sleep(CHECK_EVERY_SECONDS)
