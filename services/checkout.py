"""Buying, from a chosen plan to the invoice: start an order, pay for it or cancel it, and the
plans a top-up may put onto an eSIM. The screens get the frozen results below, never rows.

Each call is one unit of work with its own session; orders change only through OrderService
(guarded updates), and an order that names someone else's id is simply not found.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from db.base import utcnow
from db.models import Esim, Order, OrderStatus
from services.admin_alerts import AdminAlerts
from services.catalogue import CatalogueService
from services.esimgo.models import Bundle
from services.messenger import Messenger
from services.orders import (
    Compatibility,
    OrderService,
    Preparation,
    Prepared,
    TopUpStatus,
    TopUpTarget,
)
from services.pricing import Price

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Buyer:
    """Who pressed, and the chat the order's messages go to."""

    user_id: int
    username: str | None
    chat_id: int


@dataclass(frozen=True, slots=True)
class TopUpEsim:
    """The eSIM a top-up goes onto."""

    id: int
    iccid: str

    @classmethod
    def of(cls, esim: Esim) -> TopUpEsim:
        return cls(esim.id, esim.iccid)

    @property
    def tail(self) -> str:
        """How the user tells eSIMs apart: the last digits of the ICCID ("…4826")."""
        return "…" + self.iccid[-4:]


@dataclass(frozen=True, slots=True)
class Quote:
    """An order awaiting payment, as its confirmation card and its invoice show it."""

    public_id: str
    bundle: Bundle
    price: Price
    country_code: str | None
    esim: TopUpEsim | None = None


class PayOutcome(enum.StrEnum):
    READY = "ready"  # send the invoice
    PRICE_CHANGED = "price_changed"  # the user must confirm the new price
    NOT_FOUND = "not_found"  # no such order, or someone else's
    WITHDRAWN = "withdrawn"  # its plan is no longer sold (the order is cancelled)
    ESIM_GONE = "esim_gone"  # a top-up whose eSIM is no longer the user's
    EXPIRED = "expired"
    ALREADY_PAID = "already_paid"
    UNAVAILABLE = "unavailable"  # eSIM Go refuses, is unreachable, or our balance is too low


@dataclass(frozen=True, slots=True)
class PayStep:
    outcome: PayOutcome
    quote: Quote | None = None
    old_price: int | None = None


class CancelOutcome(enum.StrEnum):
    CANCELLED = "cancelled"
    NOT_FOUND = "not_found"
    ALREADY_PAID = "already_paid"


@dataclass(frozen=True, slots=True)
class TopUpPlans:
    """An eSIM to top up and the plans offered for it (see services.orders.TopUpTarget)."""

    status: TopUpStatus
    esim: TopUpEsim | None = None
    iso: str | None = None
    area: Bundle | None = None
    own: tuple[Bundle, ...] = ()
    shared: tuple[Bundle, ...] = ()

    @classmethod
    def of(cls, target: TopUpTarget) -> TopUpPlans:
        esim = TopUpEsim.of(target.esim) if target.esim is not None else None
        return cls(target.status, esim, target.iso, target.area, target.own, target.shared)

    def offers(self, bundle_name: str) -> bool:
        return any(b.name == bundle_name for b in (*self.own, *self.shared))


class PickOutcome(enum.StrEnum):
    CONFIRM = "confirm"  # an order awaits payment: show its confirmation
    PLANS = "plans"  # the eSIM cannot take plans now: show why (`plans.status`)
    NOT_OFFERED = "not_offered"  # the plan is not (or no longer) offered for this eSIM
    INCOMPATIBLE = "incompatible"  # eSIM Go says the plan cannot go onto this eSIM
    UNCHECKED = "unchecked"  # eSIM Go could not say


@dataclass(frozen=True, slots=True)
class PickStep:
    outcome: PickOutcome
    plans: TopUpPlans
    bundle: Bundle | None = None
    quote: Quote | None = None


