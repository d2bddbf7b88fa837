"""orders and esims

Revision ID: 0002
Revises: 0001
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "orders",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("public_id", sa.String(length=32), nullable=False),
        sa.Column("telegram_user_id", sa.BigInteger(), nullable=False),
        sa.Column("telegram_username", sa.String(length=64), nullable=True),
        sa.Column("chat_id", sa.BigInteger(), nullable=False),
        sa.Column("language", sa.String(length=8), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("bundle_name", sa.String(length=128), nullable=False),
        sa.Column("country_code", sa.String(length=8), nullable=True),
        sa.Column("country_name", sa.String(length=128), nullable=True),
        sa.Column("cost", sa.Numeric(precision=12, scale=4), nullable=False),
        sa.Column("cost_currency", sa.String(length=8), nullable=False),
        sa.Column("price", sa.Integer(), nullable=False),
        sa.Column("price_currency", sa.String(length=8), nullable=False),
        sa.Column("status", sa.String(length=24), nullable=False),
        sa.Column("iccid", sa.String(length=32), nullable=True),
        sa.Column("qr_code", sa.Text(), nullable=True),
        sa.Column("activation_code", sa.String(length=255), nullable=True),
        sa.Column("smdp_address", sa.String(length=255), nullable=True),
        sa.Column("esimgo_order_reference", sa.String(length=128), nullable=True),
        sa.Column("telegram_payment_charge_id", sa.String(length=255), nullable=True),
        sa.Column("provider_payment_charge_id", sa.String(length=255), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_attempt_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("lease_owner", sa.String(length=64), nullable=True),
        sa.Column("lease_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("failure_reason", sa.Text(), nullable=True),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("paid_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("refunded_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_orders")),
        sa.UniqueConstraint(
            "esimgo_order_reference", name=op.f("uq_orders_esimgo_order_reference")
        ),
        sa.UniqueConstraint("public_id", name=op.f("uq_orders_public_id")),
        sa.UniqueConstraint(
            "telegram_payment_charge_id", name=op.f("uq_orders_telegram_payment_charge_id")
        ),
    )
    with op.batch_alter_table("orders", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_orders_iccid"), ["iccid"], unique=False)
        batch_op.create_index(batch_op.f("ix_orders_status"), ["status"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_orders_telegram_user_id"), ["telegram_user_id"], unique=False
        )
    op.create_table(
        "esims",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("iccid", sa.String(length=32), nullable=False),
        sa.Column("telegram_user_id", sa.BigInteger(), nullable=False),
        sa.Column("first_order_id", sa.Integer(), nullable=True),
        sa.Column("smdp_address", sa.String(length=255), nullable=True),
        sa.Column("matching_id", sa.String(length=255), nullable=True),
        sa.Column("lpa", sa.Text(), nullable=True),
        sa.Column("country_code", sa.String(length=8), nullable=True),
        sa.Column("profile_status", sa.String(length=32), nullable=True),
        sa.Column("first_installed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_polled_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("tracking", sa.Boolean(), nullable=False),
        sa.Column("deletion_scheduled_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["first_order_id"], ["orders.id"], name=op.f("fk_esims_first_order_id_orders")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_esims")),
        sa.UniqueConstraint("iccid", name=op.f("uq_esims_iccid")),
    )
    with op.batch_alter_table("esims", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_esims_telegram_user_id"), ["telegram_user_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("esims", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_esims_telegram_user_id"))
    op.drop_table("esims")
    with op.batch_alter_table("orders", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_orders_telegram_user_id"))
        batch_op.drop_index(batch_op.f("ix_orders_status"))
        batch_op.drop_index(batch_op.f("ix_orders_iccid"))
    op.drop_table("orders")
