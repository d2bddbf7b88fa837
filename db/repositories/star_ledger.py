"""The Stars ledger as far as it was reconciled, and the refunds it should hold."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import exists, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from db.models import Order, OrderStatus, StarLedgerEntry

INCOMING = "in"
OUTGOING = "out"
# Rows per IN (…) list: well under every backend's limit on bound parameters.
_CHUNK = 500


@dataclass(frozen=True, slots=True)
class RecordedRefund:
    """An order we marked refunded, as the ledger should show it."""

    public_id: str
    charge_id: str
    user_id: int
    amount: int


class StarLedgerRepository:
    """Never commits: the calling service owns the transaction."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def date_range(self) -> tuple[datetime | None, datetime | None]:
        """The oldest and the newest transaction date handled so far."""
        row = (
            await self.session.execute(
                select(
                    func.min(StarLedgerEntry.transaction_date),
                    func.max(StarLedgerEntry.transaction_date),
                )
            )
        ).one()
        return row[0], row[1]

    async def count(self) -> int:
        """How many transactions were handled so far (each is stored once, whatever it was)."""
        return int(await self.session.scalar(select(func.count(StarLedgerEntry.id))) or 0)

    async def known(self, transaction_ids: Collection[str]) -> set[tuple[str, str]]:
        """(id, direction) of these transactions that were handled before."""
        found: set[tuple[str, str]] = set()
        ids = list(transaction_ids)
        for start in range(0, len(ids), _CHUNK):
            result = await self.session.execute(
                select(StarLedgerEntry.transaction_id, StarLedgerEntry.direction).where(
                    StarLedgerEntry.transaction_id.in_(ids[start : start + _CHUNK])
                )
            )
            found.update((row[0], row[1]) for row in result.all())
        return found

    async def refunded(self, transaction_id: str) -> bool:
        """Whether the ledger holds a refund of this payment."""
        result = await self.session.execute(
            select(StarLedgerEntry.id).where(
                StarLedgerEntry.transaction_id == transaction_id,
                StarLedgerEntry.direction == OUTGOING,
            )
        )
        return result.first() is not None

    def add_all(self, entries: Sequence[StarLedgerEntry]) -> None:
        self.session.add_all(entries)

    async def refunds_not_in_ledger(
        self, currency: str, since: datetime | None, until: datetime
    ) -> list[RecordedRefund]:
        """Orders in `currency` marked refunded between `since` and `until` whose refund the
        ledger does not hold."""
        in_ledger = exists().where(
            StarLedgerEntry.transaction_id == Order.telegram_payment_charge_id,
            StarLedgerEntry.direction == OUTGOING,
        )
        query = select(
            Order.public_id, Order.telegram_payment_charge_id, Order.telegram_user_id, Order.price
        ).where(
            Order.status == OrderStatus.REFUNDED.value,
            Order.price_currency == currency,
            Order.telegram_payment_charge_id.is_not(None),
            Order.refunded_at < until,
            ~in_ledger,
        )
        if since is not None:
            query = query.where(Order.refunded_at >= since)
        result = await self.session.execute(query.order_by(Order.id))
        return [RecordedRefund(row[0], str(row[1]), row[2], row[3]) for row in result.all()]
