"""Instant refund of an eSIM never used: the plan goes back to our eSIM Go balance, the money
back to the user, in seconds instead of days.

Refundable: a delivered order whose plan never started, within SELF_REFUND_DAYS of payment, and
for a new eSIM one never installed. Checked on our records to offer the button, then live at
eSIM Go right before the revoke. The order is claimed first (a guarded UPDATE of its lease), so
a second press or replica cannot refund it again; the revoke is recorded before the Stars
refund, and a Stars refund that fails sends the order to `refund_due` with an admin alert: we
never hold both the plan's value and the user's money, nor give both away.
"""

from __future__ import annotations

import enum
import logging
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from db.base import utcnow
from db.models import Esim, EsimBundle, Order, OrderStatus
from db.models.events import USER
from db.repositories.esims import MyEsimsRepository
from db.repositories.gifts import GiftRepository
from db.repositories.orders import OrderRepository
from db.repositories.self_refunds import SelfRefundRepository
from services.admin_alerts import AdminAlerts
from services.messenger import Messenger, MessengerError
from services.metrics import Metrics
from services.orders import TOPUP
from services.plan_takeback import PlanSource, PlanTakeBack, TakeBack, TakenBack
from services.pricing import Price
from services.usage import is_installed

log = logging.getLogger(__name__)

# The order's lease_owner while a self-refund acts on it; failure_reason values it leaves.
CLAIM_PREFIX = "self-refund:"
REVOKED = "self-refund: plan revoked to the eSIM Go balance"
DONE = "self-refund: plan revoked to the eSIM Go balance, Stars refunded"
_UNUSED_STATES = frozenset({"queued", "processing", "revoked"})


class RefundVerdict(enum.StrEnum):
    REFUNDED = "refunded"  # the money is back with the user
    REFUND_PENDING = "refund_pending"  # plan taken back; our team returns the money
    ALREADY_REFUNDED = "already_refunded"
    IN_PROGRESS = "in_progress"  # another press is refunding it right now
    INSTALLED = "installed"
    STARTED = "started"
    PAST_WINDOW = "past_window"
    NOT_REFUNDABLE = "not_refundable"  # not a delivered order of this user, or eSIM Go said no
    UNAVAILABLE = "unavailable"  # eSIM Go could not be asked now; nothing changed


# Why eSIM Go's live answer rules the refund out, as the user is told.
_VERDICTS = {
    TakeBack.INSTALLED: RefundVerdict.INSTALLED,
    TakeBack.STARTED: RefundVerdict.STARTED,
    TakeBack.UNAVAILABLE: RefundVerdict.UNAVAILABLE,
}


@dataclass(frozen=True, slots=True)
class RefundOffer:
    """An order the user may refund themselves, until `until`."""

    order_id: int
    public_id: str
    bundle_name: str
    is_topup: bool
    price: Price
    until: datetime


@dataclass(frozen=True, slots=True)
class RefundResult:
    verdict: RefundVerdict
    offer: RefundOffer | None = None


@dataclass(frozen=True, slots=True)
class _Case:
    """An order with the eSIM and plan rows it refers to, read in one session."""

    order: Order
    esim: Esim | None
    rows: tuple[EsimBundle, ...]


