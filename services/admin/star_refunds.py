"""Whether Telegram already refunded a Stars payment, read fresh from its Stars ledger (the
same getStarTransactions the payment reconciler reads): a refund whose answer was lost, or
one an admin made in Telegram by hand, is known there before our tables know it."""

from __future__ import annotations

from datetime import datetime

from services.payment_reconciler import OVERLAP, PAGE_SIZE, USER, LedgerEntry, StarLedger


async def find_refund(
    ledger: StarLedger, charge_id: str, paid_at: datetime | None
) -> LedgerEntry | None:
    """The ledger's refund of the payment `charge_id`, or None when it holds none.

    Telegram lists the newest first: pages are read until one reaches back before the payment
    (a refund comes after it); listed oldest first, the whole ledger is read. Raises
    MessengerError when Telegram cannot be asked."""
    offset = 0
    stop_before = paid_at - OVERLAP if paid_at is not None else None
    while True:
        page = await ledger.transactions(offset, PAGE_SIZE)
        for entry in page:
            if entry.id == charge_id and not entry.incoming and entry.partner == USER:
                return entry
        newest_first = len(page) < 2 or page[0].date >= page[-1].date
        reached = stop_before is not None and any(e.date < stop_before for e in page)
        if len(page) < PAGE_SIZE or (newest_first and reached):
            return None
        offset += len(page)
