"""Messages to the operators (ADMIN_IDS), kept in an outbox until Telegram has taken them.

An alert is either plain text (`str`: sent exactly as written, markup and all escaped) or an
`alert_html(template, **values)`: the template's markup is kept and every value is escaped. So a
supplier's error text with a `<` in it cannot make Telegram refuse the alert, whichever way it is
written. Each alert is tried at once; one that fails is retried by `run()` with backoff (a flood
wait as long as Telegram asks) until it is delivered.
"""

from __future__ import annotations

import asyncio
import contextlib
import html
import logging
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from db.base import utcnow
from db.models import AdminAlert
from services.messenger import Messenger, MessengerError, RetryLaterError

log = logging.getLogger(__name__)

# Telegram takes 4096 characters of text. A template holds one long value at most (an error
# text, a support question of up to 3000 characters), so cutting each value here keeps it whole.
MAX_PLAIN_CHARS = 4000
MAX_VALUE_CHARS = 3000
# How long a sender owns a row it is sending; another may take it over after that.
CLAIM = timedelta(seconds=60)
# The background sender looks at the outbox at least this often (rows other replicas queued).
SWEEP_SECONDS = 30.0
BATCH = 50


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


@dataclass(frozen=True, slots=True)
class AlertHtml:
    """Trusted markup in `template` ({name} fields), untrusted `values` escaped into it."""

    template: str
    values: Mapping[str, object]

    def render(self) -> str:
        escaped = {
            name: html.escape(_cut(str(value), MAX_VALUE_CHARS), quote=False)
            for name, value in self.values.items()
        }
        return self.template.format_map(escaped)


def alert_html(template: str, /, **values: object) -> AlertHtml:
    return AlertHtml(template, values)


def alert_markup(built: str) -> AlertHtml:
    """HTML our own code built with every value escaped already (a report, a dashboard)."""
    return AlertHtml(built.replace("{", "{{").replace("}", "}}"), {})


Alert = str | AlertHtml


def render(alert: Alert) -> str:
    """The alert as Telegram HTML."""
    if isinstance(alert, AlertHtml):
        return alert.render()
    return html.escape(_cut(alert, MAX_PLAIN_CHARS), quote=False)


@dataclass(frozen=True, slots=True)
class Backoff:
    """Seconds before retry n (1, 2, …): first, doubling, at most `longest`."""

    first: float = 10.0
    longest: float = 3600.0

    def delay(self, attempts: int) -> timedelta:
        return timedelta(seconds=min(self.first * 2 ** max(attempts - 1, 0), self.longest))


RETRY = Backoff()


@dataclass(frozen=True, slots=True)
class _Due:
    id: int
    chat_id: int
    text: str
    attempts: int


