"""The send engine against the real SQL store, on SQLite and PostgreSQL."""

from __future__ import annotations

import random
import threading
from collections import Counter
from collections.abc import Iterator

import pytest
from sqlalchemy import event, func, select, update

from newsletter.db import Database
from newsletter.errors import StateError
from newsletter.models import (
    BatchStatus,
    Campaign,
    Delivery,
    DeliveryStatus,
    Issue,
    SendBatch,
    Subscriber,
    Suppression,
)
from newsletter.models.sending import FINAL_STATES
from newsletter.sending import campaigns
from newsletter.sending.engine import Policy, Worker
from newsletter.sending.sqlstore import SqlStore
from newsletter.sending.types import ClaimedBatch, Recorded
from newsletter.transports import MemoryMessenger, Outcome
from newsletter.transports.base import BatchResult, MessageBatch, uniform
from tests.sending_helpers import FakeClock, NoChecks, add_subscribers, make_issue, stub_preparer


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def store(db: Database) -> Iterator[SqlStore]:
    s = SqlStore(db, worker_id="w1")
    yield s
    s.close()


def _campaign(
    db: Database,
    clock: FakeClock,
    *,
    recipients: int = 0,
    topics: list[str] | None = None,
    universe: list[str] | None = None,
    batch_size: int = 1000,
) -> int:
    with db.session() as session:
        make_issue(session)
        if recipients:
            add_subscribers(session, recipients)
        campaign = campaigns.create_campaign(42, session=session, topics=topics or [])
        cid = campaign.id
    with db.session() as session:
        assert campaigns.start_campaign(
            cid, session=session, checks=NoChecks(universe), batch_size=batch_size, now=clock()
        )
    return cid


def _worker(store: SqlStore, messenger: object, clock: FakeClock, **policy: object) -> Worker:
    return Worker(
        store=store,
        messenger=messenger,
        prepare=stub_preparer,  # type: ignore[arg-type]
        policy=Policy(**policy),
        clock=clock,
        sleep=clock.sleep,
    )  # type: ignore[arg-type]


def _drain(worker: Worker, db: Database, cid: int, max_steps: int = 500) -> None:
    def finished() -> bool:
        with db.session() as session:
            return campaigns.get_campaign(cid, session=session).status != "sending"

    worker.run(threading.Event(), until=finished)


def _statuses(db: Database, cid: int) -> Counter[str]:
    with db.session() as session:
        return Counter(session.scalars(select(Delivery.status).where(Delivery.campaign_id == cid)))


def test_freeze_writes_one_row_per_eligible_subscriber_in_batches(
    db: Database, clock: FakeClock
) -> None:
    with db.session() as session:
        add_subscribers(session, 3, status="pending", prefix="pending")
        add_subscribers(session, 2, status="unsubscribed", prefix="gone")
        ids = add_subscribers(session, 1, prefix="suppressed")
        email_hash = session.get(Subscriber, ids[0]).email_hash  # type: ignore[union-attr]
        session.add(Suppression(email_hash=email_hash, reason="hard_bounce"))
    cid = _campaign(db, clock, recipients=2500)
    with db.session() as session:
        campaign = session.get(Campaign, cid)
        assert campaign is not None and campaign.total_recipients == 2500
        sizes = sorted(session.scalars(select(SendBatch.size).where(SendBatch.campaign_id == cid)))
        assert sizes == [500, 1000, 1000]
        unbatched = session.scalar(select(func.count()).where(Delivery.batch_id.is_(None)))
        assert unbatched == 0
    with db.session() as session:  # starting again changes nothing
        again = campaigns.start_campaign(
            cid, session=session, checks=NoChecks(), batch_size=1000, now=clock()
        )
    assert again is False
    assert sum(_statuses(db, cid).values()) == 2500


