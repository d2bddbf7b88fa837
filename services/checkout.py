"""Buying, from a chosen plan to the invoice: start an order, pay for it or cancel it, and the
plans a top-up may put onto an eSIM. The screens get the frozen results below, never rows.

Each call is one unit of work with its own session, closed before eSIM Go is asked anything;
orders change only through OrderService (guarded updates), and an order that names someone
else's id is simply not found. A user holds one open order per plan, and only so many.
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
from db.repositories.unpaid import UnpaidOrderRepository
from services.admin_alerts import AdminAlerts
from services.catalogue import CatalogueService
from services.esimgo.models import Bundle
from services.messenger import Messenger
from services.orders import (
    TOPUP,
    Compatibility,
    OrderService,
    PaymentOutcome,
    PreCheckoutRefusal,
    Preparation,
    Prepared,
    ReceivedPayment,
    TopUpStatus,
    TopUpTarget,
)
from services.pricing import Price

log = logging.getLogger(__name__)

# Orders awaiting payment one user may hold (UNPAID_ORDERS_PER_USER).
UNPAID_ORDERS_PER_USER = 5


@dataclass(frozen=True, slots=True)
class Buyer:
    """Who pressed. Their order's messages go to their private chat, whichever chat they
    pressed in: the QR is a bearer credential."""

    user_id: int
    username: str | None


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
    UNAVAILABLE = "unavailable"  # eSIM Go refuses, or our balance is too low
    TRY_AGAIN = "try_again"  # eSIM Go did not answer in time
    CHECKING = "checking"  # this order is being checked already (the Pay button pressed again)


@dataclass(frozen=True, slots=True)
class PayStep:
    outcome: PayOutcome
    quote: Quote | None = None
    old_price: int | None = None


@dataclass(frozen=True, slots=True)
class PaymentReceipt:
    """A recorded payment as the payer hears of it: `topup` when the plan goes onto an eSIM
    they have (nothing is said of a DUPLICATE)."""

    outcome: PaymentOutcome
    topup: bool = False


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
    TOO_MANY = "too_many"  # the user holds UNPAID_ORDERS_PER_USER unpaid orders already


@dataclass(frozen=True, slots=True)
class PickStep:
    outcome: PickOutcome
    plans: TopUpPlans
    bundle: Bundle | None = None
    quote: Quote | None = None


class Checkout:
    """Starts, prices, pays and cancels the user's orders and records their payments; admins
    hear of a balance too low to sell (once a day)."""

    def __init__(
        self,
        session_factory: async_sessionmaker[AsyncSession],
        orders: OrderService,
        catalogue: CatalogueService,
        alerts: AdminAlerts,
        messenger: Messenger,
        *,
        wake_worker: Callable[[], None],
        unpaid_cap: int = UNPAID_ORDERS_PER_USER,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self._session_factory = session_factory
        self._orders = orders
        self._catalogue = catalogue
        self._alerts = alerts
        self._messenger = messenger
        self._wake_worker = wake_worker
        self._unpaid_cap = unpaid_cap
        self._clock = clock
        # (order, user) whose Pay is being checked with eSIM Go in this process.
        self._paying: set[tuple[str, int]] = set()

    async def start(
        self,
        bundle: Bundle,
        buyer: Buyer,
        iso: str | None,
        language: str,
        esim: TopUpEsim | None = None,
    ) -> Quote | None:
        """The user's order awaiting payment for this plan: the open one if they have it, else
        a new one naming the country (`iso` only if the plan covers it); None when they hold
        too many unpaid orders already."""
        iccid = esim.iccid if esim is not None else None
        async with self._session_factory() as session:
            unpaid = await UnpaidOrderRepository(session).open_orders(
                buyer.user_id, bundle.name, iccid, self._clock(), self._unpaid_cap
            )
            order = unpaid.for_plan
            if order is None:
                if unpaid.count >= self._unpaid_cap:
                    log.info("user %s holds too many unpaid orders", buyer.user_id)
                    return None
                order = await self._new_order(session, bundle, buyer, iso, language, iccid)
        return _quote(order, bundle, esim)

    async def _new_order(
        self,
        session: AsyncSession,
        bundle: Bundle,
        buyer: Buyer,
        iso: str | None,
        language: str,
        iccid: str | None,
    ) -> Order:
        iso = _country_of(bundle, iso)
        return await self._orders.start(
            session,
            bundle=bundle,
            user_id=buyer.user_id,
            username=buyer.username,
            chat_id=buyer.user_id,  # a user's private chat has their id
            language=language,
            country_code=iso,
            country_name=self._catalogue.catalogue.country_name(iso, "en") if iso else None,
            topup_iccid=iccid,
        )

    async def pay(self, public_id: str, user_id: int) -> PayStep:
        """Confirm price and stock with eSIM Go before the invoice is sent: one check of an
        order at a time, and no session held while eSIM Go answers."""
        key = (public_id, user_id)
        if key in self._paying:
            return PayStep(PayOutcome.CHECKING)
        self._paying.add(key)
        try:
            return await self._pay(public_id, user_id)
        finally:
            self._paying.discard(key)

    async def _pay(self, public_id: str, user_id: int) -> PayStep:
        async with self._session_factory() as session:
            order = await self._orders.owned(session, public_id, user_id)
            if order is None:
                return PayStep(PayOutcome.NOT_FOUND)
            bundle = self._catalogue.catalogue.by_name(order.bundle_name)
            if bundle is None:
                await self._orders.cancel(session, order, reason="bundle withdrawn")
                return PayStep(PayOutcome.WITHDRAWN)
            target = await self._orders.invoiceable(session, order)
        if isinstance(target, Preparation):
            return _pay_step(target, bundle)
        prepared = await self._orders.supplier_cost(target)
        if not isinstance(prepared, Preparation):
            async with self._session_factory() as session:
                prepared = await self._orders.priced(session, target, prepared)
        if prepared.outcome is Prepared.LOW_BALANCE:
            await self._alert_low_balance(prepared.order, prepared.balance)
        return _pay_step(prepared, bundle)

    async def pre_checkout(
        self, public_id: str, user_id: int, amount: int, currency: str
    ) -> PreCheckoutRefusal | None:
        """None when Telegram may take the money; the session is closed before the answer."""
        async with self._session_factory() as session:
            return await self._orders.check_pre_checkout(
                session, public_id=public_id, user_id=user_id, amount=amount, currency=currency
            )

    async def record_payment(self, payment: ReceivedPayment) -> PaymentReceipt:
        """Store the payment once, then wake the fulfilment worker: it delivers, or refunds
        (and announces) money we cannot serve, while the payer reads the receipt."""
        async with self._session_factory() as session:
            result = await self._orders.record_payment(session, payment)
        if result.outcome is not PaymentOutcome.DUPLICATE:
            self._wake_worker()
        topup = result.order is not None and result.order.kind == TOPUP
        return PaymentReceipt(result.outcome, topup)

    async def invoice_sent(self, public_id: str, user_id: int) -> None:
        """The order's invoice went out (the dashboard's conversion counts it, once)."""
        async with self._session_factory() as session:
            await self._orders.invoice_sent(session, public_id, user_id)
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
        if quote is None:
            return PickStep(PickOutcome.TOO_MANY, plans, bundle)
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


def _country_of(bundle: Bundle, iso: str | None) -> str | None:
    """The country an order names: `iso` if the plan covers it (a button's data can be
    forged), else a one-country plan's own, else none."""
    covered = [c.iso for c in bundle.coverage]
    if iso is not None and iso.upper() in covered:
        return iso.upper()
    if not bundle.is_multi_country and covered:
        return covered[0]
    return None


_REFUSED = {
    Prepared.ESIM_GONE: PayOutcome.ESIM_GONE,
    Prepared.UNAVAILABLE: PayOutcome.UNAVAILABLE,
    Prepared.LOW_BALANCE: PayOutcome.UNAVAILABLE,
    Prepared.NO_ANSWER: PayOutcome.TRY_AGAIN,
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
