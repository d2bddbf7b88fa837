from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from db.base import Base, UTCDateTime, utcnow


class Broadcast(Base):
    """A message an admin sends to many users; recipients are fixed when sending starts."""

    __tablename__ = "broadcasts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    admin_id: Mapped[int] = mapped_column(BigInteger)
    # Where progress is shown: the admin's chat and the message edited there.
    chat_id: Mapped[int] = mapped_column(BigInteger)
    progress_message_id: Mapped[int | None] = mapped_column(BigInteger)
    text: Mapped[str] = mapped_column(Text)  # HTML; the caption when there is a photo
    photo_file_id: Mapped[str | None] = mapped_column(String(255))
    # "all", "buyers" or "lang:<code>".
    audience: Mapped[str] = mapped_column(String(16))
    # "draft" → "sending" → "done"; a draft can be "cancelled".
    status: Mapped[str] = mapped_column(String(16), index=True)
    # The job sending it and its last sign of life: another process resumes it after a crash.
    runner: Mapped[str | None] = mapped_column(String(64))
    heartbeat_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class BroadcastRecipient(Base):
    """One user's copy of a broadcast: pending → sending → sent / failed / blocked / unknown."""

    __tablename__ = "broadcast_recipients"
    __table_args__ = (Index(None, "broadcast_id", "status"),)

    broadcast_id: Mapped[int] = mapped_column(ForeignKey("broadcasts.id"), primary_key=True)
    telegram_user_id: Mapped[int] = mapped_column(
        BigInteger, primary_key=True, autoincrement=False
    )
    status: Mapped[str] = mapped_column(String(16))
    error: Mapped[str | None] = mapped_column(Text)
    updated_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
