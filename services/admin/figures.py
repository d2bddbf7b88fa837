"""The dashboard's figures for one period, built from the SQL aggregates, plus their USD value."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal

from db.repositories.admin_stats import DayRow, RefundRow, SalesRow
from services.orders import TOPUP
from services.pricing import Price


@dataclass(frozen=True, slots=True)
class Valuer:
    """What takings are worth in USD: Stars at USD_PER_STAR; fiat 1:1 with USD, as pricing
    takes it (there is no exchange-rate source)."""

    usd_per_star: Decimal

    def usd(self, price: Price) -> Decimal:
        return price.amount * self.usd_per_star if price.is_stars else price.major

    def total(self, prices: Iterable[Price]) -> Decimal:
        return sum((self.usd(p) for p in prices), Decimal(0))


@dataclass(frozen=True, slots=True)
class PeriodFigures:
    """Sales in [since, until). Revenue counts orders paid in the period; refunds those
    refunded in it; conversion the invoices sent in it and how many of them were paid."""

    since: datetime
    until: datetime
    paid_orders: int
    new_esims: int
    topups: int
    revenue: tuple[Price, ...]  # per payment currency
    revenue_usd: Decimal
    esimgo_cost: Decimal  # USD
    refunds: int
    refunded: tuple[Price, ...]
    refunded_usd: Decimal
    invoices_sent: int
    invoices_paid: int

    @property
    def margin_usd(self) -> Decimal:
        """Takings kept (revenue less refunds) less what eSIM Go charged."""
        return self.revenue_usd - self.refunded_usd - self.esimgo_cost

    @property
    def conversion(self) -> Decimal | None:
        """Share of the invoices sent that were paid; None when none was sent."""
        if not self.invoices_sent:
            return None
        return Decimal(self.invoices_paid) / Decimal(self.invoices_sent)


@dataclass(frozen=True, slots=True)
class DaySales:
    day: date
    orders: int
    revenue_usd: Decimal


def _per_currency(amounts: Iterable[tuple[str, int]]) -> tuple[Price, ...]:
    totals: dict[str, int] = {}
    for currency, amount in amounts:
        totals[currency] = totals.get(currency, 0) + amount
    return tuple(Price(amount, currency) for currency, amount in sorted(totals.items()))


def period_figures(
    valuer: Valuer,
    since: datetime,
    until: datetime,
    sales: Sequence[SalesRow],
    refunds: Sequence[RefundRow],
    invoices: tuple[int, int],
) -> PeriodFigures:
    revenue = _per_currency((row.currency, row.revenue) for row in sales)
    refunded = _per_currency((row.currency, row.amount) for row in refunds)
    return PeriodFigures(
        since=since,
        until=until,
        paid_orders=sum(row.orders for row in sales),
        new_esims=sum(row.orders for row in sales if row.kind != TOPUP),
        topups=sum(row.orders for row in sales if row.kind == TOPUP),
        revenue=revenue,
        revenue_usd=valuer.total(revenue),
        esimgo_cost=sum((row.cost for row in sales), Decimal(0)),
        refunds=sum(row.refunds for row in refunds),
        refunded=refunded,
        refunded_usd=valuer.total(refunded),
        invoices_sent=invoices[0],
        invoices_paid=invoices[1],
    )


def day_series(valuer: Valuer, days: Sequence[date], rows: Sequence[DayRow]) -> list[DaySales]:
    """One entry per day of `days`, zero where nothing was sold."""
    orders = dict.fromkeys(days, 0)
    revenue = dict.fromkeys(days, Decimal(0))
    for row in rows:
        if row.day in orders:
            orders[row.day] += row.orders
            revenue[row.day] += valuer.usd(Price(row.revenue, row.currency))
    return [DaySales(day, orders[day], revenue[day]) for day in days]
