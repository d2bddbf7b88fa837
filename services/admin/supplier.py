"""The supplier side of /admin: the eSIM Go balance, the days it lasts at the last week's
spend, and a once-a-day alert while it is below ESIMGO_BALANCE_WARN."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from db.base import utcnow
from db.repositories.admin_stats import AdminStatsRepository
from services.admin_alerts import AdminAlerts
from services.budget import background_work
from services.esimgo.client import EsimGoClient
from services.esimgo.errors import EsimGoError
from services.messenger import Messenger
from services.metrics import Metrics

log = logging.getLogger(__name__)

SPEND_WINDOW = timedelta(days=7)
# How often the balance is read in the background (the gauge, the low-balance alert).
CHECK_EVERY = timedelta(minutes=30)


@dataclass(frozen=True, slots=True)
class SupplierStatus:
    balance: Decimal | None  # None: eSIM Go could not be asked (see `error`)
    currency: str
    spend_7d: Decimal  # what eSIM Go charged for the last 7 days' orders
    warn_below: Decimal | None
    error: str | None = None

    @property
    def daily_spend(self) -> Decimal:
        return self.spend_7d / SPEND_WINDOW.days

    @property
    def runway_days(self) -> Decimal | None:
        """Days the balance lasts at the last week's spend; None when nothing was spent."""
        if self.balance is None or not self.spend_7d:
            return None
        return max(self.balance, Decimal(0)) / self.daily_spend

    @property
    def low(self) -> bool:
        return (
            self.balance is not None
            and self.warn_below is not None
            and self.balance < self.warn_below
        )


class SupplierService:
    def __init__(
        self,
        session_factory: async_sessionmaker[AsyncSession],
        esimgo: EsimGoClient,
        *,
        warn_below: Decimal | None,
        metrics: Metrics | None = None,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self._session_factory = session_factory
        self._esimgo = esimgo
        self._warn_below = warn_below
        self._metrics = metrics
        self._clock = clock

    async def status(self) -> SupplierStatus:
        """The balance from eSIM Go (asked with no database session open) and the spend."""
        now = self._clock()
        async with self._session_factory() as session:
            spend = await AdminStatsRepository(session).esimgo_spend(now - SPEND_WINDOW, now)
        try:
            organisation = await self._esimgo.get_organisation()
        except EsimGoError as exc:
            log.warning("eSIM Go balance unknown: %s", exc)
            return SupplierStatus(None, "USD", spend, self._warn_below, str(exc))
        if self._metrics is not None:
            self._metrics.esimgo_balance(organisation.balance, organisation.currency)
        return SupplierStatus(organisation.balance, organisation.currency, spend, self._warn_below)

    async def check(self, messenger: Messenger, alerts: AdminAlerts) -> SupplierStatus:
        """Read the balance; while it is below the warning level, alert the admins (once a
        UTC day, across replicas and restarts)."""
        status = await self.status()
        if status.low:
            await alerts.alert_once(
                messenger,
                f"esimgo-balance-low:{self._clock().date().isoformat()}",
                low_balance_text(status),
            )
        return status

    async def run(
        self, messenger: Messenger, alerts: AdminAlerts, every: timedelta = CHECK_EVERY
    ) -> None:
        """Until cancelled: check() now and every `every`, with background priority."""
        while True:
            try:
                with background_work():
                    await self.check(messenger, alerts)
            except Exception:
                log.exception("eSIM Go balance check failed")
            await asyncio.sleep(every.total_seconds())


def low_balance_text(status: SupplierStatus) -> str:
    runway = status.runway_days
    lasts = f"about {runway:.1f} days at the last week's spend" if runway is not None else ""
    return (
        f"⚠️ eSIM Go balance {status.balance:.2f} {status.currency} is below "
        f"{status.warn_below:.2f} {status.currency}"
        + (f" ({lasts})" if lasts else "")
        + ". Top up the eSIM Go account before orders start failing."
    )
