"""Campaign lifecycle: create, start (freeze the audience), pause, resume, cancel, retry, report.

Every state change is a conditional ``UPDATE ... WHERE status IN (...)`` issued
first in its transaction, so concurrent callers (two schedulers, an admin
double-clicking, a hundred ``campaign start`` calls) serialise on the row and
exactly one of them wins; the others see nothing left to do.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from newsletter.deliverability.report import batch_rows, relay_totals
from newsletter.errors import DuplicateSendError, NotFoundError, StateError, ValidationError
from newsletter.models.issues import Issue, IssueStatus
from newsletter.models.sending import (
    BatchStatus,
    Campaign,
    CampaignStatus,
    Delivery,
    DeliveryStatus,
    SendBatch,
)
from newsletter.models.subscribers import Subscriber
from newsletter.sending import abtest
from newsletter.sending.freeze import assign_batches, count_audience, insert_audience
from newsletter.sending.segments import check_universe
from newsletter.sending.sqlstore import count_by_status

STARTABLE = (CampaignStatus.DRAFT, CampaignStatus.SCHEDULED, CampaignStatus.MISSED)
NOT_RETRYABLE = (CampaignStatus.DRAFT, CampaignStatus.SCHEDULED, CampaignStatus.CANCELLED)


class IssueChecks(Protocol):
    """What starting a campaign needs to know about its issue (implemented in ``prepare``)."""

    def topic_universe(self, issue_id: int) -> list[str]: ...

    def preflight(self, issue_id: int) -> None: ...


def get_issue_by_number(number: int, *, session: Session) -> Issue:
    issue = session.scalar(select(Issue).where(Issue.number == number))
    if issue is None:
        raise NotFoundError(f"no issue number {number} (import it with 'newsletter issue import')")
    return issue


AUDIENCES = ("active", "inactive", "all")


# Campaigns that have reached, or will reach, their audience.
GOING = (CampaignStatus.SCHEDULED, CampaignStatus.SENDING, CampaignStatus.PAUSED)
GONE = (CampaignStatus.SENT,)


def audience_label(topics: Sequence[str]) -> str:
    return "everyone" if not topics else "subscribers of " + ", ".join(sorted(topics))


def _overlaps(a: Sequence[str], b: Sequence[str]) -> bool:
    """Whether two topic audiences can share a subscriber: everyone meets everything."""
    return not a or not b or bool(set(a) & set(b))


def _same_people(a: str, b: str) -> bool:
    """Whether two sunset audiences can share a subscriber (active and inactive cannot)."""
    return "all" in (a, b) or a == b


def earlier_send(
    issue_id: int,
    topics: Sequence[str],
    *,
    session: Session,
    exclude: int | None = None,
    audience: str = "active",
) -> Campaign | None:
    """The first other campaign of this issue that reached or will reach part of this audience.

    Cancelled and failed campaigns count once they started: some of their
    recipients may have had the issue.
    """
    started_then_stopped = Campaign.status.in_(
        [CampaignStatus.CANCELLED, CampaignStatus.FAILED]
    ) & Campaign.started_at.is_not(None)
    query = (
        select(Campaign)
        .where(
            Campaign.issue_id == issue_id,
            Campaign.sequence_id.is_(None),  # a sequence's welcome is not a send of the issue
            Campaign.status.in_([*GOING, *GONE]) | started_then_stopped,
        )
        .order_by(Campaign.id)
    )
    if exclude is not None:
        query = query.where(Campaign.id != exclude)
    return next(
        (
            c
            for c in session.scalars(query)
            if _overlaps(c.topics, topics) and _same_people(c.audience, audience)
        ),
        None,
    )


def describe_earlier(campaign: Campaign) -> str:
    """'campaign #3 "Issue 42" (sent 2026-12-07 09:39 UTC)', for refusals and warnings."""
    when = campaign.finished_at or campaign.started_at or campaign.scheduled_at
    stamp = f" {when:%Y-%m-%d %H:%M} UTC" if when else ""
    return f"campaign #{campaign.id} {campaign.name!r} ({campaign.status}{stamp})"


def check_first_send(
    issue: Issue,
    topics: Sequence[str],
    *,
    session: Session,
    exclude: int | None = None,
    audience: str = "active",
) -> None:
    """Refuse a second send of an issue to an audience that already has it (``--resend``)."""
    earlier = earlier_send(issue.id, topics, session=session, exclude=exclude, audience=audience)
    if earlier is None:
        return
    verb = "already went" if earlier.started_at else "is already scheduled to go"
    raise DuplicateSendError(
        f"issue {issue.number} {verb} to {audience_label(earlier.topics)} in "
        f"{describe_earlier(earlier)}; sending it again would mail those subscribers twice "
        "(pass --resend to send it anyway)"
    )


def check_sendable(issue: Issue) -> None:
    """Only an issue an editor marked ready can be scheduled or started."""
    if issue.status == IssueStatus.DRAFT:
        raise StateError(
            f"issue {issue.number} is a draft; mark it ready first "
            f"('newsletter issue status {issue.number} ready' or the admin's issue page)"
        )
    if issue.status == IssueStatus.ARCHIVED:
        raise StateError(f"issue {issue.number} is archived")


def create_campaign(
    issue_number: int,
    *,
    session: Session,
    topics: Sequence[str] = (),
    name: str | None = None,
    scheduled_at: datetime | None = None,
    resend: bool = False,
    audience: str = "active",
    subject_test: abtest.TestPlan | None = None,
    now: datetime | None = None,
) -> Campaign:
    """A draft (or scheduled) campaign sending an issue to everyone, or to given topics.

    Refused when the issue already went (or is scheduled to go) to part of this
    audience, unless ``resend``; a scheduled one also needs a ready issue.
    ``audience``: "active" (inactive subscribers left out), "inactive" (re-engage
    them) or "all".  With ``subject_test`` it is an A/B test of 2 or 3 subjects
    (``abtest``), refused if today's audience cannot fill the sample.
    """
    if audience not in AUDIENCES:
        raise ValidationError(f"audience must be one of {', '.join(AUDIENCES)}, not {audience!r}")
    issue = get_issue_by_number(issue_number, session=session)
    if scheduled_at is not None:
        check_sendable(issue)
    if not resend:
        check_first_send(issue, topics, session=session, audience=audience)
    campaign = Campaign(
        issue_id=issue.id,
        name=name or issue.title,
        topics=sorted(set(topics)),
        segment_topics=[],
        status=CampaignStatus.SCHEDULED if scheduled_at else CampaignStatus.DRAFT,
        scheduled_at=scheduled_at,
        consecutive_failures=0,
        total_recipients=0,
        allow_resend=resend,
        audience=audience,
    )
    if subject_test is not None:
        today = count_audience(
            topics, session=session, now=now or datetime.now(UTC), audience=audience
        )
        abtest.sample_size(subject_test, today)  # refuse now rather than at the start
    session.add(campaign)
    session.flush()
    if subject_test is not None:
        abtest.add_test(campaign, subject_test, session=session)
    return campaign


def campaign_ids(*, session: Session, status: str) -> list[int]:
    """Ids of the campaigns in one state, oldest first (sequence steps, which never end, not)."""
    query = select(Campaign.id).where(Campaign.status == status, Campaign.sequence_id.is_(None))
    return list(session.scalars(query.order_by(Campaign.id)))


def allow_resend(campaign_id: int, *, session: Session) -> None:
    """The admin's explicit choice: this campaign may repeat an issue for its audience."""
    get_campaign(campaign_id, session=session).allow_resend = True


