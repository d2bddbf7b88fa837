from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from db.base import Base, UTCDateTime, utcnow


class GiftStatus(enum.StrEnum):
    PENDING = "pending"  # paid as a gift; the link (once issued) can be claimed
    CLAIMED = "claimed"  # someone else opened the link first: the eSIM is theirs
    TAKEN_BACK = "taken_back"  # the buyer kept it; the link no longer works


class Gift(Base):
    """An order bought as a gift: the hash of its claim link and who claimed it, and when."""

    __tablename__ = "gifts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id"), unique=True)
    buyer_id: Mapped[int] = mapped_column(BigInteger, index=True)
    status: Mapped[str] = mapped_column(String(16), default=GiftStatus.PENDING.value)
    # SHA-256 of the claim token, hex; the token itself is never stored. A new link replaces it.
    token_hash: Mapped[str | None] = mapped_column(String(64), unique=True)
    link_issued_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    iccid: Mapped[str | None] = mapped_column(String(32), index=True)
    # Who ended the gift (the claimant, or the buyer taking it back), and when.
    claimed_by: Mapped[int | None] = mapped_column(BigInteger)
    claimed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # The claim moved the buyer's orders on the eSIM up to this id: they were paid by the buyer.
    moved_through_order_id: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)
