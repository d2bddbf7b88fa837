from __future__ import annotations

import enum
from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal

from sqlalchemy import BigInteger, Enum, ForeignKey, Integer, Numeric, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from db.base import Base, UTCDateTime, utcnow


class OrderStatus(enum.StrEnum):
    """DESIGN.md §3; `refund_due` is a fiat order whose refund an admin must make by hand."""

    AWAITING_PAYMENT = "awaiting_payment"
    CANCELLED = "cancelled"
    PAID = "paid"
    FULFILLING = "fulfilling"
    DELIVERED = "delivered"
    FAILED = "failed"
    REFUNDED = "refunded"
    REFUND_DUE = "refund_due"


class OrderKind(enum.StrEnum):
    NEW = "new"  # a fresh eSIM
    TOPUP = "topup"  # a bundle onto the user's existing eSIM (`iccid`)


def _stored_as_text(kind: type[enum.StrEnum], length: int) -> Enum:
    """The enum's values in the plain string column the migrations made (no native type, no
    CHECK constraint: a new member needs no migration)."""
    return Enum(
        kind,
        native_enum=False,
        create_constraint=False,
        length=length,
        values_callable=lambda members: [member.value for member in members],
    )


class Order(Base):
    """One purchase of one bundle: a new eSIM or a top-up of an existing one."""

    __tablename__ = "orders"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    public_id: Mapped[str] = mapped_column(String(32), unique=True)
    telegram_user_id: Mapped[int] = mapped_column(BigInteger, index=True)
    telegram_username: Mapped[str | None] = mapped_column(String(64))
    chat_id: Mapped[int] = mapped_column(BigInteger)
    language: Mapped[str] = mapped_column(String(8), default="en")
    kind: Mapped[OrderKind] = mapped_column(_stored_as_text(OrderKind, 16), default=OrderKind.NEW)
    bundle_name: Mapped[str] = mapped_column(String(128))
    country_code: Mapped[str | None] = mapped_column(String(8))
    country_name: Mapped[str | None] = mapped_column(String(128))
    cost: Mapped[Decimal] = mapped_column(Numeric(12, 4))
    cost_currency: Mapped[str] = mapped_column(String(8), default="USD")
    # Stars for XTR, minor units (cents) for fiat.
    price: Mapped[int] = mapped_column(Integer)
    price_currency: Mapped[str] = mapped_column(String(8))
    status: Mapped[OrderStatus] = mapped_column(_stored_as_text(OrderStatus, 24), index=True)
    iccid: Mapped[str | None] = mapped_column(String(32), index=True)
    qr_code: Mapped[str | None] = mapped_column(Text)
    activation_code: Mapped[str | None] = mapped_column(String(255))
    smdp_address: Mapped[str | None] = mapped_column(String(255))
    esimgo_order_reference: Mapped[str | None] = mapped_column(String(128), unique=True)
    telegram_payment_charge_id: Mapped[str | None] = mapped_column(String(255), unique=True)
    provider_payment_charge_id: Mapped[str | None] = mapped_column(String(255))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    lease_owner: Mapped[str | None] = mapped_column(String(64))
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime())
    failure_reason: Mapped[str | None] = mapped_column(Text)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # When the invoice went to the user (the dashboard's conversion: invoices sent → paid).
    invoice_sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), index=True)
    # When an admin last sent the order back to fulfilment; its deadline counts from here.
    retried_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    paid_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), index=True)
    # When the eSIM reached the user in Telegram; set apart from `delivered` status so that a
    # failed send is retried without ordering again.
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    refunded_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)

    @property
    def work_started_at(self) -> datetime:
        """When work on the order (re)started, for its deadlines: an admin's retry, else the
        payment."""
        return self.retried_at or self.paid_at or self.created_at

    def mirror(self, status: OrderStatus, values: Mapping[str, object]) -> Order:
        """This object as a guarded transition to `status` setting `values` just wrote its row,
        without reading it back. Only for an object no session holds (it would flush)."""
        for name, value in values.items():
            setattr(self, name, value)
        self.status = status
        return self


class Esim(Base):
    """An eSIM profile a user owns; several orders (the first and top-ups) can point at it."""

    __tablename__ = "esims"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    iccid: Mapped[str] = mapped_column(String(32), unique=True)
    telegram_user_id: Mapped[int] = mapped_column(BigInteger, index=True)
    first_order_id: Mapped[int | None] = mapped_column(ForeignKey("orders.id"))
    smdp_address: Mapped[str | None] = mapped_column(String(255))
    matching_id: Mapped[str | None] = mapped_column(String(255))
    lpa: Mapped[str | None] = mapped_column(Text)
    country_code: Mapped[str | None] = mapped_column(String(8))
    profile_status: Mapped[str | None] = mapped_column(String(32))
    first_installed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_polled_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # False once every bundle is expired/depleted/revoked/lapsed: the poller skips it.
    tracking: Mapped[bool] = mapped_column(default=True)
    deletion_scheduled_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    deleted_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)
