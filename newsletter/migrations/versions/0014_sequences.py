"""Welcome and drip sequences (steps own hidden campaigns) and local-time sending.

Revision ID: 0014_sequences
Revises: 0013_automation
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from newsletter.models.base import UTCDateTime

revision = "0014_sequences"
down_revision = "0013_automation"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "sequences",
        sa.Column("id", sa.Integer, nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("trigger", sa.String(20), nullable=False),
        sa.Column("trigger_value", sa.String(100)),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("starts_from", UTCDateTime, nullable=False),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("ticked_at", UTCDateTime),
        sa.PrimaryKeyConstraint("id", name="pk_sequences"),
        sa.UniqueConstraint("name", name="uq_sequences_name"),
    )
    op.create_table(
        "sequence_steps",
        sa.Column("id", sa.Integer, nullable=False),
        sa.Column("sequence_id", sa.Integer, nullable=False),
        sa.Column("position", sa.Integer, nullable=False),
        sa.Column("issue_id", sa.Integer, nullable=False),
        sa.Column("delay_minutes", sa.Integer, nullable=False),
        sa.Column("campaign_id", sa.Integer, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_sequence_steps"),
        sa.ForeignKeyConstraint(
            ["sequence_id"], ["sequences.id"], ondelete="CASCADE",
            name="fk_sequence_steps_sequence_id_sequences",
        ),
        sa.ForeignKeyConstraint(
            ["issue_id"], ["issues.id"], ondelete="RESTRICT",
            name="fk_sequence_steps_issue_id_issues",
        ),
        sa.UniqueConstraint("sequence_id", "position", name="uq_sequence_steps_sequence_id"),
        sa.UniqueConstraint("campaign_id", name="uq_sequence_steps_campaign_id"),
    )
    op.create_table(
        "sequence_enrolments",
        sa.Column("id", sa.Integer, nullable=False),
        sa.Column("sequence_id", sa.Integer, nullable=False),
        sa.Column("subscriber_id", sa.Integer, nullable=False),
        sa.Column("triggered_at", UTCDateTime, nullable=False),
        sa.Column("enrolled_at", UTCDateTime, nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("stopped_reason", sa.Text),
        sa.PrimaryKeyConstraint("id", name="pk_sequence_enrolments"),
        sa.ForeignKeyConstraint(
            ["sequence_id"], ["sequences.id"], ondelete="CASCADE",
            name="fk_sequence_enrolments_sequence_id_sequences",
        ),
        sa.ForeignKeyConstraint(
            ["subscriber_id"], ["subscribers.id"], ondelete="CASCADE",
            name="fk_sequence_enrolments_subscriber_id_subscribers",
        ),
        sa.UniqueConstraint(
            "sequence_id", "subscriber_id", name="uq_sequence_enrolments_sequence_id"
        ),
    )
    op.create_index(
        "ix_sequence_enrolments_subscriber_id", "sequence_enrolments", ["subscriber_id"]
    )
    # Plain ADD COLUMN (nullable, no constraint): no table rebuild on SQLite.
    op.add_column("campaigns", sa.Column("sequence_id", sa.Integer))
    op.add_column("campaigns", sa.Column("local_date", sa.Date))
    op.add_column("campaigns", sa.Column("local_time", sa.String(5)))
    op.create_index("ix_campaigns_sequence_id", "campaigns", ["sequence_id"])
    op.add_column("subscribers", sa.Column("time_zone", sa.String(64)))
    # the sequence sweep looks up recent confirmations every 30 s
    op.create_index("ix_subscribers_confirmed_at", "subscribers", ["confirmed_at"])
    op.add_column("subscriber_topics", sa.Column("created_at", UTCDateTime))


def downgrade() -> None:
    with op.batch_alter_table("subscriber_topics") as batch:
        batch.drop_column("created_at")
    op.drop_index("ix_subscribers_confirmed_at", table_name="subscribers")
    with op.batch_alter_table("subscribers") as batch:
        batch.drop_column("time_zone")
    op.drop_index("ix_campaigns_sequence_id", table_name="campaigns")
    with op.batch_alter_table("campaigns") as batch:
        batch.drop_column("local_time")
        batch.drop_column("local_date")
        batch.drop_column("sequence_id")
    op.drop_index("ix_sequence_enrolments_subscriber_id", table_name="sequence_enrolments")
    op.drop_table("sequence_enrolments")
    op.drop_table("sequence_steps")
    op.drop_table("sequences")