def get_campaign(campaign_id: int, *, session: Session) -> Campaign:
    campaign = session.get(Campaign, campaign_id)
    if campaign is None:
        raise NotFoundError(f"no campaign #{campaign_id}")
    return campaign


def start_campaign(
    campaign_id: int,
    *,
    session: Session,
    checks: IssueChecks,
    batch_size: int,
    now: datetime,
    transport: str | None = None,
    engagement: str | None = None,
    default_zone: str = "UTC",
) -> bool:
    """Freeze the audience and set the campaign sending; False if it had already started.

    Preflight runs first (read-only); then the gate UPDATE, the ledger insert
    and batch assignment share one transaction, so a crash leaves the campaign
    unstarted rather than half-frozen.  A local-time campaign's batches are
    made per subscriber time zone, each held until its hour (``localtime``;
    ``default_zone`` for subscribers without one).
    """
    campaign = get_campaign(campaign_id, session=session)
    if campaign.status not in STARTABLE:
        return False
    issue = session.get(Issue, campaign.issue_id)
    assert issue is not None  # issues with campaigns cannot be deleted (RESTRICT)
    check_sendable(issue)
    if not campaign.allow_resend:
        check_first_send(
            issue, campaign.topics, session=session, exclude=campaign_id,
            audience=campaign.audience,
        )  # fmt: skip
    issue_id = campaign.issue_id
    # Release this session's connection before the checks open their own: holding one
    # while waiting for another deadlocks the pool under many concurrent starts.  It
    # also makes the gate UPDATE the first statement of the write transaction.
    session.rollback()
    checks.preflight(issue_id)
    universe = check_universe(checks.topic_universe(issue_id))
    won = session.execute(
        update(Campaign)
        .where(Campaign.id == campaign_id, Campaign.status.in_(STARTABLE))
        .values(
            status=CampaignStatus.SENDING,
            started_at=now,
            status_reason=None,
            segment_topics=universe,
            transport=transport,
        )
    )
    if not getattr(won, "rowcount", 0):
        return False
    topics, audience, local_date, local_time = session.execute(
        select(Campaign.topics, Campaign.audience, Campaign.local_date, Campaign.local_time).where(
            Campaign.id == campaign_id
        )
    ).one()
    local = local_date is not None and local_time is not None
    tested = abtest.get_test(campaign_id, session=session) is not None
    total = insert_audience(
        campaign_id,
        session=session,
        universe=universe,
        topics=topics or [],
        now=now,
        # A subject test draws its sample from the unbatched ledger, then batches it;
        # a local-time campaign batches per time zone.
        batch_size=None if tested or local else batch_size,
        audience=audience,
        engagement=None if tested or local else engagement,  # most engaged first (warm-up)
    )
    if tested:
        abtest.freeze(campaign_id, session=session, total=total, batch_size=batch_size, now=now)
    else:
        if local:
            from newsletter.sending import localtime  # (imports scheduling, which imports us)

            localtime.assign_by_zone(
                campaign_id, session=session, size=batch_size, local_date=local_date,
                local_time=local_time, default_tz=default_zone,
            )  # fmt: skip
        assign_batches(campaign_id, session=session, size=batch_size)  # rows left: none
    session.execute(
        update(Campaign)
        .where(Campaign.id == campaign_id)
        .values(frozen_at=now, total_recipients=total, consecutive_failures=0)
    )
    return True


