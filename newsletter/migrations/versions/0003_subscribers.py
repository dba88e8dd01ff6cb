"""Subscribers, their topics, the consent trail and the suppression list.

Revision ID: 0003_subscribers
Revises: 0002_issues
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from newsletter.models.base import UTCDateTime

revision = "0003_subscribers"
down_revision = "0002_issues"
branch_labels = None
depends_on = None

STATUSES = "'pending', 'confirmed', 'unsubscribed', 'bounced', 'complained'"
KINDS = "'subscribe', 'confirm', 'withdraw', 'import', 'admin', 'preferences', 'erase'"
REASONS = "'unsubscribed', 'hard_bounce', 'complaint', 'erased', 'manual'"


def _subscribers() -> None:
    op.create_table(
        "subscribers",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("email", sa.String(320), nullable=False),
        sa.Column("email_hash", sa.String(64), nullable=False),
        sa.Column("name", sa.String(200)),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("confirmed_at", UTCDateTime),
        sa.Column("unsubscribed_at", UTCDateTime),
        sa.Column("paused_until", UTCDateTime),
        sa.Column("last_confirmation_sent_at", UTCDateTime),
        sa.Column("soft_bounces", sa.Integer, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_subscribers")),
        sa.UniqueConstraint("email", name=op.f("uq_subscribers_email")),
        sa.CheckConstraint(f"status IN ({STATUSES})", name=op.f("ck_subscribers_status")),
        sqlite_autoincrement=True,
    )
    op.create_index(op.f("ix_subscribers_email_hash"), "subscribers", ["email_hash"])
    op.create_index(op.f("ix_subscribers_status"), "subscribers", ["status"])


def _subscriber_topics() -> None:
    op.create_table(
        "subscriber_topics",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("subscriber_id", sa.Integer, nullable=False),
        sa.Column("topic", sa.String(100), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_subscriber_topics")),
        sa.ForeignKeyConstraint(
            ["subscriber_id"],
            ["subscribers.id"],
            ondelete="CASCADE",
            name=op.f("fk_subscriber_topics_subscriber_id_subscribers"),
        ),
        sa.UniqueConstraint(
            "subscriber_id", "topic", name=op.f("uq_subscriber_topics_subscriber_id")
        ),
    )
    op.create_index(op.f("ix_subscriber_topics_topic"), "subscriber_topics", ["topic"])


def _consent_events() -> None:
    op.create_table(
        "consent_events",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("subscriber_id", sa.Integer),
        sa.Column("email_hash", sa.String(64)),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("at", UTCDateTime, nullable=False),
        sa.Column("ip", sa.String(45)),
        sa.Column("user_agent", sa.String(500)),
        sa.Column("source", sa.String(300), nullable=False),
        sa.Column("consent_text", sa.Text),
        sa.Column("detail", sa.JSON),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_consent_events")),
        sa.ForeignKeyConstraint(
            ["subscriber_id"],
            ["subscribers.id"],
            ondelete="SET NULL",
            name=op.f("fk_consent_events_subscriber_id_subscribers"),
        ),
        sa.CheckConstraint(f"kind IN ({KINDS})", name=op.f("ck_consent_events_kind")),
    )
    op.create_index(op.f("ix_consent_events_subscriber_id"), "consent_events", ["subscriber_id"])
    op.create_index(op.f("ix_consent_events_email_hash"), "consent_events", ["email_hash"])


def _suppressions() -> None:
    op.create_table(
        "suppressions",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("email_hash", sa.String(64), nullable=False),
        sa.Column("reason", sa.String(20), nullable=False),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("note", sa.Text),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_suppressions")),
        sa.UniqueConstraint("email_hash", name=op.f("uq_suppressions_email_hash")),
        sa.CheckConstraint(f"reason IN ({REASONS})", name=op.f("ck_suppressions_reason")),
    )


def upgrade() -> None:
    _subscribers()
    _subscriber_topics()
    _consent_events()
    _suppressions()


def downgrade() -> None:
    op.drop_table("suppressions")
    op.drop_table("consent_events")
    op.drop_table("subscriber_topics")
    op.drop_table("subscribers")
