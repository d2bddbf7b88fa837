"""eSIM Go events (its V3 callbacks): verify, store once, answer at once, process in the
background, retry what failed, forget them after a month."""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import enum
import hashlib
import hmac
import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from db.base import utcnow
from db.models import CallbackEvent, Esim, EsimBundle
from services.esimgo.models import parse_datetime, to_iccid, to_int
from services.messenger import Messenger
from services.metrics import Metrics
from services.notifications import Notifier, load_bundles
from services.tracking import TrackingService, assignment_key
from services.usage import FINISHED_STATES

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-Signature-SHA256"
# Stored bodies are kept this long (for support and for spotting a replay), then deleted.
KEEP_EVENTS = timedelta(days=30)
PRUNE_EVERY_SECONDS = 24 * 60 * 60


class Kind(enum.StrEnum):
    UTILISATION = "Utilisation"
    FIRST_USE = "FirstUse"
    LOW_BALANCE = "LowBalance"
    INSUFFICIENT_BALANCE = "InsufficientBalance"
    PROFILE_STATUS = "ProfileStatusChange"
    DELETION_SCHEDULED = "esim.deletion_scheduled"
    DELETED = "esim.deleted"
    OTHER = "other"


_ALERT_TYPES = {
    "utilisation": Kind.UTILISATION,
    "utilization": Kind.UTILISATION,
    "usage": Kind.UTILISATION,  # the v2.0 name
    "firstuse": Kind.FIRST_USE,
    "first_use": Kind.FIRST_USE,
    "lowbalance": Kind.LOW_BALANCE,
    "balancethreshold": Kind.LOW_BALANCE,
    "insufficientbalance": Kind.INSUFFICIENT_BALANCE,
}
_EVENTS = {"esim.deletion_scheduled": Kind.DELETION_SCHEDULED, "esim.deleted": Kind.DELETED}
_NEEDS_ICCID = frozenset(
    {Kind.UTILISATION, Kind.FIRST_USE, Kind.PROFILE_STATUS, Kind.DELETION_SCHEDULED, Kind.DELETED}
)


class MalformedCallbackError(ValueError):
    """Not JSON, or JSON of a shape eSIM Go does not send."""


@dataclass(frozen=True, slots=True)
class ParsedCallback:
    kind: Kind
    name: str  # the alertType / event exactly as sent, for the log
    iccid: str | None
    payload: Mapping[str, Any]


def verify_signature(body: bytes, signature: str | None, key: str) -> str | None:
    """Which encoding ("hex" or "base64") of HMAC-SHA256(body, key) the header holds, else None.

    eSIM Go's documents disagree on the encoding, so both are accepted, compared in constant time.
    """
    if not signature or not key:
        return None
    given = signature.strip()
    if given.lower().startswith("sha256="):
        given = given[len("sha256=") :]
    digest = hmac.new(key.encode(), body, hashlib.sha256).digest()
    with contextlib.suppress(ValueError):
        if hmac.compare_digest(bytes.fromhex(given), digest):
            return "hex"
    with contextlib.suppress(binascii.Error, ValueError):
        if hmac.compare_digest(base64.b64decode(given, validate=True), digest):
            return "base64"
    return None


def sign(body: bytes, key: str, encoding: str = "hex") -> str:
    """The header value eSIM Go would send (for tests and tools)."""
    digest = hmac.new(key.encode(), body, hashlib.sha256).digest()
    return digest.hex() if encoding == "hex" else base64.b64encode(digest).decode()


def _kind(payload: Mapping[str, Any]) -> tuple[Kind, str]:
    event = payload.get("event")
    if isinstance(event, str) and event:
        return _EVENTS.get(event.strip().lower(), Kind.OTHER), event
    alert = payload.get("alertType")
    if isinstance(alert, str) and alert:
        normalised = alert.strip().lower().replace(" ", "")
        if "profile" in normalised:
            return Kind.PROFILE_STATUS, alert
        return _ALERT_TYPES.get(normalised, Kind.OTHER), alert
    if payload.get("profileStatus"):
        return Kind.PROFILE_STATUS, "profileStatus"
    raise MalformedCallbackError("neither alertType, event nor profileStatus")


