"""The eSIM doctor: "It doesn't work" answered from eSIM Go's live state.

`diagnose` reads the eSIM, its plans, its history and its location when the user asks (a user
waits: the client's default, interactive priority), and never fails: when eSIM Go cannot be
read the finding is UNAVAILABLE and the screens show the static steps. A network refresh is
allowed once per `refresh_every` per eSIM and a support ticket once per `ticket_every`, both
claimed in the database so every replica sees the same limit.
"""

from __future__ import annotations

import asyncio
import enum
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol, TypeVar

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from db.base import utcnow
from db.repositories.esim_checks import EsimCheckRepository, LimitedAction
from db.repositories.esims import MyEsimsRepository
from db.repositories.gifts import GiftRepository
from services.catalogue import CatalogueService
from services.diagnosis import (
    Diagnosis,
    Finding,
    LiveState,
    PlanOffer,
    PlanView,
    Sighting,
    diagnose,
)
from services.doctor_report import operator_report
from services.esimgo.errors import EsimGoError
from services.esimgo.models import BundleAssignment, EsimDetails, EsimHistoryEvent, EsimLocation
from services.qr import lpa_string
from services.support_ticket import SupportTicket, TicketDesk
from services.tracking import assignment_key

log = logging.getLogger(__name__)

T = TypeVar("T")
OFFERS = 3


class DoctorSource(Protocol):
    """The eSIM Go calls the doctor makes (EsimGoClient fits)."""

    async def get_esim(self, iccid: str) -> EsimDetails: ...
    async def get_esim_bundles(self, iccid: str) -> list[BundleAssignment]: ...
    async def get_esim_history(self, iccid: str) -> list[EsimHistoryEvent]: ...
    async def get_esim_location(self, iccid: str) -> EsimLocation | None: ...
    async def refresh_esim(self, iccid: str) -> str: ...


class RefreshOutcome(enum.StrEnum):
    DONE = "done"
    TOO_SOON = "too_soon"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class RefreshResult:
    outcome: RefreshOutcome
    next_at: datetime | None  # when the next refresh is allowed


class TicketOutcome(enum.StrEnum):
    OPENED = "opened"
    ALREADY_OPEN = "already_open"


@dataclass(frozen=True, slots=True)
class TicketResult:
    outcome: TicketOutcome
    diagnosis: Diagnosis | None


@dataclass(frozen=True, slots=True)
class _StoredEsim:
    id: int
    iccid: str
    lpa: str | None
    dates: dict[str, tuple[datetime | None, datetime | None]]  # assignment key → start, end
    orders: tuple[str, ...]
    gift_pending: bool  # the owner's gift nobody has claimed yet: no LPA for the buyer


