"""A user's orders awaiting payment: the open one for a plan, and how many are open (never
commits)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import bindparam, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from db.base import UTCDateTime
from db.models import Order, OrderStatus

# Open: awaiting payment and not past its expiry (the sweep cancels those a little later).
_OPEN = (
    Order.telegram_user_id == bindparam("owner"),
    Order.status == OrderStatus.AWAITING_PAYMENT.value,
    or_(Order.expires_at.is_(None), Order.expires_at > bindparam("now", type_=UTCDateTime())),
)
_OPEN_COUNT = select(func.count()).select_from(Order).where(*_OPEN)
_OPEN_FOR_PLAN = (
    select(Order)
    .where(*_OPEN, Order.bundle_name == bindparam("bundle"))
    .order_by(Order.id.desc())
    .limit(1)
)


class UnpaidOrderRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def open_order(
        self, owner_id: int, bundle_name: str, iccid: str | None, now: datetime
    ) -> Order | None:
        """The owner's newest open order of this bundle: for a new eSIM (`iccid` None) or a
        top-up of that eSIM."""
        statement = _OPEN_FOR_PLAN.where(
            Order.iccid.is_(None) if iccid is None else Order.iccid == iccid
        )
        result = await self.session.execute(
            statement, {"owner": owner_id, "bundle": bundle_name, "now": now}
        )
        return result.scalar_one_or_none()

    async def count(self, owner_id: int, now: datetime) -> int:
        """How many open orders the owner holds."""
        result = await self.session.scalar(_OPEN_COUNT, {"owner": owner_id, "now": now})
        return int(result or 0)
