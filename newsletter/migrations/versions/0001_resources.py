"""Resource library with full-text search (FTS5 on SQLite, tsvector on PostgreSQL).

Revision ID: 0001_resources
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from newsletter.models.base import UTCDateTime

revision = "0001_resources"
down_revision = None
branch_labels = None
depends_on = None

SQLITE_FTS = [
    """CREATE VIRTUAL TABLE resources_fts USING fts5(
        title, summary, source, content='resources', content_rowid='id',
        tokenize='porter unicode61 remove_diacritics 2')""",
    """CREATE TRIGGER resources_fts_ai AFTER INSERT ON resources BEGIN
        INSERT INTO resources_fts(rowid, title, summary, source)
        VALUES (new.id, new.title, new.summary, new.source); END""",
    """CREATE TRIGGER resources_fts_ad AFTER DELETE ON resources BEGIN
        INSERT INTO resources_fts(resources_fts, rowid, title, summary, source)
        VALUES ('delete', old.id, old.title, old.summary, old.source); END""",
    """CREATE TRIGGER resources_fts_au AFTER UPDATE ON resources BEGIN
        INSERT INTO resources_fts(resources_fts, rowid, title, summary, source)
        VALUES ('delete', old.id, old.title, old.summary, old.source);
        INSERT INTO resources_fts(rowid, title, summary, source)
        VALUES (new.id, new.title, new.summary, new.source); END""",
]

POSTGRES_FTS = [
    """ALTER TABLE resources ADD COLUMN search_vector tsvector GENERATED ALWAYS AS (
        setweight(to_tsvector('english', coalesce(title, '')), 'A') ||
        setweight(to_tsvector('english', coalesce(summary, '')), 'B') ||
        setweight(to_tsvector('english', coalesce(source, '')), 'C')) STORED""",
    "CREATE INDEX ix_resources_search_vector ON resources USING gin (search_vector)",
]


def upgrade() -> None:
    op.create_table(
        "resources",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("slug", sa.String(200), nullable=False),
        sa.Column("title", sa.String(500), nullable=False),
        sa.Column("title_key", sa.String(500), nullable=False),
        sa.Column("url", sa.String(2000)),
        sa.Column("url_key", sa.String(2000)),
        sa.Column("summary", sa.Text, nullable=False),
        sa.Column("summary_truncated", sa.Boolean, nullable=False),
        sa.Column("type", sa.String(40)),
        sa.Column("type_locked", sa.Boolean, nullable=False),
        sa.Column("topics_locked", sa.Boolean, nullable=False),
        sa.Column("source", sa.String(300)),
        sa.Column("authors", sa.String(500)),
        sa.Column("image_url", sa.String(2000)),
        sa.Column("image_alt", sa.String(500)),
        sa.Column("image_credit", sa.String(500)),
        sa.Column("call_to_action", sa.String(300)),
        sa.Column("published_at", UTCDateTime),
        sa.Column("origin", sa.String(500), nullable=False),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("updated_at", UTCDateTime, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_resources"),
        sa.UniqueConstraint("slug", name="uq_resources_slug"),
        sa.UniqueConstraint("url_key", name="uq_resources_url_key"),
    )
    op.create_index("ix_resources_title_key", "resources", ["title_key"])
    op.create_index("ix_resources_type", "resources", ["type"])
    op.create_table(
        "resource_topics",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column(
            "resource_id",
            sa.Integer,
            sa.ForeignKey(
                "resources.id",
                ondelete="CASCADE",
                name="fk_resource_topics_resource_id_resources",
            ),
            nullable=False,
        ),
        sa.Column("topic", sa.String(100), nullable=False),
        sa.Column("position", sa.Integer, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_resource_topics"),
        sa.UniqueConstraint("resource_id", "topic", name="uq_resource_topics_resource_id"),
    )
    op.create_index("ix_resource_topics_topic", "resource_topics", ["topic"])
    statements = SQLITE_FTS if op.get_bind().dialect.name == "sqlite" else POSTGRES_FTS
    for statement in statements:
        op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        op.execute("DROP TABLE IF EXISTS resources_fts")
    op.drop_table("resource_topics")
    op.drop_table("resources")
