"""Broadcasts: an admin's message (text, or a photo with a caption; HTML) to many users.

`Broadcasts` composes and controls them; `BroadcastJob` sends one. Recipients are fixed when
sending starts, and each one's progress is stored: a recipient is marked as being sent to
before the send starts and with its outcome after. A job that dies leaves its in-flight
recipients "unknown" (they may have got it) and the next job never sends to them again, so
nobody gets a broadcast twice. One job at a time holds a broadcast (a heartbeat in its row);
another takes it over once the heartbeat is older than `stale_after`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from db.base import utcnow
from db.models import Broadcast
from db.repositories import broadcasts as b
from db.repositories.broadcasts import BroadcastRepository, audience_filter
from services.i18n import SUPPORTED_LANGUAGES
from services.messenger import (
    Messenger,
    MessengerError,
    RecipientUnavailableError,
    RetryLaterError,
)
from services.ratelimit import RateLimiter

log = logging.getLogger(__name__)

# Telegram allows about 30 messages a second to different chats; stay clear of it.
RATE_PER_SECOND = 25.0
BATCH = 10
PROGRESS_EVERY_SECONDS = 3.0
STALE_AFTER = timedelta(minutes=1)
# A recipient Telegram keeps answering 429 for is given up after this many waits.
MAX_FLOOD_WAITS = 5
AUDIENCES = ("all", "buyers", *(f"lang:{code}" for code in SUPPORTED_LANGUAGES))


@dataclass(frozen=True, slots=True)
class BroadcastDraft:
    broadcast_id: int
    audience: str
    recipients: int  # users in the audience now


@dataclass(frozen=True, slots=True)
class BroadcastProgress:
    broadcast_id: int
    status: str
    sent: int
    failed: int  # refused by Telegram (blocked included) or lost in a crash
    blocked: int
    left: int

    def line(self) -> str:
        return (
            f"📣 Broadcast #{self.broadcast_id}: sent {self.sent} · failed {self.failed} · "
            f"left {self.left}"
        )

    def summary(self) -> str:
        ended = "stopped" if self.status == b.CANCELLED else "finished"
        return (
            f"📣 Broadcast #{self.broadcast_id} {ended}: sent {self.sent}, failed {self.failed} "
            f"({self.blocked} blocked the bot and are no longer sent to), not sent {self.left}."
        )


def _progress(broadcast: Broadcast, counts: dict[str, int]) -> BroadcastProgress:
    return BroadcastProgress(
        broadcast_id=broadcast.id,
        status=broadcast.status,
        sent=counts.get(b.SENT, 0),
        failed=sum(counts.get(s, 0) for s in (b.FAILED, b.BLOCKED, b.UNKNOWN)),
        blocked=counts.get(b.BLOCKED, 0),
        left=counts.get(b.PENDING, 0) + counts.get(b.IN_FLIGHT, 0),
    )


class Broadcasts:
    """Compose, start, stop and watch broadcasts (the sending is BroadcastJob's)."""

    def __init__(
        self,
        session_factory: async_sessionmaker[AsyncSession],
        *,
        default_language: str,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self._session_factory = session_factory
        self._default_language = default_language
        self._clock = clock

    def _filter(self, audience: str) -> list[ColumnElement[bool]]:
        if audience not in AUDIENCES:
            raise ValueError(f"unknown audience {audience!r}")
        return audience_filter(audience, SUPPORTED_LANGUAGES, self._default_language)

    async def count(self, audience: str) -> int:
        """Users a broadcast to `audience` would reach now (they have not blocked the bot)."""
        async with self._session_factory() as session:
            return await BroadcastRepository(session).count_users(self._filter(audience))

    async def draft(
        self, admin_id: int, chat_id: int, text: str, photo: str | None, audience: str
    ) -> BroadcastDraft:
        """Store the message; nothing is sent before start()."""
        where = self._filter(audience)
        async with self._session_factory() as session:
            repo = BroadcastRepository(session)
            broadcast = await repo.add(
                Broadcast(
                    admin_id=admin_id,
                    chat_id=chat_id,
                    text=text,
                    photo_file_id=photo,
                    audience=audience,
                    status=b.DRAFT,
                )
            )
            recipients = await repo.count_users(where)
            await session.commit()
        return BroadcastDraft(broadcast.id, audience, recipients)

    async def choose_audience(self, broadcast_id: int, audience: str) -> BroadcastDraft | None:
        """Send the draft to `audience` instead; None once it is no draft."""
        where = self._filter(audience)
        async with self._session_factory() as session:
            repo = BroadcastRepository(session)
            if not await repo.set_audience(broadcast_id, audience):
                return None
            recipients = await repo.count_users(where)
            await session.commit()
        return BroadcastDraft(broadcast_id, audience, recipients)

    async def start(self, broadcast_id: int) -> int | None:
        """Fix the recipients and mark it for sending; None if it was not a draft (sent or
        cancelled already: a second Send press does nothing)."""
        async with self._session_factory() as session:
            repo = BroadcastRepository(session)
            broadcast = await repo.get(broadcast_id)
            if broadcast is None:
                return None
            count = await repo.start(broadcast_id, self._filter(broadcast.audience), self._clock())
            await session.commit()
        return count

    async def cancel(self, broadcast_id: int) -> bool:
        """Drop a draft, or stop one being sent (its job stops after the current batch)."""
        async with self._session_factory() as session:
            stopped = await BroadcastRepository(session).set_status(
                broadcast_id, (b.DRAFT, b.SENDING), b.CANCELLED
            )
            await session.commit()
        return stopped

    async def resumable(self, stale_after: timedelta = STALE_AFTER) -> list[int]:
        """Broadcasts being sent that no live job holds (their job died with its process)."""
        async with self._session_factory() as session:
            return await BroadcastRepository(session).resumable(self._clock() - stale_after)

    async def progress(self, broadcast_id: int) -> BroadcastProgress | None:
        async with self._session_factory() as session:
            repo = BroadcastRepository(session)
            broadcast = await repo.get(broadcast_id)
            if broadcast is None:
                return None
            return _progress(broadcast, await repo.counts(broadcast_id))


class _Batch:
    """One claimed batch: which sends have started, and their outcomes."""

    def __init__(self, user_ids: Sequence[int]) -> None:
        self.user_ids = list(user_ids)
        self.started: set[int] = set()
        self.results: dict[int, tuple[str, str | None]] = {}

    def unfinished(self) -> list[tuple[int, str, str | None]]:
        """After a crash: a send under way may have arrived; one not started goes back."""
        return [
            (user, b.UNKNOWN, "interrupted while sending")
            if user in self.started
            else (user, b.PENDING, None)
            for user in self.user_ids
            if user not in self.results
        ]


class BroadcastJob:
    """Sends one broadcast to its pending recipients, paced under `rate` messages a second."""

    def __init__(
        self,
        session_factory: async_sessionmaker[AsyncSession],
        messenger: Messenger,
        *,
        rate: float = RATE_PER_SECOND,
        batch: int = BATCH,
        progress_every: float = PROGRESS_EVERY_SECONDS,
        stale_after: timedelta = STALE_AFTER,
        limiter: RateLimiter | None = None,
        clock: Callable[[], datetime] = utcnow,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._session_factory = session_factory
        self._messenger = messenger
        self._limiter = limiter or RateLimiter(rate)
        self._batch = batch
        self._progress_every = progress_every
        self._stale_after = stale_after
        self._clock = clock
        self._monotonic = monotonic
        self.runner = f"broadcast-{uuid.uuid4().hex[:12]}"

    async def run(self, broadcast_id: int) -> BroadcastProgress | None:
        """Send until no recipient is left (or an admin cancels); None if another job holds
        it or it is not being sent."""
        broadcast = await self._acquire(broadcast_id)
        if broadcast is None:
            return None
        log.info("broadcast #%s: %s sending", broadcast_id, self.runner)
        batch: _Batch | None = None
        finished = False
        try:
            last_report = float("-inf")
            while (batch := await self._next_batch(broadcast, batch)) is not None:
                await asyncio.gather(*(self._send(broadcast, batch, u) for u in batch.user_ids))
                if self._monotonic() - last_report >= self._progress_every:
                    last_report = self._monotonic()
                    await self._report(broadcast)
            finished = True
        finally:
            with contextlib.suppress(Exception):
                await asyncio.shield(self._stop(broadcast, batch, finished))
        return await self._finish(broadcast) if finished else None

    async def _acquire(self, broadcast_id: int) -> Broadcast | None:
        now = self._clock()
        async with self._session_factory() as session:
            repo = BroadcastRepository(session)
            if not await repo.acquire(broadcast_id, self.runner, now, now - self._stale_after):
                return None
            lost = await repo.in_flight_to_unknown(broadcast_id, now)
            broadcast = await repo.get(broadcast_id)
            await session.commit()
        if lost:
            log.warning("broadcast #%s: %d sends were under way in a dead job", broadcast_id, lost)
        return broadcast

    async def _next_batch(self, broadcast: Broadcast, done: _Batch | None) -> _Batch | None:
        """Store the last batch's outcomes and claim the next, in one transaction; None when
        nothing is left or the job no longer holds the broadcast."""
        now = self._clock()
        async with self._session_factory() as session:
            repo = BroadcastRepository(session)
            if done is not None:
                await self._store(repo, broadcast, done, now)
            if not await repo.renew(broadcast.id, self.runner, now):
                await session.commit()
                return None
            user_ids = await repo.claim(broadcast.id, self._batch, now)
            await session.commit()
        return _Batch(user_ids) if user_ids else None

    @staticmethod
    async def _store(
        repo: BroadcastRepository, broadcast: Broadcast, batch: _Batch, now: datetime
    ) -> None:
        outcomes = [(user, status, error) for user, (status, error) in batch.results.items()]
        await repo.record(broadcast.id, outcomes + batch.unfinished(), now)
        await repo.mark_blocked([u for u, (s, _) in batch.results.items() if s == b.BLOCKED], now)

    async def _send(self, broadcast: Broadcast, batch: _Batch, user_id: int) -> None:
        for _ in range(MAX_FLOOD_WAITS):
            await self._limiter.acquire()
            batch.started.add(user_id)
            try:
                await self._messenger.send(user_id, broadcast.text, photo=broadcast.photo_file_id)
            except RetryLaterError as exc:
                # Refused, so not delivered: wait as told (every send waits) and try again.
                batch.started.discard(user_id)
                self._limiter.pause(exc.retry_after)
                log.info("broadcast #%s: flood wait %.0f s", broadcast.id, exc.retry_after)
                continue
            except RecipientUnavailableError as exc:
                batch.results[user_id] = (b.BLOCKED, str(exc)[:500])
            except MessengerError as exc:
                batch.results[user_id] = (b.FAILED, str(exc)[:500])
            else:
                batch.results[user_id] = (b.SENT, None)
            return
        batch.results[user_id] = (b.FAILED, "Telegram kept asking to wait")

    async def _stop(self, broadcast: Broadcast, batch: _Batch | None, finished: bool) -> None:
        """Store what the last batch got to and let go of the broadcast."""
        now = self._clock()
        async with self._session_factory() as session:
            repo = BroadcastRepository(session)
            if batch is not None:
                await self._store(repo, broadcast, batch, now)
            counts = await repo.counts(broadcast.id)
            done = finished and not counts.get(b.PENDING) and not counts.get(b.IN_FLIGHT)
            if done:
                await repo.set_status(broadcast.id, (b.SENDING,), b.DONE)
                await repo.release(broadcast.id, self.runner, finished_at=now)
            else:
                await repo.release(broadcast.id, self.runner)
            await session.commit()

    async def _report(self, broadcast: Broadcast) -> None:
        """Show progress in the admin's chat: one message, edited as sending goes on."""
        async with self._session_factory() as session:
            repo = BroadcastRepository(session)
            progress = _progress(broadcast, await repo.counts(broadcast.id))
        try:
            await self._limiter.acquire()
            if broadcast.progress_message_id is None:
                message_id = await self._messenger.send(broadcast.chat_id, progress.line())
                broadcast.progress_message_id = message_id
                async with self._session_factory() as session:
                    await BroadcastRepository(session).renew(
                        broadcast.id, self.runner, self._clock(), progress_message_id=message_id
                    )
                    await session.commit()
            else:
                await self._messenger.edit_text(
                    broadcast.chat_id, broadcast.progress_message_id, progress.line()
                )
        except MessengerError as exc:
            log.info("broadcast #%s: progress not shown: %s", broadcast.id, exc)

    async def _finish(self, broadcast: Broadcast) -> BroadcastProgress:
        await self._report(broadcast)
        async with self._session_factory() as session:
            repo = BroadcastRepository(session)
            fresh = await repo.get(broadcast.id)
            progress = _progress(fresh or broadcast, await repo.counts(broadcast.id))
        if progress.status in (b.DONE, b.CANCELLED):
            with contextlib.suppress(MessengerError):
                await self._messenger.send(broadcast.chat_id, progress.summary())
        log.info("broadcast #%s: %s", broadcast.id, progress.line())
        return progress


class BroadcastSender:
    """Runs this process's broadcast jobs in the background: the ones admins start here, and
    any that no live job holds (a restart, a replica that died) at each look."""

    def __init__(
        self,
        session_factory: async_sessionmaker[AsyncSession],
        messenger: Messenger,
        broadcasts: Broadcasts,
        *,
        rate: float = RATE_PER_SECOND,
        look_every: timedelta = STALE_AFTER,
    ) -> None:
        self._session_factory = session_factory
        self._messenger = messenger
        self._broadcasts = broadcasts
        self._rate = rate
        self._look_every = look_every
        self._jobs: dict[int, asyncio.Task[BroadcastProgress | None]] = {}

    @property
    def jobs(self) -> list[asyncio.Task[BroadcastProgress | None]]:
        """The jobs running in this process now."""
        return list(self._jobs.values())

    def launch(self, broadcast_id: int) -> None:
        """Send it in the background, unless a job of this process already does."""
        if broadcast_id in self._jobs:
            return
        job = BroadcastJob(self._session_factory, self._messenger, rate=self._rate)
        task = asyncio.create_task(job.run(broadcast_id), name=f"broadcast-{broadcast_id}")
        self._jobs[broadcast_id] = task
        task.add_done_callback(lambda done: self._ended(broadcast_id, done))

    def _ended(self, broadcast_id: int, task: asyncio.Task[BroadcastProgress | None]) -> None:
        self._jobs.pop(broadcast_id, None)
        if not task.cancelled() and (exc := task.exception()) is not None:
            log.error("broadcast #%s: job failed: %r", broadcast_id, exc)

    async def resume(self) -> int:
        """Launch every broadcast being sent that no live job holds; returns how many."""
        found = [i for i in await self._broadcasts.resumable() if i not in self._jobs]
        for broadcast_id in found:
            log.info("broadcast #%s: resuming", broadcast_id)
            self.launch(broadcast_id)
        return len(found)

    async def run(self) -> None:
        """Until cancelled: resume orphaned broadcasts at start and every `look_every`."""
        while True:
            try:
                await self.resume()
            except Exception:
                log.exception("looking for broadcasts to resume failed")
            await asyncio.sleep(self._look_every.total_seconds())

    async def close(self) -> None:
        """Stop this process's jobs; each stores its progress, and resume() carries on."""
        jobs = self.jobs
        for task in jobs:
            task.cancel()
        await asyncio.gather(*jobs, return_exceptions=True)
