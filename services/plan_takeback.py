"""A delivered order's plan back to our eSIM Go balance, when it was never used.

Both a user's self-refund and an admin's Refund come here before any money goes back: eSIM
Go is asked live (a new eSIM never installed, the plan never started), exactly the order's own
copy of the plan is revoked (by its assignment id: a revoke by name takes the oldest unused
copy, which may be another order's), and a revoke left unanswered is settled by reading the
eSIM's plans again. Nothing here pays anyone back or moves the order: the callers do.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from sqlalchemy.ext.asyncio import AsyncSession

from db.models import Order
from db.repositories.self_refunds import SelfRefundRepository
from services.diagnosis import ever_installed
from services.esimgo.errors import EsimGoError, RateLimitedError, SupplierUnavailableError
from services.esimgo.models import BundleAssignment, EsimDetails, EsimHistoryEvent
from services.orders import TOPUP
from services.tracking import assignment_key

log = logging.getLogger(__name__)

UNKNOWN_COPY = (
    "this order's copy of the plan could only be guessed and the copy found (assignment {}) "
    "is already revoked, perhaps for another order: check before refunding"
)
UNANSWERED = "eSIM Go did not answer the revoke and the plan's state could not be read"


class TakeBack(enum.Enum):
    REVOKED = enum.auto()  # on our balance again: now, or by an earlier attempt for the order
    INSTALLED = enum.auto()  # a new eSIM installed on a phone: its plan stays
    STARTED = enum.auto()  # the plan has started
    MISSING = enum.auto()  # eSIM Go shows no copy of the plan on the eSIM
    GUESSED = enum.auto()  # the copy is not known to be the order's: not revoked
    REFUSED = enum.auto()  # eSIM Go refused the revoke (or named no assignment id)
    UNAVAILABLE = enum.auto()  # eSIM Go could not be asked (or is busy): nothing changed
    UNKNOWN = enum.auto()  # nobody can tell whether it went back for this order: see `why`


@dataclass(frozen=True, slots=True)
class TakenBack:
    """What became of the plan; `plan` is the copy looked at, `why` says more of UNKNOWN."""

    outcome: TakeBack
    plan: BundleAssignment | None = None
    why: str = ""

    @property
    def key(self) -> str:
        """The copy's key among our eSIM's plan rows (empty: none)."""
        plan = self.plan
        if plan is None:
            return ""
        return assignment_key(plan.reference, plan.assignment_id, plan.bundle_name)


class PlanSource(Protocol):
    """The eSIM Go calls taking a plan back makes (EsimGoClient fits)."""

    async def get_esim(self, iccid: str) -> EsimDetails: ...
    async def get_esim_bundles(self, iccid: str) -> list[BundleAssignment]: ...
    async def get_esim_history(self, iccid: str) -> list[EsimHistoryEvent]: ...
    async def revoke_assignment(
        self, iccid: str, bundle_name: str, assignment_id: str, *, to_balance: bool = True
    ) -> str: ...


def order_assignment(
    order: Order, items: Sequence[BundleAssignment], others: Collection[str] = ()
) -> BundleAssignment | None:
    """The order's plan on the eSIM: by eSIM Go order reference, else (a guess) the oldest
    unused copy of the bundle, else the latest copy; a guess never takes a copy carrying one
    of `others`, the references of our other orders on the eSIM."""
    same = [a for a in items if a.bundle_name == order.bundle_name]
    mine = [a for a in same if is_own(order, a)]
    if mine:
        return mine[0]
    free = [a for a in same if not any(r and a.reference.startswith(r) for r in others)]
    unused = [a for a in free if a.state == "queued"]
    candidates = unused or free[-1:]
    return candidates[0] if candidates else None


def is_own(order: Order, plan: BundleAssignment) -> bool:
    """The copy is known to be the order's: its assignment carries the order's reference."""
    reference = order.esimgo_order_reference
    return bool(reference) and plan.reference.startswith(reference or "")


class PlanTakeBack:
    def __init__(self, esimgo: PlanSource) -> None:
        self._esimgo = esimgo

    async def take_back(
        self, order: Order, *, revoke_guess: bool, others: Collection[str] = ()
    ) -> TakenBack:
        """The plan back to our balance if eSIM Go says it is unused. `revoke_guess`: a copy
        only guessed to be the order's (no order reference on it) may be revoked too, never
        one carrying `others` (our other orders' eSIM Go references on the eSIM)."""
        plan = await self._check_live(order, others)
        if isinstance(plan, TakenBack):
            return plan
        own = is_own(order, plan)
        if plan.state == "revoked":
            if own:  # an earlier attempt revoked it and stopped before paying back
                return TakenBack(TakeBack.REVOKED, plan)
            if not revoke_guess:
                return TakenBack(TakeBack.GUESSED, plan)
            why = UNKNOWN_COPY.format(plan.assignment_id or "?")
            return TakenBack(TakeBack.UNKNOWN, plan, why)
        if not own and not revoke_guess:
            return TakenBack(TakeBack.GUESSED, plan)
        outcome = await self._revoke(order, plan)
        return TakenBack(outcome, plan, UNANSWERED if outcome is TakeBack.UNKNOWN else "")

    @staticmethod
    async def record_revoked(session: AsyncSession, order: Order, key: str, now: datetime) -> None:
        """Our rows after the plan went back: its copy revoked, and the eSIM off its owner's
        list once no other order of theirs lives on it. In the caller's transaction."""
        repo = SelfRefundRepository(session)
        iccid = order.iccid or ""
        if key:
            await repo.mark_revoked(iccid, key)
        if not await repo.other_live_orders(iccid, order.telegram_user_id, order.id):
            await repo.hide_esim(iccid, order.telegram_user_id, now)

    async def _check_live(
        self, order: Order, others: Collection[str]
    ) -> TakenBack | BundleAssignment:
        """eSIM Go's word right before the revoke: the order's copy of the plan, unused (or
        revoked already); else why it cannot be taken back."""
        iccid = order.iccid or ""
        try:
            plans = await self._esimgo.get_esim_bundles(iccid)
            if order.kind != TOPUP:
                details = await self._esimgo.get_esim(iccid)
                events = await self._esimgo.get_esim_history(iccid)
                if ever_installed(details.profile_status, details.first_installed_at, events):
                    return TakenBack(TakeBack.INSTALLED)
        except EsimGoError as exc:
            log.info("order %s: live check before a revoke failed: %s", order.public_id, exc)
            return TakenBack(TakeBack.UNAVAILABLE)
        plan = order_assignment(order, plans, others)
        if plan is None:
            return TakenBack(TakeBack.MISSING)
        if plan.state == "processing":
            return TakenBack(TakeBack.UNAVAILABLE, plan)
        if plan.state not in ("queued", "revoked"):
            return TakenBack(TakeBack.STARTED, plan)
        return plan

    async def _revoke(self, order: Order, plan: BundleAssignment) -> TakeBack:
        """Revoke exactly this copy; an unanswered revoke is settled by reading the plans."""
        iccid, assignment_id = order.iccid or "", plan.assignment_id
        if not assignment_id:
            log.warning("order %s: eSIM Go names no assignment id to revoke", order.public_id)
            return TakeBack.REFUSED
        try:
            await self._esimgo.revoke_assignment(
                iccid, plan.bundle_name, assignment_id, to_balance=True
            )
        except RateLimitedError:
            return TakeBack.UNAVAILABLE
        except SupplierUnavailableError as exc:
            log.warning("order %s: revoke outcome unknown: %s", order.public_id, exc)
            try:
                plans = await self._esimgo.get_esim_bundles(iccid)
            except EsimGoError:
                return TakeBack.UNKNOWN
            state = next((a.state for a in plans if a.assignment_id == assignment_id), "")
            return {"revoked": TakeBack.REVOKED, "queued": TakeBack.UNAVAILABLE}.get(
                state, TakeBack.UNKNOWN
            )
        except EsimGoError as exc:
            log.warning("order %s: eSIM Go refused the revoke: %s", order.public_id, exc)
            return TakeBack.REFUSED
        log.info("order %s: plan %s revoked to balance", order.public_id, order.bundle_name)
        return TakeBack.REVOKED
