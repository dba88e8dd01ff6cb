"""Benchmark databases: a private SQLite file or PostgreSQL schema, Issue 42, synthetic subscribers.

Subscribers are written in bulk (PostgreSQL ``COPY`` through psycopg, SQLite
``executemany`` in chunks on the raw connection) with explicit ids, so a
million rows take seconds.  Their topics follow the mix of
``bench.bench_render.audience``: a third choose none, the rest one to three of
the default topics with Zipf-like popularity.  A further 2 % of rows are
pending or unsubscribed, so the audience of a campaign is exactly ``count``.
"""

from __future__ import annotations

import hashlib
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from newsletter.config import Settings, classify_topics, load_settings
from newsletter.db import Database, connect
from newsletter.issues.source import load_source
from newsletter.issues.store import import_source
from newsletter.resources import library

from .bench_render import audience

REPO = Path(__file__).resolve().parent.parent
ISSUE_42 = REPO / "issues" / "042-2018-04.yaml"
SEEDS = REPO / "newsletter" / "sample_data" / "library"
PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
SECRET = "bench-secret-key-not-the-default"
CHUNK = 20_000
INACTIVE_SHARE = 0.02  # extra pending / unsubscribed rows, outside the audience


@dataclass(frozen=True)
class Target:
    """Where a benchmark database lives: enough to rebuild ``Settings`` in a child process."""

    backend: str  # "sqlite" or "postgresql"
    url: str
    schema: str | None
    folder: Path  # var_dir: the SQLite file, the outbox

    def settings(self, **overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "database_url": self.url,
            "database_schema": self.schema,
            "var_dir": self.folder,
            "outbox_dir": self.folder / "outbox",
            "secret_key": SECRET,
            "base_url": "https://news.example.org",
            "debug": False,
        }
        values.update(overrides)
        return load_settings(**values)


def postgres_available(url: str = PG_URL) -> bool:
    try:
        engine = sa.create_engine(url, connect_args={"connect_timeout": 3})
        with engine.connect():
            pass
        engine.dispose()
        return True
    except sa.exc.OperationalError:
        return False


@contextmanager
def database(backend: str, *, pg_url: str = PG_URL) -> Iterator[Target]:
    """A fresh, migrated database for one benchmark, removed afterwards."""
    folder = Path(tempfile.mkdtemp(prefix="nl-bench-"))
    schema = None
    if backend == "postgresql":
        schema = f"bench_{uuid.uuid4().hex[:10]}"
        engine = sa.create_engine(pg_url)
        with engine.begin() as conn:
            conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
        engine.dispose()
        target = Target(backend, pg_url, schema, folder)
    else:
        target = Target(backend, f"sqlite:///{folder / 'bench.db'}", None, folder)
    try:
        yield target
    finally:
        if schema is not None:
            engine = sa.create_engine(pg_url)
            with engine.begin() as conn:
                conn.execute(sa.text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
            engine.dispose()
        shutil.rmtree(folder, ignore_errors=True)


def prepare(target: Target, subscribers: int) -> None:
    """Migrate, import the library and Issue 42, and add ``subscribers`` confirmed subscribers."""
    settings = target.settings()
    db = connect(settings)
    try:
        with db.session() as session:
            records, _warnings = library.parse_files(sorted(SEEDS.glob("*.txt")))
            library.import_records(records, session=session, topics=classify_topics(settings))
            import_source(load_source(ISSUE_42), session=session)
        add_subscribers(db, subscribers)
    finally:
        db.dispose()


def _rows(count: int) -> Iterator[tuple[int, str, str, str | None, str, list[str]]]:
    """(id, email, hash, name, status, topics): ``count`` confirmed, then the inactive extra."""
    people = audience(count, seed=42)
    extra = int(count * INACTIVE_SHARE)
    for n in range(count + extra):
        email = f"reader{n}@example.org"
        ehash = hashlib.sha256(email.encode()).hexdigest()
        name = None if n % 7 == 0 else f"Reader {n}"
        if n < count:
            yield n + 1, email, ehash, name, "confirmed", sorted(people[n])
        else:
            yield n + 1, email, ehash, name, ("pending", "unsubscribed")[n % 2], []


def add_subscribers(db: Database, count: int) -> None:
    """Bulk-insert the synthetic subscribers and their topics (ids 1..N, on an empty table)."""
    now = datetime.now(UTC)
    if db.dialect == "postgresql":
        _copy_postgres(db, count, now)
    else:
        _insert_sqlite(db, count, now)


def _copy_postgres(db: Database, count: int, now: datetime) -> None:
    raw = db.engine.raw_connection()
    try:
        driver: Any = raw.driver_connection
        topic_id = 0
        with driver.cursor() as cur:
            subs = (
                "COPY subscribers (id, email, email_hash, name, status, created_at, confirmed_at,"
                " soft_bounces) FROM STDIN"
            )
            # Two COPYs cannot be open at once on one connection: collect topics first.
            topics: list[tuple[int, int, str]] = []
            with cur.copy(subs) as copy_subs:
                for sid, email, ehash, name, status, chosen in _rows(count):
                    confirmed = now if status == "confirmed" else None
                    copy_subs.write_row((sid, email, ehash, name, status, now, confirmed, 0))
                    for topic in chosen:
                        topic_id += 1
                        topics.append((topic_id, sid, topic))
            with cur.copy("COPY subscriber_topics (id, subscriber_id, topic) FROM STDIN") as copy:
                for row in topics:
                    copy.write_row(row)
            for table, last in (("subscribers", count * 2), ("subscriber_topics", topic_id)):
                cur.execute(
                    f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), %s)", (max(last, 1),)
                )
            cur.execute("ANALYZE subscribers")
            cur.execute("ANALYZE subscriber_topics")
        driver.commit()
    finally:
        raw.close()


