"""A hundred concurrent ``campaign start`` and ``retry-failed`` calls on one campaign.

Threads in this process and real ``newsletter`` processes race while two
workers are already polling; the conditional UPDATEs must let exactly one
start win and queue each failed recipient again exactly once, so the provider
takes every recipient exactly once in the end.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import TypeVar

import pytest

from newsletter.config import Settings
from newsletter.db import Database
from newsletter.errors import StateError
from newsletter.sending import campaigns, service
from newsletter.sending.engine import system_now
from tests.reliability.helpers import (
    RecordingMessenger,
    audit,
    campaign_status,
    cli,
    proc_env,
    wait_for,
)
from tests.sending_helpers import add_subscribers

T = TypeVar("T")
CALLS = 100
PROCESSES = 4
RECIPIENTS = 400
FAILING = [f"user{i}@example.org" for i in range(0, RECIPIENTS, 20)]


def _race(calls: list[Callable[[], T]]) -> list[T | BaseException]:
    """Run every call at the same instant (a barrier), each in its own thread."""
    barrier = threading.Barrier(len(calls))

    def run(call: Callable[[], T]) -> T | BaseException:
        barrier.wait()
        try:
            return call()
        except Exception as exc:
            return exc

    with ThreadPoolExecutor(len(calls)) as pool:
        return list(pool.map(run, calls))


@contextmanager
def _workers(
    db: Database, settings: Settings, messenger: RecordingMessenger, count: int
) -> Iterator[None]:
    stop = threading.Event()
    errors: list[BaseException] = []

    def work() -> None:
        try:
            with service.open_worker(db, settings, messenger=messenger) as worker:
                worker.policy = type(worker.policy)(idle_poll_seconds=0.05)
                worker.run(stop)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(count)]
    for thread in threads:
        thread.start()
    try:
        yield
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=60)
    assert not errors, errors


def _retry(db: Database, settings: Settings, cid: int) -> int:
    with db.session() as session:
        return campaigns.retry_failed(
            cid,
            session=session,
            include_unknown=False,
            batch_size=settings.batch_size,
            now=system_now(),
        )


def test_a_hundred_concurrent_starts_and_retries_send_each_recipient_once(
    issue42: Database, settings: Settings, backend: str
) -> None:
    settings = settings.model_copy(update={"batch_size": 25})
    with issue42.session() as session:
        add_subscribers(session, RECIPIENTS)
        cid = campaigns.create_campaign(42, session=session).id
    messenger = RecordingMessenger(fail_once=FAILING)
    env = proc_env(settings)
    # SQLite allows one sending worker per database (a lock file); PostgreSQL many.
    with _workers(issue42, settings, messenger, 2 if backend == "postgresql" else 1):
        procs = [cli(["campaign", "start", str(cid)], env) for _ in range(PROCESSES)]
        starts = _race([lambda: service.start(issue42, settings, cid)] * CALLS)
        outputs = [p.communicate(timeout=120) for p in procs]
        assert all(p.returncode == 0 for p in procs), outputs
        won_in_procs = sum("started" in out and "already" not in out for out, _ in outputs)
        assert not [r for r in starts if isinstance(r, BaseException)], starts
        assert starts.count(True) + won_in_procs == 1, (starts.count(True), outputs)
        finished = service.campaign_finished(issue42, cid)
        wait_for(finished, timeout=120, what="the first pass to finish")
        first = audit(issue42, cid, messenger.taken)
        assert first.states == {"accepted": RECIPIENTS - len(FAILING), "failed": len(FAILING)}

        # Now everyone retries at once, mixed with late starts (which must change nothing).
        procs = [cli(["campaign", "retry-failed", str(cid)], env) for _ in range(PROCESSES)]
        calls: list[Callable[[], object]] = [lambda: _retry(issue42, settings, cid)] * CALLS
        calls += [lambda: service.start(issue42, settings, cid)] * 10
        results = _race(calls)
        outputs = [p.communicate(timeout=120) for p in procs]
        assert all(p.returncode == 0 for p in procs), outputs
        assert not [r for r in results if isinstance(r, BaseException)], results
        queued = sum(r for r in results[:CALLS] if isinstance(r, int))
        queued += sum(int(re.findall(r"(\d+) recipient", out)[0]) for out, _ in outputs)
        assert queued == len(FAILING), "each failed recipient is queued again exactly once"
        assert results[CALLS:] == [False] * 10
        wait_for(finished, timeout=120, what="the retry to finish")
    result = audit(issue42, cid, messenger.taken)
    assert result.states == {"accepted": RECIPIENTS}
    assert campaign_status(issue42, cid) == "sent"
    assert sorted(messenger.taken.values()) == [1] * RECIPIENTS


def _cancel(db: Database, cid: int) -> None:
    with db.session() as session:
        campaigns.cancel_campaign(cid, session=session, now=system_now())


def _paused_with_failures(db: Database, settings: Settings, messenger: RecordingMessenger) -> int:
    """A campaign paused after two of its four batches, five recipients failed."""
    with db.session() as session:
        add_subscribers(session, 100)
        cid = campaigns.create_campaign(42, session=session).id
    assert service.start(db, settings, cid)
    with service.open_worker(db, settings, messenger=messenger) as worker:
        assert worker.step() and worker.step()
    with db.session() as session:
        campaigns.pause_campaign(cid, session=session)
    return cid


def test_retry_failed_never_revives_a_cancelled_campaign(
    issue42: Database, settings: Settings
) -> None:
    settings = settings.model_copy(update={"batch_size": 25})
    messenger = RecordingMessenger(fail_once=FAILING[:5])  # users 0, 20, 40, 60, 80
    cid = _paused_with_failures(issue42, settings, messenger)
    _cancel(issue42, cid)
    with pytest.raises(StateError, match="cancelled"):
        _retry(issue42, settings, cid)
    assert campaign_status(issue42, cid) == "cancelled"
    service.drain(issue42, settings, cid, messenger=messenger)  # nothing left to send
    result = audit(issue42, cid, messenger.taken)
    assert result.states == {"accepted": 47, "failed": 3, "skipped": 50}


def test_retry_failed_racing_cancel_ends_cancelled_with_every_row_final(
    issue42: Database, settings: Settings
) -> None:
    settings = settings.model_copy(update={"batch_size": 25})
    messenger = RecordingMessenger(fail_once=FAILING[:5])
    cid = _paused_with_failures(issue42, settings, messenger)
    calls: list[Callable[[], object]] = [lambda: _retry(issue42, settings, cid)] * 20
    results = _race([*calls, lambda: _cancel(issue42, cid)])
    assert results[-1] is None, results[-1]  # a paused (or re-sending) campaign can be cancelled
    assert all(isinstance(r, int | StateError) for r in results[:-1]), results
    assert sum(r for r in results[:-1] if isinstance(r, int)) in (0, 3)
    assert campaign_status(issue42, cid) == "cancelled"
    service.drain(issue42, settings, cid, messenger=messenger)
    result = audit(issue42, cid, messenger.taken)  # every row final, nothing sent after cancel
    assert result.states["accepted"] == 47 and sum(result.states.values()) == 100
