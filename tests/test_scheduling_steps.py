"""The scheduler's idempotent steps with an injected clock, on SQLite and PostgreSQL."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from newsletter.config import Settings
from newsletter.db import Database
from newsletter.errors import PreflightError, StateError, ValidationError
from newsletter.models import Campaign, Issue, Schedule, ScheduleRun
from newsletter.scheduling import admin
from newsletter.scheduling.steps import (
    materialise_recurring,
    next_ready_issue,
    start_due_campaigns,
    tick,
)
from tests.scheduler_helpers import T0, ensure_issue, load, nocheck_starter, scheduled_campaign

GRACE = timedelta(seconds=3600)


def utc(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0
) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


# --- one-off campaigns -----------------------------------------------------------------


def test_a_one_off_send_fires_once_when_due(db: Database, settings: Settings) -> None:
    cid = scheduled_campaign(db, T0, subscribers=3)
    calls: list[int] = []
    start = nocheck_starter(db, calls=calls)
    early = start_due_campaigns(db, settings, T0 - timedelta(seconds=1), start=start)
    assert early.started == [] and load(db, cid).status == "scheduled"
    first = start_due_campaigns(db, settings, T0 + timedelta(seconds=2), start=start)
    second = start_due_campaigns(db, settings, T0 + timedelta(seconds=3), start=start)
    assert (first.started, second.started, calls) == ([cid], [], [cid])
    campaign = load(db, cid)
    assert (campaign.status, campaign.started_at) == ("sending", T0 + timedelta(seconds=2))
    assert campaign.total_recipients == 3
    # The gate itself: starting again (a racing scheduler) is refused.
    assert start(cid, T0 + timedelta(seconds=4)) is False


def test_racing_steps_start_a_campaign_exactly_once(db: Database, settings: Settings) -> None:
    cid = scheduled_campaign(db, T0, subscribers=20)
    reports, barrier = [], threading.Barrier(4)

    def step() -> None:
        barrier.wait()
        reports.append(start_due_campaigns(db, settings, T0, start=nocheck_starter(db)))

    threads = [threading.Thread(target=step) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(c for r in reports for c in r.started) == [cid]
    assert load(db, cid).total_recipients == 20


def test_downtime_within_grace_sends_late(db: Database, settings: Settings) -> None:
    cid = scheduled_campaign(db, T0)
    late = T0 + GRACE - timedelta(seconds=1)
    report = start_due_campaigns(db, settings, late, start=nocheck_starter(db))
    assert report.started == [cid]
    assert load(db, cid).started_at == late


def test_downtime_past_grace_marks_the_campaign_missed(
    db: Database, settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    cid = scheduled_campaign(db, T0)
    calls: list[int] = []
    now = T0 + GRACE + timedelta(minutes=5)
    report = start_due_campaigns(db, settings, now, start=nocheck_starter(db, calls=calls))
    again = start_due_campaigns(db, settings, now, start=nocheck_starter(db, calls=calls))
    campaign = load(db, cid)
    assert (report.missed, again.missed, calls) == ([cid], [], [])
    assert (campaign.status, campaign.started_at) == ("missed", None)
    reason = campaign.status_reason or ""
    assert reason.startswith("missed: due 2026-04-03 13:00 UTC")
    assert "1h 5m late (grace 1h)" in reason and f"newsletter campaign start {cid}" in reason
    assert any("missed" in r.getMessage() for r in caplog.records)
    # The admin moves it; it is an ordinary scheduled campaign again.
    with db.session() as session:
        admin.reschedule(session, cid, at=now + timedelta(hours=1), now=now, grace_seconds=3600)
    assert (load(db, cid).status, load(db, cid).status_reason) == ("scheduled", None)


def test_a_campaign_that_fails_preflight_is_marked_failed(db: Database, settings: Settings) -> None:
    cid = scheduled_campaign(db, T0)

    def broken(campaign_id: int, now: datetime) -> bool:
        raise PreflightError(["no unsubscribe link"], where="issue 42")

    report = start_due_campaigns(db, settings, T0, start=broken)
    campaign = load(db, cid)
    assert report.failed == [cid] and campaign.status == "failed"
    assert "could not start when due" in (campaign.status_reason or "")
    assert "no unsubscribe link" in (campaign.status_reason or "")


def test_a_rescheduled_campaign_is_not_marked_missed_for_its_old_time(
    db: Database, settings: Settings
) -> None:
    cid = scheduled_campaign(db, T0)
    with db.session() as session:  # moved after the step read it, before it wrote
        session.execute(update(Campaign).where(Campaign.id == cid).values(scheduled_at=T0 + GRACE))
    from newsletter.scheduling.steps import _set_if_scheduled

    assert not _set_if_scheduled(db, cid, T0, "missed", "stale")
    assert load(db, cid).status == "scheduled"


# --- admin actions -------------------------------------------------------------------


def test_admin_refuses_the_past_and_cancels_only_unstarted(
    db: Database, settings: Settings
) -> None:
    ensure_issue(db)
    with db.session() as session, pytest.raises(ValidationError, match="in the past"):
        admin.schedule_issue(session, 42, at=T0 - timedelta(hours=2), now=T0, grace_seconds=3600)
    waiting = scheduled_campaign(db, T0 + timedelta(days=1))
    sending = scheduled_campaign(db, T0)
    start_due_campaigns(db, settings, T0, start=nocheck_starter(db))
    with db.session() as session:
        admin.cancel_scheduled(session, waiting)
        admin.cancel_scheduled(session, waiting)  # idempotent
    assert load(db, waiting).status == "cancelled"
    with db.session() as session, pytest.raises(StateError, match="campaign cancel"):
        admin.cancel_scheduled(session, sending)


# --- recurring rules -----------------------------------------------------------------


def _rule(db: Database, now: datetime, rule: str = "first tuesday 09:00") -> int:
    with db.session() as session:
        return admin.add_recurring(
            session, rule_text=rule, tz_name="America/New_York", now=now, topics=["Equity"]
        ).id


def _schedule(db: Database, schedule_id: int) -> Schedule:
    with db.session() as session:
        schedule = session.get(Schedule, schedule_id)
        assert schedule is not None
        return schedule


def test_a_recurring_occurrence_is_materialised_exactly_once(
    db: Database, settings: Settings
) -> None:
    ensure_issue(db)
    sid = _rule(db, utc(2026, 2, 20))
    assert _schedule(db, sid).next_run_at == utc(2026, 3, 3, 14, 0)  # 09:00 EST
    assert materialise_recurring(db, settings, utc(2026, 3, 3, 13, 59)) == []
    now = utc(2026, 3, 3, 14, 0, 5)
    first = materialise_recurring(db, settings, now)
    second = materialise_recurring(db, settings, now)
    assert len(first) == 1 and second == []
    with db.session() as session:
        made = list(session.scalars(select(Campaign).where(Campaign.schedule_id == sid)))
    assert [(c.status, c.scheduled_at, c.topics) for c in made] == [
        ("scheduled", utc(2026, 3, 3, 14, 0), ["Equity"])
    ]
    schedule = _schedule(db, sid)
    assert schedule.next_run_at == utc(2026, 4, 7, 13, 0)  # 09:00 EDT, after the DST change
    assert schedule.last_run_at == utc(2026, 3, 3, 14, 0)
    assert schedule.last_result == f"campaign #{made[0].id} for issue 42"
    # The database refuses a second row for the same occurrence, whoever tries.
    with pytest.raises(IntegrityError), db.session() as session:
        session.add(ScheduleRun(schedule_id=sid, occurrence_at=utc(2026, 3, 3, 14), result="x"))


def test_racing_materialisers_create_one_campaign(db: Database, settings: Settings) -> None:
    ensure_issue(db)
    sid = _rule(db, utc(2026, 2, 20))
    barrier, results = threading.Barrier(4), []

    def step() -> None:
        barrier.wait()
        results.extend(materialise_recurring(db, settings, utc(2026, 3, 3, 14, 1)))

    threads = [threading.Thread(target=step) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    with db.session() as session:
        count = session.scalar(
            select(sa.func.count()).select_from(Campaign).where(Campaign.schedule_id == sid)
        )
    assert (len(results), count) == (1, 1)


def test_no_ready_issue_skips_with_a_logged_reason(
    db: Database, settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    ensure_issue(db, status="draft")
    sid = _rule(db, utc(2026, 2, 20))
    [run] = materialise_recurring(db, settings, utc(2026, 3, 3, 14, 0))
    assert run.campaign_id is None and run.result.startswith("skipped: no unsent ready issue")
    schedule = _schedule(db, sid)
    assert schedule.last_result == run.result
    assert schedule.next_run_at == utc(2026, 4, 7, 13, 0)
    assert any("no ready issue" in r.getMessage() for r in caplog.records)


def test_the_newest_unsent_ready_issue_is_chosen(db: Database) -> None:
    for number, status in ((40, "ready"), (41, "ready"), (42, "ready"), (43, "draft")):
        ensure_issue(db, number, status=status)
    with db.session() as session:
        session.execute(update(Issue).where(Issue.number == 42).values(published_at=T0))
    scheduled_campaign(db, T0, number=41)  # 41 is taken by a scheduled campaign
    with db.session() as session:
        chosen = next_ready_issue(session)
        assert chosen is not None and chosen.number == 40


def test_long_downtime_materialises_only_the_latest_occurrence(
    db: Database, settings: Settings
) -> None:
    ensure_issue(db)
    sid = _rule(db, utc(2026, 2, 20))
    now = utc(2026, 6, 2, 13, 30)  # March, April, May passed; June's 09:00 EDT was 30 min ago
    runs, due = tick(db, settings, now, start=nocheck_starter(db))
    assert [r.occurrence_at for r in runs] == [utc(2026, 6, 2, 13, 0)]
    assert "earlier occurrences from 2026-03-03 09:00 EST" in runs[0].result
    assert due.started == [runs[0].campaign_id]  # within grace: sent late, same tick
    assert _schedule(db, sid).next_run_at == utc(2026, 7, 7, 13, 0)


def test_an_occurrence_found_past_grace_becomes_a_missed_campaign(
    db: Database, settings: Settings
) -> None:
    ensure_issue(db)
    _rule(db, utc(2026, 2, 20))
    runs, due = tick(db, settings, utc(2026, 3, 3, 17, 0), start=nocheck_starter(db))
    assert due.missed == [runs[0].campaign_id] and due.started == []
    # The issue is still unsent, so the next occurrence offers it again.
    with db.session() as session:
        issue = next_ready_issue(session)
        assert issue is not None and issue.number == 42


def test_a_disabled_rule_stops(db: Database, settings: Settings) -> None:
    ensure_issue(db)
    sid = _rule(db, utc(2026, 2, 20))
    with db.session() as session:
        admin.disable_recurring(session, sid)
    assert materialise_recurring(db, settings, utc(2026, 12, 1)) == []
    with db.session() as session:
        listing = admin.listing(session, tz_name="America/New_York")
    assert listing.recurring[0]["enabled"] is False
