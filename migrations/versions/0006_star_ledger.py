"""star ledger: the Telegram Stars transactions the payment reconciler has handled

Revision ID: 0006
Revises: 0003
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "star_ledger",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("transaction_id", sa.String(length=255), nullable=False),
        sa.Column("direction", sa.String(length=8), nullable=False),
        sa.Column("partner", sa.String(length=32), nullable=False),
        sa.Column("telegram_user_id", sa.BigInteger(), nullable=True),
        sa.Column("amount", sa.Integer(), nullable=False),
        sa.Column("invoice_payload", sa.String(length=255), nullable=True),
        sa.Column("transaction_date", sa.DateTime(timezone=True), nullable=False),
        sa.Column("outcome", sa.String(length=24), nullable=False),
        sa.Column("seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_star_ledger")),
        sa.UniqueConstraint(
            "transaction_id", "direction", name=op.f("uq_star_ledger_transaction_id")
        ),
    )
    with op.batch_alter_table("star_ledger", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_star_ledger_transaction_date"), ["transaction_date"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("star_ledger", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_star_ledger_transaction_date"))
    op.drop_table("star_ledger")