def test_segments_group_recipients_by_the_issue_topics_they_chose(
    db: Database, clock: FakeClock
) -> None:
    with db.session() as session:
        make_issue(session)
        add_subscribers(session, 5, topics=("Equity",), prefix="eq")
        add_subscribers(session, 4, topics=("Equity", "Gardening"), prefix="eqg")
        add_subscribers(session, 3, topics=("Assessment", "Equity"), prefix="ae")
        add_subscribers(session, 2, prefix="none")
        cid = campaigns.create_campaign(42, session=session).id
    with db.session() as session:
        campaigns.start_campaign(
            cid,
            session=session,
            checks=NoChecks(["Assessment", "Equity"]),
            batch_size=1000,
            now=clock(),
        )
    store = SqlStore(db, worker_id="seg")
    segments = []
    try:
        while (batch := store.claim(now=clock())) is not None:
            segments.append((batch.segment, len(batch.recipients)))
            store.release(batch.id, not_before=clock.now.replace(year=2100))
    finally:
        store.close()
    # "Gardening" is not in the issue, so eq and eqg share a segment: 3 renders, not 4.
    assert sorted(segments, key=lambda s: sorted(s[0])) == sorted(
        [
            (frozenset(), 2),
            (frozenset({"Equity"}), 9),
            (frozenset({"Assessment", "Equity"}), 3),
        ],
        key=lambda s: sorted(s[0]),
    )


def test_worker_sends_each_recipient_exactly_once(
    db: Database, store: SqlStore, clock: FakeClock
) -> None:
    cid = _campaign(db, clock, recipients=2100)
    messenger = MemoryMessenger()
    _drain(_worker(store, messenger, clock), db, cid)
    assert messenger.calls == 3
    assert len(messenger.sent) == 2100
    assert len({m.email for m in messenger.sent}) == 2100
    assert _statuses(db, cid) == {"accepted": 2100}
    with db.session() as session:
        assert campaigns.get_campaign(cid, session=session).status == "sent"
        assert session.scalar(select(Issue.published_at)) is not None
    first = messenger.sent[0].email_message
    assert "User " in first.html and first.headers["List-Unsubscribe"].startswith(
        "<https://x.test/u/"
    )


def test_recipient_who_leaves_after_freeze_is_skipped(
    db: Database, store: SqlStore, clock: FakeClock
) -> None:
    cid = _campaign(db, clock, recipients=10)
    with db.session() as session:
        session.execute(
            update(Subscriber)
            .where(Subscriber.email == "user3@example.org")
            .values(status="unsubscribed")
        )
        email_hash = session.scalar(
            select(Subscriber.email_hash).where(Subscriber.email == "user4@example.org")
        )
        session.add(Suppression(email_hash=email_hash, reason="complaint"))
    messenger = MemoryMessenger()
    _drain(_worker(store, messenger, clock), db, cid)
    assert _statuses(db, cid) == {"accepted": 8, "skipped": 2}
    assert {m.email for m in messenger.sent}.isdisjoint({"user3@example.org", "user4@example.org"})


def test_temporary_failures_back_off_then_permanent_and_exhausted_fail(
    db: Database, store: SqlStore, clock: FakeClock
) -> None:
    cid = _campaign(db, clock, recipients=5)
    messenger = MemoryMessenger(
        outcomes={"user1@example.org": Outcome.PERMANENT, "user2@example.org": Outcome.TEMPORARY}
    )
    worker = _worker(store, messenger, clock, max_attempts=4, max_consecutive_failures=100)
    _drain(worker, db, cid)
    assert _statuses(db, cid) == {"accepted": 3, "failed": 2}
    assert messenger.calls == 4  # 1 full batch, then 3 retries of the temporary recipient
    assert clock.slept >= 2 * 0.5 + 4 * 0.5  # backoff waited (fake time), jittered 50-100%
    with db.session() as session:
        detail = session.scalar(
            select(Delivery.detail)
            .join(Subscriber, Subscriber.id == Delivery.subscriber_id)
            .where(Subscriber.email == "user2@example.org")
        )
    assert detail == "temporary"


class ScriptedMessenger:
    """Answers batches from a script of whole-batch outcomes, then accepts."""

    name = "scripted"
    max_batch = 1000

    def __init__(
        self, script: list[BatchResult | tuple[Outcome, str | None, float | None]]
    ) -> None:
        self.script = script
        self.calls = 0

    def send(self, batch: MessageBatch) -> BatchResult:
        self.calls += 1
        if self.script:
            outcome, error, retry_after = self.script.pop(0)  # type: ignore[misc]
            return uniform(
                batch, outcome, f"scripted {outcome}", error=error, retry_after=retry_after
            )
        return uniform(batch, Outcome.ACCEPTED, "ok")

    def close(self) -> None:
        pass


def test_provider_reset_time_is_waited_for(db: Database, store: SqlStore, clock: FakeClock) -> None:
    cid = _campaign(db, clock, recipients=3)
    messenger = ScriptedMessenger([(Outcome.TEMPORARY, None, 30.0)])
    _drain(_worker(store, messenger, clock, idle_poll_seconds=1.0), db, cid)
    assert _statuses(db, cid) == {"accepted": 3}
    assert messenger.calls == 2 and clock.slept >= 30


