"""Telegram's Stars ledger is the truth about Stars: reconcile our orders against it.

A payment is acknowledged to Telegram before or while we store it (long polling confirms the
update with the next getUpdates; a crash, a deploy or a database failure can fall in between),
so the update alone cannot be trusted to arrive. At start and every few minutes the reconciler
reads the ledger (`getStarTransactions`) as far as what it handled before, and for
every incoming invoice payment whose charge we never recorded: its payload names an order of
the payer → recorded paid (the fulfilment worker delivers it) or, when that order can no
longer be served, stored for a refund (the worker refunds it and tells the payer); a payload
naming no order of the payer → the same refund, and the admins are alerted. A refund we
recorded that the ledger does not hold is reported to the admins.
"""

from __future__ import annotations

import asyncio
import enum
import html
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from db.base import utcnow
from db.models import StarLedgerEntry
from db.models.events import RECONCILER
from db.repositories.star_ledger import INCOMING, OUTGOING, StarLedgerRepository
from services.admin_alerts import AdminAlerts
from services.messenger import Messenger
from services.orders import OrderService, PaymentOutcome, ReceivedPayment
from services.pricing import STARS

log = logging.getLogger(__name__)

PAGE_SIZE = 100  # getStarTransactions' largest page
# Pages are read back past the newest transaction already handled by this much: a transaction
# that shows up in the ledger a little after a newer one is still found.
OVERLAP = timedelta(minutes=10)
# A refund recorded this recently may not be in the ledger we just read (another replica's
# clock, the ledger catching up): it is checked on a later pass.
REFUND_SETTLE = timedelta(minutes=1)
USER = "user"  # TransactionPartnerUser: a payment from a user, or a refund to one


@dataclass(frozen=True, slots=True)
class LedgerEntry:
    """One Telegram Stars transaction (StarTransaction). A refund has its payment's id."""

    id: str
    amount: int
    date: datetime
    incoming: bool
    partner: str  # the TransactionPartner's type: "user", "fragment", …
    user_id: int | None = None
    invoice_payload: str | None = None  # only for invoice payments (and their refunds)


class StarLedger(Protocol):
    async def transactions(self, offset: int, limit: int) -> Sequence[LedgerEntry]:
        """Up to `limit` transactions after skipping `offset`, in the order Telegram lists them."""
        ...


class Outcome(enum.StrEnum):
    KNOWN = "known"  # its update recorded it already
    RECORDED = "recorded"  # recorded paid now: fulfilment follows
    REFUND = "refund"  # stored as failed: the fulfilment worker refunds it
    UNKNOWN = "unknown"  # its payload names no order of the payer: refund, admins alerted
    REFUNDED = "refunded"  # Telegram shows it refunded already: nothing to do
    OTHER = "other"  # not an invoice payment: a refund, a withdrawal…


@dataclass(slots=True)
class Reconciliation:
    """The counts of one pass, as logged."""

    read: int = 0
    pages: int = 0
    recorded: int = 0
    refunds: int = 0  # payments stored now to be refunded (unknown ones included)
    unknown: int = 0
    missing_refunds: int = 0  # refunds we recorded that the ledger does not hold

    def count(self, outcome: Outcome) -> None:
        if outcome is Outcome.RECORDED:
            self.recorded += 1
        if outcome in (Outcome.REFUND, Outcome.UNKNOWN):
            self.refunds += 1
        if outcome is Outcome.UNKNOWN:
            self.unknown += 1