def _sqlite_time(value: datetime) -> str:
    return value.astimezone(UTC).replace(tzinfo=None).strftime("%Y-%m-%d %H:%M:%S.%f")


def _insert_sqlite(db: Database, count: int, now: datetime) -> None:
    stamp = _sqlite_time(now)
    raw = db.engine.raw_connection()
    try:
        cur: Any = raw.cursor()
        subs: list[tuple[Any, ...]] = []
        topics: list[tuple[int, str]] = []
        sql_subs = (
            "INSERT INTO subscribers (id, email, email_hash, name, status, created_at,"
            " confirmed_at, soft_bounces) VALUES (?, ?, ?, ?, ?, ?, ?, 0)"
        )
        sql_topics = "INSERT INTO subscriber_topics (subscriber_id, topic) VALUES (?, ?)"
        for sid, email, ehash, name, status, chosen in _rows(count):
            confirmed = stamp if status == "confirmed" else None
            subs.append((sid, email, ehash, name, status, stamp, confirmed))
            topics.extend((sid, t) for t in chosen)
            if len(subs) >= CHUNK:
                cur.executemany(sql_subs, subs)
                cur.executemany(sql_topics, topics)
                subs, topics = [], []
        if subs:
            cur.executemany(sql_subs, subs)
        if topics:
            cur.executemany(sql_topics, topics)
        raw.commit()
        cur.execute("ANALYZE")
        raw.commit()
    finally:
        raw.close()


def reset_ledger(target: Target, audience_size: int) -> None:
    """Forget every campaign (ledger, batches, events), keeping subscribers and the issue."""
    engine = sa.create_engine(
        target.url,
        connect_args={"options": f"-csearch_path={target.schema}"} if target.schema else {},
    )
    try:
        with engine.begin() as conn:
            if target.backend == "postgresql":
                conn.execute(
                    sa.text(
                        "TRUNCATE tracking_events, deliveries, send_batches, campaigns, suppressions CASCADE"
                    )
                )
            else:
                for table in ("tracking_events", "deliveries", "send_batches", "campaigns"):
                    conn.execute(sa.text(f"DELETE FROM {table}"))
                conn.execute(sa.text("DELETE FROM suppressions"))
            # Webhook events may have bounced or unsubscribed some of the audience.
            conn.execute(
                sa.text(
                    "UPDATE subscribers SET soft_bounces = 0, status = 'confirmed'"
                    " WHERE id <= :n AND (soft_bounces <> 0 OR status <> 'confirmed')"
                ),
                {"n": audience_size},
            )
            conn.execute(sa.text("UPDATE issues SET published_at = NULL"))
    finally:
        engine.dispose()


def snapshot(target: Target) -> None:
    """Keep a copy of the seeded SQLite file so each campaign can start from it (no-op on PostgreSQL)."""
    if target.backend != "sqlite":
        return
    engine = sa.create_engine(target.url)
    with engine.connect() as conn:
        conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    engine.dispose()
    shutil.copyfile(target.folder / "bench.db", target.folder / "seed.db")


def restore(target: Target, audience_size: int) -> None:
    """Back to the seeded state: the SQLite file copy, or an emptied ledger on PostgreSQL."""
    if target.backend != "sqlite":
        reset_ledger(target, audience_size)
        return
    for suffix in ("-wal", "-shm"):
        (target.folder / f"bench.db{suffix}").unlink(missing_ok=True)
    shutil.copyfile(target.folder / "seed.db", target.folder / "bench.db")
