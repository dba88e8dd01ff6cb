"""Leader election: at most one scheduler process runs APScheduler per database (and schema).

PostgreSQL: a session-level ``pg_try_advisory_lock`` held on a dedicated
connection.  The lock lives exactly as long as that server session, so a
leader that dies (even ``kill -9``) frees it when its socket closes, and a
follower's next retry takes over; no lease or heartbeat table to tune.  The
key mixes a fixed namespace with the schema name so test schemas (or two
deployments sharing a database) never block each other.

SQLite: an exclusive ``fcntl.flock`` on ``<database>.scheduler.lock``, released
by the kernel when the process dies.

Leadership is an optimisation, not the safety net: every step the leader runs
is idempotent, so a brief overlap (a leader that lost its connection and has
not noticed yet) still cannot start a campaign twice.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import zlib
from pathlib import Path
from typing import IO, Protocol

from sqlalchemy import Connection, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError

from newsletter.db import Database

log = logging.getLogger(__name__)

LEADER_NAMESPACE = 7302  # sqlstore uses 7301 (two-int keys); this lock uses the bigint form


class LeaderLock(Protocol):
    def try_acquire(self) -> bool: ...

    def still_held(self) -> bool: ...

    def release(self) -> None: ...


def leader_lock(db: Database, schema: str | None) -> LeaderLock:
    """The right lock for the database the scheduler runs on."""
    if db.dialect == "postgresql":
        return AdvisoryLeaderLock(db, schema)
    return FileLeaderLock(db)


def advisory_key(schema: str | None) -> int:
    """A signed 64-bit key: namespace in the high half, the schema's CRC in the low half."""
    return (LEADER_NAMESPACE << 32) | zlib.crc32((schema or "public").encode())


class AdvisoryLeaderLock:
    """``pg_try_advisory_lock`` on a connection of its own (AUTOCOMMIT, never pooled back)."""

    def __init__(self, db: Database, schema: str | None) -> None:
        self.db = db
        self.key = advisory_key(schema)
        self._conn: Connection | None = None
        self._held = False

    def _connection(self) -> Connection:
        if self._conn is None:
            self._conn = self.db.engine.connect().execution_options(isolation_level="AUTOCOMMIT")
        return self._conn

    def try_acquire(self) -> bool:
        if self._held:
            return self.still_held()
        try:
            got = (
                self._connection()
                .execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": self.key})
                .scalar()
            )
        except DBAPIError as exc:  # database restarting: stay a follower and retry
            log.warning("cannot reach the database for leader election: %s", exc.orig)
            self._drop()
            return False
        self._held = bool(got)
        return self._held

    def still_held(self) -> bool:
        """The session still answers, so its lock is still ours; if not, we are no longer leader."""
        if not self._held or self._conn is None:
            return False
        try:
            self._conn.execute(text("SELECT 1"))
        except DBAPIError:
            log.error("lost the leader connection; stepping down")
            self._drop()
            return False
        return True

    def release(self) -> None:
        if self._conn is not None and self._held:
            with contextlib.suppress(DBAPIError):  # a dead session took its lock with it
                self._conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": self.key})
        self._drop()

    def _drop(self) -> None:
        self._held = False
        if self._conn is not None:
            # Really close the server session (not back to the pool): the lock must go with it.
            self._conn.invalidate()
            self._conn.close()
            self._conn = None


class FileLeaderLock:
    """An exclusive ``flock`` beside the SQLite file, held while this process leads."""

    def __init__(self, db: Database) -> None:
        database = make_url(str(db.engine.url)).database or "memory"
        self.path = Path(f"{database}.scheduler.lock")
        self._handle: IO[str] | None = None

    def try_acquire(self) -> bool:
        if self._handle is not None:
            return True
        handle = open(self.path, "a+")  # noqa: SIM115 - held while leading
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            return False
        self._handle = handle
        return True

    def still_held(self) -> bool:
        return self._handle is not None

    def release(self) -> None:
        if self._handle is not None:
            fcntl.flock(self._handle.fileno(), fcntl.LOCK_UN)
            self._handle.close()
            self._handle = None
