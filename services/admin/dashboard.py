"""/admin's figures: sales for today / 7 / 30 days, sales per day (and its chart), and the
orders that need an operator."""

from __future__ import annotations

import asyncio
import enum
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from db.base import utcnow
from db.repositories.admin_stats import AdminStatsRepository
from services.admin.chart import render_sales_chart
from services.admin.figures import DaySales, PeriodFigures, Valuer, day_series, period_figures
from services.pricing import Price

# A paid order the worker has not taken after this is stuck (it is taken within seconds).
PAID_GRACE = timedelta(minutes=5)
ATTENTION_LIMIT = 30
CHART_DAYS = 30


class AttentionReason(enum.StrEnum):
    REFUND_DUE = "refund_due"  # a refund an operator must make by hand
    FAILED = "failed"  # not delivered; its refund has not gone through yet
    FULFILLING_LATE = "fulfilling_late"  # still at eSIM Go past the fulfilment deadline
    PAID_WAITING = "paid_waiting"  # paid, and no worker has taken it
    NOT_RECEIVED = "not_received"  # bought, but Telegram refused to deliver it


@dataclass(frozen=True, slots=True)
class AttentionItem:
    public_id: str
    reason: AttentionReason
    status: str
    user_id: int
    bundle_name: str
    price: Price
    paid_at: datetime | None
    failure_reason: str | None


@dataclass(frozen=True, slots=True)
class DashboardFigures:
    today: PeriodFigures
    week: PeriodFigures
    month: PeriodFigures


def start_of_day(moment: datetime) -> datetime:
    return datetime.combine(moment.astimezone(UTC).date(), time(), tzinfo=UTC)


class Dashboard:
    """Reads only the database; every figure is an SQL aggregate."""

    def __init__(
        self,
        session_factory: async_sessionmaker[AsyncSession],
        *,
        usd_per_star: Decimal,
        fulfilment_deadline: timedelta,
        paid_grace: timedelta = PAID_GRACE,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self._session_factory = session_factory
        self._valuer = Valuer(usd_per_star)
        self._deadline = fulfilment_deadline
        self._paid_grace = paid_grace
        self._clock = clock

    async def periods(self) -> DashboardFigures:
        """Since midnight (UTC), and the last 7 and 30 days up to now."""
        now = self._clock()
        return DashboardFigures(
            today=await self.figures(start_of_day(now), now),
            week=await self.figures(now - timedelta(days=7), now),
            month=await self.figures(now - timedelta(days=30), now),
        )

    async def figures(self, since: datetime, until: datetime) -> PeriodFigures:
        async with self._session_factory() as session:
            stats = AdminStatsRepository(session)
            sales = await stats.sales(since, until)
            refunds = await stats.refunds(since, until)
            invoices = await stats.invoices(since, until)
        return period_figures(self._valuer, since, until, sales, refunds, invoices)

    async def attention(self, limit: int = ATTENTION_LIMIT) -> list[AttentionItem]:
        now = self._clock()
        async with self._session_factory() as session:
            rows = await AdminStatsRepository(session).attention(
                late_fulfilling=now - self._deadline,
                late_paid=now - self._paid_grace,
                limit=limit,
            )
        return [
            AttentionItem(
                public_id=row.order.public_id,
                reason=AttentionReason(row.reason),
                status=row.order.status,
                user_id=row.order.telegram_user_id,
                bundle_name=row.order.bundle_name,
                price=Price(row.order.price, row.order.price_currency),
                paid_at=row.order.paid_at,
                failure_reason=row.order.failure_reason,
            )
            for row in rows
        ]

    async def sales_by_day(self, days: int = CHART_DAYS) -> list[DaySales]:
        """The last `days` UTC days, today included."""
        today = self._clock().astimezone(UTC).date()
        dates = [today - timedelta(days=n) for n in range(days - 1, -1, -1)]
        since = datetime.combine(dates[0], time(), tzinfo=UTC)
        until = datetime.combine(today + timedelta(days=1), time(), tzinfo=UTC)
        async with self._session_factory() as session:
            rows = await AdminStatsRepository(session).daily_sales(since, until)
        return day_series(self._valuer, dates, rows)

    async def chart_png(self, days: int = CHART_DAYS) -> bytes:
        series = await self.sales_by_day(days)
        title = f"Revenue and orders per day, {_span(series[0].day, series[-1].day)}"
        return await asyncio.to_thread(render_sales_chart, series, title)


def _span(first: date, last: date) -> str:
    return f"{first:%d %b} – {last:%d %b %Y}"
