"""Money back for an order that failed: a Stars refund to the user who paid, or, when Telegram
refuses it, keeps failing for a day, or the payment was by card, a refund the admins make."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from db.models import Order, OrderStatus
from services.admin_alerts import AdminAlerts
from services.fulfilment.lease import OrderLease
from services.fulfilment.settings import WorkerSettings
from services.gifts import Payer, order_payer
from services.i18n import N_, Translator
from services.messenger import Messenger, MessengerError, RefundError, RetryLaterError
from services.orders import STRAY, TOPUP
from services.pricing import Price, format_price

log = logging.getLogger(__name__)

REFUNDED_TEXT = N_(
    "😔 We could not issue your eSIM (order <code>{order}</code>). "
    "Your payment of {price} has been refunded."
)
STRAY_REFUNDED_TEXT = N_(
    "This payment was for an order that is no longer open (order <code>{order}</code>), "
    "so your payment of {price} has been refunded."
)
REFUND_DUE_TEXT = N_(
    "😔 We could not issue your eSIM (order <code>{order}</code>). "
    "Your payment of {price} will be refunded by our team; use /paysupport if you have questions."
)
TOPUP_REFUNDED_TEXT = N_(
    "😔 We could not add the new plan to your eSIM (order <code>{order}</code>). "
    "Your payment of {price} has been refunded."
)
TOPUP_REFUND_DUE_TEXT = N_(
    "😔 We could not add the new plan to your eSIM (order <code>{order}</code>). "
    "Your payment of {price} will be refunded by our team; use /paysupport if you have questions."
)


class Refunds:
    """Refunds a failed order once, to whoever paid (a claimed gift's buyer, not its claimant),
    and tells them once."""

    def __init__(
        self,
        session_factory: async_sessionmaker[AsyncSession],
        messenger: Messenger,
        translator: Translator,
        alerts: AdminAlerts,
        settings: WorkerSettings,
        clock: Callable[[], datetime],
    ) -> None:
        self._session_factory = session_factory
        self._messenger = messenger
        self._translator = translator
        self._alerts = alerts
        self._settings = settings
        self._clock = clock

    async def refund(self, lease: OrderLease) -> None:
        """failed → refunded with a Stars refund, or → refund_due for the admins."""
        order = lease.order
        charge = order.telegram_payment_charge_id
        if not Price(order.price, order.price_currency).is_stars or not charge:
            await self.by_hand(lease)
            return
        try:
            payer = await self._payer(order)
            await self._messenger.refund_star_payment(payer.user_id, charge)
        except RefundError as exc:
            log.error("order %s: Stars refund refused: %s", order.public_id, exc)
            await self.by_hand(lease, f"refundStarPayment refused: {exc}")
            return
        except RetryLaterError as exc:
            wait = timedelta(seconds=max(exc.retry_after, 1))
            await lease.release(wait, order.failure_reason)
            return
        except MessengerError as exc:
            await self._failed(lease, exc)
            return
        refunded = await lease.move(
            OrderStatus.REFUNDED,
            refunded_at=self._clock(),
            lease_owner=None,
            lease_until=None,
            next_attempt_at=None,
        )
        if refunded:
            await self._refunded(order)

    async def _failed(self, lease: OrderLease, exc: MessengerError) -> None:
        order = lease.order
        if self._clock() > order.work_started_at + self._settings.refund_give_up:
            await self.by_hand(lease, f"refundStarPayment failing for a day: {exc}")
            return
        log.warning("order %s: refund failed, will retry: %s", order.public_id, exc)
        await lease.release(self._settings.backoff(order.attempts), order.failure_reason)

    async def _refunded(self, order: Order) -> None:
        stray = (order.failure_reason or "").startswith(STRAY)
        if stray:
            text = STRAY_REFUNDED_TEXT
        else:
            text = TOPUP_REFUNDED_TEXT if order.kind == TOPUP else REFUNDED_TEXT
        await self._tell(order, text)
        if not stray:
            await self._alerts.alert(
                self._messenger,
                f"↩️ Order {order.public_id} ({order.bundle_name}) refunded: "
                f"{order.failure_reason}",
            )

    async def by_hand(self, lease: OrderLease, why: str | None = None) -> None:
        """→ refund_due: the buyer is told our team refunds them, the admins what to refund."""
        order = lease.order
        reason = why or order.failure_reason
        if not await lease.move(
            OrderStatus.REFUND_DUE,
            note=why,
            lease_owner=None,
            lease_until=None,
            next_attempt_at=None,
            failure_reason=reason,
        ):
            return
        await self._tell(order, TOPUP_REFUND_DUE_TEXT if order.kind == TOPUP else REFUND_DUE_TEXT)
        payer = await self._payer(order)
        await self._alerts.alert(
            self._messenger,
            f"💸 Refund due by hand: order {order.public_id}, user {payer.user_id}, "
            f"{order.price} {order.price_currency}, charge {order.telegram_payment_charge_id}, "
            f"provider charge {order.provider_payment_charge_id}: {reason}",
        )

    async def _payer(self, order: Order) -> Payer:
        async with self._session_factory() as session:
            return await order_payer(session, order)

    async def _tell(self, order: Order, text: str) -> None:
        payer = await self._payer(order)
        price = format_price(Price(order.price, order.price_currency), payer.language)
        message = self._translator.gettext(text, payer.language).format(
            order=order.public_id, price=price
        )
        try:
            await self._messenger.send_text(payer.chat_id, message)
        except MessengerError as exc:
            log.warning("order %s: could not tell the user: %s", order.public_id, exc)