def test_transport_error_pauses_campaign_and_resume_finishes(
    db: Database, store: SqlStore, clock: FakeClock
) -> None:
    cid = _campaign(db, clock, recipients=1500)
    messenger = ScriptedMessenger([(Outcome.PERMANENT, "SendGrid refused the API key", None)])
    _drain(_worker(store, messenger, clock), db, cid)
    with db.session() as session:
        campaign = campaigns.get_campaign(cid, session=session)
        assert campaign.status == "paused" and "API key" in (campaign.status_reason or "")
    with db.session() as session:
        campaigns.resume_campaign(cid, session=session)
    _drain(_worker(store, messenger, clock), db, cid)
    assert _statuses(db, cid) == {"failed": 1000, "accepted": 500}
    with db.session() as session:
        assert (
            campaigns.retry_failed(
                cid, session=session, include_unknown=False, batch_size=1000, now=clock()
            )
            == 1000
        )
    _drain(_worker(store, messenger, clock), db, cid)
    assert _statuses(db, cid) == {"accepted": 1500}


def test_consecutive_failures_pause_with_reason(
    db: Database, store: SqlStore, clock: FakeClock
) -> None:
    cid = _campaign(db, clock, recipients=40, batch_size=10)
    messenger = ScriptedMessenger([(Outcome.PERMANENT, None, None)] * 10)
    _drain(_worker(store, messenger, clock, max_consecutive_failures=3), db, cid)
    with db.session() as session:
        campaign = campaigns.get_campaign(cid, session=session)
    assert campaign.status == "paused"
    assert "3 consecutive failed batches" in (campaign.status_reason or "")
    assert messenger.calls == 3


def test_batch_left_submitting_by_a_dead_worker_becomes_unknown_and_is_not_resent(
    db: Database, clock: FakeClock
) -> None:
    cid = _campaign(db, clock, recipients=30, batch_size=10)
    dead = SqlStore(db, worker_id="dead")
    batch = dead.claim(now=clock())
    assert batch is not None and dead.mark_submitting(batch.id, now=clock())
    dead.close()  # the process "dies": its advisory lock / lock file goes with it
    messenger = MemoryMessenger()
    store = SqlStore(db, worker_id="w2")
    try:
        _drain(_worker(store, messenger, clock), db, cid)
    finally:
        store.close()
    assert _statuses(db, cid) == {"accepted": 20, "unknown": 10}
    sent_refs = {int(m.ref) for m in messenger.sent}
    assert sent_refs.isdisjoint({a.delivery_id for a in batch.recipients})
    with db.session() as session:
        report = campaigns.campaign_report(cid, session=session)
        assert len(report.unknown) == 10 and report.status == "sent"
        assert (
            campaigns.retry_failed(
                cid, session=session, include_unknown=False, batch_size=10, now=clock()
            )
            == 0
        )
    with db.session() as session:
        assert (
            campaigns.retry_failed(
                cid, session=session, include_unknown=True, batch_size=10, now=clock()
            )
            == 10
        )


def test_claimed_but_unsubmitted_batch_of_a_dead_worker_is_sent_normally(
    db: Database, clock: FakeClock
) -> None:
    cid = _campaign(db, clock, recipients=10)
    dead = SqlStore(db, worker_id="dead")
    assert dead.claim(now=clock()) is not None
    dead.close()
    store = SqlStore(db, worker_id="w2")
    try:
        _drain(_worker(store, MemoryMessenger(), clock), db, cid)
    finally:
        store.close()
    assert _statuses(db, cid) == {"accepted": 10}


def test_cancel_leaves_every_row_in_a_final_state(
    db: Database, store: SqlStore, clock: FakeClock
) -> None:
    cid = _campaign(db, clock, recipients=25, batch_size=10)
    worker = _worker(store, MemoryMessenger(), clock)
    assert worker.step()
    with db.session() as session:
        campaigns.cancel_campaign(cid, session=session, now=clock())
    assert not worker.step()
    assert _statuses(db, cid) == {"accepted": 10, "skipped": 15}
    with db.session() as session:
        states = set(session.scalars(select(Delivery.status)))
        assert states <= {s.value for s in FINAL_STATES}
        with pytest.raises(StateError):
            campaigns.resume_campaign(cid, session=session)


