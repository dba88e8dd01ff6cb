"""PostgreSQL goes away mid-campaign: every connection of the worker is terminated.

A "DBA" on a separate connection calls ``pg_terminate_backend`` on all of the
worker's backends (its pooled connections and the one holding its advisory
locks), at chosen statements inside the worker's transactions and on a timer
while batches are in flight.  The worker must back off, reconnect and carry
on; the audit then finds every recipient sent exactly once.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy import event

from newsletter.config import Settings
from newsletter.db import Database, connect
from newsletter.errors import DatabaseError
from newsletter.sending import service
from newsletter.sending.engine import Policy, Worker
from newsletter.sending.sqlstore import SqlStore
from tests.conftest import PG_URL
from tests.reliability.helpers import RecordingMessenger, audit, campaign_status
from tests.sending_helpers import (
    FakeClock,
    started_campaign,
    stub_preparer,
)

pytestmark = pytest.mark.parametrize("backend", ["postgresql"], indirect=True)

RECIPIENTS = 300
BATCH = 10


class Dba:
    """Terminates every backend of one application (by ``application_name``)."""

    def __init__(self, admin: sa.Engine, application: str) -> None:
        self.admin = admin
        self.application = application
        self.kills = 0
        self.terminated = 0

    def terminate_all(self) -> int:
        with self.admin.connect() as conn:
            pids = conn.execute(
                sa.text(
                    "SELECT pg_terminate_backend(pid, 5000) FROM pg_stat_activity"
                    " WHERE application_name = :app AND pid <> pg_backend_pid()"
                ),
                {"app": self.application},
            ).all()
        self.kills += 1
        self.terminated += len(pids)
        return len(pids)


@pytest.fixture
def worker_db(settings: Settings, pg_admin: sa.Engine) -> Iterator[tuple[Database, Dba]]:
    """A separate engine for the worker whose connections carry a unique application name."""
    name = f"rel-{uuid.uuid4().hex[:10]}"
    configured = settings.model_copy(update={"database_url": f"{PG_URL}?application_name={name}"})
    database = connect(configured)
    yield database, Dba(pg_admin, name)
    database.dispose()


def _campaign(db: Database, clock: FakeClock) -> int:
    return started_campaign(db, clock, recipients=RECIPIENTS, batch_size=BATCH)


def _worker(db: Database, messenger: RecordingMessenger, clock: FakeClock) -> Worker:
    return Worker(
        store=SqlStore(db, worker_id=f"outage-{uuid.uuid4().hex[:6]}"),
        messenger=messenger,
        prepare=stub_preparer,
        policy=Policy(idle_poll_seconds=0.05),
        clock=clock,
        sleep=clock.sleep,
    )


def _run(worker: Worker, db: Database, cid: int) -> None:
    try:
        worker.run(threading.Event(), until=service.campaign_finished(db, cid))
    finally:
        worker.store.close()


@pytest.mark.parametrize("every", [5, 8, 13])
def test_connections_killed_inside_the_workers_transactions(
    db: Database, worker_db: tuple[Database, Dba], every: int
) -> None:
    """Kill everything at every n-th statement the worker sends (claim, record, locks...)."""
    clock = FakeClock()
    cid = _campaign(db, clock)
    wdb, dba = worker_db
    statements = 0

    def before_execute(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        nonlocal statements
        statements += 1
        if statements % every == 0 and dba.kills < 12:
            dba.terminate_all()

    event.listen(wdb.engine, "before_cursor_execute", before_execute)
    messenger = RecordingMessenger()
    worker = _worker(wdb, messenger, clock)
    _run(worker, wdb, cid)
    assert dba.kills >= 4 and dba.terminated >= dba.kills
    result = audit(db, cid, messenger.taken)
    assert result.states == {"accepted": RECIPIENTS}
    assert campaign_status(db, cid) == "sent"
    assert worker.stats.db_retries >= 1 and clock.slept > 0  # it backed off, then went on


def test_connections_killed_on_a_timer_while_batches_are_in_flight(
    db: Database, worker_db: tuple[Database, Dba]
) -> None:
    clock = FakeClock()
    cid = _campaign(db, clock)
    wdb, dba = worker_db
    messenger = RecordingMessenger(delay=0.01)
    worker = _worker(wdb, messenger, clock)
    done = threading.Event()

    def kill_repeatedly() -> None:
        while not done.wait(0.07):
            dba.terminate_all()

    killer = threading.Thread(target=kill_repeatedly)
    killer.start()
    try:
        _run(worker, wdb, cid)
    finally:
        done.set()
        killer.join()
    assert dba.terminated >= 3
    result = audit(db, cid, messenger.taken)
    assert result.states == {"accepted": RECIPIENTS}
    assert campaign_status(db, cid) == "sent"


def test_an_outage_longer_than_the_retry_budget_stops_the_worker_cleanly(
    db: Database, worker_db: tuple[Database, Dba]
) -> None:
    """Retries are bounded: the worker stops with one clear error; a restart finishes the job."""
    clock = FakeClock()
    cid = _campaign(db, clock)
    wdb, dba = worker_db
    messenger = RecordingMessenger()
    worker = _worker(wdb, messenger, clock)
    worker.policy = Policy(idle_poll_seconds=0.05, db_retry_attempts=3)
    down = threading.Event()

    def outage(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if down.is_set():
            dba.terminate_all()

    def go_down_after_first_send(stage: str, _batch: object) -> None:
        if stage == "sent" and messenger.calls == 1:
            down.set()  # the provider took batch 1; its result cannot be recorded

    worker.hook = go_down_after_first_send
    event.listen(wdb.engine, "before_cursor_execute", outage)
    with pytest.raises(DatabaseError, match="database unavailable: terminating connection"):
        _run(worker, wdb, cid)
    assert worker.stats.db_retries == 2
    event.remove(wdb.engine, "before_cursor_execute", outage)
    down.clear()
    restarted = _worker(wdb, messenger, clock)
    _run(restarted, wdb, cid)
    result = audit(db, cid, messenger.taken)
    # Batch 1 was submitting when the worker gave up: maybe sent (it was), never resent.
    assert result.states == {"accepted": RECIPIENTS - BATCH, "unknown": BATCH}
    assert all(messenger.taken[str(i)] == 1 for i in result.unknown)
