"""Deliverability: the relay that carried each batch, and the warm-up's daily counts.

``subscribers.inactive_since`` marks a subscriber the sunset left out of
sends, and ``campaigns.audience`` says whether a campaign goes to the active
ones (the default), the inactive ones (re-engagement) or all.
``send_batches.relay`` names the relay (or relays, "a → b" after a failover)
that carried a batch, for the campaign report.  ``warmup_days`` counts what
each sending domain sent on each day of its warm-up plan.

Revision ID: 0012_deliverability
Revises: 0011_jobs
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from newsletter.models.base import UTCDateTime

revision = "0012_deliverability"
down_revision = "0011_jobs"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("send_batches", sa.Column("relay", sa.String(200), nullable=True))
    op.add_column("subscribers", sa.Column("inactive_since", UTCDateTime(), nullable=True))
    op.add_column(
        "campaigns",
        sa.Column("audience", sa.String(20), nullable=False, server_default="active"),
    )
    op.create_table(
        "warmup_days",
        sa.Column("domain", sa.String(255), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("sent", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("domain", "day", name="pk_warmup_days"),
    )


def downgrade() -> None:
    op.drop_table("warmup_days")
    with op.batch_alter_table("campaigns") as batch:
        batch.drop_column("audience")
    with op.batch_alter_table("subscribers") as batch:
        batch.drop_column("inactive_since")
    with op.batch_alter_table("send_batches") as batch:
        batch.drop_column("relay")
