"""Keeps every live eSIM's profile and bundle state current by polling eSIM Go."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Protocol

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from db.base import utcnow
from db.models import Esim, EsimBundle
from services.budget import background_work
from services.catalogue import CatalogueService
from services.esimgo.errors import (
    EsimGoError,
    NotFoundError,
    RateLimitedError,
    SupplierUnavailableError,
)
from services.esimgo.models import BundleAssignment, EsimDetails
from services.messenger import Messenger
from services.notifications import Notifier, finished, load_bundles
from services.ratelimit import RateLimiter

log = logging.getLogger(__name__)

REFRESH_CACHE = timedelta(minutes=1)
# A fresh eSIM may show no bundle for a while; give up on an empty one only after this.
EMPTY_GRACE = timedelta(days=2)
# eSIMs polled per second: each is two requests, leaving the client's budget room for sales.
DEFAULT_POLLS_PER_SECOND = 2.0


class EsimStatusSource(Protocol):
    async def get_esim(self, iccid: str) -> EsimDetails: ...
    async def get_esim_bundles(self, iccid: str) -> list[BundleAssignment]: ...


def assignment_key(reference: str, assignment_id: str, bundle_name: str) -> str:
    """The row key of one assignment: eSIM Go's reference, else its id, else the bundle name."""
    return (reference or assignment_id or bundle_name)[:128]


