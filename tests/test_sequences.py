"""Welcome and drip sequences on both backends: enrolment, delays on a frozen clock, the ledger.

Emails are issue 42 rendered by the real pipeline and sent by a real worker
(in this process, on the fake clock) through the memory transport.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from newsletter.automation import sequences
from newsletter.config import Settings
from newsletter.db import Database
from newsletter.errors import ValidationError
from newsletter.models import SequenceEnrolment, Subscriber
from newsletter.subscribers import service as subscribers
from newsletter.transports.memory import MemoryMessenger
from tests.sending_helpers import FakeClock, add_subscribers
from tests.sequence_helpers import WEB, confirmed, ledger, send_due


def _welcome_series(db: Database, clock: FakeClock, *, trigger: str = "confirmed") -> list[int]:
    """'Welcome' (issue 42 at once) then 'Tips' (issue 42 again three days later)."""
    topics = ["Equity", "Data"]
    with db.session() as session:
        seq = sequences.create_sequence(session, "Welcome", trigger, topics=topics, now=clock())
        first = sequences.add_step(session, seq.id, 42, delay_minutes=0, now=clock())
        second = sequences.add_step(session, seq.id, 42, delay_minutes=3 * 1440, now=clock())
        return [seq.id, first.campaign_id, second.campaign_id]


def test_welcome_within_a_minute_then_the_next_step_after_its_delay(
    issue42: Database, settings: Settings
) -> None:
    clock, mail = FakeClock(), MemoryMessenger()
    with issue42.session() as session:
        add_subscribers(session, 3, prefix="old")  # confirmed before the sequence: not enrolled
    seq_id, welcome, tips = _welcome_series(issue42, clock)
    clock.now += timedelta(seconds=5)
    confirmed(issue42, "ada@example.org", clock.now)
    clock.now += timedelta(seconds=30)  # the next sweep
    report = sequences.tick(issue42, settings, clock.now)
    assert (report.enrolled, report.queued) == (1, {welcome: 1})
    assert send_due(issue42, settings, mail, clock) == 1
    assert [m.email for m in mail.sent] == ["ada@example.org"]
    assert "Issue 42" in mail.sent[0].email_message.subject  # the issue, rendered
    assert "unsubscribe" in mail.sent[0].email_message.text.lower()
    for _ in range(3):  # every later sweep: nothing new, nothing twice
        clock.now += timedelta(minutes=1)
        assert sequences.tick(issue42, settings, clock.now).total_queued == 0
        assert send_due(issue42, settings, mail, clock) == 0
    clock.now += timedelta(days=3) - timedelta(minutes=10)  # not quite three days
    assert sequences.tick(issue42, settings, clock.now).total_queued == 0
    clock.now += timedelta(minutes=10)
    assert sequences.tick(issue42, settings, clock.now).queued == {tips: 1}
    send_due(issue42, settings, mail, clock)
    assert [m.email for m in mail.sent] == ["ada@example.org"] * 2
    assert ledger(issue42, welcome) == ledger(issue42, tips) == {"ada@example.org": "accepted"}
    with issue42.session() as session:
        shown = sequences.sequence_report(session, seq_id)
    assert [(s["sent"], s["after_trigger"]) for s in shown["steps"]] == [(1, "0"), (1, "3d")]
    assert shown["enrolments"]["done"] == 1


def test_unsubscribed_or_suppressed_mid_sequence_get_nothing_more(
    issue42: Database, settings: Settings
) -> None:
    clock, mail = FakeClock(), MemoryMessenger()
    _seq, welcome, tips = _welcome_series(issue42, clock)
    for name in ("ann", "bob", "cat", "dan"):
        confirmed(issue42, f"{name}@example.org", clock.now)
    clock.now += timedelta(seconds=30)
    sequences.tick(issue42, settings, clock.now)
    send_due(issue42, settings, mail, clock)
    assert len(mail.sent) == 4
    with issue42.session() as session:
        ann = session.scalars(select(Subscriber).where(Subscriber.email == "ann@example.org")).one()
        subscribers.unsubscribe(ann, session=session, actor=WEB)
        subscribers.suppress("bob@example.org", "manual", session=session, actor=WEB)
    clock.now += timedelta(days=3, minutes=1)
    assert sequences.tick(issue42, settings, clock.now).queued == {tips: 2}
    with issue42.session() as session:  # dan unsubscribes after his row was queued
        dan = session.scalars(select(Subscriber).where(Subscriber.email == "dan@example.org")).one()
        subscribers.unsubscribe(dan, session=session, actor=WEB)
    send_due(issue42, settings, mail, clock)
    assert sorted(m.email for m in mail.sent[4:]) == ["cat@example.org"]
    assert ledger(issue42, tips) == {"cat@example.org": "accepted", "dan@example.org": "skipped"}
    assert len(ledger(issue42, welcome)) == 4
    with issue42.session() as session:
        reasons = dict(
            session.execute(
                select(Subscriber.email, SequenceEnrolment.stopped_reason).join(
                    SequenceEnrolment, SequenceEnrolment.subscriber_id == Subscriber.id
                )
            ).all()
        )
    assert reasons["ann@example.org"] == "address suppressed"  # an unsubscribe suppresses
    assert reasons["bob@example.org"] == "address suppressed"
    clock.now += timedelta(days=30)
    assert sequences.tick(issue42, settings, clock.now).total_queued == 0
    # Confirmed, then suppressed before the next sweep: never enrolled, no welcome.
    confirmed(issue42, "eve@example.org", clock.now)
    with issue42.session() as session:
        subscribers.suppress("eve@example.org", "complaint", session=session, actor=WEB)
    assert sequences.tick(issue42, settings, clock.now).enrolled == 0


def test_topic_trigger_pause_and_resume(issue42: Database, settings: Settings) -> None:
    # Joining a topic is stamped by the database row's default (wall time): start from it.
    clock, mail = FakeClock(datetime.now(UTC)), MemoryMessenger()
    seq_id, welcome, _tips = _welcome_series(issue42, clock, trigger="topic:Equity")
    confirmed(issue42, "ann@example.org", clock.now)  # no topic: not enrolled
    clock.now += timedelta(minutes=1)
    assert sequences.tick(issue42, settings, clock.now).enrolled == 0
    with issue42.session() as session:
        ann = session.scalars(select(Subscriber).where(Subscriber.email == "ann@example.org")).one()
        subscribers.update_preferences(
            ann, session=session, actor=WEB, allowed_topics=["Equity"], topics=["Equity"],
            paused_until=None, now=clock.now,
        )  # fmt: skip
        sequences.set_paused(session, seq_id, True)
    clock.now += timedelta(minutes=1)
    assert sequences.tick(issue42, settings, clock.now).enrolled == 0  # paused: nothing
    with issue42.session() as session:
        sequences.set_paused(session, seq_id, False)
    assert sequences.tick(issue42, settings, clock.now).queued == {welcome: 1}
    with issue42.session() as session:  # paused with a row queued: it waits
        sequences.set_paused(session, seq_id, True)
    assert send_due(issue42, settings, mail, clock) == 0
    with issue42.session() as session:
        sequences.set_paused(session, seq_id, False)
    send_due(issue42, settings, mail, clock)
    assert [m.email for m in mail.sent] == ["ann@example.org"]
    with issue42.session() as session:  # leaving the topic ends the series
        ann = session.scalars(select(Subscriber).where(Subscriber.email == "ann@example.org")).one()
        subscribers.update_preferences(
            ann, session=session, actor=WEB, allowed_topics=["Equity"], topics=[],
            paused_until=None, now=clock.now,
        )  # fmt: skip
    clock.now += timedelta(days=4)
    report = sequences.tick(issue42, settings, clock.now)
    assert (report.stopped, report.total_queued) == (1, 0)


@pytest.mark.parametrize(
    ("trigger", "needle"),
    [("signup", "invalid trigger 'signup'"), ("topic:Nope", "unknown topic 'Nope'"),
     ("date:birthday", "date:<signed_up|confirmed>")],
)  # fmt: skip
def test_bad_triggers_and_delays_are_clear(sqlite_db: Database, trigger: str, needle: str) -> None:
    with sqlite_db.session() as session, pytest.raises(ValidationError, match=needle):
        sequences.create_sequence(session, "x", trigger, topics=["Equity"], now=FakeClock()())
    with pytest.raises(ValidationError, match="invalid delay '3 days'"):
        sequences.parse_delay("3 days")
    assert [sequences.parse_delay(v) for v in ("0", "45", "2h", "3d", "1w")] == [
        0, 45, 120, 4320, 10080,
    ]  # fmt: skip


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_the_scheduler_sends_the_welcome_on_its_own(issue42: Database, settings: Settings) -> None:
    """The real scheduler runtime (its sweep ticks the sequences) and its in-process worker."""
    from newsletter.scheduling.runner import RunOptions, SchedulerRuntime
    from tests.scheduler_helpers import running, wait_for

    now = datetime.now(UTC)
    with issue42.session() as session:
        seq = sequences.create_sequence(session, "Welcome", "confirmed", topics=[], now=now)
        sequences.add_step(session, seq.id, 42, delay_minutes=0, now=now)
    mail = MemoryMessenger()
    options = RunOptions(sweep_seconds=0.5, retry_seconds=0.1, worker=True, webhooks=False)
    ticks: list[int] = []
    runtime = SchedulerRuntime(
        issue42, settings, options=options, messenger=mail, on_tick=lambda *_: ticks.append(1)
    )
    with running(runtime):
        confirmed(issue42, "ada@example.org", datetime.now(UTC))
        assert wait_for(lambda: len(mail.sent) == 1, timeout=20)
        seen = len(ticks)
        assert wait_for(lambda: len(ticks) >= seen + 2, timeout=10)  # two more sweeps
    assert [m.email for m in mail.sent] == ["ada@example.org"]


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_a_steps_opens_and_clicks_come_from_the_existing_tracking(
    issue42: Database, settings: Settings
) -> None:
    import re

    from fastapi.testclient import TestClient

    from newsletter.web import create_app

    settings = settings.model_copy(update={"scanner_window_seconds": 0.0})
    clock, mail = FakeClock(), MemoryMessenger()
    seq_id, _welcome, _tips = _welcome_series(issue42, clock)
    confirmed(issue42, "ada@example.org", clock.now)
    sequences.tick(issue42, settings, clock.now + timedelta(seconds=30))
    send_due(issue42, settings, mail, clock)
    html = mail.sent[0].email_message.html
    base = settings.base_url
    link = re.findall(rf'href="{base}(/r/[^"]+)"', html)[1]
    firefox = {
        "user-agent": "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"
    }
    app = create_app(settings, issue42, messenger=MemoryMessenger())
    with TestClient(app, headers=firefox) as client:
        assert client.get(link, follow_redirects=False).status_code == 302
        client.app.state.recorder.drain_once()  # type: ignore[attr-defined]
    with issue42.session() as session:
        first, second = sequences.sequence_report(session, seq_id)["steps"]
    assert (first["sent"], first["opened"], first["clicked"]) == (1, 1, 1)  # a click is an open
    assert (second["sent"], second["opened"], second["clicked"]) == (0, 0, 0)


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"], indirect=True)
def test_imports_and_admin_adds_trigger_no_welcome(
    issue42: Database, settings: Settings, tmp_path: Path
) -> None:
    """Moving a list over must not mail it a welcome: only the double opt-in's confirmation."""
    clock = FakeClock(datetime.now(UTC))
    with issue42.session() as session:
        seq = sequences.create_sequence(session, "Welcome", "confirmed", topics=[], now=clock())
        sequences.add_step(session, seq.id, 42, delay_minutes=0, now=clock())
        topical = sequences.create_sequence(session, "Equity", "topic:Equity",
                                            topics=["Equity"], now=clock())  # fmt: skip
        sequences.add_step(session, topical.id, 42, delay_minutes=0, now=clock())
    listing = tmp_path / "list.csv"
    listing.write_text("email,topics\nimp1@example.org,Equity\nimp2@example.org,\n")
    with issue42.session() as session:
        report = subscribers.import_csv(listing, session=session, allowed_topics=["Equity"])
        subscribers.add("admin-added@example.org", session=session, actor=WEB,
                        allowed_topics=["Equity"], topics=["Equity"], confirmed=True)  # fmt: skip
    assert report.added == 2
    confirmed(issue42, "real@example.org", clock.now)
    clock.now += timedelta(seconds=30)
    result = sequences.tick(issue42, settings, clock.now)
    assert result.enrolled == 1, _who(issue42)  # real@ only: imports and admin adds are not opt-ins
    with issue42.session() as session:
        enrolled = set(
            session.scalars(
                select(Subscriber.email).join(
                    SequenceEnrolment, SequenceEnrolment.subscriber_id == Subscriber.id
                )
            )
        )
    assert enrolled == {"real@example.org"}


def _who(db: Database) -> list[tuple[str, int]]:
    with db.session() as session:
        return [
            (str(e), int(q))
            for e, q in session.execute(
                select(Subscriber.email, SequenceEnrolment.sequence_id).join(
                    SequenceEnrolment, SequenceEnrolment.subscriber_id == Subscriber.id
                )
            ).all()
        ]
