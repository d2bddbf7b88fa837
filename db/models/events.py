"""What happened to an order, one row per guarded step: when, from which status to which, who."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from db.base import Base, UTCDateTime, utcnow

# Who moved an order: the fulfilment worker, its buyer, the payments reconciler, or an
# admin (`admin_actor`).
WORKER = "worker"
USER = "user"
RECONCILER = "reconciler"


def admin_actor(admin_id: int) -> str:
    return f"admin:{admin_id}"


class OrderEvent(Base):
    """Written in the transaction of the step it records; `note` says why when it matters."""

    __tablename__ = "order_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id"), index=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    from_status: Mapped[str | None] = mapped_column(String(24))
    to_status: Mapped[str] = mapped_column(String(24))
    actor: Mapped[str] = mapped_column(String(64))
    note: Mapped[str | None] = mapped_column(Text)
