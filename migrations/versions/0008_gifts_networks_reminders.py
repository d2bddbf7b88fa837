"""gifts, network snapshots, users.reminders_enabled

Revision ID: 0008
Revises: 0003
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "gifts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("order_id", sa.Integer(), nullable=False),
        sa.Column("buyer_id", sa.BigInteger(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=True),
        sa.Column("link_issued_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("iccid", sa.String(length=32), nullable=True),
        sa.Column("claimed_by", sa.BigInteger(), nullable=True),
        sa.Column("claimed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("moved_through_order_id", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["order_id"], ["orders.id"], name=op.f("fk_gifts_order_id_orders")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_gifts")),
        sa.UniqueConstraint("order_id", name=op.f("uq_gifts_order_id")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_gifts_token_hash")),
    )
    with op.batch_alter_table("gifts", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_gifts_buyer_id"), ["buyer_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_gifts_iccid"), ["iccid"], unique=False)
    op.create_table(
        "network_snapshots",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("fetched_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("country_count", sa.Integer(), nullable=False),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_network_snapshots")),
    )
    with op.batch_alter_table("network_snapshots", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_network_snapshots_fetched_at"), ["fetched_at"], unique=False
        )
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("reminders_enabled", sa.Boolean(), server_default=sa.true(), nullable=False)
        )


def downgrade() -> None:
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.drop_column("reminders_enabled")
    with op.batch_alter_table("network_snapshots", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_network_snapshots_fetched_at"))
    op.drop_table("network_snapshots")
    with op.batch_alter_table("gifts", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_gifts_iccid"))
        batch_op.drop_index(batch_op.f("ix_gifts_buyer_id"))
    op.drop_table("gifts")
