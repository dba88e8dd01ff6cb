"""What admins do to schedules (the CLI's library): schedule, add rules, list, cancel, move.

Nothing here talks to a running scheduler: every action is a row change, and
the scheduler picks it up at its next sweep (or the wake-up job it keeps in
step with the rows).  That is what lets the CLI, the web app and any number of
schedulers work on the same database without a control channel.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from newsletter.errors import NotFoundError, StateError, ValidationError
from newsletter.models import Campaign, CampaignStatus, Issue, Schedule
from newsletter.scheduling.rules import load_rule, next_after, parse_rule
from newsletter.scheduling.times import humanise, wall, zone
from newsletter.sending import campaigns
from newsletter.sending.abtest import TestPlan

# A campaign that has not started yet and can still be moved or called off here.
MOVABLE = (CampaignStatus.SCHEDULED, CampaignStatus.MISSED, CampaignStatus.FAILED)


def check_future(at: datetime, now: datetime, grace_seconds: int) -> None:
    """A time already past the grace would only be marked missed: refuse it up front."""
    if now - at > timedelta(seconds=grace_seconds):
        raise ValidationError(
            f"{at:%Y-%m-%d %H:%M} UTC is {humanise(now - at)} in the past "
            f"(more than the {humanise(timedelta(seconds=grace_seconds))} misfire grace)"
        )


def schedule_issue(
    session: Session,
    issue_number: int,
    *,
    at: datetime,
    now: datetime,
    grace_seconds: int,
    topics: Sequence[str] = (),
    name: str | None = None,
    resend: bool = False,
    subject_test: TestPlan | None = None,
) -> Campaign:
    """A ``scheduled`` campaign for a ready issue, due at ``at`` (aware; stored UTC)."""
    check_future(at, now, grace_seconds)
    return campaigns.create_campaign(
        issue_number, session=session, topics=topics, name=name, scheduled_at=at, resend=resend,
        subject_test=subject_test, now=now,
    )  # fmt: skip


def schedule_local(
    session: Session,
    issue_number: int,
    *,
    on: date,
    local_time: str,
    default_tz: str,
    now: datetime,
    grace_seconds: int,
    topics: Sequence[str] = (),
    name: str | None = None,
    resend: bool = False,
) -> Campaign:
    """A campaign arriving at ``local_time`` on ``on`` in each subscriber's own time zone.

    It is due (frozen) when the first zone among the subscribers reaches that
    hour; each zone's share is then held until its own (``sending.localtime``).
    """
    from newsletter.sending import localtime

    clock = localtime.parse_local(local_time)
    due = localtime.first_release(session, on, clock, default_tz)
    check_future(due, now, grace_seconds)
    campaign = campaigns.create_campaign(
        issue_number, session=session, topics=topics, name=name, scheduled_at=due, resend=resend
    )
    campaign.local_date, campaign.local_time = on, clock
    return campaign


def add_recurring(
    session: Session,
    *,
    rule_text: str,
    tz_name: str,
    now: datetime,
    topics: Sequence[str] = (),
    name: str | None = None,
) -> Schedule:
    """A recurring rule, first due at its next occurrence after ``now``."""
    rule, tz = parse_rule(rule_text), zone(tz_name)
    first = next_after(rule, tz, now)
    if first is None:
        raise ValidationError(f"rule {rule_text!r} never fires")
    label = (name or f"{rule.describe()} ({tz.key})").strip()
    if session.scalar(select(Schedule.id).where(Schedule.name == label)) is not None:
        raise ValidationError(f"a schedule named {label!r} already exists (give --name)")
    schedule = Schedule(
        name=label, rule=rule.as_dict(), timezone=tz.key, topics=sorted(set(topics)),
        enabled=True, next_run_at=first,
    )  # fmt: skip
    session.add(schedule)
    session.flush()
    return schedule


def cancel_scheduled(session: Session, campaign_id: int) -> None:
    """Call off a campaign that has not started (a started one: ``newsletter campaign cancel``)."""
    result = session.execute(
        update(Campaign)
        .where(
            Campaign.id == campaign_id,
            Campaign.status.in_(MOVABLE),
            Campaign.started_at.is_(None),
        )
        .values(
            status=CampaignStatus.CANCELLED,
            status_reason="cancelled by admin before it was due",
        )
    )
    if not getattr(result, "rowcount", 0):
        _refuse(session, campaign_id, "cancel", CampaignStatus.CANCELLED)


def reschedule(
    session: Session, campaign_id: int, *, at: datetime, now: datetime, grace_seconds: int
) -> None:
    """Move an unstarted campaign (scheduled, missed, or failed to start) to a new due time.

    A local-time campaign becomes an ordinary one due at ``at`` (schedule a new
    local-time send to keep each reader's hour).
    """
    check_future(at, now, grace_seconds)
    result = session.execute(
        update(Campaign)
        .where(
            Campaign.id == campaign_id,
            Campaign.status.in_(MOVABLE),
            Campaign.started_at.is_(None),
        )
        .values(
            status=CampaignStatus.SCHEDULED,
            scheduled_at=at,
            status_reason=None,
            local_date=None,
            local_time=None,
        )
    )
    if not getattr(result, "rowcount", 0):
        _refuse(session, campaign_id, "reschedule", None)


def _refuse(session: Session, campaign_id: int, verb: str, idempotent: str | None) -> None:
    campaign = campaigns.get_campaign(campaign_id, session=session)
    if idempotent is not None and campaign.status == idempotent:
        return
    hint = " (use 'newsletter campaign cancel')" if campaign.started_at else ""
    raise StateError(f"cannot {verb} campaign #{campaign_id}: it is {campaign.status}{hint}")


def disable_recurring(session: Session, schedule_id: int) -> Schedule:
    """Stop a rule for good (its row and history stay for the record)."""
    schedule = session.get(Schedule, schedule_id)
    if schedule is None:
        raise NotFoundError(f"no recurring schedule #{schedule_id}")
    schedule.enabled = False
    schedule.next_run_at = None
    schedule.last_result = "disabled by admin"
    return schedule


# --- listing -------------------------------------------------------------------------


@dataclass(frozen=True)
class Listing:
    """Everything ``schedule list`` shows: pending one-offs (and misses) and recurring rules."""

    campaigns: list[dict[str, Any]]
    recurring: list[dict[str, Any]]


def listing(session: Session, *, tz_name: str) -> Listing:
    """Rows as plain dicts (JSON-ready), times in the organisation's zone and UTC."""
    tz = zone(tz_name)
    rows = session.execute(
        select(Campaign, Issue.number)
        .join(Issue, Issue.id == Campaign.issue_id)
        .where(Campaign.status.in_(MOVABLE), Campaign.started_at.is_(None))
        .order_by(Campaign.scheduled_at, Campaign.id)
    ).all()
    pending = [
        {
            "id": c.id, "issue": number, "name": c.name, "status": c.status,
            "due": wall(c.scheduled_at, tz) if c.scheduled_at else None,
            "due_utc": c.scheduled_at.isoformat() if c.scheduled_at else None,
            "topics": c.topics, "schedule_id": c.schedule_id, "reason": c.status_reason,
            "local_time": f"{c.local_time} on {c.local_date} in each subscriber's zone"
            if c.local_time else None,
        }
        for c, number in rows
    ]  # fmt: skip
    recurring = [_schedule_row(s) for s in session.scalars(select(Schedule).order_by(Schedule.id))]
    return Listing(campaigns=pending, recurring=recurring)


def _schedule_row(schedule: Schedule) -> dict[str, Any]:
    tz = zone(schedule.timezone)
    return {
        "id": schedule.id, "name": schedule.name, "rule": schedule.rule,
        "description": load_rule(schedule.rule).describe(), "timezone": schedule.timezone,
        "topics": schedule.topics, "enabled": schedule.enabled,
        "next_run": wall(schedule.next_run_at, tz) if schedule.next_run_at else None,
        "next_run_utc": schedule.next_run_at.isoformat() if schedule.next_run_at else None,
        "last_run": wall(schedule.last_run_at, tz) if schedule.last_run_at else None,
        "last_result": schedule.last_result,
    }  # fmt: skip
