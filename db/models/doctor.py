from __future__ import annotations

from datetime import datetime

from sqlalchemy import Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from db.base import Base, UTCDateTime


class EsimCheck(Base):
    """The eSIM doctor's memory of one eSIM: its last diagnosis, and when a network refresh or
    a support ticket was last asked for (limits that hold across replicas)."""

    __tablename__ = "esim_checks"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    iccid: Mapped[str] = mapped_column(String(32), unique=True)
    checked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    finding: Mapped[str | None] = mapped_column(String(32))
    # What eSIM Go reported, in English for the operators (it goes into support tickets).
    report: Mapped[str | None] = mapped_column(Text)
    refreshed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    ticket_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
