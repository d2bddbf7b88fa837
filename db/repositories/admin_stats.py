"""Sales figures for the operators, as SQL aggregates over `orders` (never rows into Python)."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any, NamedTuple

from sqlalchemy import Date, and_, case, exists, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.functions import FunctionElement

from db.models import AdminAction, Order, OrderStatus

RESOLVE = "resolve"


class utc_day(FunctionElement[date]):  # noqa: N801 - an SQL function, named like one
    """The UTC calendar day of a timestamp column, on SQLite and PostgreSQL alike."""

    type = Date()
    inherit_cache = True


@compiles(utc_day)
def _utc_day_sqlite(element: utc_day, compiler: SQLCompiler, **kw: Any) -> str:
    # SQLite holds our timestamps as UTC text ("2025-03-01 12:00:00.000000").
    return f"date({compiler.process(element.clauses, **kw)})"


@compiles(utc_day, "postgresql")
def _utc_day_postgresql(element: utc_day, compiler: SQLCompiler, **kw: Any) -> str:
    # The session's TimeZone would decide the day otherwise.
    return f"CAST(({compiler.process(element.clauses, **kw)}) AT TIME ZONE 'UTC' AS DATE)"


class SalesRow(NamedTuple):
    """Orders paid in a period, per kind ("new"/"topup") and payment currency."""

    kind: str
    currency: str
    orders: int
    revenue: int  # Stars, or minor units of `currency`
    cost: Decimal  # what eSIM Go charged (orders that reached eSIM Go), USD


class RefundRow(NamedTuple):
    currency: str
    refunds: int
    amount: int


class DayRow(NamedTuple):
    day: date
    currency: str
    orders: int
    revenue: int


class AttentionRow(NamedTuple):
    order: Order
    # "refund_due", "failed", "fulfilling_late", "paid_waiting", "not_received"
    reason: str


def _between(column: Any, since: datetime, until: datetime) -> Any:
    return and_(column >= since, column < until)


# What eSIM Go charged us: only orders it took (they carry its order reference).
_COST = func.coalesce(
    func.sum(case((Order.esimgo_order_reference.is_not(None), Order.cost), else_=0)), 0
)


class AdminStatsRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def sales(self, since: datetime, until: datetime) -> list[SalesRow]:
        rows = await self.session.execute(
            select(
                Order.kind,
                Order.price_currency,
                func.count(),
                func.coalesce(func.sum(Order.price), 0),
                _COST,
            )
            .where(_between(Order.paid_at, since, until))
            .group_by(Order.kind, Order.price_currency)
            .order_by(Order.kind, Order.price_currency)
        )
        return [SalesRow(r[0], r[1], r[2], int(r[3]), Decimal(r[4])) for r in rows.all()]

    async def refunds(self, since: datetime, until: datetime) -> list[RefundRow]:
        rows = await self.session.execute(
            select(Order.price_currency, func.count(), func.coalesce(func.sum(Order.price), 0))
            .where(
                Order.status == OrderStatus.REFUNDED.value,
                _between(Order.refunded_at, since, until),
            )
            .group_by(Order.price_currency)
            .order_by(Order.price_currency)
        )
        return [RefundRow(r[0], r[1], int(r[2])) for r in rows.all()]

    async def invoices(self, since: datetime, until: datetime) -> tuple[int, int]:
        """(invoices sent in the period, how many of those were paid)."""
        row = (
            await self.session.execute(
                select(func.count(), func.count(Order.paid_at)).where(
                    _between(Order.invoice_sent_at, since, until)
                )
            )
        ).one()
        return int(row[0]), int(row[1])

    async def daily_sales(self, since: datetime, until: datetime) -> list[DayRow]:
        day = utc_day(Order.paid_at)
        rows = await self.session.execute(
            select(
                day, Order.price_currency, func.count(), func.coalesce(func.sum(Order.price), 0)
            )
            .where(_between(Order.paid_at, since, until))
            .group_by(day, Order.price_currency)
            .order_by(day)
        )
        return [DayRow(_as_date(r[0]), r[1], r[2], int(r[3])) for r in rows.all()]

    async def esimgo_spend(self, since: datetime, until: datetime) -> Decimal:
        """What eSIM Go charged for the orders paid in the period."""
        value = await self.session.scalar(
            select(_COST).where(_between(Order.paid_at, since, until))
        )
        return Decimal(value or 0)

    async def attention(
        self, *, late_fulfilling: datetime, late_paid: datetime, limit: int
    ) -> list[AttentionRow]:
        """Orders an operator should look at, oldest first (see AttentionRow.reason)."""
        started = func.coalesce(Order.retried_at, Order.paid_at, Order.created_at)
        not_received = and_(
            Order.status == OrderStatus.DELIVERED.value,
            Order.delivered_at.is_(None),
            Order.next_attempt_at.is_(None),
            ~exists().where(AdminAction.order_id == Order.id, AdminAction.action == RESOLVE),
        )
        reason = case(
            (Order.status == OrderStatus.REFUND_DUE.value, "refund_due"),
            (Order.status == OrderStatus.FAILED.value, "failed"),
            (Order.status == OrderStatus.FULFILLING.value, "fulfilling_late"),
            (Order.status == OrderStatus.PAID.value, "paid_waiting"),
            else_="not_received",
        )
        rows = await self.session.execute(
            select(Order, reason)
            .where(
                or_(
                    Order.status.in_([OrderStatus.REFUND_DUE.value, OrderStatus.FAILED.value]),
                    and_(
                        Order.status == OrderStatus.FULFILLING.value,
                        started < late_fulfilling,
                    ),
                    and_(Order.status == OrderStatus.PAID.value, started < late_paid),
                    not_received,
                )
            )
            .order_by(Order.created_at, Order.id)
            .limit(limit)
        )
        return [AttentionRow(r[0], r[1]) for r in rows.all()]


def _as_date(value: date | str) -> date:
    return value if isinstance(value, date) else date.fromisoformat(value)