class Checkout:
    """Starts, prices, pays and cancels the user's orders; admins hear of a balance too low
    to sell (once a day)."""

    def __init__(
        self,
        session_factory: async_sessionmaker[AsyncSession],
        orders: OrderService,
        catalogue: CatalogueService,
        alerts: AdminAlerts,
        messenger: Messenger,
        *,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self._session_factory = session_factory
        self._orders = orders
        self._catalogue = catalogue
        self._alerts = alerts
        self._messenger = messenger
        self._clock = clock

    async def start(
        self,
        bundle: Bundle,
        buyer: Buyer,
        iso: str | None,
        language: str,
        esim: TopUpEsim | None = None,
    ) -> Quote:
        """An order awaiting payment; a one-country plan names its country."""
        if iso is None and not bundle.is_multi_country and bundle.coverage:
            iso = bundle.coverage[0].iso
        async with self._session_factory() as session:
            order = await self._orders.start(
                session,
                bundle=bundle,
                user_id=buyer.user_id,
                username=buyer.username,
                chat_id=buyer.chat_id,
                language=language,
                country_code=iso,
                country_name=self._catalogue.catalogue.country_name(iso, "en") if iso else None,
                topup_iccid=esim.iccid if esim is not None else None,
            )
        return _quote(order, bundle, esim)

    async def pay(self, public_id: str, user_id: int) -> PayStep:
        """Confirm price and stock with eSIM Go before the invoice is sent."""
        async with self._session_factory() as session:
            order = await self._orders.owned(session, public_id, user_id)
            if order is None:
                return PayStep(PayOutcome.NOT_FOUND)
            bundle = self._catalogue.catalogue.by_name(order.bundle_name)
            if bundle is None:
                await self._orders.cancel(session, order, reason="bundle withdrawn")
                return PayStep(PayOutcome.WITHDRAWN)
            prepared = await self._orders.prepare_invoice(session, order)
        if prepared.outcome is Prepared.LOW_BALANCE:
            await self._alert_low_balance(prepared.order, prepared.balance)
        return _pay_step(prepared, bundle)

    async def invoice_sent(self, public_id: str, user_id: int) -> None:
        """The order's invoice went out (the dashboard's conversion counts it, once)."""
        async with self._session_factory() as session:
            order = await self._orders.owned(session, public_id, user_id)
            if order is not None:
                await self._orders.invoice_sent(session, order)
        log.info("order %s: invoice sent", public_id)

    async def cancel(self, public_id: str, user_id: int) -> CancelOutcome:
        async with self._session_factory() as session:
            order = await self._orders.owned(session, public_id, user_id)
            if order is None:
                return CancelOutcome.NOT_FOUND
            if await self._orders.cancel(session, order) or order.status == OrderStatus.CANCELLED:
                return CancelOutcome.CANCELLED
        return CancelOutcome.ALREADY_PAID

    async def topup_plans(self, esim_id: int, user_id: int) -> TopUpPlans:
        """The user's eSIM and the plans that may go onto it."""
        async with self._session_factory() as session:
            return TopUpPlans.of(await self._orders.topup_target(session, esim_id, user_id))

    async def pick_topup(
        self, esim_id: int, bundle_name: str, buyer: Buyer, language: str
    ) -> PickStep:
        """Ask eSIM Go whether the plan fits the eSIM before any order or invoice exists."""
        plans = await self.topup_plans(esim_id, buyer.user_id)
        if plans.status is not TopUpStatus.READY or plans.esim is None:
            return PickStep(PickOutcome.PLANS, plans)
        bundle = self._catalogue.catalogue.by_name(bundle_name)
        if bundle is None or not plans.offers(bundle.name):
            return PickStep(PickOutcome.NOT_OFFERED, plans)
        compatibility = await self._orders.check_compatible(plans.esim.iccid, bundle.name)
        if compatibility is Compatibility.UNAVAILABLE:
            return PickStep(PickOutcome.UNCHECKED, plans, bundle)
        if compatibility is Compatibility.INCOMPATIBLE:
            return PickStep(PickOutcome.INCOMPATIBLE, plans, bundle)
        quote = await self.start(bundle, buyer, plans.iso, language, plans.esim)
        return PickStep(PickOutcome.CONFIRM, plans, bundle, quote)

    async def _alert_low_balance(self, order: Order, balance: Decimal | None) -> None:
        today = self._clock().date().isoformat()
        await self._alerts.alert_once(
            self._messenger,
            f"low-balance:{today}",
            f"⚠️ eSIM Go balance is {balance}: too low for {order.bundle_name} "
            f"(cost {order.cost}). Sales of it are paused until the account is topped up.",
        )


def _quote(order: Order, bundle: Bundle, esim: TopUpEsim | None) -> Quote:
    price = Price(order.price, order.price_currency)
    return Quote(order.public_id, bundle, price, order.country_code, esim)


_REFUSED = {
    Prepared.ESIM_GONE: PayOutcome.ESIM_GONE,
    Prepared.UNAVAILABLE: PayOutcome.UNAVAILABLE,
    Prepared.LOW_BALANCE: PayOutcome.UNAVAILABLE,
}


def _pay_step(prepared: Preparation, bundle: Bundle) -> PayStep:
    order = prepared.order
    if prepared.outcome in _REFUSED:
        return PayStep(_REFUSED[prepared.outcome])
    if prepared.outcome is Prepared.NOT_PAYABLE:
        if order.status == OrderStatus.CANCELLED:
            return PayStep(PayOutcome.EXPIRED)
        return PayStep(PayOutcome.ALREADY_PAID)
    esim = TopUpEsim.of(prepared.esim) if prepared.esim is not None else None
    quote = _quote(order, bundle, esim)
    if prepared.outcome is Prepared.PRICE_CHANGED:
        return PayStep(PayOutcome.PRICE_CHANGED, quote, prepared.old_price)
    return PayStep(PayOutcome.READY, quote)
