"""The daily report's loop (DailyReport.run) on a virtual clock: the report goes out at
DAILY_REPORT_HOUR once a day, and one that fell due while the process was down goes out when
it comes back, once (the admin-alert key in the database remembers it), never twice."""

from __future__ import annotations

import asyncio
import re
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.messenger import AiogramMessenger
from services.admin.daily_report import DailyReport
from services.admin.dashboard import Dashboard
from services.admin_alerts import AdminAlerts
from tests.admin_helpers import ADMINS
from tests.fakes.telegram import FakeTelegram

HOUR = 8
_REPORT = re.compile(r"Daily report for (\d{4}-\d{2}-\d{2})")


class VirtualTime:
    """The report's clock and sleep: a sleep moves the clock at once. Every report that
    reaches the first admin is noted with the virtual time it went out; after `wakes` sleeps
    the loop is cancelled, as the runner does at shutdown."""

    def __init__(self, now: datetime, telegram: FakeTelegram, wakes: int) -> None:
        self.now = now
        self.sent: list[tuple[datetime, str]] = []
        self._telegram = telegram
        self._wakes = wakes

    def __call__(self) -> datetime:
        return self.now

    def note_sent(self) -> None:
        texts = [m.text or "" for m in self._telegram.chat(ADMINS[0]) if m.from_bot]
        for text in texts[len(self.sent) :]:
            match = _REPORT.search(text)
            self.sent.append((self.now, match.group(1) if match else text))

    async def sleep(self, seconds: float) -> None:
        self.note_sent()
        if self._wakes == 0:
            raise asyncio.CancelledError
        self._wakes -= 1
        await asyncio.sleep(0)
        self.now += timedelta(seconds=seconds)


def dashboard(session_factory: async_sessionmaker[AsyncSession]) -> Dashboard:
    return Dashboard(
        session_factory, usd_per_star=Decimal(1), fulfilment_deadline=timedelta(minutes=15)
    )


def at(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 3, day, hour, minute, tzinfo=UTC)


async def run_until_done(
    session_factory: async_sessionmaker[AsyncSession],
    messenger: AiogramMessenger,
    time: VirtualTime,
) -> None:
    board = dashboard(session_factory)
    report = DailyReport(
        board, AdminAlerts(session_factory, ADMINS), hour=HOUR, clock=time, sleep=time.sleep
    )
    with pytest.raises(asyncio.CancelledError):
        await report.run(messenger)


async def test_the_report_goes_out_at_the_hour_once_a_day(
    session_factory: async_sessionmaker[AsyncSession],
    fake_telegram: FakeTelegram,
    messenger: AiogramMessenger,
) -> None:
    alerts = AdminAlerts(session_factory, ADMINS)
    board = dashboard(session_factory)
    # Yesterday's run sent the report on 28 February; the process starts before the hour.
    assert await DailyReport(board, alerts, hour=HOUR).send(messenger, date(2026, 2, 28))
    time = VirtualTime(at(2, 7, 10), fake_telegram, wakes=3)
    time.note_sent()

    await run_until_done(session_factory, messenger, time)
    assert time.sent[1:] == [
        (at(2, HOUR), "2026-03-01"),
        (at(3, HOUR), "2026-03-02"),
        (at(4, HOUR), "2026-03-03"),
    ]
    assert len(fake_telegram.chat(ADMINS[1])) == 4  # every admin, each report once


async def test_a_report_missed_while_down_goes_out_at_start_once(
    session_factory: async_sessionmaker[AsyncSession],
    fake_telegram: FakeTelegram,
    messenger: AiogramMessenger,
) -> None:
    # First started on 1 March before the hour: the last report due (on 27 February, due on
    # the 28th at the hour) goes out at start, the one on 28 February at the hour.
    first = VirtualTime(at(1, 7), fake_telegram, wakes=1)
    await run_until_done(session_factory, messenger, first)
    assert first.sent == [(at(1, 7), "2026-02-27"), (at(1, HOUR), "2026-02-28")]

    # Down over the hour on 2 March; back at 10:30: the report on 1 March goes out now.
    back = VirtualTime(at(2, 10, 30), fake_telegram, wakes=1)
    back.sent = list(first.sent)
    await run_until_done(session_factory, messenger, back)
    assert back.sent[2:] == [(at(2, 10, 30), "2026-03-01"), (at(3, HOUR), "2026-03-02")]

    # Restarted again the same day (a deploy): nothing twice, the next report at its hour.
    again = VirtualTime(at(3, 9), fake_telegram, wakes=1)
    again.sent = list(back.sent)
    await run_until_done(session_factory, messenger, again)
    assert again.sent[4:] == [(at(4, HOUR), "2026-03-03")]
    reports = [m.text or "" for m in fake_telegram.chat(ADMINS[1])]
    assert len(reports) == 5 and len(set(reports)) == 5