def _transition(
    campaign_id: int,
    *,
    session: Session,
    allowed: Sequence[str],
    to: str,
    reason: str | None,
    verb: str,
) -> None:
    result = session.execute(
        update(Campaign)
        .where(Campaign.id == campaign_id, Campaign.status.in_(list(allowed)))
        .values(status=to, status_reason=reason)
    )
    if not getattr(result, "rowcount", 0):
        current = get_campaign(campaign_id, session=session).status
        if current == to:
            return  # idempotent
        raise StateError(f"cannot {verb} campaign #{campaign_id}: it is {current}")


def _not_a_step(campaign_id: int, session: Session) -> None:
    """A sequence step's campaign follows its sequence: pause, resume and cancel go there."""
    sequence_id = session.scalar(select(Campaign.sequence_id).where(Campaign.id == campaign_id))
    if sequence_id is not None:
        raise StateError(
            f"campaign #{campaign_id} is a step of sequence #{sequence_id}; use "
            f"'newsletter sequences pause|resume {sequence_id}' or the admin's Sequences page"
        )


def pause_campaign(campaign_id: int, *, session: Session, reason: str = "paused by admin") -> None:
    _not_a_step(campaign_id, session)
    _transition(
        campaign_id,
        session=session,
        allowed=[CampaignStatus.SENDING],
        to=CampaignStatus.PAUSED,
        reason=reason,
        verb="pause",
    )


def resume_campaign(campaign_id: int, *, session: Session, now: datetime | None = None) -> None:
    """Continue a paused campaign; after a reputation-guard pause the guard counts afresh."""
    from newsletter.bounces.guard import REASON_PREFIX, record_baseline

    _not_a_step(campaign_id, session)
    reason = session.scalar(select(Campaign.status_reason).where(Campaign.id == campaign_id))
    _transition(
        campaign_id,
        session=session,
        allowed=[CampaignStatus.PAUSED],
        to=CampaignStatus.SENDING,
        reason=None,
        verb="resume",
    )
    session.execute(
        update(Campaign).where(Campaign.id == campaign_id).values(consecutive_failures=0)
    )
    if reason and reason.startswith(REASON_PREFIX):
        record_baseline(session, campaign_id, now=now or datetime.now(UTC))


