"""Bounces without a provider: inbound mail, the guard's baselines, the soft-bounce window.

``inbound_mail`` holds one row per bounce, complaint or auto-reply received by
``newsletter bounces serve``, ``poll`` or ``ingest`` (unique on the SHA-256 of
the raw bytes, so a message delivered twice is applied once).
``guard_baselines`` holds the counts at which the reputation guard starts
again after an admin resumed a campaign it paused.  ``subscribers.soft_bounce_log``
holds the times of the soft bounces since the last delivery, for the rule
"N soft bounces within D days with no delivery between them".

Revision ID: 0010_bounces
Revises: 0009_tracking
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from newsletter.models.base import UTCDateTime

revision = "0010_bounces"
down_revision = "0009_tracking"
branch_labels = None
depends_on = None

BIGID = sa.BigInteger().with_variant(sa.Integer, "sqlite")


def upgrade() -> None:
    op.create_table(
        "inbound_mail",
        sa.Column("id", BIGID, nullable=False),
        sa.Column("digest", sa.String(64), nullable=False),
        sa.Column("source", sa.String(20), nullable=False),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("received_at", UTCDateTime, nullable=False),
        sa.Column("envelope_to", sa.String(320)),
        sa.Column("message_id", sa.String(998)),
        sa.Column("delivery_id", sa.BigInteger),
        sa.Column("campaign_id", sa.Integer),
        sa.Column("recipients", sa.Integer, nullable=False),
        sa.Column("status", sa.String(20)),
        sa.Column("diagnostic", sa.Text),
        sa.Column("matched_by", sa.String(20)),
        sa.Column("applied", sa.Integer, nullable=False),
        sa.Column("note", sa.Text),
        sa.Column("size", sa.Integer, nullable=False),
        sa.Column("raw", sa.LargeBinary),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_inbound_mail")),
        sa.UniqueConstraint("digest", name=op.f("uq_inbound_mail_digest")),
    )
    for column in ("kind", "received_at", "delivery_id", "campaign_id"):
        op.create_index(op.f(f"ix_inbound_mail_{column}"), "inbound_mail", [column])
    op.create_table(
        "guard_baselines",
        sa.Column("campaign_id", sa.Integer, autoincrement=False, nullable=False),
        sa.Column("sent", sa.Integer, nullable=False),
        sa.Column("complaints", sa.Integer, nullable=False),
        sa.Column("hard_bounces", sa.Integer, nullable=False),
        sa.Column("resumed_at", UTCDateTime, nullable=False),
        sa.PrimaryKeyConstraint("campaign_id", name=op.f("pk_guard_baselines")),
    )
    op.add_column("subscribers", sa.Column("soft_bounce_log", sa.JSON))
    op.create_index(
        "ix_tracking_events_campaign_event", "tracking_events", ["campaign_id", "event"]
    )


def downgrade() -> None:
    op.drop_index("ix_tracking_events_campaign_event", "tracking_events")
    with op.batch_alter_table("subscribers") as batch:
        batch.drop_column("soft_bounce_log")
    op.drop_table("guard_baselines")
    op.drop_table("inbound_mail")
