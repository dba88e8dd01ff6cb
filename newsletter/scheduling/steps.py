"""The two idempotent steps every scheduler wake-up runs: materialise rules, start what is due.

The database is the truth.  A scheduled campaign row carries its due time and
a recurring rule carries ``next_run_at``; APScheduler only decides *when* to
call these steps, so a lost job, a restart or a second scheduler changes
nothing: each step reads the rows, and each write is a conditional UPDATE (or
a unique INSERT) that exactly one caller wins.

Lateness is judged here, not by APScheduler: a campaign found due within
``settings.misfire_grace_seconds`` is started (late, after downtime); one found
later than that is marked ``missed`` with a reason the admin can act on,
because sending a newsletter hours after its moment is worse than asking.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from newsletter.config import Settings
from newsletter.db import Database
from newsletter.errors import NewsletterError
from newsletter.models import Campaign, CampaignStatus, Issue, IssueStatus, Schedule, ScheduleRun
from newsletter.scheduling.rules import latest_at_or_before, load_rule, next_after
from newsletter.scheduling.times import describe, humanise, zone
from newsletter.sending import abtest, campaigns, service

log = logging.getLogger(__name__)

# Starts one campaign at ``now``; True if this call started it.  Tests inject one
# built on ``campaigns.start_campaign`` with stub checks; production uses ``service.start``.
Starter = Callable[[int, datetime], bool]
# An issue with a campaign in one of these states is taken: a rule must not send it again.
TAKEN = (
    CampaignStatus.SCHEDULED,
    CampaignStatus.SENDING,
    CampaignStatus.PAUSED,
    CampaignStatus.SENT,
)


@dataclass
class DueReport:
    """What one ``start_due_campaigns`` call did, campaign ids by outcome."""

    started: list[int] = field(default_factory=list)
    already_started: list[int] = field(default_factory=list)
    missed: list[int] = field(default_factory=list)
    failed: list[int] = field(default_factory=list)


@dataclass(frozen=True)
class RunReport:
    """One occurrence of a recurring rule that this call materialised."""

    schedule_id: int
    occurrence_at: datetime
    campaign_id: int | None
    result: str


def service_starter(db: Database, settings: Settings) -> Starter:
    """The production starter: preflight, freeze, set sending (``service.start``, idempotent)."""

    def start(campaign_id: int, now: datetime) -> bool:
        return service.start(db, settings, campaign_id, now=now)

    return start


# --- one-off campaigns ---------------------------------------------------------------


def start_due_campaigns(
    db: Database, settings: Settings, now: datetime, *, start: Starter | None = None
) -> DueReport:
    """Start every scheduled campaign due by ``now`` (within grace), mark the rest missed."""
    starter = start or service_starter(db, settings)
    grace = timedelta(seconds=settings.misfire_grace_seconds)
    tz = zone(settings.timezone)
    report = DueReport()
    with db.session() as session:
        due = session.execute(
            select(Campaign.id, Campaign.scheduled_at)
            .where(Campaign.status == CampaignStatus.SCHEDULED, Campaign.scheduled_at <= now)
            .order_by(Campaign.scheduled_at, Campaign.id)
        ).all()
    for campaign_id, due_at in due:
        if now - due_at > grace:
            _miss(db, campaign_id, due_at, now, grace, tz, report)
        else:
            _start(db, campaign_id, due_at, now, starter, tz, report)
    return report


def _start(
    db: Database,
    campaign_id: int,
    due_at: datetime,
    now: datetime,
    starter: Starter,
    tz: ZoneInfo,
    report: DueReport,
) -> None:
    try:
        won = starter(campaign_id, now)
    except NewsletterError as exc:  # preflight failed, issue gone, ...: the admin must act
        reason = f"could not start when due ({describe(due_at, tz)}): {exc}"
        if _set_if_scheduled(db, campaign_id, due_at, CampaignStatus.FAILED, reason):
            log.error("campaign #%s failed to start: %s", campaign_id, exc)
            report.failed.append(campaign_id)
        return
    if won:
        late = f", {humanise(now - due_at)} late" if now - due_at >= timedelta(seconds=60) else ""
        log.info("started campaign #%s (due %s%s)", campaign_id, describe(due_at, tz), late)
        report.started.append(campaign_id)
    else:
        report.already_started.append(campaign_id)


def _miss(
    db: Database,
    campaign_id: int,
    due_at: datetime,
    now: datetime,
    grace: timedelta,
    tz: ZoneInfo,
    report: DueReport,
) -> None:
    reason = (
        f"missed: due {describe(due_at, tz)} but the scheduler only reached it at "
        f"{describe(now, tz)}, {humanise(now - due_at)} late (grace {humanise(grace)}); "
        f"send it now with 'newsletter campaign start {campaign_id}' or pick a new time with "
        f"'newsletter schedule reschedule {campaign_id} --at ...'"
    )
    if _set_if_scheduled(db, campaign_id, due_at, CampaignStatus.MISSED, reason):
        log.warning("campaign #%s %s", campaign_id, reason)
        report.missed.append(campaign_id)


def _set_if_scheduled(
    db: Database, campaign_id: int, due_at: datetime, status: str, reason: str
) -> bool:
    """Conditional: only a campaign still scheduled for that same time (not rescheduled since)."""
    with db.session() as session:
        result = session.execute(
            update(Campaign)
            .where(
                Campaign.id == campaign_id,
                Campaign.status == CampaignStatus.SCHEDULED,
                Campaign.scheduled_at == due_at,
            )
            .values(status=status, status_reason=reason)
        )
        return bool(getattr(result, "rowcount", 0))


# --- recurring rules -----------------------------------------------------------------


def materialise_recurring(db: Database, settings: Settings, now: datetime) -> list[RunReport]:
    """Create the campaign for each rule whose occurrence is due, exactly once, and advance it.

    After downtime spanning several occurrences only the latest is materialised
    (the earlier ones are named in ``last_result``): one late newsletter, not a
    burst of stale ones.  The campaign gets ``scheduled_at`` = the occurrence,
    so ``start_due_campaigns`` applies the same grace rule to it.
    """
    with db.session() as session:
        due = list(
            session.scalars(
                select(Schedule.id)
                .where(Schedule.enabled.is_(True), Schedule.next_run_at <= now)
                .order_by(Schedule.next_run_at, Schedule.id)
            )
        )
    reports = []
    for schedule_id in due:
        with db.session() as session:
            report = _materialise_one(session, schedule_id, now)
        if report is not None:
            reports.append(report)
    return reports


def _materialise_one(session: Session, schedule_id: int, now: datetime) -> RunReport | None:
    schedule = session.get(Schedule, schedule_id)
    if schedule is None or not schedule.enabled or schedule.next_run_at is None:
        return None
    planned = schedule.next_run_at
    if planned > now:
        return None  # another scheduler got here first
    rule, tz = load_rule(schedule.rule), zone(schedule.timezone)
    occurrence = max(latest_at_or_before(rule, tz, now) or planned, planned)
    following = next_after(rule, tz, max(now, occurrence))
    session.rollback()  # the gate UPDATE must open the write transaction
    won = session.execute(
        update(Schedule)
        .where(Schedule.id == schedule_id, Schedule.next_run_at == planned)
        .values(next_run_at=following, last_run_at=occurrence)
    )
    if not getattr(won, "rowcount", 0):
        return None
    run = _claim_occurrence(session, schedule_id, occurrence)
    if run is None:
        return None
    schedule = session.get(Schedule, schedule_id)
    assert schedule is not None
    run.result = _create_for(session, schedule, run, tz)
    if occurrence != planned:
        run.result += f"; earlier occurrences from {describe(planned, tz)} skipped (scheduler down)"
    schedule.last_result = run.result
    log.info("schedule #%s %r at %s: %s", schedule_id, schedule.name, describe(occurrence, tz),
             run.result)  # fmt: skip
    return RunReport(schedule_id, occurrence, run.campaign_id, run.result)


def _claim_occurrence(
    session: Session, schedule_id: int, occurrence: datetime
) -> ScheduleRun | None:
    """The unique (schedule, occurrence) row: the second line of defence against doubles."""
    run = ScheduleRun(schedule_id=schedule_id, occurrence_at=occurrence, result="pending")
    try:
        with session.begin_nested():
            session.add(run)
    except IntegrityError:
        log.info("schedule #%s occurrence %s was already materialised", schedule_id, occurrence)
        return None
    return run


def _create_for(session: Session, schedule: Schedule, run: ScheduleRun, tz: ZoneInfo) -> str:
    issue = next_ready_issue(session)
    if issue is None:
        log.warning("schedule #%s %r skipped: no ready issue", schedule.id, schedule.name)
        return "skipped: no unsent ready issue ('newsletter issue status N ready' marks one)"
    campaign = campaigns.create_campaign(
        issue.number,
        session=session,
        topics=schedule.topics,
        name=f"{issue.title} ({schedule.name})",
        scheduled_at=run.occurrence_at,
    )
    campaign.schedule_id = schedule.id
    run.campaign_id = campaign.id
    return f"campaign #{campaign.id} for issue {issue.number}"


def next_ready_issue(session: Session) -> Issue | None:
    """The newest ``ready`` issue never sent and not already taken by a live or sent campaign."""
    taken = select(Campaign.issue_id).where(Campaign.status.in_(TAKEN))
    return session.scalar(
        select(Issue)
        .where(
            Issue.status == IssueStatus.READY,
            Issue.published_at.is_(None),
            Issue.id.not_in(taken),
        )
        .order_by(Issue.number.desc())
        .limit(1)
    )


def tick(
    db: Database, settings: Settings, now: datetime, *, start: Starter | None = None
) -> tuple[list[RunReport], DueReport]:
    """One full pass: materialise due rules, start (or miss) every due campaign, and pick
    the winner of every subject test whose window has passed (its rest then goes out)."""
    runs = materialise_recurring(db, settings, now)
    due = start_due_campaigns(db, settings, now, start=start)
    for decision in abtest.decide_due(db, now):
        log.info("campaign #%s subject test: %s", decision.campaign_id, decision.note)
    return runs, due
