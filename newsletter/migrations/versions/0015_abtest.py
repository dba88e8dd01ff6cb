"""Subject-line tests: ``subject_tests`` and each ledger row's and batch's subject variant.

Revision ID: 0015_abtest
Revises: 0014_sequences
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from newsletter.models.base import UTCDateTime

revision = "0015_abtest"
down_revision = "0014_sequences"  # re-chained after 0014_sequences (merge)
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "subject_tests",
        sa.Column("campaign_id", sa.Integer, nullable=False),
        sa.Column("subjects", sa.JSON, nullable=False),
        sa.Column("share_percent", sa.Integer, nullable=False),
        sa.Column("window_seconds", sa.Integer, nullable=False),
        sa.Column("metric", sa.String(10), nullable=False),
        sa.Column("sample_size", sa.Integer, nullable=False),
        sa.Column("decide_at", UTCDateTime()),
        sa.Column("winner", sa.Integer),
        sa.Column("decided_at", UTCDateTime()),
        sa.Column("note", sa.Text),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["campaign_id"],
            ["campaigns.id"],
            ondelete="CASCADE",
            name="fk_subject_tests_campaign_id_campaigns",
        ),
        sa.PrimaryKeyConstraint("campaign_id", name="pk_subject_tests"),
    )
    op.create_index("ix_subject_tests_decide_at", "subject_tests", ["decide_at"])
    op.add_column("send_batches", sa.Column("variant", sa.SmallInteger, nullable=True))
    op.add_column("deliveries", sa.Column("variant", sa.SmallInteger, nullable=True))
    op.add_column(
        "deliveries",
        sa.Column("in_sample", sa.Boolean, nullable=False, server_default=sa.false()),
    )


def downgrade() -> None:
    with op.batch_alter_table("deliveries") as batch:
        batch.drop_column("in_sample")
        batch.drop_column("variant")
    with op.batch_alter_table("send_batches") as batch:
        batch.drop_column("variant")
    op.drop_index("ix_subject_tests_decide_at", table_name="subject_tests")
    op.drop_table("subject_tests")
