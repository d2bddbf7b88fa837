"""esim doctor: last diagnosis, refresh and ticket limits per eSIM

Revision ID: 0007
Revises: 0003
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "esim_checks",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("iccid", sa.String(length=32), nullable=False),
        sa.Column("checked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finding", sa.String(length=32), nullable=True),
        sa.Column("report", sa.Text(), nullable=True),
        sa.Column("refreshed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("ticket_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_esim_checks")),
        sa.UniqueConstraint("iccid", name=op.f("uq_esim_checks_iccid")),
    )


def downgrade() -> None:
    op.drop_table("esim_checks")
