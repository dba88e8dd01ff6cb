"""Library sources (feeds, listing pages, sitemaps) with their inbox, and link health.

Revision ID: 0019_sources
Revises: 0013_automation
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from newsletter.models.base import UTCDateTime

revision = "0019_sources"
down_revision = "0018_editing"  # re-chained after 0018_editing (merge)
branch_labels = None
depends_on = None

LINK_COLUMNS = ("link_status", "link_checked_at", "link_final_url", "link_detail")


def upgrade() -> None:
    op.add_column("resources", sa.Column("link_status", sa.String(10), nullable=True))
    op.add_column("resources", sa.Column("link_checked_at", UTCDateTime(), nullable=True))
    op.add_column("resources", sa.Column("link_final_url", sa.String(2000), nullable=True))
    op.add_column("resources", sa.Column("link_detail", sa.String(300), nullable=True))
    op.create_index("ix_resources_link_status", "resources", ["link_status"])
    op.create_table(
        "sources",
        sa.Column("id", sa.Integer, nullable=False),
        sa.Column("url", sa.String(2000), nullable=False),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("every_minutes", sa.Integer, nullable=False),
        sa.Column("enabled", sa.Boolean, nullable=False),
        sa.Column("etag", sa.String(300)),
        sa.Column("last_modified", sa.String(100)),
        sa.Column("next_poll_at", UTCDateTime),
        sa.Column("last_polled_at", UTCDateTime),
        sa.Column("last_result", sa.String(20)),
        sa.Column("last_message", sa.Text),
        sa.Column("last_added", sa.Integer, nullable=False),
        sa.Column("created_by", sa.String(320), nullable=False),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.CheckConstraint(
            "kind IN ('auto', 'feed', 'listing', 'sitemap')", name="ck_sources_kind"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_sources"),
        sa.UniqueConstraint("url", name="uq_sources_url"),
    )
    op.create_index("ix_sources_next_poll_at", "sources", ["next_poll_at"])
    op.create_table(
        "source_items",
        sa.Column("id", sa.Integer, nullable=False),
        sa.Column("source_id", sa.Integer),
        sa.Column("state", sa.String(20), nullable=False),
        sa.Column("title", sa.String(500), nullable=False),
        sa.Column("title_key", sa.String(500), nullable=False),
        sa.Column("url", sa.String(2000)),
        sa.Column("url_key", sa.String(2000)),
        sa.Column("summary", sa.Text, nullable=False),
        sa.Column("record", sa.JSON, nullable=False),
        sa.Column("resource_id", sa.Integer),
        sa.Column("found_at", UTCDateTime, nullable=False),
        sa.Column("decided_at", UTCDateTime),
        sa.Column("decided_by", sa.String(320)),
        sa.CheckConstraint(
            "state IN ('new', 'accepted', 'rejected')", name="ck_source_items_state"
        ),
        sa.ForeignKeyConstraint(
            ["source_id"],
            ["sources.id"],
            ondelete="SET NULL",
            name="fk_source_items_source_id_sources",
        ),  # fmt: skip
        sa.ForeignKeyConstraint(
            ["resource_id"],
            ["resources.id"],
            ondelete="SET NULL",
            name="fk_source_items_resource_id_resources",
        ),  # fmt: skip
        sa.PrimaryKeyConstraint("id", name="pk_source_items"),
    )
    op.create_index("ix_source_items_source_id", "source_items", ["source_id"])
    op.create_index("ix_source_items_state", "source_items", ["state"])
    op.create_index("ix_source_items_title_key", "source_items", ["title_key"])
    op.create_index("ix_source_items_url_key", "source_items", ["url_key"])


def downgrade() -> None:
    op.drop_table("source_items")
    op.drop_table("sources")
    op.drop_index("ix_resources_link_status", "resources")
    for column in LINK_COLUMNS:
        # SQLite 3.35+ drops a plain column in place; a batch copy would lose the FTS triggers.
        op.execute(f"ALTER TABLE resources DROP COLUMN {column}")