class EsimDoctor:
    def __init__(
        self,
        session_factory: async_sessionmaker[AsyncSession],
        esimgo: DoctorSource,
        catalogue: CatalogueService,
        desk: TicketDesk,
        *,
        clock: Callable[[], datetime] = utcnow,
        wait_seconds: float = 10.0,
        refresh_every: timedelta = timedelta(minutes=10),
        ticket_every: timedelta = timedelta(minutes=30),
    ) -> None:
        self._session_factory = session_factory
        self._esimgo = esimgo
        self._catalogue = catalogue
        self._desk = desk
        self._clock = clock
        self._wait_seconds = wait_seconds
        self._refresh_every = refresh_every
        self._ticket_every = ticket_every

    async def diagnose(self, owner_id: int, esim_id: int) -> Diagnosis | None:
        """The owner's eSIM checked now; None when it is not theirs (or gone)."""
        stored = await self._stored(owner_id, esim_id)
        if stored is None:
            return None
        diagnosis = await self._diagnose(stored)
        await self._record(diagnosis)
        return diagnosis

    async def refresh(self, owner_id: int, esim_id: int) -> RefreshResult | None:
        """Make the network reconnect the eSIM, at most once per `refresh_every`."""
        stored = await self._stored(owner_id, esim_id)
        if stored is None:
            return None
        now = self._clock()
        if not await self._claim(stored.iccid, "refreshed_at", now, self._refresh_every):
            return RefreshResult(RefreshOutcome.TOO_SOON, await self._next_refresh(stored.iccid))
        try:
            await self._esimgo.refresh_esim(stored.iccid)
        except EsimGoError as exc:
            log.warning("network refresh of %s failed: %s", stored.iccid, exc)
            await self._release(stored.iccid, "refreshed_at", now)
            return RefreshResult(RefreshOutcome.FAILED, None)
        log.info("eSIM %s: network refresh done", stored.iccid)
        return RefreshResult(RefreshOutcome.DONE, now + self._refresh_every)

    async def open_ticket(
        self, owner_id: int, esim_id: int, *, user_name: str, username: str | None, language: str
    ) -> TicketResult | None:
        """Send the operators a ticket with what the user saw and what eSIM Go reports now;
        one per eSIM per `ticket_every` (a second press gets ALREADY_OPEN)."""
        stored = await self._stored(owner_id, esim_id)
        if stored is None:
            return None
        now = self._clock()
        shown = await self._last_shown(stored.iccid)
        if not await self._claim(stored.iccid, "ticket_at", now, self._ticket_every):
            return TicketResult(TicketOutcome.ALREADY_OPEN, None)
        try:
            diagnosis = await self._diagnose(stored)
            await self._record(diagnosis)
            ticket = SupportTicket(
                user_id=owner_id,
                user_name=user_name,
                username=username,
                language=language,
                iccid=stored.iccid,
                orders=stored.orders,
                shown=shown,
                report=operator_report(diagnosis),
                opened_at=now,
            )
            await self._desk.open(ticket)
        except BaseException:
            await self._release(stored.iccid, "ticket_at", now)
            raise
        return TicketResult(TicketOutcome.OPENED, diagnosis)

    # -- reading -------------------------------------------------------------------------------

    async def _stored(self, owner_id: int, esim_id: int) -> _StoredEsim | None:
        async with self._session_factory() as session:
            repo = MyEsimsRepository(session)
            esim = await repo.esim(esim_id, owner_id)
            if esim is None:
                return None
            rows = await repo.esim_bundles(esim.iccid, owner_id)
            orders = await repo.esim_orders(esim.iccid, owner_id)
            gift_pending = await GiftRepository(session).is_pending_on(owner_id, esim.iccid)
        lpa = esim.lpa
        if not lpa and esim.smdp_address and esim.matching_id:
            lpa = lpa_string(esim.smdp_address, esim.matching_id)
        if gift_pending:
            lpa = None  # whoever claims the gift installs it, never its buyer
        return _StoredEsim(
            id=esim.id,
            iccid=esim.iccid,
            lpa=lpa,
            dates={row.assignment_key: (row.start_at, row.end_at) for row in rows},
            orders=tuple(f"{o.public_id} · {o.status} · {o.bundle_name}" for o in orders),
            gift_pending=gift_pending,
        )

    async def _diagnose(self, stored: _StoredEsim) -> Diagnosis:
        now = self._clock()
        live: LiveState | None = None
        error: str | None = None
        try:
            live = await asyncio.wait_for(self._read_live(stored, now), self._wait_seconds)
        except* EsimGoError as failures:
            error = str(failures.exceptions[0])
        except* TimeoutError:
            error = f"no answer within {self._wait_seconds:g} s"
        if error:
            log.info("eSIM doctor could not read %s: %s", stored.iccid, error)
        finding, plan = diagnose(live)
        offers = self._offers(live) if finding is Finding.WRONG_COUNTRY and live else ()
        return Diagnosis(
            stored.id,
            stored.iccid,
            finding,
            now,
            live,
            plan,
            offers,
            stored.lpa,
            error,
            gift_pending=stored.gift_pending,
        )

    async def _read_live(self, stored: _StoredEsim, now: datetime) -> LiveState:
        """The four reads at once; the eSIM and its plans are needed, the rest is optional."""
        iccid = stored.iccid
        async with asyncio.TaskGroup() as group:
            esim = group.create_task(self._esimgo.get_esim(iccid))
            plans = group.create_task(self._esimgo.get_esim_bundles(iccid))
            history = group.create_task(_optional(self._esimgo.get_esim_history(iccid)))
            location = group.create_task(_optional(self._esimgo.get_esim_location(iccid)))
        details = esim.result()
        history_read, events = history.result()
        location_read, sighting = location.result()
        return LiveState(
            read_at=now,
            profile_status=details.profile_status,
            first_installed_at=details.first_installed_at,
            plans=tuple(self._plan(item, stored) for item in plans.result()),
            events=tuple(events or ()) if history_read else None,
            location=self._sighting(sighting),
            location_read=location_read,
        )

    def _plan(self, item: BundleAssignment, stored: _StoredEsim) -> PlanView:
        key = assignment_key(item.reference, item.assignment_id, item.bundle_name)
        start, end = stored.dates.get(key, (None, None))
        bundle = self._catalogue.catalogue.by_name(item.bundle_name)
        return PlanView(
            bundle_name=item.bundle_name,
            state=item.state,
            unlimited=item.unlimited or bool(bundle and bundle.unlimited),
            initial_bytes=item.initial_bytes,
            remaining_bytes=item.remaining_bytes,
            assigned_at=item.assigned_at,
            start_at=start,
            end_at=end,
            countries=tuple(c.iso for c in bundle.coverage) if bundle else (),
            duration_days=bundle.duration_days if bundle else 0,
        )

    def _sighting(self, location: EsimLocation | None) -> Sighting | None:
        if location is None:
            return None
        reported = location.country
        iso = reported.upper() if len(reported) == 2 and reported.isalpha() else None
        if iso is None and reported:
            iso = self._catalogue.catalogue.resolve_country(reported)
        network = location.network_brand or location.network_name or location.network_code
        return Sighting(iso, reported, network, location.last_seen)

    def _offers(self, live: LiveState) -> tuple[PlanOffer, ...]:
        where = live.location.country if live.location else None
        if not where:
            return ()
        bundles = self._catalogue.catalogue.bundles_for_country(where)[:OFFERS]
        return tuple(PlanOffer(b.name, b.data_mb, b.duration_days, b.unlimited) for b in bundles)

    async def _record(self, diagnosis: Diagnosis) -> None:
        """Remember what the user was shown: a later ticket carries it."""
        report = operator_report(diagnosis)
        async with self._session_factory() as session:
            await EsimCheckRepository(session).record(
                diagnosis.iccid, diagnosis.checked_at, diagnosis.finding, report
            )
            await session.commit()

    # -- limits --------------------------------------------------------------------------------

    async def _claim(
        self, iccid: str, action: LimitedAction, now: datetime, every: timedelta
    ) -> bool:
        async with self._session_factory() as session:
            won = await EsimCheckRepository(session).claim(iccid, action, now, now - every)
            await session.commit()
        return won

    async def _release(self, iccid: str, action: LimitedAction, claimed_at: datetime) -> None:
        async with self._session_factory() as session:
            await EsimCheckRepository(session).release(iccid, action, claimed_at)
            await session.commit()

    async def _next_refresh(self, iccid: str) -> datetime | None:
        async with self._session_factory() as session:
            check = await EsimCheckRepository(session).get(iccid)
        if check is None or check.refreshed_at is None:
            return None
        return check.refreshed_at + self._refresh_every

    async def _last_shown(self, iccid: str) -> str:
        async with self._session_factory() as session:
            check = await EsimCheckRepository(session).get(iccid)
        if check is None or check.checked_at is None:
            return "no diagnosis shown yet"
        return f"{check.finding} at {check.checked_at:%Y-%m-%d %H:%M} UTC"


async def _optional(call: Awaitable[T]) -> tuple[bool, T | None]:
    """A read the diagnosis can do without: (False, None) when eSIM Go fails it."""
    try:
        return True, await call
    except EsimGoError as exc:
        log.info("eSIM doctor: optional read failed: %s", exc)
        return False, None