def parse_callback(body: bytes) -> ParsedCallback:
    """Decode and classify; ICCIDs become exact strings even when sent as JSON numbers."""
    try:
        # Python ints are exact; floats go to Decimal so old float quantities stay exact too.
        payload = json.loads(body.decode("utf-8"), parse_float=Decimal)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise MalformedCallbackError(f"not JSON: {exc}") from None
    if not isinstance(payload, dict):
        raise MalformedCallbackError("not a JSON object")
    kind, name = _kind(payload)
    raw_iccid = payload.get("iccid")
    iccid = to_iccid(raw_iccid) or None
    if kind in _NEEDS_ICCID and not iccid:
        raise MalformedCallbackError(f"{name} without an iccid")
    if kind in (Kind.UTILISATION, Kind.FIRST_USE) and not isinstance(payload.get("bundle"), dict):
        raise MalformedCallbackError(f"{name} without a bundle object")
    if kind is Kind.PROFILE_STATUS and not isinstance(payload.get("profileStatus"), str):
        raise MalformedCallbackError("profile status change without profileStatus")
    return ParsedCallback(kind=kind, name=name, iccid=iccid, payload=payload)


class Receipt(enum.StrEnum):
    ACCEPTED = "accepted"
    DUPLICATE = "duplicate"
    UNAUTHORIZED = "unauthorized"
    MALFORMED = "malformed"


@dataclass(frozen=True, slots=True)
class ReceiveResult:
    receipt: Receipt
    event_id: int | None = None
    detail: str = ""


