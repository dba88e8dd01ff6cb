"""The scheduler runtime with real APScheduler on short (sub-second) timers, both backends."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import sqlalchemy as sa

from newsletter.config import Settings
from newsletter.db import Database
from newsletter.scheduling.runner import JOB_TABLE, RunOptions, SchedulerRuntime
from newsletter.sending import campaigns
from newsletter.sending.engine import system_now
from newsletter.transports import MemoryMessenger
from tests.scheduler_helpers import (
    import_issue_42,
    ledger_rows,
    load,
    nocheck_starter,
    running,
    scheduled_campaign,
    soon,
    wait_for,
)
from tests.sending_helpers import add_subscribers

FAST = RunOptions(sweep_seconds=60.0, retry_seconds=0.1, worker=False)


def _runtime(
    db: Database,
    settings: Settings,
    *,
    options: RunOptions = FAST,
    clock: Callable[[], datetime] = system_now,
) -> SchedulerRuntime:
    return SchedulerRuntime(db, settings, options=options, clock=clock, start=nocheck_starter(db))


def _status(db: Database, cid: int) -> Callable[[], str]:
    return lambda: load(db, cid).status


def test_the_date_job_fires_on_time_without_waiting_for_the_sweep(
    db: Database, settings: Settings
) -> None:
    cid = scheduled_campaign(db, soon(0.8))
    runtime = _runtime(db, settings)  # sweep every 60 s: only the date job can start it
    with running(runtime):
        assert wait_for(runtime.leading.is_set, timeout=5)
        assert f"campaign-{cid}" in runtime.stored_job_ids()
        assert load(db, cid).status == "scheduled"
        assert wait_for(lambda: _status(db, cid)() == "sending", timeout=5)
    started = load(db, cid).started_at
    scheduled = load(db, cid).scheduled_at
    assert started is not None and scheduled is not None
    assert timedelta(0) <= started - scheduled < timedelta(seconds=2)


def test_jobs_are_stored_in_the_database_in_the_configured_schema(
    db: Database, settings: Settings
) -> None:
    cid = scheduled_campaign(db, soon(3600))
    runtime = _runtime(db, settings)
    with running(runtime):
        assert wait_for(runtime.leading.is_set, timeout=5)
    schema = settings.database_schema if db.dialect == "postgresql" else None
    assert JOB_TABLE in sa.inspect(db.engine).get_table_names(schema=schema)
    table = sa.table(JOB_TABLE, sa.column("id"), schema=schema)
    with db.engine.connect() as conn:
        stored = set(conn.scalars(sa.select(table.c.id)))
    # survives the runtime: restarts find it (and the retention purge of click events, the
    # library sources' poll and the link check)
    assert stored == {"sweep", "tracking-purge", "sources-poll", "link-check", f"campaign-{cid}"}


def test_a_restart_between_scheduling_and_due_time_still_fires(
    db: Database, settings: Settings
) -> None:
    cid = scheduled_campaign(db, soon(1.0))
    first = _runtime(db, settings)
    with running(first):
        assert wait_for(first.leading.is_set, timeout=5)
    assert load(db, cid).status == "scheduled"  # stopped before the due time
    assert wait_for(lambda: datetime.now(UTC) > (load(db, cid).scheduled_at or soon(0)), timeout=3)
    second = _runtime(db, settings)  # a new scheduler object, same database
    with running(second):
        assert wait_for(lambda: _status(db, cid)() == "sending", timeout=5)


def test_coming_back_after_the_grace_period_marks_missed(db: Database, settings: Settings) -> None:
    cid = scheduled_campaign(db, soon(-5))
    later = settings.model_copy(update={"misfire_grace_seconds": 2})
    runtime = _runtime(db, later)
    with running(runtime):
        assert wait_for(lambda: _status(db, cid)() == "missed", timeout=5)
    assert "grace 2s" in (load(db, cid).status_reason or "")


def test_one_leader_at_a_time_and_the_follower_takes_over(db: Database, settings: Settings) -> None:
    first, second = _runtime(db, settings), _runtime(db, settings)
    with running(first) as stop_first:
        assert wait_for(first.leading.is_set, timeout=5)
        with running(second):
            assert not wait_for(second.leading.is_set, timeout=0.5)
            stop_first.set()  # the leader shuts down and releases its lock
            assert wait_for(second.leading.is_set, timeout=5)
            assert not first.leading.is_set()
            cid = scheduled_campaign(db, soon(0.3))
            second.tick()  # what the sweep does: pick up the new row and aim a job at it
            assert wait_for(lambda: _status(db, cid)() == "sending", timeout=5)


def test_the_scheduler_also_sends_issue_42(
    db: Database, settings: Settings, seeds_dir: Path
) -> None:
    import_issue_42(db, settings, seeds_dir)
    with db.session() as session:
        add_subscribers(session, 7)
        cid = campaigns.create_campaign(42, session=session, scheduled_at=soon(0.5)).id
    messenger = MemoryMessenger()
    options = RunOptions(sweep_seconds=60.0, retry_seconds=0.1, worker=True)
    runtime = SchedulerRuntime(db, settings, options=options, messenger=messenger)
    with running(runtime):
        assert wait_for(lambda: _status(db, cid)() == "sent", timeout=20)
    assert ledger_rows(db, cid) == 7 and len(messenger.sent) == 7
    assert load(db, cid).total_recipients == 7