class AdminAlerts:
    """Queues alerts for every admin and sends them; never raises on a failed send."""

    def __init__(
        self,
        session_factory: async_sessionmaker[AsyncSession],
        admin_ids: Collection[int],
        *,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self._session_factory = session_factory
        self._admin_ids = sorted(admin_ids)
        self._clock = clock
        self._paused_until: datetime | None = None
        self._wake = asyncio.Event()

    async def alert(self, messenger: Messenger, text: Alert, *, private: bool = False) -> None:
        """Send to every admin now, or later if Telegram will not take it now. `private`: the
        text carries a user's own words, which stay out of the log."""
        await self._queue(messenger, None, text, private)

    async def alert_once(
        self, messenger: Messenger, key: str, text: Alert, *, private: bool = False
    ) -> bool:
        """Like alert(), unless an alert with this key was already delivered or is waiting to
        be; True if queued now."""
        return await self._queue(messenger, key[:255], text, private)

    async def _queue(
        self, messenger: Messenger, key: str | None, alert: Alert, private: bool
    ) -> bool:
        text = render(alert)
        if not self._admin_ids:
            log.warning("admin alert not sent, ADMIN_IDS is empty: %s", "…" if private else text)
            return False
        try:
            queued = await self._insert(key, text)
        except Exception:
            # Alerts matter most when things break, the database included: one plain try.
            log.exception("admin alert could not be stored; sending it once, without retries")
            queued = None
        if queued == []:
            log.info("admin alert %s already delivered or queued", key)
            return False
        log.warning("admin alert: %s", "(a user's message, not logged)" if private else text)
        if queued is None:
            await self._send_unstored(messenger, text)
            return True
        try:
            await self._send(messenger, queued)
        except Exception:
            log.exception("admin alert outbox unavailable; the sender will try again")
        return True

    async def _send_unstored(self, messenger: Messenger, text: str) -> None:
        for admin_id in self._admin_ids:
            try:
                await messenger.send_text(admin_id, text)
            except MessengerError as exc:
                log.warning("admin alert to %s not delivered: %s", admin_id, exc)

    async def _insert(self, key: str | None, text: str) -> list[_Due]:
        now = self._clock()
        queued: list[_Due] = []
        async with self._session_factory() as session:
            for admin_id in self._admin_ids:
                row = AdminAlert(
                    chat_id=admin_id, text=text, dedup_key=key, attempts=0, next_attempt_at=now
                )
                session.add(row)
                try:
                    await session.commit()
                except IntegrityError:  # this key is already this admin's
                    await session.rollback()
                    continue
                queued.append(_Due(row.id, admin_id, text, 0))
        return queued

    async def deliver_due(self, messenger: Messenger) -> int:
        """One pass over the outbox: send what is due; returns how many arrived."""
        if self._paused():
            return 0
        async with self._session_factory() as session:
            result = await session.execute(
                select(AdminAlert.id, AdminAlert.chat_id, AdminAlert.text, AdminAlert.attempts)
                .where(
                    AdminAlert.delivered_at.is_(None),
                    AdminAlert.next_attempt_at <= self._clock(),
                )
                .order_by(AdminAlert.id)
                .limit(BATCH)
            )
            due = [_Due(*row) for row in result]
        return await self._send(messenger, due)

    def _paused(self) -> bool:
        return self._paused_until is not None and self._clock() < self._paused_until

    async def _send(self, messenger: Messenger, rows: Sequence[_Due]) -> int:
        delivered = 0
        for row in rows:
            if self._paused():
                break
            if not await self._claim(row):
                continue  # another sender has it
            try:
                await messenger.send_text(row.chat_id, row.text)
            except RetryLaterError as exc:
                # Telegram's flood wait is for the whole bot: everything waits that long.
                wait = timedelta(seconds=max(exc.retry_after, 1.0))
                self._paused_until = self._clock() + wait
                await self._failed(row, exc, wait)
            except MessengerError as exc:
                await self._failed(row, exc, RETRY.delay(row.attempts + 1))
            else:
                await self._set(row.id, delivered_at=self._clock(), last_error=None)
                delivered += 1
        return delivered

    async def _claim(self, row: _Due) -> bool:
        """Take the row for one attempt: a guarded UPDATE, so two senders never both send it."""
        async with self._session_factory() as session:
            result = await session.execute(
                update(AdminAlert)
                .where(
                    AdminAlert.id == row.id,
                    AdminAlert.attempts == row.attempts,
                    AdminAlert.delivered_at.is_(None),
                )
                .values(attempts=row.attempts + 1, next_attempt_at=self._clock() + CLAIM)
            )
            await session.commit()
        return int(getattr(result, "rowcount", 0) or 0) == 1

    async def _failed(self, row: _Due, exc: MessengerError, wait: timedelta) -> None:
        log.warning(
            "admin alert %s to %s not delivered (attempt %d), next try in %.0f s: %s",
            row.id,
            row.chat_id,
            row.attempts + 1,
            wait.total_seconds(),
            exc,
        )
        await self._set(row.id, next_attempt_at=self._clock() + wait, last_error=str(exc)[:500])
        self._wake.set()

    async def _set(self, alert_id: int, **values: object) -> None:
        async with self._session_factory() as session:
            statement = update(AdminAlert).where(AdminAlert.id == alert_id).values(values)
            await session.execute(statement)
            await session.commit()

    async def run(self, messenger: Messenger) -> None:
        """The background sender: retries what is due, until cancelled."""
        while True:
            self._wake.clear()  # before looking: a failure from now on wakes the wait below
            try:
                await self.deliver_due(messenger)
                wait = await self._seconds_to_next()
            except Exception:
                log.exception("admin alerts: sending failed; trying again soon")
                wait = SWEEP_SECONDS
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(wait):
                    await self._wake.wait()

    async def _seconds_to_next(self) -> float:
        async with self._session_factory() as session:
            nearest = await session.scalar(
                select(func.min(AdminAlert.next_attempt_at)).where(
                    AdminAlert.delivered_at.is_(None)
                )
            )
        if self._paused_until is not None:
            nearest = max(nearest or self._paused_until, self._paused_until)
        if nearest is None:
            return SWEEP_SECONDS
        return min(max((nearest - self._clock()).total_seconds(), 0.0), SWEEP_SECONDS)
