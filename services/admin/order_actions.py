"""An admin's actions on one order: Retry fulfilment, Refund, Resend the eSIM, Mark resolved.

Each is checked against the order's state (services.admin.order_rules), done with guarded
UPDATEs, and recorded with the admin's id, done or refused. A refund holds the order's lease
while Telegram is asked, as the worker does, renewed for as long as Telegram takes, so no
worker delivers or refunds it meanwhile; a lease lost all the same alerts the admins.

A Refund of a delivered order first asks eSIM Go (services.plan_takeback, as a self-refund
does): a plan unused and known to be the order's own goes back to our balance, recorded before
the money goes back (a Stars refund that then fails leaves the order `refund_due`); an installed
or started plan, or one not identified as the order's, stays, and only the money goes back.
When eSIM Go cannot be reached nothing moves: the admin may refund the money only, or wait.
"""

from __future__ import annotations

import asyncio
import contextlib
import html
import logging
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import TypeVar

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from db.base import utcnow
from db.models import Order, OrderStatus
from db.models.events import admin_actor
from db.repositories.admin_orders import AdminOrderRepository
from db.repositories.admin_stats import RESOLVE
from db.repositories.orders import OrderRepository
from db.repositories.star_ledger import StarLedgerRepository
from services.admin.order_rules import TAKEN_BACK, OrderAction, lease_guard, refusal, when
from services.admin.star_refunds import find_refund
from services.admin_alerts import AdminAlerts
from services.gifts import Payer, order_payer
from services.i18n import N_, Translator
from services.messenger import Messenger, MessengerError, RefundError
from services.metrics import Metrics
from services.payment_reconciler import StarLedger
from services.plan_takeback import PlanTakeBack, TakeBack, TakenBack
from services.pricing import STARS, Price, format_price

log = logging.getLogger(__name__)
T = TypeVar("T")

# Longer than Telegram takes to answer a refund; a crashed admin action frees the order then.
ACTION_LEASE = timedelta(minutes=2)
DONE = "done"
REFUSED = "refused"

# The order's failure_reason once a Refund has taken its plan back (the money may be due).
PLAN_REVOKED = "admin refund: plan revoked to the eSIM Go balance"
UNREACHABLE = (
    "eSIM Go could not be reached to check the eSIM and take its plan back: nothing was "
    "refunded. Refund the money only (the eSIM stays active), or try again later."
)
MONEY_DUE = "The order is refund_due: Refund it again to return the money."
# Why a delivered eSIM keeps its plan through a Refund, as its event and the admin say.
_KEPT = {
    TakeBack.INSTALLED: "the eSIM was installed",
    TakeBack.STARTED: "the plan has started",
    TakeBack.MISSING: "eSIM Go shows no copy of it on the eSIM",
    TakeBack.GUESSED: "its copy on the eSIM cannot be identified as this order's",
    TakeBack.REFUSED: "eSIM Go refused to revoke it",
}

REFUNDED_BY_ADMIN_TEXT = N_(
    "↩️ Your payment of {price} for order <code>{order}</code> has been refunded."
)


@dataclass(frozen=True, slots=True)
class ActionResult:
    action: OrderAction
    public_id: str
    done: bool
    message: str  # what was done, or why not (for the admin, in English)
    # A Refund eSIM Go could not be asked for: the admin may refund the money only instead.
    money_only: bool = False


@dataclass(frozen=True, slots=True)
class _PlanFate:
    """What a Refund did to a delivered order's plan before the money goes back."""

    revoked: TakenBack | None = None  # taken back to our balance
    kept: str = ""  # why the eSIM stays active (empty: nothing was delivered)
    refusal: str | None = None  # why nothing may be refunded now
    money_only: bool = False  # the refusal offers a refund of the money only


# The plan went back but the order is someone else's now: no money moves without a look.
TAKEN_OVER_AFTER_REVOKE = (
    "The plan went back to the eSIM Go balance, but order {} was taken over meanwhile: "
    "check it with /order before refunding the money (Refund again returns the money only)."
)


