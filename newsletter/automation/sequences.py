"""Welcome and drip sequences: a trigger, then ordered emails with delays, through the ledger.

A sequence step is an issue sent by a hidden campaign of its own
(``campaigns.sequence_id``).  The periodic ``tick`` (every scheduler sweep, 30 s
by default) does three set-based things per active sequence, inside one
transaction opened by a conditional UPDATE of the sequence row, so two
schedulers serialise on that row and the second finds nothing left to do:

1. enrol: confirmed, unsuppressed subscribers whose trigger happened since
   the sequence was created (a confirmation, joining a topic, a date field);
2. stop: enrolments whose subscriber is no longer confirmed or is suppressed
   (an unsubscribe mid-sequence: nothing more is ever queued for them);
3. queue: for every step now due (trigger time + the delays so far), one
   ledger row per enrolled subscriber, ``ON CONFLICT DO NOTHING`` on the
   ledger's unique (campaign, subscriber), grouped into batches.

The worker then sends those batches exactly like a campaign's: claimed
exclusively, "submitting" committed before the provider call (a crash leaves
"unknown", never a resend), suppressions re-checked at claim time, opens and
clicks tracked on the same rows.  Step campaigns have no ``frozen_at``, so
they never "finish": they stay ``sending`` (``paused`` while the sequence is).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence as Seq
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, func, select, text, update
from sqlalchemy.orm import Session

from newsletter.config import Settings
from newsletter.db import Database
from newsletter.errors import DatabaseError, NotFoundError, ValidationError
from newsletter.models.base import UTCDateTime
from newsletter.models.issues import Issue
from newsletter.models.sending import Campaign, CampaignStatus, Delivery, DeliveryStatus
from newsletter.models.sequences import (
    EnrolmentStatus,
    Sequence,
    SequenceEnrolment,
    SequenceStatus,
    SequenceStep,
)
from newsletter.sending.campaigns import check_sendable, get_issue_by_number
from newsletter.sending.freeze import assign_batches

log = logging.getLogger(__name__)

TRIGGERS = ("confirmed", "topic:<name>", "date:<field>")
# The subscriber date fields a "date" trigger can start from.
DATE_FIELDS = {"signed_up": "s.created_at", "confirmed": "s.confirmed_at"}
_DELAY = re.compile(r"^\s*(\d+)\s*([mhdw]?)\s*$")
_UNITS = {"": 1, "m": 1, "h": 60, "d": 1440, "w": 10080}
SENT = (DeliveryStatus.ACCEPTED, DeliveryStatus.DELIVERED)


# --- what admins type ----------------------------------------------------------------


def parse_trigger(value: str, *, topics: Seq[str]) -> tuple[str, str | None]:
    """``confirmed``, ``topic:<name>`` or ``date:<field>`` as (trigger, value); one clear error."""
    kind, _, arg = value.strip().partition(":")
    kind, arg = kind.strip().lower(), arg.strip()
    if kind == "confirmed" and not arg:
        return "confirmed", None
    if kind == "topic" and arg:
        if arg not in topics:
            raise ValidationError(
                f"unknown topic {arg!r} in trigger {value!r} (known: {', '.join(topics)})"
            )
        return "topic", arg
    if kind == "date" and arg in DATE_FIELDS:
        return "date", arg
    raise ValidationError(
        f"invalid trigger {value!r} (expected confirmed, topic:<name> or "
        f"date:<{'|'.join(DATE_FIELDS)}>)"
    )


def parse_delay(value: str) -> int:
    """``0``, ``30m``, ``2h``, ``3d``, ``1w`` as minutes (a bare number is minutes)."""
    match = _DELAY.match(value)
    if match is None:
        raise ValidationError(f"invalid delay {value!r} (expected e.g. 0, 30m, 2h, 3d or 1w)")
    return int(match.group(1)) * _UNITS[match.group(2)]


def describe_delay(minutes: int) -> str:
    """The largest whole unit: ``3d``, ``90m``, ``0`` (for lists and the admin)."""
    for unit, size in (("w", 10080), ("d", 1440), ("h", 60)):
        if minutes and minutes % size == 0:
            return f"{minutes // size}{unit}"
    return f"{minutes}m" if minutes else "0"


def describe_trigger(sequence: Sequence) -> str:
    if sequence.trigger == "topic":
        return f"joins topic {sequence.trigger_value}"
    if sequence.trigger == "date":
        return f"date field {sequence.trigger_value}"
    return "confirms"


# --- lifecycle -----------------------------------------------------------------------


def create_sequence(
    session: Session, name: str, trigger: str, *, topics: Seq[str], now: datetime
) -> Sequence:
    """An active sequence; only triggers from ``now`` on enrol (not the existing list)."""
    label = name.strip()
    if not label:
        raise ValidationError("a sequence needs a name")
    if session.scalar(select(Sequence.id).where(Sequence.name == label)) is not None:
        raise ValidationError(f"a sequence named {label!r} already exists")
    kind, value = parse_trigger(trigger, topics=topics)
    sequence = Sequence(
        name=label, trigger=kind, trigger_value=value, status=SequenceStatus.ACTIVE,
        starts_from=now, created_at=now,
    )  # fmt: skip
    session.add(sequence)
    session.flush()
    return sequence


def get_sequence(session: Session, ref: str | int) -> Sequence:
    """By id or by name."""
    text_ref = str(ref).strip()
    query = select(Sequence).where(
        Sequence.id == int(text_ref) if text_ref.isdigit() else Sequence.name == text_ref
    )
    sequence = session.scalar(query)
    if sequence is None:
        raise NotFoundError(f"no sequence {text_ref!r} (see 'newsletter sequences list')")
    return sequence


def steps_of(session: Session, sequence_id: int) -> list[SequenceStep]:
    return list(
        session.scalars(
            select(SequenceStep)
            .where(SequenceStep.sequence_id == sequence_id)
            .order_by(SequenceStep.position)
        )
    )


def add_step(
    session: Session, sequence_id: int, issue_number: int, *, delay_minutes: int, now: datetime
) -> SequenceStep:
    """Append a step: a ready issue sent ``delay_minutes`` after the previous step.

    The step's campaign is created here (hidden, ``sending`` or ``paused`` with
    the sequence) so the step's ledger rows have their campaign from the start.
    """
    if delay_minutes < 0:
        raise ValidationError("a step's delay cannot be negative")
    sequence = session.get(Sequence, sequence_id)
    if sequence is None:
        raise NotFoundError(f"no sequence #{sequence_id}")
    issue = get_issue_by_number(issue_number, session=session)
    check_sendable(issue)
    position = len(steps_of(session, sequence_id)) + 1
    campaign = Campaign(
        issue_id=issue.id,
        name=f"{sequence.name} · step {position}: {issue.title}",
        topics=[], segment_topics=[], consecutive_failures=0, total_recipients=0,
        allow_resend=True, audience="all", sequence_id=sequence.id, started_at=now,
        status=CampaignStatus.SENDING if sequence.status == SequenceStatus.ACTIVE
        else CampaignStatus.PAUSED,
    )  # fmt: skip
    session.add(campaign)
    session.flush()
    step = SequenceStep(
        sequence_id=sequence.id, position=position, issue_id=issue.id,
        delay_minutes=delay_minutes, campaign_id=campaign.id,
    )  # fmt: skip
    session.add(step)
    session.flush()
    return step


def set_paused(session: Session, sequence_id: int, paused: bool) -> Sequence:
    """Pause (queued rows wait, nothing new is queued) or resume; idempotent."""
    sequence = session.get(Sequence, sequence_id)
    if sequence is None:
        raise NotFoundError(f"no sequence #{sequence_id}")
    sequence.status = SequenceStatus.PAUSED if paused else SequenceStatus.ACTIVE
    before, after = (
        (CampaignStatus.SENDING, CampaignStatus.PAUSED)
        if paused
        else (CampaignStatus.PAUSED, CampaignStatus.SENDING)
    )
    session.execute(
        update(Campaign)
        .where(Campaign.sequence_id == sequence_id, Campaign.status == before)
        .values(status=after, status_reason="sequence paused" if paused else None)
    )
    return sequence


# --- the tick ------------------------------------------------------------------------


@dataclass
class TickReport:
    """What one ``tick`` did, summed over sequences."""

    enrolled: int = 0
    stopped: int = 0
    queued: dict[int, int] = field(default_factory=dict)  # step campaign id -> rows queued

    @property
    def total_queued(self) -> int:
        return sum(self.queued.values())


_SUPPRESSED = "EXISTS (SELECT 1 FROM suppressions x WHERE x.email_hash = s.email_hash)"


def _typed(sql: str, *names: str) -> Any:
    return text(sql).bindparams(*(bindparam(n, type_=UTCDateTime) for n in names))


# A confirmation is the double opt-in's: an import or an admin's "add --confirmed" records
# no 'confirm' consent event, so moving a list over never mails it a welcome.
_OPTED_IN = (
    "AND EXISTS (SELECT 1 FROM consent_events ce"
    " WHERE ce.subscriber_id = s.id AND ce.kind = 'confirm')"
)


def _trigger_sql(sequence: Sequence) -> tuple[str, str, str, dict[str, Any]]:
    """(join, trigger-time column, extra condition, params) for a sequence's trigger.

    Joining a topic is the topic row's ``created_at`` (set when a reader ticks
    it; imported rows have none, so an import does not trigger either).
    """
    if sequence.trigger == "topic":
        join = "JOIN subscriber_topics st ON st.subscriber_id = s.id AND st.topic = :topic"
        return join, "st.created_at", "", {"topic": sequence.trigger_value}
    if sequence.trigger == "date":
        return "", DATE_FIELDS[sequence.trigger_value or ""], "", {}
    return "", "s.confirmed_at", _OPTED_IN, {}


def _enrol(session: Session, sequence: Sequence, now: datetime) -> int:
    join, column, extra, params = _trigger_sql(sequence)
    sql = f"""
        INSERT INTO sequence_enrolments
            (sequence_id, subscriber_id, triggered_at, enrolled_at, status)
        SELECT :qid, s.id, {column}, :now, 'active'
        FROM subscribers s {join}
        WHERE s.status = 'confirmed' AND {column} IS NOT NULL
          AND {column} >= :since AND {column} <= :now
          AND NOT EXISTS (SELECT 1 FROM sequence_enrolments e
                          WHERE e.sequence_id = :qid AND e.subscriber_id = s.id)
          AND NOT {_SUPPRESSED} {extra}
        ON CONFLICT (sequence_id, subscriber_id) DO NOTHING
    """
    result: Any = session.execute(
        _typed(sql, "now", "since"),
        {"qid": sequence.id, "now": now, "since": sequence.starts_from, **params},
    )
    return int(result.rowcount or 0)


def _stop(session: Session, sequence: Sequence) -> int:
    """Unsubscribed, bounced, complained, suppressed or (a topic's) left it: nothing more."""
    sequence_id, stopped = sequence.id, 0
    if sequence.trigger == "topic":
        left: Any = session.execute(
            text("""
                UPDATE sequence_enrolments SET status = 'stopped', stopped_reason = 'left the topic'
                WHERE sequence_id = :qid AND status = 'active' AND NOT EXISTS
                    (SELECT 1 FROM subscriber_topics st
                     WHERE st.subscriber_id = sequence_enrolments.subscriber_id
                       AND st.topic = :topic)
            """),
            {"qid": sequence_id, "topic": sequence.trigger_value},
        )
        stopped += int(left.rowcount or 0)
    for reason, condition in (
        ("address suppressed", _SUPPRESSED),
        ("'subscriber ' || s.status", "s.status <> 'confirmed'"),
    ):
        reason_sql = reason if reason.startswith("'") else f"'{reason}'"
        result: Any = session.execute(
            text(f"""
                UPDATE sequence_enrolments SET status = 'stopped', stopped_reason =
                    (SELECT {reason_sql} FROM subscribers s
                     WHERE s.id = sequence_enrolments.subscriber_id)
                WHERE sequence_id = :qid AND status = 'active' AND subscriber_id IN
                    (SELECT s.id FROM subscribers s WHERE {condition})
            """),
            {"qid": sequence_id},
        )
        stopped += int(result.rowcount or 0)
    return stopped


_QUEUE = f"""
    INSERT INTO deliveries (campaign_id, subscriber_id, email_hash, segment, status,
                            attempts, opens, clicks)
    SELECT :cid, s.id, s.email_hash, '0', 'queued', 0, 0, 0
    FROM sequence_enrolments e JOIN subscribers s ON s.id = e.subscriber_id
    WHERE e.sequence_id = :qid AND e.status = 'active' AND e.triggered_at <= :due
      AND s.status = 'confirmed' AND (s.paused_until IS NULL OR s.paused_until <= :now)
      AND NOT EXISTS (SELECT 1 FROM deliveries d
                      WHERE d.campaign_id = :cid AND d.subscriber_id = s.id)
      AND NOT {_SUPPRESSED}
    ORDER BY s.id
    ON CONFLICT (campaign_id, subscriber_id) DO NOTHING
"""


def _queue(
    session: Session, sequence_id: int, steps: list[SequenceStep], now: datetime, size: int
) -> dict[int, int]:
    """One ledger row per enrolled subscriber and due step, batched; {campaign: rows}."""
    queued: dict[int, int] = {}
    offset = 0
    live = set(
        session.scalars(
            select(Campaign.id).where(
                Campaign.sequence_id == sequence_id,
                Campaign.status.in_([CampaignStatus.SENDING, CampaignStatus.PAUSED]),
            )
        )
    )
    for step in steps:
        offset += step.delay_minutes
        if step.campaign_id not in live:
            continue  # its campaign was cancelled by hand: nothing more goes through it
        due = now - timedelta(minutes=offset)
        result: Any = session.execute(
            _typed(_QUEUE, "now", "due"),
            {"cid": step.campaign_id, "qid": sequence_id, "now": now, "due": due},
        )
        count = int(result.rowcount or 0)
        if count:
            assign_batches(step.campaign_id, session=session, size=size)
            session.execute(
                update(Campaign)
                .where(Campaign.id == step.campaign_id)
                .values(total_recipients=Campaign.total_recipients + count)
            )
            queued[step.campaign_id] = count
    return queued


def _finish_enrolments(session: Session, sequence_id: int, steps: list[SequenceStep]) -> None:
    """Enrolments with a ledger row for every step are done."""
    if not steps:
        return
    cids = ", ".join(str(int(step.campaign_id)) for step in steps)
    session.execute(
        text(f"""
            UPDATE sequence_enrolments SET status = 'done'
            WHERE sequence_id = :qid AND status = 'active' AND
                (SELECT count(*) FROM deliveries d
                 WHERE d.subscriber_id = sequence_enrolments.subscriber_id
                   AND d.campaign_id IN ({cids})) >= :n
        """),
        {"qid": sequence_id, "n": len(steps)},
    )


def tick_one(session: Session, sequence_id: int, *, now: datetime, batch_size: int) -> TickReport:
    """Enrol, stop and queue for one sequence, in the caller's (fresh) transaction.

    The gate UPDATE is the transaction's first statement: on PostgreSQL it
    locks the sequence row until commit, so a second scheduler's tick of the
    same sequence waits and then sees this one's rows (nothing left to queue).
    """
    report = TickReport()
    gate: Any = session.execute(
        update(Sequence)
        .where(Sequence.id == sequence_id, Sequence.status == SequenceStatus.ACTIVE)
        .values(ticked_at=now)
    )
    if not int(gate.rowcount or 0):
        return report  # paused (or removed) meanwhile
    sequence = session.get(Sequence, sequence_id)
    assert sequence is not None
    steps = steps_of(session, sequence_id)
    report.enrolled = _enrol(session, sequence, now)
    report.stopped = _stop(session, sequence)
    report.queued = _queue(session, sequence_id, steps, now, batch_size)
    _finish_enrolments(session, sequence_id, steps)
    return report


def tick(db: Database, settings: Settings, now: datetime) -> TickReport:
    """Every active sequence, each in its own transaction (one failing leaves the rest)."""
    with db.session() as session:
        ids = list(
            session.scalars(
                select(Sequence.id)
                .where(Sequence.status == SequenceStatus.ACTIVE)
                .order_by(Sequence.id)
            )
        )
    total = TickReport()
    for sequence_id in ids:
        try:
            with db.session() as session:
                one = tick_one(session, sequence_id, now=now, batch_size=settings.batch_size)
        except DatabaseError:
            raise  # the database is gone: the next sweep retries them all
        except Exception:  # one broken sequence must not hold up the others
            log.exception("sequence #%s: tick failed; retried at the next sweep", sequence_id)
            continue
        total.enrolled += one.enrolled
        total.stopped += one.stopped
        total.queued.update(one.queued)
    if total.enrolled or total.total_queued or total.stopped:
        log.info(
            "sequences: %d enrolled, %d stopped, %d emails queued",
            total.enrolled, total.stopped, total.total_queued,
        )  # fmt: skip
    return total


# --- reading -------------------------------------------------------------------------


def _step_counts(session: Session, campaign_ids: list[int]) -> dict[int, dict[str, int]]:
    """Per step campaign: queued, sent, skipped, failed, unknown, opened, clicked."""
    counts: dict[int, dict[str, int]] = {
        cid: {"queued": 0, "sent": 0, "skipped": 0, "failed": 0, "unknown": 0,
              "opened": 0, "clicked": 0}
        for cid in campaign_ids
    }  # fmt: skip
    if not campaign_ids:
        return counts
    d = Delivery
    rows = session.execute(
        select(d.campaign_id, d.status, func.count(), func.count(d.opened_at),
               func.count(d.clicked_at))
        .where(d.campaign_id.in_(campaign_ids))
        .group_by(d.campaign_id, d.status)
    ).all()  # fmt: skip
    for cid, status, n, opened, clicked in rows:
        bucket = counts[cid]
        key = "sent" if status in SENT else str(status)
        if key in ("bounced", "dropped"):
            key = "failed"
        bucket[key] = bucket.get(key, 0) + int(n)
        bucket["opened"] += int(opened)
        bucket["clicked"] += int(clicked)
    return counts


def sequence_rows(session: Session) -> list[dict[str, Any]]:
    """Every sequence with its steps' totals (JSON-ready), for lists."""
    out = []
    for sequence in session.scalars(select(Sequence).order_by(Sequence.id)):
        report = sequence_report(session, sequence.id)
        out.append(
            {
                "id": sequence.id, "name": sequence.name, "status": sequence.status,
                "trigger": describe_trigger(sequence), "steps": len(report["steps"]),
                "enrolled": sum(report["enrolments"].values()),
                "sent": sum(step["sent"] for step in report["steps"]),
            }
        )  # fmt: skip
    return out


def sequence_report(session: Session, sequence_id: int) -> dict[str, Any]:
    """The sequence, its enrolments by state, and each step's results (sent, opens, clicks)."""
    sequence = session.get(Sequence, sequence_id)
    if sequence is None:
        raise NotFoundError(f"no sequence #{sequence_id}")
    steps = steps_of(session, sequence_id)
    counts = _step_counts(session, [s.campaign_id for s in steps])
    issues = {
        i.id: i
        for i in session.scalars(select(Issue).where(Issue.id.in_([s.issue_id for s in steps])))
    }
    statuses: dict[int, str] = {
        cid: status
        for cid, status in session.execute(
            select(Campaign.id, Campaign.status).where(Campaign.sequence_id == sequence_id)
        ).tuples()
    }
    enrolments = {state.value: 0 for state in EnrolmentStatus}
    for state, n in session.execute(
        select(SequenceEnrolment.status, func.count())
        .where(SequenceEnrolment.sequence_id == sequence_id)
        .group_by(SequenceEnrolment.status)
    ).tuples():
        enrolments[str(state)] = int(n)
    offset = 0
    rows = []
    for step in steps:
        offset += step.delay_minutes
        issue = issues[step.issue_id]
        rows.append(
            {
                "position": step.position, "issue": issue.number, "title": issue.title,
                "delay": describe_delay(step.delay_minutes),
                "after_trigger": describe_delay(offset), "campaign_id": step.campaign_id,
                "campaign_status": statuses.get(step.campaign_id), **counts[step.campaign_id],
            }
        )  # fmt: skip
    return {
        "id": sequence.id, "name": sequence.name, "status": sequence.status,
        "trigger": describe_trigger(sequence), "starts_from": sequence.starts_from.isoformat(),
        "ticked_at": sequence.ticked_at.isoformat() if sequence.ticked_at else None,
        "enrolments": enrolments, "steps": rows,
    }  # fmt: skip