def test_report_counts_and_rates(db: Database, store: SqlStore, clock: FakeClock) -> None:
    cid = _campaign(db, clock, recipients=4)
    _drain(
        _worker(store, MemoryMessenger(outcomes={"user0@example.org": Outcome.PERMANENT}), clock),
        db,
        cid,
    )
    with db.session() as session:
        session.execute(
            update(Delivery)
            .where(Delivery.status == DeliveryStatus.ACCEPTED)
            .values(status=DeliveryStatus.DELIVERED)
        )
        report = campaigns.campaign_report(cid, session=session)
    assert report.counts["delivered"] == 3 and report.counts["failed"] == 1
    assert report.rates["delivery_rate"] == 1.0
    assert {r["email"] for r in report.recipients} == {f"user{i}@example.org" for i in range(4)}
    assert report.as_dict()["status"] == "sent"


def test_pending_batches_only_from_sending_campaigns(
    db: Database, store: SqlStore, clock: FakeClock
) -> None:
    cid = _campaign(db, clock, recipients=5)
    with db.session() as session:
        campaigns.pause_campaign(cid, session=session)
    assert store.claim(now=clock()) is None
    with db.session() as session:
        batches = set(session.scalars(select(SendBatch.status)))
    assert batches == {BatchStatus.PENDING}


def test_throttle_spaces_batches_to_the_configured_rate(clock: FakeClock) -> None:
    from newsletter.sending.engine import Throttle

    throttle = Throttle(rate=100.0, clock=clock, sleep=clock.sleep)
    for _ in range(5):
        throttle.wait(50)  # 5 x 50 messages at 100/s: the last may start after 2 s
    assert 1.99 <= clock.slept <= 2.01
    unthrottled = Throttle(rate=None, clock=clock, sleep=clock.sleep)
    unthrottled.wait(10_000)
    assert clock.slept <= 2.01


@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)  # SQLite has one worker
def test_idle_worker_recovers_batches_of_a_worker_that_died_after_it_started(
    db: Database, clock: FakeClock
) -> None:
    cid = _campaign(db, clock, recipients=20, batch_size=10)
    survivor_store = SqlStore(db, worker_id="survivor")
    survivor = _worker(survivor_store, MemoryMessenger(), clock, recover_every_seconds=5.0)
    survivor.store.recover(now=clock())  # the survivor started first: nothing to recover yet
    dead = SqlStore(db, worker_id="dead")
    batch = dead.claim(now=clock())
    assert batch is not None and dead.mark_submitting(batch.id, now=clock())
    dead.close()  # dies after submitting, while the survivor is already running
    try:
        survivor.run(threading.Event(), until=lambda: clock.slept > 30)
    finally:
        survivor_store.close()
    assert _statuses(db, cid) == {"accepted": 10, "unknown": 10}


# ---------------------------------------------------------------- claiming ahead


def _batch_states(db: Database, cid: int) -> list[tuple[str, str | None]]:
    with db.session() as session:
        return [
            (status, claimed_by)
            for status, claimed_by in session.execute(
                select(SendBatch.status, SendBatch.claimed_by)
                .where(SendBatch.campaign_id == cid)
                .order_by(SendBatch.seq)
            )
        ]


def test_recording_a_batch_can_claim_the_next_in_the_same_call(
    db: Database, store: SqlStore, clock: FakeClock
) -> None:
    cid = _campaign(db, clock, recipients=25, batch_size=10)
    first = store.claim(now=clock())
    assert first is not None and store.mark_submitting(first.id, now=clock())
    result = MemoryMessenger().send(stub_preparer(first))
    submission = Policy().settle(result, first.attempts, clock(), random.Random(0))
    recorded = store.record(first, submission, now=clock(), failed=False, claim_next=True)
    second = recorded.next_batch
    assert recorded.accepted == 10 and second is not None and second.id != first.id
    assert len(second.recipients) == 10
    assert _batch_states(db, cid) == [("done", "w1"), ("claimed", "w1"), ("pending", None)]
    if db.dialect == "postgresql":  # the next batch is locked to this worker like any claim
        other = SqlStore(db, worker_id="w2")
        try:
            third = other.claim(now=clock())
            assert third is not None and third.id not in (first.id, second.id)
            other.release(third.id, not_before=None)
        finally:
            other.close()
    # The last batch claims nothing more, and the campaign finishes with it.
    for batch in (second, store.claim(now=clock())):
        assert batch is not None and store.mark_submitting(batch.id, now=clock())
        result = MemoryMessenger().send(stub_preparer(batch))
        submission = Policy().settle(result, batch.attempts, clock(), random.Random(0))
        last = store.record(
            batch, submission, now=clock(), failed=False, finish=True, claim_next=True
        )
    assert last.next_batch is None
    assert _statuses(db, cid) == {"accepted": 25}
    with db.session() as session:
        assert campaigns.get_campaign(cid, session=session).status == "sent"