class OrderActions:
    def __init__(
        self,
        session_factory: async_sessionmaker[AsyncSession],
        messenger: Messenger,
        translator: Translator,
        plans: PlanTakeBack,
        *,
        wake_worker: Callable[[], None] = lambda: None,
        metrics: Metrics | None = None,
        clock: Callable[[], datetime] = utcnow,
        ledger: StarLedger | None = None,
        alerts: AdminAlerts | None = None,
        lease: timedelta = ACTION_LEASE,
    ) -> None:
        self._session_factory = session_factory
        self._messenger = messenger
        self._translator = translator
        # A delivered order's unused plan goes back to our eSIM Go balance before a Refund.
        self._plans = plans
        self._wake_worker = wake_worker
        self._metrics = metrics
        self._clock = clock
        # Telegram's Stars ledger, read before a retry; None in the sandbox (its payments never
        # reach Telegram): the reconciled star_ledger table is asked instead.
        self._ledger = ledger
        self._alerts = alerts
        self._lease = lease

    async def perform(
        self, action: OrderAction, public_id: str, admin_id: int, *, money_only: bool = False
    ) -> ActionResult:
        """Do `action` if it still fits the order; either way it is recorded. `money_only`: a
        Refund leaves a delivered eSIM's plan alone (eSIM Go could not be asked)."""
        now = self._clock()
        async with self._session_factory() as session:
            repo = AdminOrderRepository(session)
            order = await repo.by_public_id(public_id)
            if order is None:
                return ActionResult(action, public_id, False, "No such order.")
            resolved = any(
                a.action == RESOLVE and a.outcome == DONE for a in await repo.actions(order.id)
            )
            reason = refusal(action, order, now=now, resolved=resolved)
            asks_telegram = action in (OrderAction.RETRY, OrderAction.REFUND)
            if reason is not None or not asks_telegram:
                if reason is None:
                    reason = await self._apply(session, action, order, now, admin_id)
                return await self._record(session, order, admin_id, action, reason)
        # A retry or a refund asks Telegram: with no database session open.
        if action is OrderAction.RETRY:
            return await self._retry(order, admin_id, now)
        return await self._refund(order, admin_id, money_only)

    async def _retry(self, order: Order, admin_id: int, now: datetime) -> ActionResult:
        """Back to fulfilment, unless Telegram refunded the charge already: then the order is
        marked refunded (it must not be delivered too) and the retry refused, saying so."""
        unread: str | None = None
        refunded_at: datetime | None = None
        try:
            refunded_at = await self._telegram_refund(order)
        except MessengerError as exc:
            unread = f"Telegram's Stars ledger could not be read: {exc}. Try again."
        async with self._session_factory() as session:
            if unread is not None:
                reason: str | None = unread
            elif refunded_at is not None:
                reason = await self._already_refunded(session, order, admin_id, refunded_at)
            else:
                reason = await self._apply(session, OrderAction.RETRY, order, now, admin_id)
            return await self._record(session, order, admin_id, OrderAction.RETRY, reason)

    async def _telegram_refund(self, order: Order) -> datetime | None:
        """When Telegram refunded the order's Stars charge (None: it did not, or not Stars):
        read fresh from its ledger; without one (the sandbox), as the reconciler stored it."""
        charge = order.telegram_payment_charge_id
        if order.price_currency != STARS or not charge:
            return None
        if self._ledger is not None:
            entry = await find_refund(self._ledger, charge, order.paid_at)
            return entry.date if entry is not None else None
        async with self._session_factory() as session:
            stored = await StarLedgerRepository(session).refunded(charge)
        return self._clock() if stored else None

    async def _already_refunded(
        self, session: AsyncSession, order: Order, admin_id: int, refunded_at: datetime
    ) -> str:
        """The refusal of a retry of a charge Telegram refunded; the order becomes refunded."""
        won = await OrderRepository(session).transition(
            order.id,
            OrderStatus(order.status),
            OrderStatus.REFUNDED,
            lease_guard(order),
            actor=admin_actor(admin_id),
            note="retry refused: Telegram's Stars ledger shows the charge refunded",
            refunded_at=refunded_at,
            lease_owner=None,
            lease_until=None,
            next_attempt_at=None,
        )
        if not won:
            return "The order changed meanwhile: look at it again."
        if self._metrics is not None:
            self._metrics.order_finished(OrderStatus.REFUNDED.value)
        return (
            f"Telegram's Stars ledger shows this charge already refunded in Telegram"
            f"{when(refunded_at)}: marked refunded, not sent back to fulfilment."
        )

    async def _apply(
        self,
        session: AsyncSession,
        action: OrderAction,
        order: Order,
        now: datetime,
        admin_id: int,
    ) -> str | None:
        """The guarded change of a retry or resend (a resolve changes nothing); the reason
        when the order changed since it was read."""
        if action is OrderAction.RESOLVE:
            return None
        repo = OrderRepository(session)
        free = {"lease_until": None, "lease_owner": None, "next_attempt_at": None}
        if action is OrderAction.RETRY:
            won = await repo.transition(
                order.id,
                OrderStatus(order.status),
                OrderStatus.PAID,
                lease_guard(order),
                actor=admin_actor(admin_id),
                note="retry fulfilment",
                retried_at=now,
                **free,
            )
        else:
            won = await repo.update_where(
                order.id,
                {**lease_guard(order), "next_attempt_at": None},
                **{**free, "next_attempt_at": now, "delivered_at": None, "failure_reason": None},
            )
        return None if won else "The order changed meanwhile: look at it again."

    async def _record(
        self,
        session: AsyncSession,
        order: Order,
        admin_id: int,
        action: OrderAction,
        reason: str | None,
    ) -> ActionResult:
        outcome = REFUSED if reason is not None else DONE
        await AdminOrderRepository(session).add_action(order.id, admin_id, action, outcome, reason)
        await session.commit()
        log.info("order %s: %s by admin %s: %s", order.public_id, action, admin_id, outcome)
        if reason is not None:
            return ActionResult(action, order.public_id, False, reason)
        if action in (OrderAction.RETRY, OrderAction.RESEND):
            self._wake_worker()
        return ActionResult(action, order.public_id, True, _DONE_TEXT[action])

    async def _refund(self, order: Order, admin_id: int, money_only: bool) -> ActionResult:
        """A delivered order's unused plan back to our balance first, then the money."""
        token = f"admin:{admin_id}:{uuid.uuid4().hex[:12]}"
        now = self._clock()
        async with self._session_factory() as session:
            taken = await OrderRepository(session).update_where(
                order.id, lease_guard(order), lease_owner=token, lease_until=now + self._lease
            )
            await session.commit()
        if not taken:
            return await self._refused(order, admin_id, "The order changed meanwhile.")
        try:
            fate = await self._plan_fate(order, token, money_only)
        except BaseException:
            # Nothing paid yet: the order must not stay held by an action that is gone.
            with contextlib.suppress(Exception):
                await self._release(order, token)
            raise
        if fate.refusal is not None:
            await self._release(order, token)
            result = await self._refused(order, admin_id, fate.refusal)
            return replace(result, money_only=fate.money_only)
        price = Price(order.price, order.price_currency)
        if price.is_stars:
            assert order.telegram_payment_charge_id is not None  # order_rules checked
            try:
                await self._ask_refund(order, order.telegram_payment_charge_id, token)
            except MessengerError as exc:
                return await self._not_refunded(order, admin_id, token, fate, exc)
        return await self._refunded(order, admin_id, token, price, fate)

    async def _plan_fate(self, order: Order, token: str, money_only: bool) -> _PlanFate:
        """Take a delivered order's plan back if eSIM Go says it is unused and the order's
        own; the revoke is recorded on the order before any money goes back."""
        if order.status != OrderStatus.DELIVERED.value or not order.iccid:
            return _PlanFate()
        if money_only:
            return _PlanFate(kept="the admin refunded the money only")
        taken = await self._held(order, token, self._plans.take_back(order, revoke_guess=False))
        if taken.outcome is TakeBack.UNAVAILABLE:
            return _PlanFate(refusal=UNREACHABLE, money_only=True)
        if taken.outcome is TakeBack.UNKNOWN:
            return _PlanFate(refusal=f"{taken.why}. Nothing was refunded: try again later.")
        if taken.outcome is not TakeBack.REVOKED:
            return _PlanFate(kept=_KEPT[taken.outcome])
        async with self._session_factory() as session:
            kept = await OrderRepository(session).update_where(
                order.id, {"lease_owner": token}, failure_reason=PLAN_REVOKED
            )
            if kept:
                await self._plans.record_revoked(session, order, taken.key, self._clock())
            await session.commit()
        if not kept:
            return _PlanFate(refusal=TAKEN_OVER_AFTER_REVOKE.format(order.public_id))
        return _PlanFate(revoked=taken)

    async def _not_refunded(
        self, order: Order, admin_id: int, token: str, fate: _PlanFate, exc: MessengerError
    ) -> ActionResult:
        """Telegram did not refund: the order as it was, or, its plan taken back already,
        `refund_due` (a Refund again returns the money only)."""
        why = (
            "Telegram refused the refund"
            if isinstance(exc, RefundError)
            else "Telegram did not answer; try again"
        )
        if fate.revoked is None:
            await self._release(order, token)
            return await self._refused(order, admin_id, f"{why}: {exc}")
        async with self._session_factory() as session:
            await OrderRepository(session).transition(
                order.id,
                OrderStatus.DELIVERED,
                OrderStatus.REFUND_DUE,
                {"lease_owner": token},
                actor=admin_actor(admin_id),
                note=f"{_revoked_note(fate.revoked)}; the Stars refund failed: {exc}",
                lease_owner=None,
                lease_until=None,
            )
            await session.commit()
        reason = f"{TAKEN_BACK} But {why}: {exc}. {MONEY_DUE}"
        return await self._refused(order, admin_id, reason)

    async def _ask_refund(self, order: Order, charge_id: str, token: str) -> None:
        """refundStarPayment, the action's lease held while Telegram takes its time."""
        payer = await self._payer(order)
        await self._held(
            order, token, self._messenger.refund_star_payment(payer.user_id, charge_id)
        )

    async def _held(self, order: Order, token: str, work: Awaitable[T]) -> T:
        """`work` (eSIM Go or Telegram asked), the action's lease renewed meanwhile."""
        hold = asyncio.create_task(self._hold(order, token))
        try:
            return await work
        finally:
            hold.cancel()
            await asyncio.wait([hold])

    async def _hold(self, order: Order, token: str) -> None:
        """Until cancelled, renew the lease every third of it, so that no worker takes the
        order over while Telegram is asked; stops when the lease was lost all the same."""
        while True:
            await asyncio.sleep(self._lease.total_seconds() / 3)
            try:
                async with self._session_factory() as session:
                    kept = await OrderRepository(session).update_where(
                        order.id, {"lease_owner": token}, lease_until=self._clock() + self._lease
                    )
                    await session.commit()
            except Exception:
                log.exception("order %s: the refund's lease not renewed", order.public_id)
                continue
            if not kept:
                log.error("order %s: the refund's lease was taken over", order.public_id)
                return

    async def _refunded(
        self, order: Order, admin_id: int, token: str, price: Price, fate: _PlanFate
    ) -> ActionResult:
        async with self._session_factory() as session:
            won = await OrderRepository(session).transition(
                order.id,
                OrderStatus(order.status),
                OrderStatus.REFUNDED,
                {"lease_owner": token},
                actor=admin_actor(admin_id),
                note=_refund_note(fate),
                refunded_at=self._clock(),
                lease_owner=None,
                lease_until=None,
                next_attempt_at=None,
            )
            if won and self._metrics is not None:
                self._metrics.order_finished(OrderStatus.REFUNDED.value)
            result = await self._record(session, order, admin_id, OrderAction.REFUND, None)
        result = replace(result, message=_refunded_text(price, fate))
        if not won:  # the lease was lost all the same while Telegram was asked
            result = await self._taken_over(order, admin_id, price, result)
        payer = await self._payer(order)
        text = self._translator.gettext(REFUNDED_BY_ADMIN_TEXT, payer.language).format(
            price=format_price(price, payer.language), order=order.public_id
        )
        try:
            await self._messenger.send_text(payer.chat_id, text)
        except MessengerError as exc:
            log.warning(
                "order %s: could not tell the user of the refund: %s", order.public_id, exc
            )
        return result

    async def _taken_over(
        self, order: Order, admin_id: int, price: Price, result: ActionResult
    ) -> ActionResult:
        """The money went back but the order is someone else's now: the admins are told, so
        that nobody delivers it as well or refunds it twice."""
        log.error("order %s: refunded, but its row was taken over", order.public_id)
        text = (
            f"⚠️ Order {html.escape(order.public_id)}: admin {admin_id} refunded "
            f"{format_price(price, 'en')}, but the order was taken over meanwhile (the action's "
            f"lease ran out while Telegram answered). Check it with /order "
            f"{html.escape(order.public_id)}: it must not be delivered too, nor refunded again."
        )
        if self._alerts is not None:
            await self._alerts.alert(self._messenger, text)
        return replace(
            result,
            message="Refunded in Stars, but the order was taken over meanwhile: the admins "
            "were alerted; check that it is not delivered too.",
        )

    async def _payer(self, order: Order) -> Payer:
        """Who paid: a claimed gift's orders name its claimant, but the buyer's money it was."""
        async with self._session_factory() as session:
            return await order_payer(session, order)

    async def _release(self, order: Order, token: str) -> None:
        async with self._session_factory() as session:
            await OrderRepository(session).update_where(
                order.id, {"lease_owner": token}, lease_owner=None, lease_until=None
            )
            await session.commit()

    async def _refused(self, order: Order, admin_id: int, reason: str) -> ActionResult:
        async with self._session_factory() as session:
            return await self._record(session, order, admin_id, OrderAction.REFUND, reason)


