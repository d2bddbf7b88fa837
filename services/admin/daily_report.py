"""The admins' daily summary at DAILY_REPORT_HOUR (UTC): yesterday's figures and whatever
needs attention. Sent once per day across replicas and restarts (a keyed admin alert), and
late when the process was down at the hour."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, date, datetime, time, timedelta

from db.base import utcnow
from services.admin.dashboard import Dashboard
from services.admin.report_text import attention_lines, period_lines
from services.admin_alerts import AdminAlerts, alert_markup
from services.messenger import Messenger

log = logging.getLogger(__name__)


def next_report_at(now: datetime, hour: int) -> datetime:
    """The next time the clock shows `hour`:00 UTC (later today, or tomorrow)."""
    today = datetime.combine(now.astimezone(UTC).date(), time(hour), tzinfo=UTC)
    return today if now < today else today + timedelta(days=1)


class DailyReport:
    def __init__(
        self,
        dashboard: Dashboard,
        alerts: AdminAlerts,
        *,
        hour: int,
        clock: Callable[[], datetime] = utcnow,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._dashboard = dashboard
        self._alerts = alerts
        self._hour = hour
        self._clock = clock
        self._sleep = sleep

    async def text(self, day: date) -> str:
        since = datetime.combine(day, time(), tzinfo=UTC)
        figures = await self._dashboard.figures(since, since + timedelta(days=1))
        attention = await self._dashboard.attention()
        lines = [f"📊 <b>Daily report for {day.isoformat()}</b> (UTC)", *period_lines(figures)]
        return "\n".join([*lines, "", *attention_lines(attention)])

    async def send(self, messenger: Messenger, day: date) -> bool:
        """The report on `day` to every admin, unless it went out already."""
        return await self._alerts.alert_once(
            messenger, f"daily-report:{day.isoformat()}", alert_markup(await self.text(day))
        )

    async def run(self, messenger: Messenger) -> None:
        """Until cancelled: at each report hour, the report on the day before. At start, the
        last report that fell due goes out unless it went out already: one missed while the
        process was down (a restart over the hour) is sent late, once."""
        while True:
            due = next_report_at(self._clock(), self._hour) - timedelta(days=1)
            try:
                await self.send(messenger, (due - timedelta(days=1)).date())
            except Exception:
                log.exception("daily report not sent")
            wake = next_report_at(self._clock(), self._hour)
            await self._sleep(max((wake - self._clock()).total_seconds(), 0.0))
