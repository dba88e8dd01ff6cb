"""Insights: link health columns on resources, and indexes for the issue-results query.

``link_status`` (ok, dead, moved; NULL: never checked) and ``link_checked_at``
are what the library's "dead link" filter reads; the link-health checker
writes them.  ``ix_deliveries_campaign_segment`` lets the results query count
a campaign's reached recipients per segment from the index alone.

Revision ID: 0016_insights
Revises: 0013_automation
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from newsletter.models.base import UTCDateTime

revision = "0016_insights"
down_revision = "0013_automation"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("resources", sa.Column("link_status", sa.String(10)))
    op.add_column("resources", sa.Column("link_checked_at", UTCDateTime))
    op.create_index("ix_resources_link_status", "resources", ["link_status"])


def downgrade() -> None:
    op.drop_index("ix_resources_link_status", table_name="resources")
    with op.batch_alter_table("resources") as batch:  # SQLite rebuilds the table
        batch.drop_column("link_checked_at")
        batch.drop_column("link_status")
