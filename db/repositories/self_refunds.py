"""What a self-refund changes beside the order: the eSIM leaves the owner's list, the plan
row shows as revoked. Never commits."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from db.models import Esim, EsimBundle, Order, OrderStatus

# Orders that still give the eSIM a reason to be in the owner's list.
_LIVE_ORDER_STATUSES = (
    OrderStatus.PAID.value,
    OrderStatus.FULFILLING.value,
    OrderStatus.DELIVERED.value,
)


class SelfRefundRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def other_live_orders(self, iccid: str, owner_id: int, order_id: int) -> int:
        """How many of the owner's other orders on this eSIM are paid for and not refunded."""
        result = await self.session.execute(
            select(func.count(Order.id)).where(
                Order.iccid == iccid,
                Order.telegram_user_id == owner_id,
                Order.id != order_id,
                Order.status.in_(_LIVE_ORDER_STATUSES),
            )
        )
        return int(result.scalar_one())

    async def other_references(self, order: Order) -> list[str]:
        """The eSIM Go references of our other orders on the order's eSIM."""
        rows = await self.session.scalars(
            select(Order.esimgo_order_reference).where(
                Order.iccid == order.iccid,
                Order.id != order.id,
                Order.esimgo_order_reference.is_not(None),
            )
        )
        return [reference for reference in rows if reference]

    async def hide_esim(self, iccid: str, owner_id: int, at: datetime) -> bool:
        """Take the eSIM out of the owner's list and out of status polling."""
        result = await self.session.execute(
            update(Esim)
            .where(
                Esim.iccid == iccid, Esim.telegram_user_id == owner_id, Esim.deleted_at.is_(None)
            )
            .values(deleted_at=at, tracking=False)
            .execution_options(synchronize_session=False)
        )
        return int(getattr(result, "rowcount", 0) or 0) == 1

    async def mark_revoked(self, iccid: str, assignment_key: str) -> None:
        await self.session.execute(
            update(EsimBundle)
            .where(EsimBundle.iccid == iccid, EsimBundle.assignment_key == assignment_key)
            .values(state="revoked")
            .execution_options(synchronize_session=False)
        )