class SelfRefunds:
    def __init__(
        self,
        session_factory: async_sessionmaker[AsyncSession],
        esimgo: PlanSource,
        messenger: Messenger,
        alerts: AdminAlerts,
        *,
        days: int,
        clock: Callable[[], datetime] = utcnow,
        claim_for: timedelta = timedelta(minutes=10),
        metrics: Metrics | None = None,
    ) -> None:
        self._session_factory = session_factory
        self._metrics = metrics
        self._plans = PlanTakeBack(esimgo)
        self._messenger = messenger
        self._alerts = alerts
        self.days = days  # 0: no self-refund at all
        self.window = timedelta(days=days)
        self._clock = clock
        self._claim_for = claim_for

    # -- what to offer (our records only) -------------------------------------------------------

    async def offers(self, owner_id: int, esim_id: int) -> list[RefundOffer]:
        """The orders on the owner's eSIM that show a Refund button, newest first."""
        async with self._session_factory() as session:
            repo = MyEsimsRepository(session)
            esim = await repo.esim(esim_id, owner_id)
            if esim is None:
                return []
            mine = await repo.esim_orders(esim.iccid, owner_id)
            orders = await _paid_by(session, mine, owner_id)
            rows = tuple(await repo.esim_bundles(esim.iccid, owner_id))
        now = self._clock()
        cases = (_Case(order, esim, rows) for order in orders)
        return [self._offer(case.order) for case in cases if self._refusal(case, now) is None]

    async def offer(self, owner_id: int, order_id: int) -> RefundOffer | RefundResult:
        """The order for the confirmation screen, or why it cannot be refunded (with the
        order's terms where it is the user's: the refusal names the deadline)."""
        case = await self._case(owner_id, order_id)
        if case is None:
            return RefundResult(RefundVerdict.NOT_REFUNDABLE)
        offer = self._offer(case.order)
        refusal = self._refusal(case, self._clock())
        return offer if refusal is None else RefundResult(refusal, offer)

    # -- the refund ----------------------------------------------------------------------------

    async def refund(self, owner_id: int, order_id: int) -> RefundResult:
        """Check, claim, revoke to balance, pay back; pressed twice, refunds once."""
        case = await self._case(owner_id, order_id)
        if case is None:
            return RefundResult(RefundVerdict.NOT_REFUNDABLE)
        order, offer, now = case.order, self._offer(case.order), self._clock()
        refusal = self._refusal(case, now)
        if refusal is not None:
            return RefundResult(refusal, offer)
        token = await self._claim(order, now)
        if token is None:
            return RefundResult(RefundVerdict.IN_PROGRESS, offer)
        try:
            taken = await self._take_back(order)
        except BaseException:
            await self._release(order, token)
            raise
        if isinstance(taken, RefundVerdict):
            await self._release(order, token)
            return RefundResult(taken, offer)
        if taken.outcome is TakeBack.UNKNOWN:
            verdict = await self._hand_over(order, token, taken.why, revoked=False)
            return RefundResult(verdict, offer)
        return RefundResult(await self._pay_back(order, token, taken.key), offer)

    # -- steps ---------------------------------------------------------------------------------

    async def _case(self, owner_id: int, order_id: int) -> _Case | None:
        async with self._session_factory() as session:
            repo = MyEsimsRepository(session)
            order = await OrderRepository(session).get(order_id)
            if order is None or not await _paid_by(session, [order], owner_id):
                return None
            esim: Esim | None = None
            rows: Sequence[EsimBundle] = ()
            if order.iccid:
                esim = await OrderRepository(session).esim_by_iccid(order.iccid)
                rows = await repo.esim_bundles(order.iccid, owner_id)
        if esim is not None and (esim.telegram_user_id != owner_id or esim.deleted_at):
            esim = None
        return _Case(order, esim, tuple(rows))

    def _offer(self, order: Order) -> RefundOffer:
        return RefundOffer(
            order_id=order.id,
            public_id=order.public_id,
            bundle_name=order.bundle_name,
            is_topup=order.kind == TOPUP,
            price=Price(order.price, order.price_currency),
            until=(order.paid_at or order.created_at) + self.window,
        )

    def _refusal(self, case: _Case, now: datetime) -> RefundVerdict | None:
        """Why our records already rule the refund out; None when it may go ahead."""
        order = case.order
        if order.status == OrderStatus.REFUNDED.value:
            return RefundVerdict.ALREADY_REFUNDED
        if order.status == OrderStatus.REFUND_DUE.value and _is_self_refund(order):
            return RefundVerdict.REFUND_PENDING
        if order.status != OrderStatus.DELIVERED.value or case.esim is None:
            return RefundVerdict.NOT_REFUNDABLE
        if order.next_attempt_at is not None or _claimed(order, now):
            return RefundVerdict.IN_PROGRESS
        if now > (order.paid_at or order.created_at) + self.window:
            return RefundVerdict.PAST_WINDOW
        if order.kind != TOPUP and is_installed(
            case.esim.profile_status, case.esim.first_installed_at
        ):
            return RefundVerdict.INSTALLED
        mine = [r for r in case.rows if _row_is_order(r, order)]
        if mine and mine[0].state.strip().lower() not in _UNUSED_STATES:
            return RefundVerdict.STARTED
        return None

    async def _claim(self, order: Order, now: datetime) -> str | None:
        """Take the order for this refund; a claim left by a crashed attempt can be taken over
        once it runs out (the live check then sees what that attempt did)."""
        token = f"{CLAIM_PREFIX}{uuid.uuid4().hex[:16]}"
        values = {"lease_owner": token, "lease_until": now + self._claim_for}
        # Still the owner's as read: a gift claimed meanwhile is the claimant's to keep.
        guard: dict[str, object] = {
            "status": OrderStatus.DELIVERED.value,
            "next_attempt_at": None,
            "telegram_user_id": order.telegram_user_id,
        }
        stale = order.lease_owner  # None, or one run out (_claimed said so)
        async with self._session_factory() as session:
            won = await OrderRepository(session).update_where(
                order.id, {**guard, "lease_owner": stale}, **values
            )
            await session.commit()
        return token if won else None

    async def _release(self, order: Order, token: str) -> None:
        async with self._session_factory() as session:
            await OrderRepository(session).update_where(
                order.id,
                {"status": OrderStatus.DELIVERED.value, "lease_owner": token},
                lease_owner=None,
                lease_until=None,
            )
            await session.commit()

    async def _take_back(self, order: Order) -> RefundVerdict | TakenBack:
        """The plan back to our balance (a copy only guessed to be the order's too): taken
        back (now or by an earlier attempt), why not, or UNKNOWN: the operators must decide
        (nobody can tell whether it was taken back for this order)."""
        async with self._session_factory() as session:
            others = await SelfRefundRepository(session).other_references(order)
        taken = await self._plans.take_back(order, revoke_guess=True, others=others)
        if taken.outcome in (TakeBack.REVOKED, TakeBack.UNKNOWN):
            return taken
        return _VERDICTS.get(taken.outcome, RefundVerdict.NOT_REFUNDABLE)

    async def _pay_back(self, order: Order, token: str, key: str) -> RefundVerdict:
        """The plan is back with us: record that, then return the user's money."""
        mine = {"status": OrderStatus.DELIVERED.value, "lease_owner": token}
        async with self._session_factory() as session:
            kept = await OrderRepository(session).update_where(
                order.id, mine, failure_reason=REVOKED
            )
            await session.commit()
        if not kept:
            return RefundVerdict.IN_PROGRESS  # a later attempt took over and finishes it
        price = Price(order.price, order.price_currency)
        if not price.is_stars or not order.telegram_payment_charge_id:
            return await self._hand_over(
                order, token, "not paid in Stars: refund by hand", key=key
            )
        try:
            await self._messenger.refund_star_payment(
                order.telegram_user_id, order.telegram_payment_charge_id
            )
        except MessengerError as exc:
            log.error("order %s: Stars refund failed: %s", order.public_id, exc)
            why = f"refundStarPayment failed: {exc}"
            return await self._hand_over(order, token, why, key=key)
        await self._settle(order, token, OrderStatus.REFUNDED, DONE, key)
        log.info("order %s: refunded by its owner", order.public_id)
        return RefundVerdict.REFUNDED

    async def _hand_over(
        self, order: Order, token: str, why: str, *, revoked: bool = True, key: str = ""
    ) -> RefundVerdict:
        """The money goes back by hand: `refund_due`, where the operators look, and an alert."""
        reason = f"{REVOKED}; {why}" if revoked else f"{CLAIM_PREFIX} {why}"
        await self._settle(order, token, OrderStatus.REFUND_DUE, reason, key if revoked else None)
        await self._alerts.alert(
            self._messenger,
            f"💸 Refund due by hand (self-refund): order {order.public_id}, user "
            f"{order.telegram_user_id}, {order.price} {order.price_currency}, charge "
            f"{order.telegram_payment_charge_id}, provider charge "
            f"{order.provider_payment_charge_id}. Plan {order.bundle_name} on eSIM "
            f"{order.iccid}: {reason}.",
        )
        return RefundVerdict.REFUND_PENDING

    async def _settle(
        self, order: Order, token: str, status: OrderStatus, reason: str, key: str | None
    ) -> None:
        """Final state of the order; a plan taken back also leaves the user's eSIM list."""
        now = self._clock()
        refunded = {"refunded_at": now} if status is OrderStatus.REFUNDED else {}
        async with self._session_factory() as session:
            won = await OrderRepository(session).transition(
                order.id,
                OrderStatus.DELIVERED,
                status,
                {"lease_owner": token},
                actor=USER,
                note="self-refund",
                lease_owner=None,
                lease_until=None,
                failure_reason=reason,
                **refunded,
            )
            if key is not None:
                await self._plans.record_revoked(session, order, key, now)
            await session.commit()
        if won and self._metrics is not None:
            self._metrics.order_finished(status.value)


async def _paid_by(session: AsyncSession, orders: Sequence[Order], owner_id: int) -> list[Order]:
    """The owner's orders they paid for themselves: a gift's claimant owns its orders, but the
    money goes back only to the buyer who paid (an admin refunds a gift)."""
    repo = GiftRepository(session)
    return [
        o for o in orders if o.telegram_user_id == owner_id and await repo.payer_id(o) == owner_id
    ]


def _claimed(order: Order, now: datetime) -> bool:
    """Someone holds the order (the worker, an admin's action, another self-refund) with a
    lease that has not run out; one left by a crashed process is free to take over."""
    if order.lease_owner is None:
        return False
    return order.lease_until is None or order.lease_until > now


def _is_self_refund(order: Order) -> bool:
    return (order.failure_reason or "").startswith(CLAIM_PREFIX.rstrip(":"))


def _row_is_order(row: EsimBundle, order: Order) -> bool:
    if row.bundle_name != order.bundle_name:
        return False
    reference = order.esimgo_order_reference
    return not reference or row.assignment_key.startswith(reference)
