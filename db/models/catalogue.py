from __future__ import annotations

from datetime import datetime

from sqlalchemy import Integer, Text
from sqlalchemy.orm import Mapped, mapped_column

from db.base import Base, UTCDateTime, utcnow


class CatalogueSnapshot(Base):
    """The last catalogue from eSIM Go, as raw JSON, so the bot sells while eSIM Go is down."""

    __tablename__ = "catalogue_snapshots"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    fetched_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, index=True)
    bundle_count: Mapped[int] = mapped_column(Integer)
    payload: Mapped[str] = mapped_column(Text)