def cancel_campaign(campaign_id: int, *, session: Session, now: datetime) -> None:
    """Stop for good: unsent recipients end as skipped, batches in flight still settle."""
    _not_a_step(campaign_id, session)
    allowed = [
        CampaignStatus.DRAFT,
        CampaignStatus.SCHEDULED,
        CampaignStatus.SENDING,
        CampaignStatus.PAUSED,
        CampaignStatus.MISSED,
    ]
    _transition(
        campaign_id,
        session=session,
        allowed=allowed,
        to=CampaignStatus.CANCELLED,
        reason="cancelled by admin",
        verb="cancel",
    )
    waiting = (BatchStatus.PENDING, BatchStatus.HELD)  # held: an A/B test's rest
    pending = select(SendBatch.id).where(
        SendBatch.campaign_id == campaign_id, SendBatch.status.in_(waiting)
    )
    session.execute(
        update(Delivery)
        .where(Delivery.batch_id.in_(pending), Delivery.status == DeliveryStatus.QUEUED)
        .values(status=DeliveryStatus.SKIPPED, detail="campaign cancelled", updated_at=now)
    )
    session.execute(
        update(SendBatch)
        .where(SendBatch.campaign_id == campaign_id, SendBatch.status.in_(waiting))
        .values(status=BatchStatus.CANCELLED, finished_at=now)
    )
    session.execute(update(Campaign).where(Campaign.id == campaign_id).values(finished_at=now))


def retry_failed(
    campaign_id: int, *, session: Session, include_unknown: bool, batch_size: int, now: datetime
) -> int:
    """Queue failed (and, by the admin's explicit choice, unknown) recipients again.

    The UPDATE that re-queues rows is the gate: concurrent calls each re-queue
    a disjoint set (usually all and none), so nobody is queued twice.
    """
    campaign = get_campaign(campaign_id, session=session)
    if campaign.status in (CampaignStatus.DRAFT, CampaignStatus.SCHEDULED):
        raise StateError(f"campaign #{campaign_id} has not started")
    states = [DeliveryStatus.FAILED, *([DeliveryStatus.UNKNOWN] if include_unknown else [])]
    session.rollback()
    # Lock the campaign row first: a concurrent cancel either committed already (and a
    # cancelled campaign is never revived) or waits until this retry has committed.
    retryable = session.execute(
        update(Campaign)
        .where(Campaign.id == campaign_id, Campaign.status.not_in(NOT_RETRYABLE))
        .values(updated_at=now)
    )
    if not getattr(retryable, "rowcount", 0):
        current = get_campaign(campaign_id, session=session).status
        raise StateError(f"cannot retry campaign #{campaign_id}: it is {current}")
    requeued = session.execute(
        update(Delivery)
        .where(Delivery.campaign_id == campaign_id, Delivery.status.in_(states))
        .values(
            status=DeliveryStatus.QUEUED, batch_id=None, attempts=0, updated_at=now, detail=None
        )
    )
    count = int(getattr(requeued, "rowcount", 0) or 0)
    if count and abtest.get_test(campaign_id, session=session) is not None:
        abtest.assign_batches(campaign_id, session=session, size=batch_size)  # keep subjects
    elif count:
        assign_batches(campaign_id, session=session, size=batch_size)
        session.execute(
            update(Campaign)
            .where(Campaign.id == campaign_id)
            .values(
                status=CampaignStatus.SENDING,
                finished_at=None,
                status_reason=None,
                consecutive_failures=0,
            )
        )
    return count


# --- report -------------------------------------------------------------------


# Transports that report deliveries back (webhooks); the others only know "accepted".
REPORTS_DELIVERY = frozenset({"sendgrid"})
NOT_REPORTED = "not reported by this transport"


@dataclass
class CampaignReport:
    id: int
    name: str
    status: str
    status_reason: str | None
    total: int
    counts: dict[str, int]
    rates: dict[str, float | None]  # None: this transport does not report it
    # Readers apart from machines (newsletter.tracking.machine): unique opened/clicked and
    # totals for people, totals for prefetches, scanners and bots.
    engagement: dict[str, int] = field(default_factory=dict)
    complained: int = 0  # recipients who reported it as spam (a feedback loop or SendGrid)
    unknown: list[dict[str, Any]] = field(default_factory=list)
    recipients: list[dict[str, Any]] = field(default_factory=list)
    relays: list[dict[str, Any]] = field(default_factory=list)  # batches per relay
    batches: list[dict[str, Any]] = field(default_factory=list)  # each batch and its relay
    # An A/B subject test (abtest.report): each subject, its sample, result and how sure.
    subject_test: dict[str, Any] | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def reports_delivery(transport: str | None, counts: dict[str, int]) -> bool:
    """Whether "delivered" means anything for this campaign (a delivery event ever came)."""
    return transport in REPORTS_DELIVERY or counts.get("delivered", 0) > 0


