"""Fixtures for the reliability suite (the database fixtures come from ``tests/conftest.py``)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from newsletter.testing.webhook_signer import Signer
from tests.conftest import PG_URL


@pytest.fixture
def signer() -> Signer:
    return Signer.new()


@pytest.fixture
def pg_admin(pg_required: None) -> Iterator[sa.Engine]:
    """A separate connection pool for the "DBA": terminating backends, watching activity."""
    engine = sa.create_engine(PG_URL, isolation_level="AUTOCOMMIT")
    yield engine
    engine.dispose()
