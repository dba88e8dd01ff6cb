"""Engine, sessions and migrations.

A ``Database`` is built once per entry point from ``Settings`` and passed down;
there is no module-level engine.  Migrations run automatically on first use so
a fresh machine needs no set-up step (``newsletter db upgrade`` also exists).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, inspect, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from newsletter.config import Settings
from newsletter.errors import DatabaseError

MIGRATIONS_DIR = Path(__file__).parent / "migrations"


def redact(url: str) -> str:
    """The URL with any password hidden, safe for an error message."""
    return make_url(url).render_as_string(hide_password=True)


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    # WAL lets the web app read while a worker writes; busy_timeout turns
    # "database is locked" into a short wait.
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=10000")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.close()


def _sqlite_folder(database: str, var_dir: Path | None) -> None:
    """Create the data folder for a SQLite file in it; any other missing folder is an error.

    The default ``var/newsletter.db`` must work on a fresh machine, but a typo
    in a path elsewhere (``/srv/newsleter/db.sqlite``) must not silently grow a
    new, empty database in a new folder.
    """
    folder = Path(database).parent
    if folder.is_dir():
        return
    inside = var_dir is not None and folder.resolve().is_relative_to(var_dir.resolve())
    if not inside:
        raise DatabaseError(
            f"the folder {folder} for the SQLite database does not exist; create it first "
            f"(only the data folder {var_dir or 'var_dir'} is created for you)"
        )
    folder.mkdir(parents=True, exist_ok=True)


def make_engine(url: str, *, schema: str | None = None, var_dir: Path | None = None) -> Engine:
    """An engine for SQLite (creating its folder inside ``var_dir``) or PostgreSQL."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            _sqlite_folder(parsed.database, var_dir)
        engine = create_engine(url, connect_args={"timeout": 30})
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    connect_args: dict[str, Any] = {"connect_timeout": 5}
    if schema:
        connect_args["options"] = f"-csearch_path={schema}"
    return create_engine(url, pool_pre_ping=True, connect_args=connect_args)


@dataclass
class Database:
    """The engine and a session factory; the one handle code below the entry points receives."""

    engine: Engine
    sessions: sessionmaker[Session]

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session that commits on success and rolls back on any error."""
        with self.sessions() as session:
            try:
                yield session
                session.commit()
            except BaseException:
                session.rollback()
                raise

    def dispose(self) -> None:
        self.engine.dispose()


AUDIENCE_LOCK = 7302  # advisory-lock class: audience freezes (shared) vs erasures


def lock_audience(session: Session, *, exclusive: bool) -> None:
    """Order audience freezes against erasures, until the transaction ends (PostgreSQL).

    The ledger's ``subscriber_id`` has no foreign key (migration 0007), so
    nothing else stops a freeze from writing a row for a subscriber that an
    erasure deletes meanwhile.  Freezes share the lock and never wait for each
    other; an erasure waits for running freezes, and they for it.  SQLite
    allows one writer at a time, which already orders them.  The key is mixed
    with the schema, like the send-batch locks, so schemas don't contend.
    """
    if session.get_bind().dialect.name != "postgresql":
        return
    function = "pg_advisory_xact_lock" if exclusive else "pg_advisory_xact_lock_shared"
    session.execute(
        text(f"SELECT {function}(:c, hashtext(current_schema()))"), {"c": AUDIENCE_LOCK}
    )


def is_unavailable(exc: BaseException) -> bool:
    """Whether ``exc`` means the database is (momentarily) unreachable rather than a bug.

    A killed or dropped connection, a server restarting, a deadlock or
    serialisation failure: worth retrying later.  Integrity and data errors are not.
    """
    if not isinstance(exc, DBAPIError):
        return False
    return exc.connection_invalidated or isinstance(exc, OperationalError | InterfaceError)


@contextmanager
def unavailable_as_error() -> Iterator[None]:
    """Turn "the database went away" into ``DatabaseError`` (one clear line, retryable)."""
    try:
        yield
    except DBAPIError as exc:
        if not is_unavailable(exc):
            raise
        reason = str(exc.orig).strip().splitlines()[0] if exc.orig else type(exc).__name__
        raise DatabaseError(f"database unavailable: {reason}") from exc


def _alembic_config(engine: Engine) -> Any:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.attributes["engine"] = engine
    return cfg


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Apply migrations up to ``revision``."""
    from alembic import command

    command.upgrade(_alembic_config(engine), revision)


def current_revision(engine: Engine) -> str | None:
    from alembic.migration import MigrationContext

    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def head_revision() -> str | None:
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(
        _alembic_config(create_engine("sqlite://"))
    ).get_current_head()


def connect(settings: Settings, *, migrate: bool = True) -> Database:
    """Open the configured database, check it answers, and migrate it to head."""
    engine = make_engine(
        settings.database_url, schema=settings.database_schema, var_dir=settings.var_dir
    )
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        if migrate and current_revision(engine) != head_revision():
            upgrade(engine)
    except (OperationalError, DBAPIError) as exc:
        engine.dispose()
        reason = str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc)
        raise DatabaseError(
            f"cannot use database {redact(settings.database_url)}: {reason}"
        ) from None
    return Database(engine=engine, sessions=sessionmaker(engine, expire_on_commit=False))


def table_names(engine: Engine) -> set[str]:
    return set(inspect(engine).get_table_names())
