from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from db.base import Base, UTCDateTime, utcnow


class StarLedgerEntry(Base):
    """A transaction of the bot's Telegram Stars ledger, once the payment reconciler handled it.

    A refund carries the id of the payment it returns, so an id is unique per direction.
    """

    __tablename__ = "star_ledger"
    __table_args__ = (UniqueConstraint("transaction_id", "direction"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    transaction_id: Mapped[str] = mapped_column(String(255))
    # "in" (a payment to the bot) or "out" (a refund, a withdrawal).
    direction: Mapped[str] = mapped_column(String(8))
    # The other side: "user", "fragment", "telegram_ads"… (Telegram's TransactionPartner type).
    partner: Mapped[str] = mapped_column(String(32))
    telegram_user_id: Mapped[int | None] = mapped_column(BigInteger)
    amount: Mapped[int] = mapped_column(Integer)
    invoice_payload: Mapped[str | None] = mapped_column(String(255))
    transaction_date: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    # What the reconciler found or did (services.payment_reconciler.Outcome).
    outcome: Mapped[str] = mapped_column(String(24))
    seen_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
