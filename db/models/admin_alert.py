from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from db.base import Base, UTCDateTime, utcnow


class AdminAlert(Base):
    """One alert to one admin, kept until Telegram has taken it (the outbox).

    A keyed alert's row is its dedup record: while it exists the same key is not queued again,
    whether it is still waiting or was delivered."""

    __tablename__ = "admin_alerts"
    __table_args__ = (UniqueConstraint("dedup_key", "chat_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    chat_id: Mapped[int] = mapped_column(BigInteger)
    # Telegram HTML, every interpolated value already escaped.
    text: Mapped[str] = mapped_column(Text)
    dedup_key: Mapped[str | None] = mapped_column(String(255))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    # Due for (another) try from then; a sender claims a row by moving it forward.
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
