"""Insights: clicks per resource; segments on click sums.

(The library's "dead link" filter reads ``resources.link_status``, added by
0019_sources.)  ``resource_clicks`` sums clicks per library resource and
recipient (unique clickers of a resource whose title and call to action are
two links), and both it and ``link_clicks`` carry the recipient's frozen
segment: the issue results then read one table each, never the ledger
(bench/insights.py: a 1M-recipient campaign).  Existing sums are backfilled.

Revision ID: 0020_insights
Revises: 0019_sources
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from newsletter.models.base import UTCDateTime

revision = "0020_insights"
down_revision = "0019_sources"  # re-chained after 0019_sources (merge)
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("link_clicks", sa.Column("segment", sa.String(1000)))
    op.create_table(
        "resource_clicks",
        sa.Column("resource_id", sa.Integer, nullable=False),
        sa.Column("delivery_id", sa.BigInteger, nullable=False),
        sa.Column("campaign_id", sa.Integer, nullable=False),
        sa.Column("segment", sa.String(1000)),
        sa.Column("human", sa.Integer, nullable=False),
        sa.Column("machine", sa.Integer, nullable=False),
        sa.Column("first_at", UTCDateTime, nullable=False),
        sa.PrimaryKeyConstraint("resource_id", "delivery_id", name="pk_resource_clicks"),
    )
    op.create_index("ix_resource_clicks_campaign", "resource_clicks", ["campaign_id"])
    op.execute(
        "UPDATE link_clicks SET segment = (SELECT d.segment FROM deliveries d "
        "WHERE d.id = link_clicks.delivery_id)"
    )
    op.execute(
        "INSERT INTO resource_clicks (resource_id, delivery_id, campaign_id, segment, human, "
        "machine, first_at) SELECT l.resource_id, c.delivery_id, MIN(c.campaign_id), "
        "MIN(c.segment), SUM(c.human), SUM(c.machine), MIN(c.first_at) FROM link_clicks c "
        "JOIN issue_links l ON l.id = c.link_id WHERE l.resource_id IS NOT NULL "
        "GROUP BY l.resource_id, c.delivery_id"
    )


def downgrade() -> None:
    op.drop_index("ix_resource_clicks_campaign", table_name="resource_clicks")
    op.drop_table("resource_clicks")
    with op.batch_alter_table("link_clicks") as batch:
        batch.drop_column("segment")
