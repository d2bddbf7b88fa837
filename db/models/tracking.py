from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Boolean, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from db.base import Base, UTCDateTime, utcnow


class EsimBundle(Base):
    """One bundle assignment on an eSIM, as eSIM Go last reported it."""

    __tablename__ = "esim_bundles"
    __table_args__ = (UniqueConstraint("iccid", "assignment_key"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    iccid: Mapped[str] = mapped_column(String(32), index=True)
    # eSIM Go's assignment reference (or id); falls back to the bundle name when absent.
    assignment_key: Mapped[str] = mapped_column(String(128))
    bundle_name: Mapped[str] = mapped_column(String(128))
    state: Mapped[str] = mapped_column(String(24))
    unlimited: Mapped[bool] = mapped_column(Boolean, default=False)
    initial_bytes: Mapped[int | None] = mapped_column(BigInteger)
    remaining_bytes: Mapped[int | None] = mapped_column(BigInteger)
    assigned_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    start_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    end_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)


class NotificationSent(Base):
    """A notification already sent; the unique key makes each one go out once."""

    __tablename__ = "notifications_sent"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    dedup_key: Mapped[str] = mapped_column(String(255), unique=True)
    telegram_user_id: Mapped[int | None] = mapped_column(BigInteger)
    sent_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class CallbackEvent(Base):
    """An eSIM Go callback as received; stored before processing so nothing is lost."""

    __tablename__ = "callback_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    body_hash: Mapped[str] = mapped_column(String(64), unique=True)
    body: Mapped[str] = mapped_column(Text)
    kind: Mapped[str | None] = mapped_column(String(64))
    iccid: Mapped[str | None] = mapped_column(String(32), index=True)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    processed: Mapped[bool] = mapped_column(Boolean, default=False, index=True)
    processed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    error: Mapped[str | None] = mapped_column(Text)
