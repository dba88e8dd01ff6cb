"""Editing: uploaded images (the media library), section images, issue revisions (undo, restore).

Revision ID: 0018_editing
Revises: 0013_automation
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from newsletter.models.base import UTCDateTime

revision = "0018_editing"
down_revision = "0015_abtest"  # re-chained after 0015_abtest (merge)
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "media_images",
        sa.Column("id", sa.Integer, nullable=False),
        sa.Column("key", sa.String(64), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("content_type", sa.String(40), nullable=False),
        sa.Column("width", sa.Integer, nullable=False),
        sa.Column("height", sa.Integer, nullable=False),
        sa.Column("variants", sa.JSON, nullable=False),
        sa.Column("alt", sa.String(500), nullable=False),
        sa.Column("origin", sa.String(2000), nullable=False),
        sa.Column("created_by", sa.String(320), nullable=False),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_media_images"),
        sa.UniqueConstraint("key", name="uq_media_images_key"),
    )
    op.create_table(
        "issue_revisions",
        sa.Column("id", sa.Integer, nullable=False),
        sa.Column("issue_id", sa.Integer, nullable=False),
        sa.Column("label", sa.String(300), nullable=False),
        sa.Column("source", sa.Text, nullable=False),
        sa.Column("author", sa.String(320), nullable=False),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_issue_revisions"),
        sa.ForeignKeyConstraint(
            ["issue_id"], ["issues.id"], ondelete="CASCADE",
            name="fk_issue_revisions_issue_id_issues",
        ),
    )
    op.create_index("ix_issue_revisions_issue_id", "issue_revisions", ["issue_id"])
    op.add_column("issue_sections", sa.Column("image_url", sa.String(2000)))
    op.add_column("issue_sections", sa.Column("image_alt", sa.String(500)))


def downgrade() -> None:
    with op.batch_alter_table("issue_sections") as batch:
        batch.drop_column("image_alt")
        batch.drop_column("image_url")
    op.drop_table("issue_revisions")
    op.drop_table("media_images")
