"""Shared fixtures: settings in a temp folder, and a database on SQLite *and* PostgreSQL.

Every PostgreSQL test gets its own schema (dropped afterwards), so tests can
run in parallel against the one ``test`` database.  In CI a missing PostgreSQL
fails the run; it never silently skips.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from newsletter.config import Settings, load_settings
from newsletter.db import Database, connect

PG_URL = os.environ.get(
    "NEWSLETTER_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
REPO = Path(__file__).resolve().parent.parent
BUNDLED_SEEDS = REPO / "newsletter" / "sample_data" / "library"
SHARED_SEEDS = REPO.parent / "shared" / "seeds"


@pytest.fixture(scope="session")
def seeds_dir() -> Path:
    """The organisation's scraped pages: ``../shared/seeds`` when present, else the bundled copy."""
    folder = SHARED_SEEDS if SHARED_SEEDS.is_dir() else BUNDLED_SEEDS
    files = sorted(folder.glob("*.txt"))
    assert len(files) == 5, f"expected the 5 seed pages in {folder}, found {len(files)}"
    return folder


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No test reads the developer's newsletter.toml or NEWSLETTER_* variables."""
    for key in list(os.environ):
        if key.startswith("NEWSLETTER_") and key != "NEWSLETTER_TEST_PG_URL":
            monkeypatch.delenv(key)
    # Preflight fetches images; Issue 42's are on the internet, which tests never reach.
    # Tests of the fetching pass preflight_fetch_images=True with their own local server.
    monkeypatch.setenv("NEWSLETTER_PREFLIGHT_FETCH_IMAGES", "false")
    monkeypatch.chdir(tmp_path)


def _pg_available() -> bool:
    try:
        engine = sa.create_engine(PG_URL, connect_args={"connect_timeout": 3})
        with engine.connect():
            pass
        engine.dispose()
        return True
    except sa.exc.OperationalError:
        return False


@pytest.fixture(scope="session")
def pg_required() -> None:
    if not _pg_available():
        if os.environ.get("CI"):
            pytest.fail(f"PostgreSQL is required in CI and is not reachable at {PG_URL}")
        pytest.skip(f"PostgreSQL not reachable at {PG_URL}")


@pytest.fixture
def pg_schema(pg_required: None) -> Iterator[str]:
    """A fresh schema in the test database, dropped afterwards."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    engine = sa.create_engine(PG_URL)
    with engine.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{name}"'))
    try:
        yield name
    finally:
        with engine.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA IF EXISTS "{name}" CASCADE'))
        engine.dispose()


@pytest.fixture
def make_settings(tmp_path: Path) -> Callable[..., Settings]:
    """Settings rooted in the test's temp folder, with overrides."""

    def factory(**overrides: Any) -> Settings:
        base: dict[str, Any] = {
            "database_url": f"sqlite:///{tmp_path / 'var' / 'test.db'}",
            "var_dir": tmp_path / "var",
            "secret_key": "test-secret-key-not-default",
            "debug": True,
        }
        base.update(overrides)
        return load_settings(**base)

    return factory


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def settings(
    backend: str, make_settings: Callable[..., Settings], request: pytest.FixtureRequest
) -> Settings:
    """Settings for the parametrised backend (every DB test runs on both)."""
    if backend == "postgresql":
        schema = request.getfixturevalue("pg_schema")
        return make_settings(database_url=PG_URL, database_schema=schema)
    return make_settings()


@pytest.fixture
def db(settings: Settings) -> Iterator[Database]:
    database = connect(settings)
    try:
        yield database
    finally:
        database.dispose()


@pytest.fixture
def sqlite_settings(make_settings: Callable[..., Settings]) -> Settings:
    return make_settings()


@pytest.fixture
def sqlite_db(sqlite_settings: Settings) -> Iterator[Database]:
    database = connect(sqlite_settings)
    try:
        yield database
    finally:
        database.dispose()


@pytest.fixture
def issue42(db: Database, settings: Settings, seeds_dir: Path) -> Database:
    """The database with the seed library and Issue 42 imported (what real campaigns send)."""
    from newsletter.issues.source import load_source
    from newsletter.issues.store import import_source
    from tests.issue_helpers import ISSUE_42, import_library

    with db.session() as session:
        import_library(seeds_dir, session=session, settings=settings)
        import_source(load_source(ISSUE_42), session=session)
    return db
