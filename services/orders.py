"""Orders before fulfilment: create and price, confirm with eSIM Go, check and record payments.

A top-up (`kind` "topup") is an order for a bundle onto an eSIM the user already owns (`iccid`);
it follows the same path, with the eSIM's ownership checked again at each money step.
"""

from __future__ import annotations

import enum
import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from db.base import utcnow
from db.models import Esim, Order, OrderStatus
from db.models.events import USER, WORKER
from db.repositories.orders import OrderRepository
from services.catalogue import Catalogue, CatalogueService
from services.esimgo.client import EsimGoClient, user_waits
from services.esimgo.errors import (
    EsimGoError,
    NotFoundError,
    RateLimitedError,
    SupplierUnavailableError,
)
from services.esimgo.models import Bundle, Organisation
from services.metrics import Metrics
from services.pricing import PricingService

log = logging.getLogger(__name__)

UNPAID_TTL = timedelta(days=1)
# A balance read this recently is trusted when it covers the cost with room to spare.
BALANCE_CACHE_SECONDS = 60.0
# An order validated this recently is invoiced again (Buy, Pay, Buy, Pay) without asking
# eSIM Go again; the validate is what a flood of presses would otherwise cost the supplier.
VALIDATION_REUSE_SECONDS = 600.0
# failure_reason of a payment with no order to serve: refunded with its own message.
STRAY = "stray: "
PAID_LATE = "paid after the order was cancelled"
# orders.kind
NEW = "new"
TOPUP = "topup"
_ID_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # no 0/O, 1/I: read out to support


def new_public_id() -> str:
    return "".join(secrets.choice(_ID_ALPHABET) for _ in range(10))


class Prepared(enum.StrEnum):
    READY = "ready"  # send the invoice
    PRICE_CHANGED = "price_changed"  # the user must confirm the new price
    LOW_BALANCE = "low_balance"  # our eSIM Go balance cannot pay for it: alert admins
    UNAVAILABLE = "unavailable"  # eSIM Go refuses it
    NO_ANSWER = "no_answer"  # eSIM Go did not answer in time: the user may try again
    NOT_PAYABLE = "not_payable"  # cancelled, expired or already paid
    ESIM_GONE = "esim_gone"  # a top-up whose eSIM is no longer the user's (order cancelled)


@dataclass(frozen=True, slots=True)
class Preparation:
    outcome: Prepared
    order: Order
    old_price: int | None = None
    balance: Decimal | None = None
    esim: Esim | None = None  # the eSIM a top-up goes onto


@dataclass(frozen=True, slots=True)
class Invoiceable:
    """An order that may be invoiced once eSIM Go confirms it, and its top-up's eSIM."""

    order: Order
    esim: Esim | None


class TopUpStatus(enum.StrEnum):
    READY = "ready"
    NOT_FOUND = "not_found"  # no such eSIM, or someone else's
    DELETED = "deleted"  # eSIM Go deleted it: nothing can go onto it any more
    NO_PLANS = "no_plans"  # its country is unknown or nothing is sold for it now


@dataclass(frozen=True, slots=True)
class TopUpTarget:
    """An eSIM to top up and the bundles offered for it: the country's own, then shared ones.

    `iso` is the eSIM's country; when only its region is known `area` is the bundle it was
    bought with, whose coverage every offered bundle includes.
    """

    status: TopUpStatus
    esim: Esim | None = None
    iso: str | None = None
    area: Bundle | None = None
    own: tuple[Bundle, ...] = ()
    shared: tuple[Bundle, ...] = ()

    def offers(self, bundle_name: str) -> bool:
        return any(b.name == bundle_name for b in (*self.own, *self.shared))


class Compatibility(enum.StrEnum):
    COMPATIBLE = "compatible"
    INCOMPATIBLE = "incompatible"
    UNAVAILABLE = "unavailable"  # eSIM Go could not say


def _is_iso(code: str) -> bool:
    return len(code) == 2 and code.isascii() and code.isalpha()


