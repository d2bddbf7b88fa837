"""A user's own eSIMs and orders; every query is scoped to the owner (never commits)."""

from __future__ import annotations

from collections.abc import Collection, Sequence

from sqlalchemy import (
    BigInteger,
    Integer,
    String,
    bindparam,
    case,
    func,
    literal,
    or_,
    select,
    union_all,
)
from sqlalchemy.ext.asyncio import AsyncSession

from db.models import Esim, EsimBundle, Order

# Statements built once: on SQLite, building a select() is a good part of what running it costs.
_OWNER = bindparam("owner", type_=BigInteger())
_LIVE_ESIM_OF_OWNER = (Esim.telegram_user_id == _OWNER, Esim.deleted_at.is_(None))
_ESIMS_OF = (
    select(Esim).where(*_LIVE_ESIM_OF_OWNER).order_by(Esim.created_at.desc(), Esim.id.desc())
)
_ORDERS_OF = (
    select(Order)
    .where(Order.telegram_user_id == _OWNER)
    .order_by(Order.created_at.desc(), Order.id.desc())
)
# The list of /myesims: each live eSIM, dated by its latest purchase (a top-up) or its own
# creation, and each order on no live eSIM of the owner's.
_LATEST_PURCHASE = (
    select(func.max(Order.created_at))
    .where(Order.iccid == Esim.iccid, Order.telegram_user_id == _OWNER)
    .correlate(Esim)
    .scalar_subquery()
)
_ENTRIES = union_all(
    select(
        literal(1).label("is_esim"),
        Esim.id.label("id"),
        case((Esim.created_at < _LATEST_PURCHASE, _LATEST_PURCHASE), else_=Esim.created_at).label(
            "at"
        ),
    ).where(*_LIVE_ESIM_OF_OWNER),
    select(literal(0), Order.id, Order.created_at).where(
        Order.telegram_user_id == _OWNER,
        or_(
            Order.iccid.is_(None),
            Order.iccid.not_in(select(Esim.iccid).where(*_LIVE_ESIM_OF_OWNER)),
        ),
    ),
).subquery()
_ENTRY_COUNT = select(func.count()).select_from(_ENTRIES)
_ENTRY_PAGE = (
    select(_ENTRIES.c.is_esim, _ENTRIES.c.id)
    .order_by(_ENTRIES.c.at.desc(), _ENTRIES.c.is_esim.desc(), _ENTRIES.c.id.desc())
    .limit(bindparam("limit", type_=Integer()))
    .offset(bindparam("offset", type_=Integer()))
)
_IDS = bindparam("ids", type_=Integer(), expanding=True)
_ICCIDS = bindparam("iccids", type_=String(), expanding=True)
_ESIMS_BY_ID = select(Esim).where(Esim.id.in_(_IDS), *_LIVE_ESIM_OF_OWNER)
_ORDERS_BY_ID = select(Order).where(Order.id.in_(_IDS), Order.telegram_user_id == _OWNER)
_ORDERS_OF_ICCIDS = _ORDERS_OF.where(Order.iccid.in_(_ICCIDS))
_BUNDLES_OF_ICCIDS = (
    select(EsimBundle)
    .where(
        EsimBundle.iccid.in_(_ICCIDS),
        EsimBundle.iccid.in_(select(Esim.iccid).where(*_LIVE_ESIM_OF_OWNER)),
    )
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

    async def entry_count(self, owner_id: int) -> int:
        """How many entries the owner's /myesims list has (eSIMs, and orders on none)."""
        return int(await self.session.scalar(_ENTRY_COUNT, {"owner": owner_id}) or 0)

    async def entry_page(self, owner_id: int, offset: int, limit: int) -> list[tuple[bool, int]]:
        """One page of the list, newest first: (is an eSIM, its id or the order's id)."""
        result = await self.session.execute(
            _ENTRY_PAGE, {"owner": owner_id, "offset": offset, "limit": limit}
        )
        return [(bool(is_esim), entry_id) for is_esim, entry_id in result.all()]

    async def esims_by_id(self, ids: Collection[int], owner_id: int) -> Sequence[Esim]:
        result = await self.session.execute(_ESIMS_BY_ID, {"ids": list(ids), "owner": owner_id})
        return result.scalars().all()

    async def orders_by_id(self, ids: Collection[int], owner_id: int) -> Sequence[Order]:
        result = await self.session.execute(_ORDERS_BY_ID, {"ids": list(ids), "owner": owner_id})
        return result.scalars().all()

    async def orders_of_iccids(self, iccids: Collection[str], owner_id: int) -> Sequence[Order]:
        """The owner's purchases of these eSIMs (first orders and top-ups), newest first."""
        result = await self.session.execute(
            _ORDERS_OF_ICCIDS, {"iccids": list(iccids), "owner": owner_id}
        )
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

    async def bundles_by_iccid(
        self, iccids: Collection[str], owner_id: int
    ) -> dict[str, list[EsimBundle]]:
        """Bundle rows of these eSIMs of the owner's in one query, keyed by ICCID."""
        result = await self.session.execute(
            _BUNDLES_OF_ICCIDS, {"iccids": list(iccids), "owner": owner_id}
        )
        grouped: dict[str, list[EsimBundle]] = {}
        for row in result.scalars():
            grouped.setdefault(row.iccid, []).append(row)
        return grouped