def test_a_running_worker_needs_two_statements_per_batch(
    db: Database, store: SqlStore, clock: FakeClock
) -> None:
    """Claim-and-record in one statement (PostgreSQL), plus the submitting mark."""
    if db.dialect != "postgresql":
        pytest.skip("SQLite runs in-process: its statements are not round trips")
    cid = _campaign(db, clock, recipients=200, batch_size=10)
    statements: list[str] = []

    def count(conn: object, cursor: object, statement: str, *args: object) -> None:
        statements.append(statement)

    event.listen(db.engine, "before_cursor_execute", count)
    try:
        stats = _worker(store, MemoryMessenger(), clock).run(threading.Event(), until=lambda: True)
    finally:
        event.remove(db.engine, "before_cursor_execute", count)
    assert stats.batches == 20 and _statuses(db, cid) == {"accepted": 200}
    # 20 batches: 40, plus recovery at start and the idle pass that ends the run.
    assert 2 * 20 <= len(statements) <= 2 * 20 + 6, statements[-8:]


class _StopAfterRecord:
    """A store that has the worker told to stop right after a record claimed ahead."""

    def __init__(self, store: SqlStore, stop: threading.Event) -> None:
        self.store, self.stop = store, stop

    def __getattr__(self, name: str) -> object:
        return getattr(self.store, name)

    def record(self, *args: object, **kwargs: object) -> Recorded:
        recorded = self.store.record(*args, **kwargs)  # type: ignore[arg-type]
        self.stop.set()
        return recorded


def test_a_batch_claimed_ahead_is_handed_back_when_the_worker_stops(
    db: Database, store: SqlStore, clock: FakeClock
) -> None:
    cid = _campaign(db, clock, recipients=30, batch_size=10)
    stop = threading.Event()
    worker = _worker(_StopAfterRecord(store, stop), MemoryMessenger(), clock)  # type: ignore[arg-type]
    stats = worker.run(stop)
    assert stats.batches == 1
    # The second batch was claimed with the first one's record, then released unsent.
    assert _batch_states(db, cid) == [("done", "w1"), ("pending", None), ("pending", None)]
    assert _statuses(db, cid) == {"accepted": 10, "queued": 20}
    _drain(_worker(store, MemoryMessenger(), clock), db, cid)  # nothing was lost
    assert _statuses(db, cid) == {"accepted": 30}


def test_a_stopping_worker_does_not_claim_ahead(
    db: Database, store: SqlStore, clock: FakeClock
) -> None:
    cid = _campaign(db, clock, recipients=30, batch_size=10)
    stop = threading.Event()

    class StopOnSend(MemoryMessenger):
        def send(self, batch: MessageBatch) -> BatchResult:
            stop.set()  # SIGTERM while the first batch is with the provider
            return super().send(batch)

    _worker(store, StopOnSend(), clock).run(stop)
    assert _batch_states(db, cid) == [("done", "w1"), ("pending", None), ("pending", None)]


def test_sending_history_after_erasure_is_found_by_the_address_hash_alone(
    db: Database, store: SqlStore, clock: FakeClock
) -> None:
    """Erased rows lose their subscriber link; the partial hash index still finds them."""
    from newsletter.sending.history import sends_for
    from newsletter.subscribers import service
    from newsletter.subscribers.addresses import hash_normalised
    from newsletter.subscribers.store import Actor

    cid = _campaign(db, clock, recipients=3)
    _drain(_worker(store, MemoryMessenger(), clock), db, cid)
    gone, kept = hash_normalised("user1@example.org"), hash_normalised("user2@example.org")
    with db.session() as session:
        assert service.erase("user1@example.org", session=session, actor=Actor(source="cli"))
    with db.session() as session:
        erased = sends_for(gone, session=session)
        assert [(s["campaign_id"], s["status"]) for s in erased] == [(cid, "accepted")]
        row = session.get(Delivery, erased[0]["ledger_id"])
        assert row is not None and row.subscriber_id is None
        assert [s["status"] for s in sends_for(kept, session=session)] == ["accepted"]
        assert sends_for(hash_normalised("nobody@example.org"), session=session) == []