def _revoked_note(taken: TakenBack) -> str:
    assignment = taken.plan.assignment_id if taken.plan is not None else None
    return f"the plan revoked to the eSIM Go balance (assignment {assignment or '?'})"


def _refund_note(fate: _PlanFate) -> str:
    """The refunded event's note: what became of a delivered eSIM."""
    if fate.revoked is not None:
        return f"refunded by an admin; {_revoked_note(fate.revoked)}"
    if fate.kept:
        return f"refunded by an admin; the eSIM stays active (its plan not revoked: {fate.kept})"
    return "refunded by an admin"


def _refunded_text(price: Price, fate: _PlanFate) -> str:
    """What the admin is told a done Refund did."""
    done = "Refunded in Stars." if price.is_stars else "Marked refunded (paid back by hand)."
    if fate.revoked is not None:
        return f"{done} {TAKEN_BACK} The buyer was told."
    if fate.kept:
        kept = f"The eSIM stays active (the plan not revoked: {fate.kept})."
        return f"{done} {kept} The buyer was told."
    return f"{done} The buyer was told."


_DONE_TEXT = {
    OrderAction.RETRY: "Sent back to fulfilment: the worker orders it from eSIM Go again.",
    OrderAction.REFUND: "Refunded in Stars. The buyer was told.",
    OrderAction.RESEND: "The eSIM is being sent to the buyer again.",
    OrderAction.RESOLVE: "Marked resolved.",
}
