"""esim tracking: bundles, notifications, callbacks

Revision ID: 0003
Revises: 0002
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "esim_bundles",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("iccid", sa.String(length=32), nullable=False),
        sa.Column("assignment_key", sa.String(length=128), nullable=False),
        sa.Column("bundle_name", sa.String(length=128), nullable=False),
        sa.Column("state", sa.String(length=24), nullable=False),
        sa.Column("unlimited", sa.Boolean(), nullable=False),
        sa.Column("initial_bytes", sa.BigInteger(), nullable=True),
        sa.Column("remaining_bytes", sa.BigInteger(), nullable=True),
        sa.Column("assigned_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("start_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("end_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_esim_bundles")),
        sa.UniqueConstraint("iccid", "assignment_key", name=op.f("uq_esim_bundles_iccid")),
    )
    with op.batch_alter_table("esim_bundles", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_esim_bundles_iccid"), ["iccid"], unique=False)
    op.create_table(
        "notifications_sent",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("dedup_key", sa.String(length=255), nullable=False),
        sa.Column("telegram_user_id", sa.BigInteger(), nullable=True),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_notifications_sent")),
        sa.UniqueConstraint("dedup_key", name=op.f("uq_notifications_sent_dedup_key")),
    )
    op.create_table(
        "callback_events",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("body_hash", sa.String(length=64), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("kind", sa.String(length=64), nullable=True),
        sa.Column("iccid", sa.String(length=32), nullable=True),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("processed", sa.Boolean(), nullable=False),
        sa.Column("processed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_callback_events")),
        sa.UniqueConstraint("body_hash", name=op.f("uq_callback_events_body_hash")),
    )
    with op.batch_alter_table("callback_events", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_callback_events_iccid"), ["iccid"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_callback_events_processed"), ["processed"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("callback_events", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_callback_events_processed"))
        batch_op.drop_index(batch_op.f("ix_callback_events_iccid"))
    op.drop_table("callback_events")
    op.drop_table("notifications_sent")
    with op.batch_alter_table("esim_bundles", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_esim_bundles_iccid"))
    op.drop_table("esim_bundles")