def test_an_erasure_waits_for_a_running_freeze_and_freezes_do_not_wait_for_each_other(
    db: Database, clock: FakeClock
) -> None:
    """Without a foreign key, the audience lock keeps a freeze from linking an erased row."""
    if db.dialect != "postgresql":
        pytest.skip("SQLite has one writer at a time")
    from newsletter.db import lock_audience
    from newsletter.subscribers import service
    from newsletter.subscribers.store import Actor

    with db.session() as session:
        add_subscribers(session, 2)
    freezing, other_freeze = db.session(), db.session()
    erased = threading.Event()

    def erase() -> None:
        with db.session() as session:
            service.erase("user1@example.org", session=session, actor=Actor(source="cli"))
        erased.set()

    with freezing as first, other_freeze as second:
        lock_audience(first, exclusive=False)
        lock_audience(second, exclusive=False)  # returns at once: shared
        eraser = threading.Thread(target=erase)
        eraser.start()
        assert not erased.wait(0.5)  # blocked behind both freezes
        second.rollback()
        assert not erased.wait(0.2)
    eraser.join(timeout=10)  # both ended: the erasure went ahead
    assert erased.is_set()


def test_a_campaign_paused_while_a_batch_is_prepared_holds_that_batch_back(
    db: Database, store: SqlStore, clock: FakeClock
) -> None:
    """The last check before the provider call is the campaign's status, with the mark."""
    cid = _campaign(db, clock, recipients=20, batch_size=10)

    def pause_then_prepare(batch: ClaimedBatch) -> MessageBatch:
        with db.session() as session:
            campaigns.pause_campaign(cid, session=session, reason="admin pressed pause")
        return stub_preparer(batch)

    messenger = MemoryMessenger()
    worker = Worker(store, messenger, pause_then_prepare, clock=clock, sleep=clock.sleep)
    stats = worker.run(threading.Event(), until=lambda: True)
    assert messenger.sent == [] and stats.batches == 0
    assert _batch_states(db, cid) == [("pending", None), ("pending", None)]
    assert _statuses(db, cid) == {"queued": 20}
    with db.session() as session:
        campaigns.resume_campaign(cid, session=session)
    _drain(_worker(store, messenger, clock), db, cid)  # the batch was handed back whole
    assert _statuses(db, cid) == {"accepted": 20} and len(messenger.sent) == 20


def test_marking_a_batch_of_a_stopped_campaign_hands_it_back(
    db: Database, store: SqlStore, clock: FakeClock
) -> None:
    cid = _campaign(db, clock, recipients=10)
    batch = store.claim(now=clock())
    assert batch is not None
    with db.session() as session:
        campaigns.pause_campaign(cid, session=session, reason="paused")
    assert store.mark_submitting(batch.id, now=clock()) is False
    assert _batch_states(db, cid) == [("pending", None)]
    assert store.mark_submitting(batch.id, now=clock()) is False  # not ours any more
    with db.session() as session:
        campaigns.resume_campaign(cid, session=session)
    # Another worker can have it: its advisory lock went with it (SQLite: one worker).
    claimer = SqlStore(db, worker_id="w2") if db.dialect == "postgresql" else store
    try:
        again = claimer.claim(now=clock())
        assert again is not None and again.id == batch.id
        assert claimer.mark_submitting(again.id, now=clock()) is True
    finally:
        if claimer is not store:
            claimer.close()


def test_an_idle_worker_stops_at_once_on_sigterm(store: SqlStore) -> None:
    """Idle polling waits on the stop event: SIGTERM does not wait for the next poll."""
    worker = Worker(
        store=store, messenger=MemoryMessenger(), prepare=stub_preparer,  # type: ignore[arg-type]
        policy=Policy(idle_poll_seconds=60.0),
    )  # fmt: skip
    stop = threading.Event()
    done = threading.Event()
    thread = threading.Thread(target=lambda: (worker.run(stop), done.set()))
    thread.start()
    threading.Timer(0.3, stop.set).start()
    assert done.wait(20), "the worker slept through its stop signal"  # the poll is 60 s
    thread.join()
