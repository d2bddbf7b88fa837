"""Orders as an operator looks for them, their state changes and the admins' actions on them."""

from __future__ import annotations

from datetime import datetime
from typing import NamedTuple

from sqlalchemy import ColumnElement, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from db.models import AdminAction, Esim, Order, OrderEvent, User


class EventRow(NamedTuple):
    at: datetime
    from_status: str | None
    to_status: str
    actor: str | None
    note: str | None


class AdminOrderRepository:
    """Never commits: the calling service owns the transaction."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def by_public_id(self, public_id: str) -> Order | None:
        """Public ids are upper case; an admin may type them in any case."""
        return await self.session.scalar(
            select(Order)
            .where(Order.public_id == public_id.upper())
            .execution_options(populate_existing=True)
        )

    async def by_iccid(self, iccid: str, limit: int) -> list[Order]:
        return await self._newest(Order.iccid == iccid, limit)

    async def by_user(self, user_ids: list[int], limit: int) -> list[Order]:
        return await self._newest(Order.telegram_user_id.in_(user_ids), limit)

    async def user_ids_named(self, username: str) -> list[int]:
        """Users who are (or were, on an order) @username; case-insensitive."""
        name = username.lower()
        known = select(User.telegram_id).where(func.lower(User.username) == name)
        on_orders = select(Order.telegram_user_id.label("telegram_id")).where(
            func.lower(Order.telegram_username) == name
        )
        rows = await self.session.execute(known.union(on_orders))
        return sorted(int(row[0]) for row in rows.all())

    async def _newest(self, where: ColumnElement[bool], limit: int) -> list[Order]:
        result = await self.session.execute(
            select(Order)
            .where(where)
            .order_by(Order.created_at.desc(), Order.id.desc())
            .limit(limit)
        )
        return list(result.scalars().all())

    async def events(self, order_id: int) -> list[EventRow]:
        e = OrderEvent
        rows = await self.session.execute(
            select(e.at, e.from_status, e.to_status, e.actor, e.note)
            .where(e.order_id == order_id)
            .order_by(e.at, e.id)
        )
        return [EventRow(*row) for row in rows.all()]

    async def actions(self, order_id: int) -> list[AdminAction]:
        result = await self.session.execute(
            select(AdminAction)
            .where(AdminAction.order_id == order_id)
            .order_by(AdminAction.at, AdminAction.id)
        )
        return list(result.scalars().all())

    async def add_action(
        self, order_id: int, admin_id: int, action: str, outcome: str, note: str | None
    ) -> None:
        self.session.add(
            AdminAction(
                order_id=order_id, admin_id=admin_id, action=action, outcome=outcome, note=note
            )
        )
        await self.session.flush()

    async def esim(self, iccid: str) -> Esim | None:
        return await self.session.scalar(select(Esim).where(Esim.iccid == iccid))
