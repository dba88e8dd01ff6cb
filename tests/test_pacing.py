"""Per receiving domain pacing: rates, interleaving, back-off on 4xx, and no loss after a crash.

The campaign tests run the real engine and store on SQLite and PostgreSQL;
greylisting is a real aiosmtpd server (``SmtpSink.greylist``) answering 451
to the first RCPT TO of each address at a domain.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select

from newsletter.db import Database
from newsletter.deliverability.pacing import Pacer
from newsletter.models import Delivery, SendBatch, Subscriber
from newsletter.sending import campaigns
from newsletter.sending.engine import Policy, Worker
from newsletter.sending.sqlstore import SqlStore
from newsletter.sending.types import Addressee
from newsletter.testing.smtp_sink import SmtpSink
from newsletter.transports import MemoryMessenger
from newsletter.transports.base import BatchResult, Outcome, RecipientResult
from newsletter.transports.smtp import SMTPMessenger
from tests.sending_helpers import FakeClock, NoChecks, add_subscribers, make_issue, stub_preparer

T0 = datetime(2026, 4, 3, 13, 0, tzinfo=UTC)


def people(domain: str, count: int, start: int = 0) -> list[Addressee]:
    return [
        Addressee(start + i, start + i, f"u{start + i}@{domain}", None, "h") for i in range(count)
    ]


def test_a_domain_limit_admits_a_burst_then_its_rate() -> None:
    pacer = Pacer({"gmail.com": 60})  # one a second, ten at once
    batch = people("gmail.com", 30) + people("example.org", 30, start=100)
    admitted, later = pacer.admit(batch, T0)
    assert [a.domain for a in admitted].count("gmail.com") == 10
    assert [a.domain for a in admitted].count("example.org") == 30  # the rest never wait
    assert later == T0 + timedelta(seconds=1)
    admitted, _ = pacer.admit(people("gmail.com", 20, start=10), T0 + timedelta(seconds=5))
    assert len(admitted) == 5


def test_a_4xx_backs_off_that_domain_only_and_doubles() -> None:
    pacer = Pacer({}, backoff=60)
    slow, fine = people("slow.example", 2), people("example.org", 2, start=10)
    answer = BatchResult(
        (RecipientResult("0", Outcome.TEMPORARY, detail="451 4.7.1 Greylisted"),
         RecipientResult("1", Outcome.TEMPORARY, detail="cannot connect to SMTP server"),
         RecipientResult("10", Outcome.TEMPORARY, detail="cannot connect to SMTP server"),
         RecipientResult("11", Outcome.ACCEPTED, detail="250"))
    )  # fmt: skip
    pacer.observe(slow + fine, answer, T0)
    assert pacer.backing_off(T0) == {"slow.example": T0 + timedelta(seconds=60)}
    admitted, later = pacer.admit(slow + fine, T0 + timedelta(seconds=1))
    assert admitted == fine and later == T0 + timedelta(seconds=60)
    again = BatchResult((RecipientResult("0", Outcome.TEMPORARY, detail="421 4.7.0 slow down"),))
    pacer.observe(slow, again, T0 + timedelta(seconds=61))
    assert pacer.backing_off(T0 + timedelta(seconds=61))["slow.example"] == T0 + timedelta(
        seconds=181
    )
    accepted = BatchResult((RecipientResult("0", Outcome.ACCEPTED, detail="250"),))
    pacer.observe(slow, accepted, T0 + timedelta(seconds=200))
    assert pacer.backing_off(T0 + timedelta(seconds=200)) == {}


# --- campaigns -------------------------------------------------------------------------


def start(db: Database, clock: FakeClock, domains: dict[str, int], batch_size: int = 1000) -> int:
    with db.session() as session:
        make_issue(session)
        for domain, count in domains.items():
            add_subscribers(session, count, domain=domain, prefix=f"{domain.split('.')[0]}-")
        cid = campaigns.create_campaign(42, session=session).id
    with db.session() as session:
        campaigns.start_campaign(
            cid, session=session, checks=NoChecks(), batch_size=batch_size, now=clock()
        )
    return cid


def work(db: Database, messenger: Any, clock: FakeClock, pacer: Pacer, hook: Any = None) -> Any:
    store = SqlStore(db, worker_id="pacing")
    try:
        worker = Worker(store=store, messenger=messenger, prepare=stub_preparer,
                        policy=Policy(max_consecutive_failures=100), clock=clock,
                        sleep=clock.sleep, hook=hook, pacer=pacer)  # fmt: skip
        done = campaigns_done(db)
        return worker.run(threading.Event(), until=done)
    finally:
        store.close()


def campaigns_done(db: Database) -> Callable[[], bool]:
    def done() -> bool:
        with db.session() as session:
            return not session.scalar(select(func.count()).select_from(SendBatch).where(
                SendBatch.status.in_(("pending", "claimed", "submitting"))))  # fmt: skip

    return done


def statuses(db: Database, cid: int) -> Counter[str]:
    with db.session() as session:
        rows = session.scalars(select(Delivery.status).where(Delivery.campaign_id == cid))
        return Counter(rows)


def test_a_large_limited_domain_does_not_hold_up_the_rest(db: Database) -> None:
    clock = FakeClock()
    cid = start(
        db, clock, {"big.example": 60, "example.org": 20, "other.example": 20}, batch_size=50
    )
    messenger = MemoryMessenger()
    order: list[tuple[float, str]] = []
    original = messenger.send

    def send(batch: Any) -> BatchResult:
        for rcpt in batch.recipients:
            order.append(((clock() - T0).total_seconds(), rcpt.email.rpartition("@")[2]))
        return original(batch)

    messenger.send = send  # type: ignore[method-assign]
    stats = work(db, messenger, clock, Pacer({"big.example": 60}))
    assert statuses(db, cid) == {"accepted": 100}
    sent = Counter(m.email for m in messenger.sent)
    assert len(sent) == 100 and set(sent.values()) == {1}  # deferral never sends twice
    # Every other domain went out at once; big.example at its rate, one a second after 10.
    others = [t for t, d in order if d != "big.example"]
    big = sorted(t for t, d in order if d == "big.example")
    assert max(others) < 1
    assert big[9] < 1 and 45 <= big[-1] <= 60
    assert stats.deferred > 0
    with db.session() as session:  # no ledger row was ever left parked
        assert not session.scalar(
            select(func.count()).select_from(Delivery).where(Delivery.batch_id < 0)
        )


def test_greylisting_domain_backs_off_alone_and_everything_arrives(db: Database) -> None:
    clock = FakeClock()
    cid = start(db, clock, {"slow.example": 6, "example.org": 6})
    with SmtpSink() as sink:
        sink.greylist.add("slow.example")
        messenger = SMTPMessenger(sink.host, sink.port, timeout=5)
        try:
            work(db, messenger, clock, Pacer({}, backoff=60))
        finally:
            messenger.close()
        received = Counter(to for m in sink.messages for to in m.rcpt_tos)
        assert len(received) == 12 and set(received.values()) == {1}
        assert set(sink.greylisted) == {f"slow-{i}@slow.example" for i in range(6)}
    assert statuses(db, cid) == {"accepted": 12}
    with db.session() as session:
        attempts = dict(session.execute(
            select(Subscriber.email, Delivery.attempts).join(Subscriber, Subscriber.id == Delivery.subscriber_id)
        ).all())  # fmt: skip
    assert {attempts[f"slow-{i}@slow.example"] for i in range(6)} == {2}
    assert {attempts[f"example-{i}@example.org"] for i in range(6)} == {1}
    assert clock.slept >= 60  # the retry waited for the domain's back-off


def test_rows_held_back_survive_a_crash_and_are_sent_once(db: Database) -> None:
    """A worker dies while submitting a paced batch: what it held back is sent, the rest unknown."""
    clock = FakeClock()
    cid = start(db, clock, {"big.example": 15, "example.org": 5})
    messenger = MemoryMessenger()

    class Crash(BaseException):
        pass

    def crash(stage: str, batch: Any) -> None:
        if stage == "submitting":
            raise Crash

    with pytest.raises(Crash):
        work(db, messenger, clock, Pacer({"big.example": 60}), hook=crash)
    with db.session() as session:
        parked = session.scalar(
            select(func.count()).select_from(Delivery).where(Delivery.batch_id < 0)
        )
    assert parked == 5  # 10 big.example + 5 example.org in flight, 5 held back
    work(db, messenger, clock, Pacer({"big.example": 60}))
    assert statuses(db, cid) == {"unknown": 15, "accepted": 5}
    assert len(messenger.sent) == 5 and all(
        m.email.endswith("@big.example") for m in messenger.sent
    )
    with db.session() as session:
        report = campaigns.campaign_report(cid, session=session)
    assert report.status == "sent" and len(report.batches) == 2
