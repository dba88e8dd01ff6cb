"""The migrations build exactly the schema the models describe, on both backends."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from newsletter.db import Database
from newsletter.models import Base


def _about_a_model(diff: object) -> bool:
    """Whether an autogenerate diff entry (nested tuples of names and schema objects) is ours.

    Tables the models do not describe (SQLite's full-text tables, APScheduler's
    job store) are created by migrations and libraries on purpose, and so is
    PostgreSQL's generated ``resources.search_vector`` with its GIN index.
    """
    text = repr(diff)
    if "search_vector" in text:
        return False
    return any(f"'{t}'" in text or f"table=<{t}>" in text for t in Base.metadata.tables)


def test_migrations_match_every_model(db: Database) -> None:
    with db.engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        diffs = compare_metadata(context, Base.metadata)
    assert [d for d in diffs if _about_a_model(d)] == []
