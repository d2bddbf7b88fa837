"""Sending the buyer what services.delivery builds, once, retried on its own so that a failed
Telegram send never buys a second eSIM; and again as soon as a buyer who blocked the bot
writes to it."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from db.models import Order
from db.repositories.orders import OrderRepository
from db.repositories.users import UserRepository
from services.catalogue import CatalogueService
from services.delivery import Delivery, QrPhoto, new_esim_photo, topup_message
from services.fulfilment.lease import OrderLease
from services.fulfilment.settings import WorkerSettings
from services.i18n import Translator
from services.messenger import (
    Messenger,
    MessengerError,
    RecipientUnavailableError,
    RetryLaterError,
)
from services.orders import TOPUP

log = logging.getLogger(__name__)

# Sends a pending gift's claim link instead of its QR; False: the order is no pending gift.
GiftDelivery = Callable[[Order], Awaitable[bool]]


@dataclass(frozen=True, slots=True)
class DeliveryButtons:
    """Callback data of the buttons under a delivery (built with aiogram, handed in)."""

    install_help: str  # "Step-by-step instructions" under a QR photo
    open_esim: Callable[[int], str]  # "Open in My eSIMs" under a top-up, by eSIM id


class DeliverySender:
    """Sends a bought eSIM (or top-up) to the buyer's private chat and records that it arrived."""

    def __init__(
        self,
        session_factory: async_sessionmaker[AsyncSession],
        messenger: Messenger,
        translator: Translator,
        catalogue: CatalogueService,
        buttons: DeliveryButtons,
        settings: WorkerSettings,
        clock: Callable[[], datetime],
        gift_delivery: GiftDelivery | None = None,
    ) -> None:
        self._session_factory = session_factory
        self._gift_delivery = gift_delivery
        self._messenger = messenger
        self._translator = translator
        self._catalogue = catalogue
        self._settings = settings
        self._clock = clock
        self._buttons = buttons

    async def deliver(self, lease: OrderLease) -> None:
        order = lease.order
        try:
            if not await self._sent_as_gift(order):
                delivery = await self._build(order) if order.delivered_at is None else None
                if delivery is None:
                    await lease.release(None, order.failure_reason)
                    return
                await self._send(order.chat_id, delivery)
        except MessengerError as exc:
            await self._not_sent(lease, exc)
            return
        await lease.update(
            delivered_at=self._clock(),
            next_attempt_at=None,
            lease_owner=None,
            lease_until=None,
            failure_reason=None,
        )
        log.info("order %s: eSIM sent to user %s", order.public_id, order.telegram_user_id)

    async def _sent_as_gift(self, order: Order) -> bool:
        if self._gift_delivery is None or order.kind == TOPUP or order.delivered_at is not None:
            return False
        return await self._gift_delivery(order)

    async def _build(self, order: Order) -> Delivery | None:
        catalogue = self._catalogue.catalogue
        if order.kind != TOPUP:
            return new_esim_photo(self._translator, catalogue, order, self._buttons.install_help)
        async with self._session_factory() as session:
            esim = await OrderRepository(session).esim_by_iccid(order.iccid or "")
        mine = esim is not None and esim.telegram_user_id == order.telegram_user_id
        button = self._buttons.open_esim(esim.id) if esim is not None and mine else None
        return topup_message(self._translator, catalogue, order, button)

    async def _send(self, chat_id: int, delivery: Delivery) -> None:
        if isinstance(delivery, QrPhoto):
            await self._messenger.send_photo(
                chat_id, delivery.png, delivery.caption, delivery.keyboard
            )
        else:
            await self._messenger.send_text(chat_id, delivery.text, delivery.keyboard)

    async def _not_sent(self, lease: OrderLease, exc: MessengerError) -> None:
        order = lease.order
        if isinstance(exc, RecipientUnavailableError):
            # Kept for them: sent again as soon as they write to the bot (deliver_on_return).
            log.warning("order %s: user unreachable until they write: %s", order.public_id, exc)
            await lease.release(None, f"recipient unavailable: {exc}")
            async with self._session_factory() as session:
                await UserRepository(session).mark_blocked(order.telegram_user_id, self._clock())
                await session.commit()
        elif isinstance(exc, RetryLaterError):
            wait = timedelta(seconds=max(exc.retry_after, 1))
            await lease.release(wait, f"telegram flood wait: {exc}")
        elif self._clock() > order.work_started_at + self._settings.delivery_give_up:
            log.warning("order %s: delivery given up: %s", order.public_id, exc)
            await lease.release(None, f"delivery given up: {exc}")
        else:
            await lease.release(self._settings.backoff(order.attempts), f"telegram error: {exc}")


async def deliver_on_return(
    session_factory: async_sessionmaker[AsyncSession],
    wake: asyncio.Event,
    clock: Callable[[], datetime],
    user_id: int,
) -> None:
    """A user who had blocked the bot writes to it again: what never reached them goes now."""
    async with session_factory() as session:
        due = await OrderRepository(session).deliver_again(user_id, clock())
        await session.commit()
    if due:
        log.info("user %s is back: %d undelivered order(s) due again", user_id, due)
        wake.set()