class PaymentReconciler:
    """Runs one pass at start and then every `interval_seconds`; one replica at a time."""

    def __init__(
        self,
        session_factory: async_sessionmaker[AsyncSession],
        ledger: StarLedger,
        orders: OrderService,
        alerts: AdminAlerts,
        messenger: Messenger,
        *,
        interval_seconds: float,
        fulfilment_wake: asyncio.Event,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self._session_factory = session_factory
        self._ledger = ledger
        self._orders = orders
        self._alerts = alerts
        self._messenger = messenger
        self._interval = interval_seconds
        self._fulfilment_wake = fulfilment_wake
        self.clock = clock  # what "now" is for a pass (tests run a pass minutes later)

    async def run(self) -> None:
        """Reconcile now and then every interval, until cancelled; a failed pass is retried."""
        while True:
            try:
                await self.reconcile_once()
            except Exception:
                log.exception("payment reconciliation failed; next try in %.0f s", self._interval)
            await asyncio.sleep(self._interval)

    async def reconcile_once(self) -> Reconciliation:
        """One pass over the ledger's new transactions, then the refund check; logs one line."""
        started = self.clock()
        async with self._session_factory() as session:
            ledger = StarLedgerRepository(session)
            oldest, newest = await ledger.date_range()
            handled = await ledger.count()
        entries, pages = await self._read_new(newest - OVERLAP if newest else None, handled)
        summary = Reconciliation(read=len(entries), pages=pages)
        async with self._session_factory() as session:
            known = await StarLedgerRepository(session).known({e.id for e in entries})
        new = [e for e in entries if (e.id, _direction(e)) not in known]
        refunded = {e.id for e in new if not e.incoming and e.partner == USER}
        rows = []
        for entry in new:
            outcome = await self._settle(entry, refunded)
            summary.count(outcome)
            rows.append(_row(entry, outcome, self.clock()))
        await self._remember(rows)
        if summary.recorded or summary.refunds:
            self._fulfilment_wake.set()
        summary.missing_refunds = await self._report_missing_refunds(oldest, started)
        log.info(
            "payments reconciled: %d read (%d pages), %d recorded, %d to refund, %d unknown, "
            "%d refunds missing",
            summary.read,
            summary.pages,
            summary.recorded,
            summary.refunds,
            summary.unknown,
            summary.missing_refunds,
        )
        return summary

    async def _read_new(
        self, stop_before: datetime | None, handled: int
    ) -> tuple[list[LedgerEntry], int]:
        """The transactions not handled yet (and a few that were), oldest first, each once.

        Telegram lists the newest first: pages are read until one reaches back before
        `stop_before` (None: the whole ledger). The Bot API's text says "chronological" instead;
        when the first page shows that order, reading goes on from the `handled` transactions
        already seen (less a page, for ones listed late) to the end."""
        found: dict[tuple[str, str], LedgerEntry] = {}
        offset = pages = 0
        forward = False
        while True:
            page = await self._ledger.transactions(offset, PAGE_SIZE)
            pages += 1
            if pages == 1 and _oldest_first(page):
                forward = True
                if handled > PAGE_SIZE:
                    offset = handled - PAGE_SIZE
                    continue
            for entry in page:
                # Paging by offset while transactions arrive shows some twice, never skips one.
                found.setdefault((entry.id, _direction(entry)), entry)
            reached = (
                not forward and stop_before is not None and any(e.date < stop_before for e in page)
            )
            if len(page) < PAGE_SIZE or reached:
                break
            offset += len(page)
        # Oldest first, and within one second (a payment, then its refund) as Telegram lists.
        listed = list(found.values())
        oldest_first = listed if forward else listed[::-1]
        return sorted(oldest_first, key=lambda e: e.date), pages

    async def _settle(self, entry: LedgerEntry, refunded: set[str]) -> Outcome:
        payload, user_id = entry.invoice_payload, entry.user_id
        if not entry.incoming or entry.partner != USER or payload is None or user_id is None:
            return Outcome.OTHER
        async with self._session_factory() as session:
            if entry.id in refunded or await StarLedgerRepository(session).refunded(entry.id):
                return Outcome.REFUNDED
            payment = ReceivedPayment(payload, user_id, entry.amount, STARS, entry.id)
            result = await self._orders.record_payment(session, payment, actor=RECONCILER)
            if result.outcome is PaymentOutcome.DUPLICATE:
                return Outcome.KNOWN
            if result.outcome is PaymentOutcome.RECORDED:
                return Outcome.RECORDED
            if await self._orders.owned(session, payload, user_id) is not None:
                return Outcome.REFUND
        await self._alerts.alert(
            self._messenger,
            f"⚠️ A Stars payment names no order of its payer: charge "
            f"<code>{html.escape(entry.id)}</code>, {entry.amount} ⭐ from user {user_id}, "
            f"payload <code>{html.escape(payload)}</code>. It is being refunded.",
        )
        return Outcome.UNKNOWN

    async def _remember(self, rows: list[StarLedgerEntry]) -> None:
        if not rows:
            return
        async with self._session_factory() as session:
            StarLedgerRepository(session).add_all(rows)
            try:
                await session.commit()
            except IntegrityError:
                # Another process handled the same transactions meanwhile: all of it was
                # idempotent, and the next pass reads them again.
                await session.rollback()
                log.warning("star ledger rows were stored by another process meanwhile")

    async def _report_missing_refunds(self, oldest: datetime | None, started: datetime) -> int:
        """Alert (once each) about refunds we recorded that the ledger does not hold, from the
        oldest transaction it holds (Telegram may not keep history for ever)."""
        async with self._session_factory() as session:
            missing = await StarLedgerRepository(session).refunds_not_in_ledger(
                STARS, oldest, started - REFUND_SETTLE
            )
        for refund in missing:
            await self._alerts.alert_once(
                self._messenger,
                f"refund-missing:{refund.charge_id}",
                f"⚠️ Order {html.escape(refund.public_id)} is marked refunded ({refund.amount} ⭐ "
                f"to user {refund.user_id}, charge <code>{html.escape(refund.charge_id)}</code>)"
                ", but Telegram's Stars ledger shows no such refund. Check it and refund by "
                "hand if needed.",
            )
        return len(missing)


def _oldest_first(page: Sequence[LedgerEntry]) -> bool:
    return len(page) > 1 and page[0].date < page[-1].date


def _direction(entry: LedgerEntry) -> str:
    return INCOMING if entry.incoming else OUTGOING


def _row(entry: LedgerEntry, outcome: Outcome, now: datetime) -> StarLedgerEntry:
    return StarLedgerEntry(
        transaction_id=entry.id,
        direction=_direction(entry),
        partner=entry.partner,
        telegram_user_id=entry.user_id,
        amount=entry.amount,
        invoice_payload=entry.invoice_payload,
        transaction_date=entry.date,
        outcome=outcome.value,
        seen_at=now,
    )
