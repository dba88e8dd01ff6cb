"""First-party click and open tracking: issue links, engagement events, per-link clicks.

Also the reader's tracking choice on ``subscribers`` and machine counters on
the ledger (prefetches, scanners and bots are counted apart from readers).

Revision ID: 0009_tracking
Revises: 0008_resend
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from newsletter.models.base import UTCDateTime

revision = "0009_tracking"
down_revision = "0008_resend"
branch_labels = None
depends_on = None


def _issue_links() -> None:
    op.create_table(
        "issue_links",
        sa.Column("id", sa.Integer, nullable=False),
        sa.Column("issue_id", sa.Integer, nullable=False),
        sa.Column("position", sa.Integer, nullable=False),
        sa.Column("section", sa.Integer),
        sa.Column("section_heading", sa.String(300)),
        sa.Column("url", sa.Text, nullable=False),
        sa.Column("occurrence", sa.Integer, nullable=False),
        sa.Column("resource_id", sa.Integer),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_issue_links"),
        sa.UniqueConstraint("issue_id", "position", name="uq_issue_links_issue_id"),
        sa.ForeignKeyConstraint(
            ["issue_id"], ["issues.id"], name="fk_issue_links_issue_id_issues", ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["resource_id"],
            ["resources.id"],
            name="fk_issue_links_resource_id_resources",
            ondelete="SET NULL",
        ),
    )
    op.create_index("ix_issue_links_resource_id", "issue_links", ["resource_id"])


def _events() -> None:
    big = sa.BigInteger().with_variant(sa.Integer, "sqlite")
    op.create_table(
        "engagement_events",
        sa.Column("id", big, nullable=False),
        sa.Column("event_id", sa.String(40), nullable=False),
        sa.Column("kind", sa.String(10), nullable=False),
        sa.Column("delivery_id", sa.BigInteger, nullable=False),
        sa.Column("campaign_id", sa.Integer, nullable=False),
        sa.Column("link_id", sa.Integer),
        sa.Column("occurred_at", UTCDateTime, nullable=False),
        sa.Column("machine", sa.Boolean, nullable=False),
        sa.Column("reason", sa.String(40)),
        sa.Column("user_agent", sa.String(300)),
        sa.Column("network", sa.String(32)),
        sa.Column("received_at", UTCDateTime, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_engagement_events"),
        sa.UniqueConstraint("event_id", name="uq_engagement_events_event_id"),
    )
    op.create_index("ix_engagement_events_delivery_id", "engagement_events", ["delivery_id"])
    op.create_index("ix_engagement_events_campaign", "engagement_events", ["campaign_id", "kind"])
    op.create_index("ix_engagement_events_occurred", "engagement_events", ["occurred_at"])
    op.create_table(
        "link_clicks",
        sa.Column("link_id", sa.Integer, nullable=False),
        sa.Column("delivery_id", sa.BigInteger, nullable=False),
        sa.Column("campaign_id", sa.Integer, nullable=False),
        sa.Column("human", sa.Integer, nullable=False),
        sa.Column("machine", sa.Integer, nullable=False),
        sa.Column("first_at", UTCDateTime, nullable=False),
        sa.PrimaryKeyConstraint("link_id", "delivery_id", name="pk_link_clicks"),
    )
    op.create_index("ix_link_clicks_campaign", "link_clicks", ["campaign_id"])


def upgrade() -> None:
    _issue_links()
    _events()
    # Plain ADD COLUMN with a constant default, on both backends: no table rebuild (a
    # SQLite batch rebuild of the million-row ledger would also re-create its indexes).
    op.add_column(
        "subscribers", sa.Column("tracking", sa.Boolean, nullable=False, server_default=sa.true())
    )
    for column in ("machine_opens", "machine_clicks"):
        op.add_column(
            "deliveries", sa.Column(column, sa.Integer, nullable=False, server_default="0")
        )


def downgrade() -> None:
    with op.batch_alter_table("deliveries") as batch:
        batch.drop_column("machine_clicks")
        batch.drop_column("machine_opens")
    with op.batch_alter_table("subscribers") as batch:
        batch.drop_column("tracking")
    op.drop_table("link_clicks")
    op.drop_table("engagement_events")
    op.drop_index("ix_issue_links_resource_id", table_name="issue_links")
    op.drop_table("issue_links")
