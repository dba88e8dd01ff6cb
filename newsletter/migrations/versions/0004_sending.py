"""Campaigns, send batches, the per-recipient ledger and tracking events.

Revision ID: 0004_sending
Revises: 0003_subscribers
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from newsletter.models.base import UTCDateTime

revision = "0004_sending"
down_revision = "0003_subscribers"
branch_labels = None
depends_on = None

BIGINT = sa.BigInteger().with_variant(sa.Integer, "sqlite")


def _campaigns() -> None:
    op.create_table(
        "campaigns",
        sa.Column("id", sa.Integer, nullable=False),
        sa.Column("issue_id", sa.Integer, nullable=False),
        sa.Column("name", sa.String(300), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("topics", sa.JSON, nullable=False),
        sa.Column("segment_topics", sa.JSON, nullable=False),
        sa.Column("transport", sa.String(20)),
        sa.Column("scheduled_at", UTCDateTime),
        sa.Column("schedule_id", sa.Integer),
        sa.Column("started_at", UTCDateTime),
        sa.Column("frozen_at", UTCDateTime),
        sa.Column("finished_at", UTCDateTime),
        sa.Column("status_reason", sa.Text),
        sa.Column("consecutive_failures", sa.Integer, nullable=False),
        sa.Column("total_recipients", sa.Integer, nullable=False),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("updated_at", UTCDateTime, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_campaigns"),
        sa.ForeignKeyConstraint(
            ["issue_id"], ["issues.id"], ondelete="RESTRICT",
            name="fk_campaigns_issue_id_issues",
        ),
    )
    op.create_index("ix_campaigns_issue_id", "campaigns", ["issue_id"])
    op.create_index("ix_campaigns_status", "campaigns", ["status"])
    op.create_index("ix_campaigns_scheduled_at", "campaigns", ["scheduled_at"])


def _batches() -> None:
    op.create_table(
        "send_batches",
        sa.Column("id", sa.Integer, nullable=False),
        sa.Column("campaign_id", sa.Integer, nullable=False),
        sa.Column("seq", sa.Integer, nullable=False),
        sa.Column("segment", sa.String(1000), nullable=False),
        sa.Column("chunk", sa.Integer, nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("size", sa.Integer, nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("not_before", UTCDateTime),
        sa.Column("claimed_by", sa.String(100)),
        sa.Column("claimed_at", UTCDateTime),
        sa.Column("submitted_at", UTCDateTime),
        sa.Column("finished_at", UTCDateTime),
        sa.Column("provider_id", sa.String(200)),
        sa.Column("error", sa.Text),
        sa.PrimaryKeyConstraint("id", name="pk_send_batches"),
        sa.ForeignKeyConstraint(
            ["campaign_id"], ["campaigns.id"], ondelete="CASCADE",
            name="fk_send_batches_campaign_id_campaigns",
        ),
        sa.UniqueConstraint("campaign_id", "seq", name="uq_send_batches_campaign_id"),
    )
    op.create_index("ix_send_batches_claim", "send_batches", ["status", "not_before"])


def _deliveries() -> None:
    op.create_table(
        "deliveries",
        sa.Column("id", BIGINT, nullable=False),
        sa.Column("campaign_id", sa.Integer, nullable=False),
        sa.Column("subscriber_id", sa.Integer),
        sa.Column("batch_id", sa.Integer),
        sa.Column("email_hash", sa.String(64), nullable=False),
        sa.Column("segment", sa.String(1000), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("provider_id", sa.String(200)),
        sa.Column("detail", sa.Text),
        sa.Column("updated_at", UTCDateTime),
        sa.Column("delivered_at", UTCDateTime),
        sa.Column("opened_at", UTCDateTime),
        sa.Column("clicked_at", UTCDateTime),
        sa.Column("opens", sa.Integer, nullable=False),
        sa.Column("clicks", sa.Integer, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_deliveries"),
        sa.ForeignKeyConstraint(
            ["campaign_id"], ["campaigns.id"], ondelete="CASCADE",
            name="fk_deliveries_campaign_id_campaigns",
        ),
        sa.ForeignKeyConstraint(
            ["subscriber_id"], ["subscribers.id"], ondelete="SET NULL",
            name="fk_deliveries_subscriber_id_subscribers",
        ),
        sa.ForeignKeyConstraint(
            ["batch_id"], ["send_batches.id"], ondelete="SET NULL",
            name="fk_deliveries_batch_id_send_batches",
        ),
        sa.UniqueConstraint("campaign_id", "subscriber_id", name="uq_deliveries_campaign_id"),
    )
    op.create_index("ix_deliveries_batch", "deliveries", ["batch_id", "status"])
    op.create_index("ix_deliveries_campaign_status", "deliveries", ["campaign_id", "status"])
    op.create_index("ix_deliveries_subscriber_id", "deliveries", ["subscriber_id"])
    op.create_index("ix_deliveries_email_hash", "deliveries", ["email_hash"])
    op.create_index("ix_deliveries_provider_id", "deliveries", ["provider_id"])


def _events() -> None:
    op.create_table(
        "tracking_events",
        sa.Column("id", BIGINT, nullable=False),
        sa.Column("provider", sa.String(20), nullable=False),
        sa.Column("event_id", sa.String(200), nullable=False),
        sa.Column("event", sa.String(30), nullable=False),
        sa.Column("delivery_id", sa.BigInteger),
        sa.Column("campaign_id", sa.Integer),
        sa.Column("email_hash", sa.String(64)),
        sa.Column("occurred_at", UTCDateTime, nullable=False),
        sa.Column("received_at", UTCDateTime, nullable=False),
        sa.Column("detail", sa.Text),
        sa.PrimaryKeyConstraint("id", name="pk_tracking_events"),
        sa.UniqueConstraint("event_id", name="uq_tracking_events_event_id"),
    )
    op.create_index("ix_tracking_events_event", "tracking_events", ["event"])
    op.create_index("ix_tracking_events_delivery_id", "tracking_events", ["delivery_id"])
    op.create_index("ix_tracking_events_campaign_id", "tracking_events", ["campaign_id"])


def upgrade() -> None:
    _campaigns()
    _batches()
    _deliveries()
    _events()


def downgrade() -> None:
    for table in ("tracking_events", "deliveries", "send_batches", "campaigns"):
        op.drop_table(table)