class PreCheckoutRefusal(enum.StrEnum):
    UNKNOWN_ORDER = "unknown_order"
    WRONG_AMOUNT = "wrong_amount"
    ALREADY_PAID = "already_paid"
    EXPIRED = "expired"
    NO_LONGER_SOLD = "no_longer_sold"
    ESIM_GONE = "esim_gone"


class PaymentOutcome(enum.StrEnum):
    RECORDED = "recorded"  # the order is now paid: fulfil it
    DUPLICATE = "duplicate"  # this charge was seen before: do nothing
    REFUND = "refund"  # money for an order that cannot be fulfilled: stored as failed → refund


@dataclass(frozen=True, slots=True)
class ReceivedPayment:
    """A successful payment as Telegram reports it: the update, or the Stars ledger."""

    public_id: str  # the invoice's payload
    user_id: int
    amount: int
    currency: str
    charge_id: str
    provider_charge_id: str | None = None


@dataclass(frozen=True, slots=True)
class PaymentResult:
    outcome: PaymentOutcome
    order: Order | None


class OrderService:
    """Every state change is a guarded UPDATE and is committed here, never by repositories."""

    def __init__(
        self,
        esimgo: EsimGoClient,
        catalogue: CatalogueService,
        pricing: PricingService,
        *,
        unpaid_ttl: timedelta = UNPAID_TTL,
        metrics: Metrics | None = None,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self._esimgo = esimgo
        self._catalogue = catalogue
        self._pricing = pricing
        self._unpaid_ttl = unpaid_ttl
        self._metrics = metrics
        self._clock = clock
        self._organisation: tuple[float, Organisation] | None = None
        # order id → (monotonic time, cost) of its last successful validate, oldest first.
        self._validated: dict[int, tuple[float, Decimal]] = {}

    async def start(
        self,
        session: AsyncSession,
        *,
        bundle: Bundle,
        user_id: int,
        username: str | None,
        chat_id: int,
        language: str,
        country_code: str | None,
        country_name: str | None,
        topup_iccid: str | None = None,
    ) -> Order:
        """An order awaiting payment, priced from the catalogue; a top-up of `topup_iccid`."""
        price = self._pricing.retail_price(bundle.price)
        now = self._clock()
        order = Order(
            public_id=new_public_id(),
            telegram_user_id=user_id,
            telegram_username=username,
            chat_id=chat_id,
            language=language,
            kind=TOPUP if topup_iccid else NEW,
            iccid=topup_iccid,
            bundle_name=bundle.name,
            country_code=country_code,
            country_name=country_name,
            cost=bundle.price,
            cost_currency="USD",
            price=price.amount,
            price_currency=price.currency,
            status=OrderStatus.AWAITING_PAYMENT.value,
            attempts=0,
            expires_at=now + self._unpaid_ttl,
            created_at=now,
            updated_at=now,
        )
        await OrderRepository(session).add(order)
        await session.commit()
        log.info(
            "order %s created: %s %s for user %s, %s %s",
            order.public_id,
            order.kind,
            bundle.name,
            user_id,
            order.price,
            order.price_currency,
        )
        return order

    # -- top-ups ------------------------------------------------------------------------------

    async def topup_target(self, session: AsyncSession, esim_id: int, user_id: int) -> TopUpTarget:
        """The user's eSIM and the bundles that may go onto it (compatibility is asked later)."""
        repo = OrderRepository(session)
        esim = await repo.owned_esim(esim_id, user_id)
        if esim is None:
            return TopUpTarget(TopUpStatus.NOT_FOUND)
        if esim.deleted_at is not None:
            return TopUpTarget(TopUpStatus.DELETED, esim)
        catalogue = self._catalogue.catalogue
        orders = await repo.orders_of_iccid(esim.iccid, user_id)
        bought = [b for o in orders if (b := catalogue.by_name(o.bundle_name)) is not None]
        codes = [
            esim.country_code,
            *(o.country_code for o in orders),
            *(b.coverage[0].iso for b in bought if not b.is_multi_country),
        ]
        iso = next(
            (c.upper() for c in codes if c and _is_iso(c) and catalogue.has_country(c)), None
        )
        if iso is not None:
            own, shared = catalogue.own_bundles(iso), catalogue.shared_bundles(iso)
            if own or shared:
                return TopUpTarget(TopUpStatus.READY, esim, iso, None, tuple(own), tuple(shared))
        # Bought as a regional plan from no particular country: offer what covers that region.
        for area in bought:
            if shared := _covering(catalogue, area):
                return TopUpTarget(TopUpStatus.READY, esim, None, area, (), tuple(shared))
        return TopUpTarget(TopUpStatus.NO_PLANS, esim)

    async def check_compatible(self, iccid: str, bundle_name: str) -> Compatibility:
        """Ask eSIM Go whether the bundle can go onto this eSIM (providers differ), once."""
        try:
            with user_waits():
                compatible = await self._esimgo.is_compatible(iccid, bundle_name)
        except NotFoundError as exc:
            log.info(
                "top-up of %s with %s: eSIM Go does not know one: %s", iccid, bundle_name, exc
            )
            return Compatibility.INCOMPATIBLE
        except EsimGoError as exc:
            log.warning("top-up of %s with %s: compatibility unknown: %s", iccid, bundle_name, exc)
            return Compatibility.UNAVAILABLE
        if not compatible:
            log.info("top-up of %s with %s: not compatible", iccid, bundle_name)
            return Compatibility.INCOMPATIBLE
        return Compatibility.COMPATIBLE

    async def topup_esim(self, session: AsyncSession, order: Order) -> Esim | None:
        """The eSIM a top-up order goes onto, if it still belongs to the order's user."""
        if order.kind != TOPUP or not order.iccid:
            return None
        esim = await OrderRepository(session).esim_by_iccid(order.iccid)
        if esim is None or esim.telegram_user_id != order.telegram_user_id:
            return None
        return esim if esim.deleted_at is None else None

    async def owned(self, session: AsyncSession, public_id: str, user_id: int) -> Order | None:
        """The order, only if it belongs to this user."""
        order = await OrderRepository(session).by_public_id(public_id)
        return order if order is not None and order.telegram_user_id == user_id else None

    def _payable(self, order: Order) -> bool:
        return order.status == OrderStatus.AWAITING_PAYMENT.value and not self._expired(order)

    def _expired(self, order: Order) -> bool:
        return order.expires_at is not None and order.expires_at <= self._clock()

    async def _organisation_balance(self, cost: Decimal) -> Decimal:
        now = time.monotonic()
        cached = self._organisation
        # A cached figure near the cost is re-read: a low balance must be seen at once.
        if (
            cached is not None
            and now - cached[0] < BALANCE_CACHE_SECONDS
            and cached[1].balance >= cost * 5
        ):
            return cached[1].balance
        organisation = await self._esimgo.get_organisation()
        self._organisation = (now, organisation)
        return organisation.balance

    async def invoiceable(self, session: AsyncSession, order: Order) -> Invoiceable | Preparation:
        """Before an invoice, read: the order and its top-up's eSIM, or why it cannot be paid
        (an expired order, or a top-up whose eSIM is no longer the user's, is cancelled)."""
        if not self._payable(order):
            if order.status == OrderStatus.AWAITING_PAYMENT.value:
                await self.cancel(session, order, reason="expired")
            return Preparation(Prepared.NOT_PAYABLE, order)
        esim: Esim | None = None
        if order.kind == TOPUP:
            esim = await self.topup_esim(session, order)
            if esim is None:
                await self.cancel(session, order, reason="the eSIM is no longer the user's")
                return Preparation(Prepared.ESIM_GONE, order)
        return Invoiceable(order, esim)

    async def supplier_cost(self, target: Invoiceable) -> Decimal | Preparation:
        """Then ask eSIM Go, once and briefly (the user waits; hold no session across this):
        the cost a `validate` order confirms with our balance, or why there is no invoice."""
        order, esim = target.order, target.esim
        if self._validated_recently(order):
            return order.cost
        try:
            with user_waits():
                validation = await self._esimgo.validate_order(
                    order.bundle_name, iccid=esim.iccid if esim is not None else None
                )
                cost = validation.total if validation.total > 0 else order.cost
                balance = await self._organisation_balance(cost)
        except (SupplierUnavailableError, RateLimitedError) as exc:
            log.warning("order %s: eSIM Go did not answer: %s", order.public_id, exc)
            return Preparation(Prepared.NO_ANSWER, order)
        except EsimGoError as exc:
            log.warning("order %s: validate failed: %s", order.public_id, exc)
            return Preparation(Prepared.UNAVAILABLE, order)
        if balance < cost:
            log.warning("order %s: balance %s below cost %s", order.public_id, balance, cost)
            return Preparation(Prepared.LOW_BALANCE, order, balance=balance)
        if not validation.valid:
            log.warning("order %s: eSIM Go says invalid: %s", order.public_id, validation.message)
            return Preparation(Prepared.UNAVAILABLE, order)
        self._remember_validated(order.id, cost)
        return cost

    async def priced(
        self, session: AsyncSession, target: Invoiceable, cost: Decimal
    ) -> Preparation:
        """Last, write: the order at the confirmed cost (repriced if it changed)."""
        if cost == target.order.cost:
            return Preparation(Prepared.READY, target.order, esim=target.esim)
        return await self._reprice(session, target.order, cost, target.esim)

    def _validated_recently(self, order: Order) -> bool:
        seen = self._validated.get(order.id)
        fresh = time.monotonic() - VALIDATION_REUSE_SECONDS
        return seen is not None and seen[0] > fresh and seen[1] == order.cost

    def _remember_validated(self, order_id: int, cost: Decimal) -> None:
        now = time.monotonic()
        self._validated.pop(order_id, None)
        self._validated[order_id] = (now, cost)
        # Kept oldest first: drop from the front what is too old to be reused.
        stale = now - VALIDATION_REUSE_SECONDS
        while (first := next(iter(self._validated))) != order_id and (
            self._validated[first][0] <= stale
        ):
            del self._validated[first]

    async def _reprice(
        self, session: AsyncSession, order: Order, cost: Decimal, esim: Esim | None
    ) -> Preparation:
        old_price = order.price
        price = self._pricing.retail_price(cost)
        repo = OrderRepository(session)
        won = await repo.transition(
            order.id,
            OrderStatus.AWAITING_PAYMENT,
            OrderStatus.AWAITING_PAYMENT,
            actor=USER,
            note=f"repriced: cost {order.cost} → {cost}",
            cost=cost,
            price=price.amount,
            price_currency=price.currency,
        )
        await session.commit()
        fresh = await repo.get(order.id)
        assert fresh is not None
        if not won:
            return Preparation(Prepared.NOT_PAYABLE, fresh, esim=esim)
        log.info(
            "order %s repriced: cost %s → %s, price %s → %s %s",
            order.public_id,
            order.cost,
            cost,
            old_price,
            price.amount,
            price.currency,
        )
        if price.amount == old_price:
            return Preparation(Prepared.READY, fresh, esim=esim)
        return Preparation(Prepared.PRICE_CHANGED, fresh, old_price=old_price, esim=esim)

    async def invoice_sent(self, session: AsyncSession, public_id: str, user_id: int) -> None:
        """Record when the user's order first had its invoice sent (the dashboard's
        conversion): one UPDATE, no read first."""
        await OrderRepository(session).mark_invoice_sent(public_id, user_id, self._clock())
        await session.commit()

    async def cancel(self, session: AsyncSession, order: Order, *, reason: str = "user") -> bool:
        """awaiting_payment → cancelled; False if it was paid or cancelled meanwhile."""
        won = await OrderRepository(session).transition(
            order.id,
            OrderStatus.AWAITING_PAYMENT,
            OrderStatus.CANCELLED,
            actor=USER,
            note=reason,
            failure_reason=reason,
        )
        await session.commit()
        if won:
            order.status = OrderStatus.CANCELLED
            log.info("order %s: awaiting_payment → cancelled (%s)", order.public_id, reason)
            self._cancelled(1)
        return won

    async def expire_unpaid(self, session: AsyncSession) -> int:
        """Cancel every unpaid order past its `expires_at`; returns how many."""
        repo = OrderRepository(session)
        count = 0
        for order_id, public_id in await repo.expired_unpaid(self._clock()):
            if await repo.transition(
                order_id,
                OrderStatus.AWAITING_PAYMENT,
                OrderStatus.CANCELLED,
                actor=WORKER,
                note="expired",
                failure_reason="expired",
            ):
                count += 1
                log.info("order %s: awaiting_payment → cancelled (expired)", public_id)
        await session.commit()
        self._cancelled(count)
        return count

    def _cancelled(self, count: int) -> None:
        if self._metrics is not None and count:
            self._metrics.order_finished(OrderStatus.CANCELLED.value, count)

    async def check_pre_checkout(
        self, session: AsyncSession, *, public_id: str, user_id: int, amount: int, currency: str
    ) -> PreCheckoutRefusal | None:
        """None when Telegram may take the money; reads the database only (answer fast)."""
        order = await self.owned(session, public_id, user_id)
        if order is None:
            return PreCheckoutRefusal.UNKNOWN_ORDER
        if order.price != amount or order.price_currency != currency:
            return PreCheckoutRefusal.WRONG_AMOUNT
        if order.status != OrderStatus.AWAITING_PAYMENT.value:
            if order.status == OrderStatus.CANCELLED.value:
                return PreCheckoutRefusal.EXPIRED
            return PreCheckoutRefusal.ALREADY_PAID
        if self._expired(order):
            return PreCheckoutRefusal.EXPIRED
        if self._catalogue.catalogue.by_name(order.bundle_name) is None:
            return PreCheckoutRefusal.NO_LONGER_SOLD
        if order.kind == TOPUP and await self.topup_esim(session, order) is None:
            return PreCheckoutRefusal.ESIM_GONE
        return None

    async def record_payment(
        self, session: AsyncSession, payment: ReceivedPayment, *, actor: str = USER
    ) -> PaymentResult:
        """Store a successful payment once (unique charge id); money we cannot serve → refund.
        `actor` is who reported it: the buyer's update, or the payments reconciler."""
        try:
            result = await self._record(session, payment, actor)
        except IntegrityError:
            # The same charge id was stored concurrently by a redelivered update.
            await session.rollback()
            result = None
        if result is None:
            log.info("payment %s for order %s seen before", payment.charge_id, payment.public_id)
            return PaymentResult(PaymentOutcome.DUPLICATE, None)
        return result

    async def _record(
        self, session: AsyncSession, payment: ReceivedPayment, actor: str
    ) -> PaymentResult | None:
        """The payment stored and committed; None when its charge id is stored already."""
        repo = OrderRepository(session)
        if await repo.charge_recorded(payment.charge_id):
            return None
        order = await repo.by_public_id(payment.public_id)
        now = self._clock()
        paid = _paid_values(payment, now)
        if order is not None and _pays_for(order, payment):
            result = await _pay_order(session, order, payment, paid, actor)
            if result is not None:
                return result
        stray = await _record_stray(repo, order, payment, now, actor, paid)
        await session.commit()
        log.warning(
            "payment %s for order %s cannot be served (%s); order %s → failed, refund",
            payment.charge_id,
            payment.public_id,
            order.status if order is not None else "unknown order",
            stray.public_id,
        )
        return PaymentResult(PaymentOutcome.REFUND, stray)


def _paid_values(payment: ReceivedPayment, now: datetime) -> dict[str, object]:
    """The columns a paid order (or the failed row of a payment to refund) gets."""
    return {
        # Delivery goes to the payer's private chat, whatever chat the order came from.
        "chat_id": payment.user_id,
        "telegram_payment_charge_id": payment.charge_id,
        "provider_payment_charge_id": payment.provider_charge_id,
        "paid_at": now,
        "next_attempt_at": None,
        "lease_until": None,
    }


def _pays_for(order: Order, payment: ReceivedPayment) -> bool:
    """The payment is the order's own: its buyer paid its price in its currency."""
    return (
        order.telegram_user_id == payment.user_id
        and order.price == payment.amount
        and order.price_currency == payment.currency
    )


async def _pay_order(
    session: AsyncSession,
    order: Order,
    payment: ReceivedPayment,
    paid: dict[str, object],
    actor: str,
) -> PaymentResult | None:
    """Awaiting payment → paid; cancelled meanwhile → failed, to refund. None when the order
    is in neither state (or holds a charge already): the payment is a stray."""
    repo, no_charge = OrderRepository(session), {"telegram_payment_charge_id": None}
    if await repo.transition(
        order.id,
        OrderStatus.AWAITING_PAYMENT,
        OrderStatus.PAID,
        no_charge,
        actor=actor,
        note=f"charge {payment.charge_id}",
        **paid,
    ):
        await _commit_detached(session, order)
        log.info("order %s: awaiting_payment → paid (%s)", order.public_id, payment.charge_id)
        return PaymentResult(PaymentOutcome.RECORDED, order.mirror(OrderStatus.PAID, paid))
    late = {**paid, "failure_reason": f"{STRAY}{PAID_LATE}"}
    if await repo.transition(
        order.id,
        OrderStatus.CANCELLED,
        OrderStatus.FAILED,
        no_charge,
        actor=actor,
        note=PAID_LATE,
        **late,
    ):
        await _commit_detached(session, order)
        log.info("order %s: cancelled → failed (paid late, refund)", order.public_id)
        return PaymentResult(PaymentOutcome.REFUND, order.mirror(OrderStatus.FAILED, late))
    return None


async def _commit_detached(session: AsyncSession, order: Order) -> None:
    """Commit, then let go of `order` so that mirroring the update onto it writes nothing."""
    await session.commit()
    session.expunge(order)


async def _record_stray(
    repo: OrderRepository,
    order: Order | None,
    payment: ReceivedPayment,
    now: datetime,
    actor: str,
    paid: dict[str, object],
) -> Order:
    """A payment with no payable order (already paid, unknown…) gets its own row to refund
    (created failed, an event by `actor`)."""
    stray = Order(
        public_id=new_public_id(),
        telegram_user_id=payment.user_id,
        telegram_username=order.telegram_username if order is not None else None,
        language=order.language if order is not None else "en",
        kind=order.kind if order is not None else NEW,
        iccid=order.iccid if order is not None and order.kind == TOPUP else None,
        bundle_name=order.bundle_name if order is not None else "unknown",
        country_code=order.country_code if order is not None else None,
        country_name=order.country_name if order is not None else None,
        cost=Decimal(0),
        cost_currency="USD",
        price=payment.amount,
        price_currency=payment.currency,
        status=OrderStatus.FAILED.value,
        attempts=0,
        failure_reason=(
            f"{STRAY}payment for order {order.public_id} ({order.status})"
            if order is not None
            else f"{STRAY}payment for an unknown order"
        ),
        created_at=now,
        updated_at=now,
        **paid,
    )
    await repo.add(stray)
    await repo.add_events([(stray.id, None, stray.status)], actor, stray.failure_reason)
    return stray


def _covering(catalogue: Catalogue, area: Bundle) -> list[Bundle]:
    """Shared bundles whose coverage includes all of `area`'s countries (itself among them)."""
    wanted = [c.iso for c in area.coverage if _is_iso(c.iso)]
    if not wanted:
        return []
    return [
        b
        for b in catalogue.shared_bundles(wanted[0])
        if set(wanted) <= {c.iso for c in b.coverage}
    ]
