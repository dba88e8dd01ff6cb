"""Fixtures for the reliability suite (the database fixtures come from ``tests/conftest.py``)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from newsletter.config import Settings
from newsletter.db import Database
from newsletter.issues.source import load_source
from newsletter.issues.store import import_source
from newsletter.testing.webhook_signer import Signer
from tests.conftest import PG_URL
from tests.issue_helpers import ISSUE_42, import_library


@pytest.fixture
def issue42(db: Database, settings: Settings, seeds_dir: Path) -> Database:
    """The database with the seed library and Issue 42 imported (what real campaigns send)."""
    with db.session() as session:
        import_library(seeds_dir, session=session, settings=settings)
        import_source(load_source(ISSUE_42), session=session)
    return db


@pytest.fixture
def signer() -> Signer:
    return Signer.new()


@pytest.fixture
def pg_admin(pg_required: None) -> Iterator[sa.Engine]:
    """A separate connection pool for the "DBA": terminating backends, watching activity."""
    engine = sa.create_engine(PG_URL, isolation_level="AUTOCOMMIT")
    yield engine
    engine.dispose()