class TrackingService:
    """The poller and on-demand refresh; notifications follow from the stored state."""

    def __init__(
        self,
        esimgo: EsimStatusSource,
        session_factory: async_sessionmaker[AsyncSession],
        notifier: Notifier,
        catalogue: CatalogueService | None = None,
        *,
        poll_minutes: float = 30,
        polls_per_second: float = DEFAULT_POLLS_PER_SECOND,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self._esimgo = esimgo
        self._session_factory = session_factory
        self._notifier = notifier
        self._catalogue = catalogue
        self._interval = timedelta(minutes=poll_minutes)
        self._pace = RateLimiter(polls_per_second)
        self._clock = clock
        self._inflight: dict[str, asyncio.Task[bool]] = {}
        self.last_success_at: datetime | None = None

    # -- state rules shared with callbacks ---------------------------------------------------

    def plan_end(self, bundle_name: str, start: datetime | None) -> datetime | None:
        """start + the bundle's duration from the catalogue (eSIM Go gives no end when polled)."""
        if start is None or self._catalogue is None:
            return None
        bundle = self._catalogue.catalogue.by_name(bundle_name)
        if bundle is None or bundle.duration_days <= 0:
            return None
        return start + timedelta(days=bundle.duration_days)

    @staticmethod
    async def esim(session: AsyncSession, iccid: str) -> Esim | None:
        return await session.scalar(select(Esim).where(Esim.iccid == iccid))

    def apply_details(self, esim: Esim, details: EsimDetails) -> None:
        if details.profile_status:
            esim.profile_status = details.profile_status
        if details.first_installed_at is not None and esim.first_installed_at is None:
            esim.first_installed_at = details.first_installed_at

    async def apply_assignments(
        self, session: AsyncSession, esim: Esim, assignments: Sequence[BundleAssignment]
    ) -> list[EsimBundle]:
        """Upsert the eSIM's bundle rows from a poll; returns every row of the eSIM."""
        now = self._clock()
        rows = {b.assignment_key: b for b in await load_bundles(session, esim.iccid)}
        for item in assignments:
            key = assignment_key(item.reference, item.assignment_id, item.bundle_name)
            row = rows.get(key)
            if row is None and item.bundle_name in rows and key != item.bundle_name:
                # A V2 callback stored it under the bundle name before we knew the reference.
                row = rows.pop(item.bundle_name)
                row.assignment_key = key
                rows[key] = row
            if row is None:
                row = EsimBundle(
                    iccid=esim.iccid, assignment_key=key, bundle_name=item.bundle_name
                )
                session.add(row)
                rows[key] = row
            row.bundle_name = item.bundle_name or row.bundle_name
            row.state = item.state or row.state or "queued"
            row.unlimited = item.unlimited
            if item.initial_bytes is not None and item.initial_bytes >= 0:
                row.initial_bytes = item.initial_bytes
            if item.remaining_bytes is not None and item.remaining_bytes >= 0:
                row.remaining_bytes = item.remaining_bytes
            if item.assigned_at is not None:
                row.assigned_at = item.assigned_at
            if row.start_at is None and row.state == "active":
                # Polling has no start time: the first time we see it active is close enough.
                row.start_at = now
            if row.end_at is None:
                row.end_at = self.plan_end(row.bundle_name, row.start_at)
        await session.flush()
        return list(rows.values())

    def update_tracking(self, esim: Esim, bundles: Sequence[EsimBundle]) -> None:
        """Poll only eSIMs that can still be used; a new bundle turns tracking back on."""
        now = self._clock()
        if esim.deleted_at is not None or finished(bundles):
            esim.tracking = False
        elif not bundles:
            created = esim.created_at or now
            esim.tracking = now - created < EMPTY_GRACE
        else:
            esim.tracking = True

    # -- polling -----------------------------------------------------------------------------

    async def poll_esim(self, iccid: str, messenger: Messenger | None = None) -> bool:
        """Read one eSIM from eSIM Go and store it; False if it is unknown here or there."""
        try:
            details = await self._esimgo.get_esim(iccid)
            assignments = await self._esimgo.get_esim_bundles(iccid)
        except NotFoundError:
            log.warning("eSIM %s is not on the eSIM Go account any more; tracking stops", iccid)
            async with self._session_factory() as session:
                esim = await self.esim(session, iccid)
                if esim is not None:
                    esim.tracking = False
                    esim.last_polled_at = self._clock()
                    await session.commit()
            return False
        self.last_success_at = self._clock()
        async with self._session_factory() as session:
            esim = await self.esim(session, iccid)
            if esim is None:
                return False
            self.apply_details(esim, details)
            bundles = await self.apply_assignments(session, esim, assignments)
            self.update_tracking(esim, bundles)
            esim.last_polled_at = self._clock()
            await session.commit()
        if messenger is not None:
            await self._notifier.evaluate(messenger, esim, bundles)
        return True

    async def tracked_iccids(self) -> list[str]:
        async with self._session_factory() as session:
            result = await session.scalars(
                select(Esim.iccid)
                .where(Esim.tracking.is_(True), Esim.deleted_at.is_(None))
                .order_by(Esim.last_polled_at.is_not(None), Esim.last_polled_at, Esim.id)
            )
            return list(result)

    async def poll_once(self, messenger: Messenger | None) -> int:
        """Poll every tracked eSIM once, paced; returns how many were updated.

        Background work: its eSIM Go calls yield the budget to paid orders and waiting users.
        """
        updated = 0
        for iccid in await self.tracked_iccids():
            await self._pace.acquire()
            try:
                with background_work():
                    if await self.poll_esim(iccid, messenger):
                        updated += 1
            except (RateLimitedError, SupplierUnavailableError) as exc:
                log.warning("status poll stopped early, eSIM Go unavailable: %s", exc)
                break
            except EsimGoError as exc:
                log.warning("status poll of %s failed: %s", iccid, exc)
        return updated

    async def run_poll_loop(self, messenger: Messenger) -> None:
        """Poll every `STATUS_POLL_MINUTES` until cancelled."""
        while True:
            started = self._clock()
            try:
                count = await self.poll_once(messenger)
                log.info("status poll: %d eSIMs updated", count)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("status poll failed")
            elapsed = self._clock() - started
            await asyncio.sleep(max((self._interval - elapsed).total_seconds(), 1.0))

    # -- on demand ---------------------------------------------------------------------------

    async def refresh(self, iccid: str, messenger: Messenger | None = None) -> bool:
        """Fresh state for a user looking at the eSIM; reuses a poll from the last minute.

        Never raises for eSIM Go trouble: the stored state is shown instead.
        """
        async with self._session_factory() as session:
            esim = await self.esim(session, iccid)
        if esim is None:
            return False
        if esim.last_polled_at is not None and self._clock() - esim.last_polled_at < REFRESH_CACHE:
            return True
        task = self._inflight.get(iccid)
        if task is None:
            task = asyncio.create_task(self._refresh_quietly(iccid, messenger))
            self._inflight[iccid] = task
            task.add_done_callback(lambda _t: self._inflight.pop(iccid, None))
        return await asyncio.shield(task)

    async def _refresh_quietly(self, iccid: str, messenger: Messenger | None) -> bool:
        try:
            return await self.poll_esim(iccid, messenger)
        except EsimGoError as exc:
            log.info("on-demand refresh of %s failed, showing stored state: %s", iccid, exc)
            return False
