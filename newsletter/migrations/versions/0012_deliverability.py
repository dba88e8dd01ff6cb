"""Deliverability: the relay that carried each batch, and the warm-up's daily counts.

``send_batches.relay`` names the relay (or relays, "a → b" after a failover)
that carried a batch, for the campaign report.  ``warmup_days`` counts what
each sending domain sent on each day of its warm-up plan.

Revision ID: 0012_deliverability
Revises: 0007_lean_ledger
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012_deliverability"
down_revision = "0007_lean_ledger"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("send_batches", sa.Column("relay", sa.String(200), nullable=True))
    op.create_table(
        "warmup_days",
        sa.Column("domain", sa.String(255), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("sent", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("domain", "day", name="pk_warmup_days"),
    )


def downgrade() -> None:
    op.drop_table("warmup_days")
    with op.batch_alter_table("send_batches") as batch:
        batch.drop_column("relay")
