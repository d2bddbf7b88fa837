"""Orders and eSIMs: lookups and guarded state transitions (`UPDATE … WHERE status = expected`),
each written down as an order event in the same transaction."""

from __future__ import annotations

import functools
from collections.abc import Collection, Mapping
from datetime import datetime
from typing import cast

from sqlalchemy import (
    Integer,
    String,
    Table,
    Update,
    and_,
    bindparam,
    case,
    func,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession

from db.base import UTCDateTime, utcnow
from db.models import Esim, Order, OrderEvent, OrderStatus

# Statuses the fulfilment worker acts on (see `OrderRepository.due_ids`).
WORK_STATUSES = (OrderStatus.PAID, OrderStatus.FULFILLING, OrderStatus.FAILED)

# Statements built once: building a select() costs a third of running it on SQLite.
_BY_PUBLIC_ID = (
    select(Order)
    .where(Order.public_id == bindparam("public_id"))
    .execution_options(populate_existing=True)
)
_CHARGE_RECORDED = select(Order.id).where(
    Order.telegram_payment_charge_id == bindparam("charge_id")
)
_ESIM_BY_ICCID = select(Esim).where(Esim.iccid == bindparam("iccid"))
_ICCIDS = bindparam("iccids", type_=String(), expanding=True)
_KNOWN_ICCIDS = (
    select(Esim.iccid)
    .where(Esim.iccid.in_(_ICCIDS))
    .union(select(Order.iccid).where(Order.iccid.in_(_ICCIDS)))
)

# The worker's statements, run on every wake-up: built once, each call costs about half what
# it did when built per call. "now", "limit", "token" and "until" are bound per call.
_NOW = bindparam("now", type_=UTCDateTime())
_LIMIT = bindparam("limit", type_=Integer())
# Orders with work left: paid/fulfilling → order at eSIM Go; failed → refund; delivered with a
# pending `next_attempt_at` and no `delivered_at` → (re)send the eSIM to the user.
_WORK_LEFT = or_(
    Order.status.in_([s.value for s in WORK_STATUSES]),
    and_(
        Order.status == OrderStatus.DELIVERED.value,
        Order.delivered_at.is_(None),
        Order.next_attempt_at.is_not(None),
    ),
)
# ... and due now: unleased (or the lease ran out) and not backing off.
_DUE = (
    _WORK_LEFT,
    or_(Order.lease_until.is_(None), Order.lease_until < _NOW),
    or_(Order.next_attempt_at.is_(None), Order.next_attempt_at <= _NOW),
)
_DUE_IDS = select(Order.id, Order.status).where(*_DUE).order_by(Order.id).limit(_LIMIT)
_IS_PAID = Order.status == OrderStatus.PAID.value
_LEASE_DUE = (
    update(Order)
    .where(
        Order.id.in_(select(Order.id).where(*_DUE).order_by(Order.id).limit(_LIMIT)),
        *_DUE,
    )
    .values(
        status=case((_IS_PAID, OrderStatus.FULFILLING.value), else_=Order.status),
        last_attempt_at=case((_IS_PAID, _NOW), else_=Order.last_attempt_at),
        lease_owner=bindparam("token", type_=String()),
        lease_until=bindparam("until", type_=UTCDateTime()),
        attempts=Order.attempts + 1,
    )
    .returning(Order)
    .execution_options(synchronize_session=False, populate_existing=True)
)
_INVOICE_SENT = (
    update(cast(Table, Order.__table__))
    .where(
        Order.public_id == bindparam("order_public_id"),
        Order.telegram_user_id == bindparam("owner"),
        Order.invoice_sent_at.is_(None),
    )
    .values(invoice_sent_at=bindparam("at", type_=UTCDateTime()))
)
_ADD_EVENT = insert(cast(Table, OrderEvent.__table__))
_STATUS = select(Order.status).where(Order.id == bindparam("order_id"))
_NEXT_DUE_AT = select(func.min(Order.next_attempt_at), func.min(Order.lease_until)).where(
    _WORK_LEFT
)


@functools.cache
def _guarded_update(
    by_status: bool, guard: tuple[tuple[str, bool], ...], keys: tuple[str, ...]
) -> Update:
    """The guarded UPDATE for one shape of call, built once. On SQLite one update took 310 µs
    through the ORM's bulk-update path, 230 µs built per call on the table, 90 µs prebuilt."""
    table = cast(Table, Order.__table__)
    where = [table.c.id == bindparam("order_id")]
    if by_status:
        where.append(table.c.status.in_(bindparam("statuses", expanding=True)))
    for name, is_null in guard:
        column = table.c[name]
        where.append(column.is_(None) if is_null else column == bindparam(f"is_{name}"))
    return (
        update(table)
        .where(*where)
        .values({name: bindparam(f"set_{name}", type_=table.c[name].type) for name in keys})
    )


class OrderRepository:
    """Never commits: the calling service owns the transaction."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add(self, order: Order) -> Order:
        self.session.add(order)
        await self.session.flush()
        return order

    async def get(self, order_id: int) -> Order | None:
        return await self.session.get(Order, order_id, populate_existing=True)

    async def by_public_id(self, public_id: str) -> Order | None:
        result = await self.session.execute(_BY_PUBLIC_ID, {"public_id": public_id})
        return result.scalar_one_or_none()

    async def charge_recorded(self, charge_id: str) -> bool:
        """Whether an order already holds this Telegram payment charge id."""
        result = await self.session.execute(_CHARGE_RECORDED, {"charge_id": charge_id})
        return result.first() is not None

    async def mark_invoice_sent(self, public_id: str, owner_id: int, at: datetime) -> bool:
        """Note when the owner's order first had its invoice sent; True if this call did."""
        connection = await self.session.connection()
        result = await connection.execute(
            _INVOICE_SENT, {"order_public_id": public_id, "owner": owner_id, "at": at}
        )
        return result.rowcount == 1

    async def update_where(
        self, order_id: int, guard: Mapping[str, object], **values: object
    ) -> bool:
        """Set `values` (plain values) on the order only if each column in `guard` holds its
        value (None: IS NULL); True if this call won."""
        return await self._guarded(order_id, None, guard, values)

    async def transition(
        self,
        order_id: int,
        expected: OrderStatus | Collection[OrderStatus],
        new: OrderStatus,
        guard: Mapping[str, object] | None = None,
        *,
        actor: str,
        note: str | None = None,
        **values: object,
    ) -> bool:
        """Move the order from `expected` to `new` and record the step as an event by `actor`;
        False (and nothing written) when another actor got there first."""
        if isinstance(expected, OrderStatus):
            current = expected.value
        else:
            # The event names the status the order really left: read it, then guard on it.
            found = (await self.session.execute(_STATUS, {"order_id": order_id})).scalar()
            if found is None or found not in {s.value for s in expected}:
                return False
            current = found
        if not await self._guarded(
            order_id, [current], guard or {}, {"status": new.value, **values}
        ):
            return False
        await self.add_events([(order_id, current, new.value)], actor, note)
        return True

    async def add_events(
        self, steps: Collection[tuple[int, str | None, str]], actor: str, note: str | None = None
    ) -> None:
        """Record (order id, from status, to status) steps taken now by `actor`."""
        at = utcnow()
        rows = [
            {
                "order_id": order_id,
                "at": at,
                "from_status": old,
                "to_status": new,
                "actor": actor,
                "note": note,
            }
            for order_id, old, new in steps
        ]
        if rows:
            connection = await self.session.connection()
            await connection.execute(_ADD_EVENT, rows)

    async def count_events(self, order_id: int, note_prefix: str) -> int:
        """How many of the order's events have a note starting with `note_prefix`."""
        result = await self.session.execute(
            select(func.count())
            .select_from(OrderEvent)
            .where(OrderEvent.order_id == order_id, OrderEvent.note.startswith(note_prefix))
        )
        return int(result.scalar_one())

    async def events(self, order_id: int) -> list[OrderEvent]:
        """The order's events, oldest first."""
        result = await self.session.execute(
            select(OrderEvent).where(OrderEvent.order_id == order_id).order_by(OrderEvent.id)
        )
        return list(result.scalars().all())

    async def _guarded(
        self,
        order_id: int,
        statuses: list[str] | None,
        guard: Mapping[str, object],
        values: Mapping[str, object],
    ) -> bool:
        statement = _guarded_update(
            statuses is not None,
            tuple((name, guard[name] is None) for name in sorted(guard)),
            tuple(sorted(values)),
        )
        params: dict[str, object] = {"order_id": order_id, "statuses": statuses}
        params.update({f"is_{name}": value for name, value in guard.items()})
        params.update({f"set_{name}": value for name, value in values.items()})
        connection = await self.session.connection()
        result = await connection.execute(statement, params)
        return result.rowcount == 1

    async def due_ids(self, now: datetime, limit: int) -> list[tuple[int, str]]:
        """(id, status) of the orders due now, oldest first."""
        result = await self.session.execute(_DUE_IDS, {"now": now, "limit": limit})
        return [(row[0], row[1]) for row in result.all()]

    async def lease_due(
        self, token: str, now: datetime, until: datetime, limit: int, *, actor: str
    ) -> list[Order]:
        """Lease up to `limit` due orders to `token` in one guarded UPDATE; the leased orders,
        oldest first.

        A paid order becomes fulfilling (an event by `actor`) and its attempt time is set. The
        due conditions are repeated on the outer UPDATE so that, on PostgreSQL, a row another
        worker leased first is re-checked after its lock is released and skipped.
        """
        result = await self.session.execute(
            _LEASE_DUE, {"token": token, "now": now, "until": until, "limit": limit}
        )
        leased = sorted(result.scalars().all(), key=lambda order: order.id)
        # Only the lease of a paid order makes it fulfilling, and that lease is its first.
        started = [
            (order.id, OrderStatus.PAID.value, OrderStatus.FULFILLING.value)
            for order in leased
            if order.status == OrderStatus.FULFILLING.value and order.attempts == 1
        ]
        await self.add_events(started, actor)
        return leased

    async def next_due_at(self) -> datetime | None:
        """The earliest future `next_attempt_at` or `lease_until` among orders with work left."""
        row = (await self.session.execute(_NEXT_DUE_AT)).one()
        times = [value for value in row if value is not None]
        return min(times) if times else None

    async def expired_unpaid(self, now: datetime, limit: int = 500) -> list[tuple[int, str]]:
        result = await self.session.execute(
            select(Order.id, Order.public_id)
            .where(
                Order.status == OrderStatus.AWAITING_PAYMENT.value,
                Order.expires_at.is_not(None),
                Order.expires_at < now,
            )
            .order_by(Order.id)
            .limit(limit)
        )
        return [(row[0], row[1]) for row in result.all()]

    async def linked_references(self, references: Collection[str]) -> set[str]:
        """Which of these eSIM Go order references already belong to a local order."""
        if not references:
            return set()
        result = await self.session.execute(
            select(Order.esimgo_order_reference).where(
                Order.esimgo_order_reference.in_(list(references))
            )
        )
        return {ref for ref in result.scalars().all() if ref}

    async def known_iccids(self, iccids: Collection[str]) -> set[str]:
        """Which of these ICCIDs appear anywhere in our database (an eSIM or any order)."""
        if not iccids:
            return set()
        result = await self.session.execute(_KNOWN_ICCIDS, {"iccids": list(iccids)})
        return {iccid for iccid in result.scalars().all() if iccid}

    async def holder_of_iccid(self, iccid: str, other_than: int) -> str | None:
        """The public id of the first other order that holds this ICCID, if any."""
        result = await self.session.execute(
            select(Order.public_id)
            .where(Order.iccid == iccid, Order.id != other_than)
            .order_by(Order.id)
            .limit(1)
        )
        return result.scalar()

    async def deliver_again(self, user_id: int, now: datetime) -> int:
        """Make the user's eSIMs that never reached them due for delivery now; how many."""
        result = await self.session.execute(
            update(Order)
            .where(
                Order.telegram_user_id == user_id,
                Order.status == OrderStatus.DELIVERED.value,
                Order.delivered_at.is_(None),
                Order.next_attempt_at.is_(None),
            )
            .values(next_attempt_at=now)
            .execution_options(synchronize_session=False)
        )
        return int(getattr(result, "rowcount", 0) or 0)

    async def esim_by_iccid(self, iccid: str) -> Esim | None:
        result = await self.session.execute(_ESIM_BY_ICCID, {"iccid": iccid})
        return result.scalar_one_or_none()

    async def add_esim(self, esim: Esim) -> Esim:
        self.session.add(esim)
        await self.session.flush()
        return esim

    async def owned_esim(self, esim_id: int, owner_id: int) -> Esim | None:
        """The owner's eSIM by id, deleted ones included (the caller tells why it is unusable)."""
        result = await self.session.execute(
            select(Esim)
            .where(Esim.id == esim_id, Esim.telegram_user_id == owner_id)
            .execution_options(populate_existing=True)
        )
        return result.scalar_one_or_none()

    async def orders_of_iccid(self, iccid: str, owner_id: int) -> list[Order]:
        """The owner's orders linked to an eSIM (its first order and top-ups), newest first."""
        result = await self.session.execute(
            select(Order)
            .where(Order.iccid == iccid, Order.telegram_user_id == owner_id)
            .order_by(Order.created_at.desc(), Order.id.desc())
        )
        return list(result.scalars().all())

    async def mark_topped_up(self, iccid: str, owner_id: int) -> bool:
        """A bundle went onto the eSIM: track it again and forget a scheduled deletion."""
        result = await self.session.execute(
            update(Esim)
            .where(Esim.iccid == iccid, Esim.telegram_user_id == owner_id)
            .values(tracking=True, deletion_scheduled_at=None)
            .execution_options(synchronize_session=False)
        )
        return int(getattr(result, "rowcount", 0) or 0) == 1
