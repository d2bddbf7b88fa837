"""A user's orders awaiting payment: the open one for a plan, and how many are open (never
commits)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, Integer, Select, and_, bindparam, case, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from db.base import UTCDateTime
from db.models import Order, OrderStatus

# Open: awaiting payment and not past its expiry (the sweep cancels those a little later).
_OPEN = (
    Order.telegram_user_id == bindparam("owner"),
    Order.status == OrderStatus.AWAITING_PAYMENT.value,
    or_(Order.expires_at.is_(None), Order.expires_at > bindparam("now", type_=UTCDateTime())),
)
_PLAN = Order.bundle_name == bindparam("bundle")


def _plan_first(plan: ColumnElement[bool]) -> Select[Order]:
    """The owner's open orders, those of the plan first (newest first), up to "limit": the
    reuse and the cap in one query instead of a lookup and a count (bench/purchase.py)."""
    return (
        select(Order)
        .where(*_OPEN)
        .order_by(case((plan, 0), else_=1), Order.id.desc())
        .limit(bindparam("limit", type_=Integer()))
    )


_NEW_ESIM_FIRST = _plan_first(and_(_PLAN, Order.iccid.is_(None)))
_TOPUP_FIRST = _plan_first(and_(_PLAN, Order.iccid == bindparam("iccid")))


@dataclass(frozen=True, slots=True)
class OpenOrders:
    """The owner's newest open order of the plan, if any, and how many open orders they
    hold, counted up to the limit asked for."""

    for_plan: Order | None
    count: int


class UnpaidOrderRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def open_orders(
        self, owner_id: int, bundle_name: str, iccid: str | None, now: datetime, limit: int
    ) -> OpenOrders:
        """The open orders of the owner for this bundle: for a new eSIM (`iccid` None) or a
        top-up of that eSIM; `limit` (at least 1) bounds the count."""
        params = {"owner": owner_id, "bundle": bundle_name, "now": now, "limit": max(limit, 1)}
        if iccid is None:
            result = await self.session.execute(_NEW_ESIM_FIRST, params)
        else:
            result = await self.session.execute(_TOPUP_FIRST, {**params, "iccid": iccid})
        found = result.scalars().all()
        first = found[0] if found else None
        if first is not None and (first.bundle_name, first.iccid) == (bundle_name, iccid):
            return OpenOrders(first, len(found))
        return OpenOrders(None, len(found))
