"""Issues, their ordered sections and items.

Revision ID: 0002_issues
Revises: 0001_resources
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from newsletter.models.base import UTCDateTime

revision = "0002_issues"
down_revision = "0001_resources"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "issues",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("number", sa.Integer, nullable=False),
        sa.Column("slug", sa.String(200), nullable=False),
        sa.Column("title", sa.String(300), nullable=False),
        sa.Column("issue_date", sa.Date, nullable=False),
        sa.Column("subject", sa.String(300), nullable=False),
        sa.Column("preheader", sa.String(300), nullable=False),
        sa.Column("intro_md", sa.Text, nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("published_at", UTCDateTime),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("updated_at", UTCDateTime, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_issues")),
        sa.UniqueConstraint("number", name=op.f("uq_issues_number")),
        sa.UniqueConstraint("slug", name=op.f("uq_issues_slug")),
        sa.CheckConstraint(
            "status IN ('draft', 'ready', 'archived')", name=op.f("ck_issues_status")
        ),
    )
    op.create_table(
        "issue_sections",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("issue_id", sa.Integer, nullable=False),
        sa.Column("position", sa.Integer, nullable=False),
        sa.Column("heading", sa.String(300), nullable=False),
        sa.Column("topics", sa.JSON, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_issue_sections")),
        sa.ForeignKeyConstraint(
            ["issue_id"],
            ["issues.id"],
            ondelete="CASCADE",
            name=op.f("fk_issue_sections_issue_id_issues"),
        ),
    )
    op.create_index(op.f("ix_issue_sections_issue_id"), "issue_sections", ["issue_id"])
    op.create_table(
        "issue_items",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("section_id", sa.Integer, nullable=False),
        sa.Column("position", sa.Integer, nullable=False),
        sa.Column("resource_id", sa.Integer),
        sa.Column("title", sa.String(500)),
        sa.Column("byline", sa.String(500)),
        sa.Column("url", sa.String(2000)),
        sa.Column("blurb", sa.Text),
        sa.Column("body_md", sa.Text),
        sa.Column("image_url", sa.String(2000)),
        sa.Column("image_alt", sa.String(500)),
        sa.Column("image_caption", sa.String(500)),
        sa.Column("image_credit", sa.String(500)),
        sa.Column("cta_text", sa.String(300)),
        sa.Column("cta_url", sa.String(2000)),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_issue_items")),
        sa.ForeignKeyConstraint(
            ["section_id"],
            ["issue_sections.id"],
            ondelete="CASCADE",
            name=op.f("fk_issue_items_section_id_issue_sections"),
        ),
        sa.ForeignKeyConstraint(
            ["resource_id"],
            ["resources.id"],
            ondelete="RESTRICT",
            name=op.f("fk_issue_items_resource_id_resources"),
        ),
    )
    op.create_index(op.f("ix_issue_items_section_id"), "issue_items", ["section_id"])
    op.create_index(op.f("ix_issue_items_resource_id"), "issue_items", ["resource_id"])


def downgrade() -> None:
    op.drop_index(op.f("ix_issue_items_resource_id"), table_name="issue_items")
    op.drop_index(op.f("ix_issue_items_section_id"), table_name="issue_items")
    op.drop_table("issue_items")
    op.drop_index(op.f("ix_issue_sections_issue_id"), table_name="issue_sections")
    op.drop_table("issue_sections")
    op.drop_table("issues")
