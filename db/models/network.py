from __future__ import annotations

from datetime import datetime

from sqlalchemy import Integer, Text
from sqlalchemy.orm import Mapped, mapped_column

from db.base import Base, UTCDateTime, utcnow


class NetworkSnapshot(Base):
    """eSIM Go's networks per country as raw JSON, fetched with the catalogue."""

    __tablename__ = "network_snapshots"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    fetched_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, index=True)
    country_count: Mapped[int] = mapped_column(Integer)
    payload: Mapped[str] = mapped_column(Text)