def _rates(
    counts: dict[str, int],
    opened: int,
    clicked: int,
    complained: int,
    *,
    delivery_reported: bool,
) -> dict[str, float | None]:
    """Rates over what the transport can know: without delivery reports, over the accepted.

    An outbox or SMTP relay says "accepted" and nothing after it, so a
    delivery rate would read 0 % and every rate over it too: say "not
    reported" instead, and measure engagement against what was accepted.
    """
    sent = sum(counts.get(s, 0) for s in ("accepted", "delivered", "bounced", "dropped"))
    delivered = counts.get("delivered", 0)
    reached = delivered if delivery_reported else delivered + counts.get("accepted", 0)

    def ratio(a: int, b: int) -> float:
        return round(a / b, 4) if b else 0.0

    return {
        "delivery_rate": ratio(delivered, sent) if delivery_reported else None,
        "open_rate": ratio(opened, reached),
        "click_rate": ratio(clicked, reached),
        "bounce_rate": ratio(counts.get("bounced", 0), sent),
        "complaint_rate": ratio(complained, sent),
    }


def campaign_report(
    campaign_id: int, *, session: Session, with_recipients: bool = True, limit: int | None = None
) -> CampaignReport:
    """Counts by state, rates, what is still unknown, and (optionally) per-recipient rows."""
    campaign = get_campaign(campaign_id, session=session)
    counts = {state.value: 0 for state in DeliveryStatus}
    counts.update(count_by_status(session, campaign_id))
    engagement = _engagement(session, campaign_id)
    opened, clicked = engagement["opened"], engagement["clicked"]
    from newsletter.bounces.guard import complaint_count

    complained = complaint_count(session, campaign_id)
    report = CampaignReport(
        id=campaign.id,
        name=campaign.name,
        status=campaign.status,
        status_reason=campaign.status_reason,
        total=campaign.total_recipients,
        counts=counts,
        rates=_rates(
            counts,
            int(opened),
            int(clicked),
            complained,
            delivery_reported=reports_delivery(campaign.transport, counts),
        ),
        engagement=engagement,
        complained=complained,
    )
    report.unknown = _rows(session, campaign_id, [DeliveryStatus.UNKNOWN], limit=None)
    report.relays = relay_totals(session, campaign_id)
    report.batches = batch_rows(session, campaign_id)
    report.subject_test = abtest.report(campaign_id, session=session)
    if with_recipients:
        report.recipients = _rows(session, campaign_id, None, limit=limit)
    return report


def _engagement(session: Session, campaign_id: int) -> dict[str, int]:
    d = Delivery
    row = session.execute(
        select(
            func.count(d.opened_at), func.count(d.clicked_at),
            func.coalesce(func.sum(d.opens), 0), func.coalesce(func.sum(d.clicks), 0),
            func.coalesce(func.sum(d.machine_opens), 0),
            func.coalesce(func.sum(d.machine_clicks), 0),
        ).where(d.campaign_id == campaign_id)
    ).one()  # fmt: skip
    names = ("opened", "clicked", "opens", "clicks", "machine_opens", "machine_clicks")
    return {name: int(value) for name, value in zip(names, row, strict=True)}


def _rows(
    session: Session, campaign_id: int, states: list[DeliveryStatus] | None, *, limit: int | None
) -> list[dict[str, Any]]:
    query = (
        select(
            Delivery.id,
            Subscriber.email,
            Delivery.status,
            Delivery.detail,
            Delivery.provider_id,
            Delivery.attempts,
            Delivery.updated_at,
            Delivery.opened_at,
            Delivery.clicked_at,
        )
        .outerjoin(Subscriber, Subscriber.id == Delivery.subscriber_id)
        .where(Delivery.campaign_id == campaign_id)
        .order_by(Delivery.id)
        .limit(limit)
    )
    if states:
        query = query.where(Delivery.status.in_(states))
    return [
        {
            "ledger_id": row.id,
            "email": row.email or "(erased)",
            "status": row.status,
            "detail": row.detail,
            "provider_id": row.provider_id,
            "attempts": row.attempts,
            "updated_at": row.updated_at.isoformat() if row.updated_at else None,
            "opened": row.opened_at is not None,
            "clicked": row.clicked_at is not None,
        }
        for row in session.execute(query)
    ]


def check_topics(topics: Sequence[str], known: Sequence[str]) -> None:
    unknown = sorted(set(topics) - set(known))
    if unknown:
        raise ValidationError(f"unknown topic(s): {', '.join(unknown)} (known: {', '.join(known)})")
