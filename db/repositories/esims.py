"""A user's own eSIMs and orders; every query is scoped to the owner (never commits)."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import bindparam, select
from sqlalchemy.ext.asyncio import AsyncSession

from db.models import Esim, EsimBundle, Order

# Statements built once: on SQLite, building a select() is a good part of what running it costs.
_LIVE_ESIM_OF_OWNER = (Esim.telegram_user_id == bindparam("owner"), Esim.deleted_at.is_(None))
_ESIMS_OF = (
    select(Esim).where(*_LIVE_ESIM_OF_OWNER).order_by(Esim.created_at.desc(), Esim.id.desc())
)
_ORDERS_OF = (
    select(Order)
    .where(Order.telegram_user_id == bindparam("owner"))
    .order_by(Order.created_at.desc(), Order.id.desc())
)
_BUNDLES_OF = (
    select(EsimBundle)
    .where(EsimBundle.iccid.in_(select(Esim.iccid).where(*_LIVE_ESIM_OF_OWNER)))
    .order_by(EsimBundle.assigned_at.desc(), EsimBundle.id.desc())
)


class MyEsimsRepository:
    """Reads for /myesims and /paysupport; a foreign or unknown id simply finds nothing."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def esims(self, owner_id: int) -> Sequence[Esim]:
        """The owner's eSIMs, newest first."""
        result = await self.session.execute(_ESIMS_OF, {"owner": owner_id})
        return result.scalars().all()

    async def orders(self, owner_id: int, limit: int | None = None) -> Sequence[Order]:
        """The owner's orders, newest first."""
        query = _ORDERS_OF if limit is None else _ORDERS_OF.limit(limit)
        result = await self.session.execute(query, {"owner": owner_id})
        return result.scalars().all()

    async def esim(self, esim_id: int, owner_id: int) -> Esim | None:
        result = await self.session.execute(
            select(Esim).where(
                Esim.id == esim_id,
                Esim.telegram_user_id == owner_id,
                Esim.deleted_at.is_(None),
            )
        )
        return result.scalar_one_or_none()

    async def order(self, order_id: int, owner_id: int) -> Order | None:
        result = await self.session.execute(
            select(Order).where(Order.id == order_id, Order.telegram_user_id == owner_id)
        )
        return result.scalar_one_or_none()

    async def esim_orders(self, iccid: str, owner_id: int) -> Sequence[Order]:
        """The purchase history of one eSIM (first order and top-ups), newest first."""
        result = await self.session.execute(
            select(Order)
            .where(Order.iccid == iccid, Order.telegram_user_id == owner_id)
            .order_by(Order.created_at.desc(), Order.id.desc())
        )
        return result.scalars().all()

    async def esim_bundles(self, iccid: str, owner_id: int) -> Sequence[EsimBundle]:
        """Bundle rows of an eSIM the owner holds (empty for anyone else's ICCID)."""
        owned = select(Esim.iccid).where(Esim.iccid == iccid, Esim.telegram_user_id == owner_id)
        result = await self.session.execute(
            select(EsimBundle)
            .where(EsimBundle.iccid.in_(owned))
            .order_by(EsimBundle.assigned_at.desc(), EsimBundle.id.desc())
        )
        return result.scalars().all()

    async def bundles_by_iccid(self, owner_id: int) -> dict[str, list[EsimBundle]]:
        """Bundle rows of all the owner's eSIMs in one query, keyed by ICCID."""
        result = await self.session.execute(_BUNDLES_OF, {"owner": owner_id})
        grouped: dict[str, list[EsimBundle]] = {}
        for row in result.scalars():
            grouped.setdefault(row.iccid, []).append(row)
        return grouped