class EsimGoEventService:
    """Stores verified callbacks (once per body) and applies them to eSIMs and notifications."""

    def __init__(
        self,
        session_factory: async_sessionmaker[AsyncSession],
        api_key: str,
        tracking: TrackingService,
        notifier: Notifier,
        *,
        metrics: Metrics | None = None,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self._session_factory = session_factory
        self._api_key = api_key
        self._tracking = tracking
        self._notifier = notifier
        self._metrics = metrics
        self._clock = clock
        self.last_received_at: datetime | None = None

    async def receive(self, body: bytes, signature: str | None) -> ReceiveResult:
        """Check and store one request; nothing is stored unless the signature is right."""
        result = await self._receive(body, signature)
        if self._metrics is not None:
            self._metrics.callback_event(result.receipt.value)
        return result

    async def _receive(self, body: bytes, signature: str | None) -> ReceiveResult:
        encoding = verify_signature(body, signature, self._api_key)
        if encoding is None:
            log.warning("eSIM Go callback rejected: %s signature", "bad" if signature else "no")
            return ReceiveResult(Receipt.UNAUTHORIZED)
        try:
            parsed = parse_callback(body)
        except MalformedCallbackError as exc:
            log.warning("eSIM Go callback refused (%s): %.500r", exc, body)
            return ReceiveResult(Receipt.MALFORMED, detail=str(exc))
        body_hash = hashlib.sha256(body).hexdigest()
        async with self._session_factory() as session:
            event = CallbackEvent(
                body_hash=body_hash,
                body=body.decode("utf-8"),
                kind=parsed.name[:64],
                iccid=parsed.iccid[:32] if parsed.iccid else None,
                received_at=self._clock(),
                processed=False,
            )
            session.add(event)
            try:
                await session.commit()
            except IntegrityError:
                await session.rollback()
                log.info("eSIM Go callback %s… received again; ignored", body_hash[:12])
                return ReceiveResult(Receipt.DUPLICATE)
        self.last_received_at = self._clock()
        log.info(
            "eSIM Go callback %s for %s stored (signature %s)", parsed.name, parsed.iccid, encoding
        )
        return ReceiveResult(Receipt.ACCEPTED, event.id)

    async def pending_ids(self) -> list[int]:
        async with self._session_factory() as session:
            result = await session.scalars(
                select(CallbackEvent.id)
                .where(CallbackEvent.processed.is_(False))
                .order_by(CallbackEvent.id)
            )
            return list(result)

    async def prune(self) -> int:
        """Delete events received more than KEEP_EVENTS ago, done or not; returns how many."""
        async with self._session_factory() as session:
            result = await session.execute(
                delete(CallbackEvent).where(
                    CallbackEvent.received_at < self._clock() - KEEP_EVENTS
                )
            )
            await session.commit()
        pruned = int(getattr(result, "rowcount", 0) or 0)
        if pruned:
            log.info("deleted %d eSIM Go callback(s) older than %d days", pruned, KEEP_EVENTS.days)
        return pruned

    async def process(self, event_id: int, messenger: Messenger) -> bool:
        """Apply a stored event; True once it is done (also for ones that need nothing)."""
        async with self._session_factory() as session:
            event = await session.get(CallbackEvent, event_id)
            if event is None or event.processed:
                return True
            body, body_hash = event.body, event.body_hash
        try:
            parsed = parse_callback(body.encode("utf-8"))
            note = await self._apply(parsed, body_hash, messenger)
        except Exception as exc:
            log.exception("eSIM Go callback %s failed; kept for a retry", event_id)
            await self._mark(event_id, processed=False, error=f"{type(exc).__name__}: {exc}")
            return False
        await self._mark(event_id, processed=True, error=note)
        return True

    async def _mark(self, event_id: int, *, processed: bool, error: str | None) -> None:
        async with self._session_factory() as session:
            event = await session.get(CallbackEvent, event_id)
            if event is None:
                return
            event.processed = processed
            event.processed_at = self._clock() if processed else None
            event.error = error[:2000] if error else None
            await session.commit()

    async def _apply(
        self, parsed: ParsedCallback, body_hash: str, messenger: Messenger
    ) -> str | None:
        """Returns a note stored with the event (why nothing happened), or None."""
        if parsed.kind is Kind.LOW_BALANCE:
            await self._notifier.admin_alert_once(
                messenger, f"callback:{body_hash}", _low_balance_text(parsed.payload)
            )
            return None
        if parsed.kind is Kind.INSUFFICIENT_BALANCE:
            await self._notifier.admin_alert_once(
                messenger,
                f"callback:{body_hash}",
                "⛔ eSIM Go refused a purchase: insufficient balance. "
                "Top up the eSIM Go account now; paid orders are waiting.",
            )
            return None
        if parsed.kind is Kind.OTHER:
            log.warning("eSIM Go callback of unknown type %r kept, not acted on", parsed.name)
            return f"unknown type {parsed.name}"
        assert parsed.iccid is not None  # parse_callback guarantees it for these kinds
        async with self._session_factory() as session:
            esim = await TrackingService.esim(session, parsed.iccid)
            if esim is None:
                log.warning("eSIM Go callback %s for unknown ICCID %s", parsed.name, parsed.iccid)
                return "unknown iccid"
            if parsed.kind in (Kind.UTILISATION, Kind.FIRST_USE):
                await self._apply_usage(session, esim, parsed)
            elif parsed.kind is Kind.PROFILE_STATUS:
                self._apply_profile(esim, parsed.payload)
            elif parsed.kind is Kind.DELETION_SCHEDULED:
                when = parse_datetime(parsed.payload.get("date")) or self._clock()
                esim.deletion_scheduled_at = when
            elif parsed.kind is Kind.DELETED:
                esim.deleted_at = parse_datetime(parsed.payload.get("date")) or self._clock()
                esim.tracking = False
            await session.commit()
            bundles = await load_bundles(session, esim.iccid)
        if parsed.kind is Kind.DELETION_SCHEDULED and esim.deletion_scheduled_at is not None:
            await self._notifier.deletion_scheduled(messenger, esim, esim.deletion_scheduled_at)
        elif parsed.kind is not Kind.DELETED:
            await self._notifier.evaluate(messenger, esim, bundles)
        return None

    async def _apply_usage(
        self, session: AsyncSession, esim: Esim, parsed: ParsedCallback
    ) -> None:
        raw = parsed.payload["bundle"]
        name = str(raw.get("name") or "")
        key = assignment_key(str(raw.get("reference") or ""), str(raw.get("id") or ""), "")
        rows = await load_bundles(session, esim.iccid)
        row = next((r for r in rows if key and r.assignment_key == key), None)
        if row is None:
            # V2 payloads have no reference: the newest live copy of that bundle it is.
            same_name = [r for r in rows if r.bundle_name == name]
            live = [r for r in same_name if r.state not in FINISHED_STATES]
            candidates = live or same_name
            row = candidates[-1] if candidates else None
        if row is None:
            row = EsimBundle(
                iccid=esim.iccid,
                assignment_key=key or name[:128],
                bundle_name=name,
                state="active",
            )
            session.add(row)
        unlimited = bool(raw.get("unlimited")) or row.unlimited
        row.unlimited = unlimited
        initial = raw.get("initialQuantity")
        remaining = raw.get("remainingQuantity")
        if initial is not None and to_int(initial) >= 0:
            row.initial_bytes = to_int(initial)
        if remaining is not None and to_int(remaining) >= 0:
            value = to_int(remaining)
            # Deliveries may come out of order: usage only ever grows.
            row.remaining_bytes = (
                value if row.remaining_bytes is None else min(value, row.remaining_bytes)
            )
        start = parse_datetime(raw.get("startTime"))
        end = parse_datetime(raw.get("endTime"))
        if start is not None:
            row.start_at = start
        elif row.start_at is None:
            row.start_at = self._clock()
        if end is not None:
            row.end_at = end
        elif row.end_at is None:
            row.end_at = self._tracking.plan_end(name, row.start_at)
        if row.state not in FINISHED_STATES:
            used_up = not unlimited and row.initial_bytes and row.remaining_bytes == 0
            row.state = "depleted" if used_up else "active"
        esim.tracking = True

    def _apply_profile(self, esim: Esim, payload: Mapping[str, Any]) -> None:
        status = str(payload.get("profileStatus")).strip()
        esim.profile_status = status
        if status.lower() == "installed" and esim.first_installed_at is None:
            stamp = payload.get("timestamp") or payload.get("date") or payload.get("dateTime")
            esim.first_installed_at = parse_datetime(stamp) or self._clock()


def _low_balance_text(payload: Mapping[str, Any]) -> str:
    info = payload.get("balanceInfo")
    info = info if isinstance(info, Mapping) else {}
    balance = info.get("balance", "?")
    threshold = info.get("threshold", "?")
    percent = info.get("thresholdPercentRemaining")
    tail = f", {Decimal(str(percent)):.0f} % of the threshold left" if percent is not None else ""
    return (
        f"⚠️ eSIM Go balance is low: {balance} (alert threshold {threshold}{tail}). "
        "Top up the eSIM Go account so sales do not stop."
    )


class EsimGoEventWorker:
    """Processes stored callbacks one at a time, after the HTTP answer has gone out; one whose
    processing failed is tried again after a growing pause, while the bot runs."""

    def __init__(
        self,
        service: EsimGoEventService,
        messenger: Messenger,
        *,
        first_retry_seconds: float = 30.0,
        max_retry_seconds: float = 3600.0,
    ) -> None:
        self._service = service
        self._messenger = messenger
        self._first_retry = first_retry_seconds
        self._max_retry = max_retry_seconds
        self._queue: asyncio.Queue[int] = asyncio.Queue()
        self._failures: dict[int, int] = {}  # event id → failed attempts so far
        self._retries: dict[int, asyncio.TimerHandle] = {}
        self._tasks: list[asyncio.Task[None]] = []

    def enqueue(self, event_id: int) -> None:
        self._retries.pop(event_id, None)
        self._queue.put_nowait(event_id)

    async def start(self) -> None:
        """Forget month-old events, queue what an earlier run left unprocessed, start working."""
        await self._service.prune()
        for event_id in await self._service.pending_ids():
            self.enqueue(event_id)
        if not self._tasks:
            self._tasks = [
                asyncio.create_task(self._run(), name="esimgo-events"),
                asyncio.create_task(self._prune_daily(), name="esimgo-events-prune"),
            ]

    async def _run(self) -> None:
        while True:
            event_id = await self._queue.get()
            try:
                done = await self._service.process(event_id, self._messenger)
            except Exception:
                log.exception("eSIM Go callback %s could not be processed", event_id)
                done = False
            try:
                if done:
                    self._failures.pop(event_id, None)
                else:
                    self._retry_later(event_id)
            finally:
                self._queue.task_done()

    def _retry_later(self, event_id: int) -> None:
        failures = self._failures.get(event_id, 0) + 1
        self._failures[event_id] = failures
        delay = min(self._first_retry * 2 ** (failures - 1), self._max_retry)
        log.warning(
            "eSIM Go callback %s failed %d time(s); next try in %.0f s", event_id, failures, delay
        )
        loop = asyncio.get_running_loop()
        self._retries[event_id] = loop.call_later(delay, self.enqueue, event_id)

    async def _prune_daily(self) -> None:
        while True:
            await asyncio.sleep(PRUNE_EVERY_SECONDS)
            try:
                await self._service.prune()
            except Exception:
                log.exception("old eSIM Go callbacks could not be deleted; next try tomorrow")

    async def wait_idle(self) -> None:
        """Until every queued callback has been processed once (tests, graceful stop)."""
        await self._queue.join()

    async def stop(self) -> None:
        for timer in self._retries.values():
            timer.cancel()
        self._retries.clear()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
