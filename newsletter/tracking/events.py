"""Ingest provider events in bulk: store each once, then move the ledger forward.

Events arrive late, twice, and out of order.  Storage is idempotent on the
provider's event id (``INSERT ... ON CONFLICT DO NOTHING RETURNING``), and a
ledger row only ever moves *up* the ranking below, so a late ``processed``
never undoes a ``delivered`` and a replayed request changes nothing.

Both ways bounces come back go through ``ingest``: SendGrid's webhook and the
mail that ``newsletter.bounces`` receives (provider ``bounces``), so one
policy (``BouncePolicy``) holds for both: a hard bounce or a complaint
suppresses at once; soft bounces suppress once ``soft_limit`` of them fall
within ``soft_window`` with no delivery between them; and the reputation guard
(``bounces.guard``) looks at every campaign a bounce or complaint touched.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, cast

from sqlalchemy import Table, bindparam, func, select, text, update
from sqlalchemy.dialects import sqlite
from sqlalchemy.orm import Session

from newsletter.automation.webhooks import outbox as webhook_outbox
from newsletter.config import Settings
from newsletter.errors import ValidationError
from newsletter.models.base import UTCDateTime
from newsletter.models.sending import Delivery, DeliveryStatus, TrackingEvent
from newsletter.models.subscribers import Subscriber

RANK = {
    DeliveryStatus.QUEUED: 0,
    DeliveryStatus.FAILED: 1,
    DeliveryStatus.UNKNOWN: 1,
    DeliveryStatus.ACCEPTED: 2,
    DeliveryStatus.DELIVERED: 3,
    DeliveryStatus.BOUNCED: 4,
    DeliveryStatus.DROPPED: 4,
}
STATE_FOR_EVENT = {
    "processed": DeliveryStatus.ACCEPTED,
    "delivered": DeliveryStatus.DELIVERED,
    "bounce": DeliveryStatus.BOUNCED,
    "dropped": DeliveryStatus.DROPPED,
}
SUPPRESS_FOR_EVENT = {
    "spamreport": "complaint",
    "unsubscribe": "unsubscribed",
    "group_unsubscribe": "unsubscribed",
}
DELIVERIES = cast(Table, Delivery.__table__)
TRACKING_EVENTS = cast(Table, TrackingEvent.__table__)


@dataclass(frozen=True, slots=True)
class Event:
    event_id: str
    event: str
    email: str | None
    ledger_id: int | None
    campaign_id: int | None
    occurred_at: datetime
    bounce_type: str | None  # SendGrid: "bounce" (hard) or "blocked"; ours: "hard" or "soft"
    reason: str | None
    provider: str = "sendgrid"


SOFT_BOUNCE_TYPES = frozenset({"blocked", "soft"})


def is_soft_bounce(event: Event) -> bool:
    """A bounce that is counted, not final (SendGrid's "blocked", our 4.x.x and 5.2.2)."""
    return event.event == "bounce" and event.bounce_type in SOFT_BOUNCE_TYPES


def is_hard_bounce(event: Event) -> bool:
    return event.event == "bounce" and event.bounce_type not in SOFT_BOUNCE_TYPES


@dataclass(frozen=True, slots=True)
class GuardLimits:
    """The reputation guard's thresholds (``settings.guard_*``)."""

    complaint_rate: float = 0.003
    hard_bounce_rate: float = 0.05
    min_sent: int = 500


@dataclass(frozen=True, slots=True)
class BouncePolicy:
    """What bounces and complaints do, the same for every transport."""

    soft_limit: int = 3
    soft_window: timedelta = timedelta(days=14)
    guard: GuardLimits | None = GuardLimits()

    @classmethod
    def from_settings(cls, settings: Settings) -> BouncePolicy:
        return cls(
            soft_limit=settings.soft_bounce_limit,
            soft_window=timedelta(days=settings.soft_bounce_window_days),
            guard=GuardLimits(
                complaint_rate=settings.guard_complaint_rate,
                hard_bounce_rate=settings.guard_hard_bounce_rate,
                min_sent=settings.guard_min_sent,
            ),
        )


@dataclass
class IngestReport:
    received: int = 0
    stored: int = 0
    duplicates: int = 0
    ignored: int = 0
    suppressed: int = 0
    paused: list[int] = field(default_factory=list)  # campaigns the guard paused


BIGINT_MAX = 2**63 - 1  # deliveries.id, tracking_events.delivery_id
INT_MAX = 2**31 - 1  # tracking_events.campaign_id


def _int(value: Any, maximum: int = BIGINT_MAX) -> int | None:
    """A non-negative id that fits its column, else None (a bad value is not an error)."""
    try:
        number = int(value) if value not in (None, "") else None
    except (TypeError, ValueError, OverflowError):  # OverflowError: int(float("inf"))
        return None
    return number if number is not None and 0 <= number <= maximum else None


def _text(value: Any) -> str | None:
    """A string safe to store: no NUL (PostgreSQL refuses it), no lone surrogates."""
    if not isinstance(value, str):
        return None
    return value.replace("\x00", "").encode("utf-8", "replace").decode("utf-8")


def _when(value: Any) -> datetime:
    stamp = _int(value)
    try:
        return datetime.fromtimestamp(stamp, UTC) if stamp else datetime.now(UTC)
    except (OverflowError, OSError, ValueError):  # a year datetime cannot hold
        return datetime.now(UTC)


def _event(raw: Any) -> Event | None:
    if not isinstance(raw, dict):
        return None
    event_id, kind = _text(raw.get("sg_event_id")), _text(raw.get("event"))
    if not event_id or kind is None:
        return None
    reason = _text(str(raw.get("reason") or raw.get("response") or raw.get("url") or ""))
    return Event(
        event_id=event_id[:200],
        event=kind[:30],
        email=_text(raw.get("email")),
        ledger_id=_int(raw.get("ledger_id")),
        campaign_id=_int(raw.get("campaign_id"), INT_MAX),
        occurred_at=_when(raw.get("timestamp")),
        bounce_type=_text(raw.get("type")),
        reason=reason[:1000] if reason else None,
    )


def parse_events(body: bytes) -> tuple[list[Event], int]:
    """The events in a webhook body, and how many entries were not events."""
    try:
        data = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):  # or absurdly nested
        raise ValidationError("webhook body is not JSON") from None
    if not isinstance(data, list):
        raise ValidationError("webhook body must be a JSON array of events")
    events = [e for e in (_event(raw) for raw in data) if e is not None]
    return events, len(data) - len(events)


def _insert_new(
    session: Session, events: Sequence[Event], now: datetime, hash_of: _Hashes | None = None
) -> set[str]:
    """Store events not seen before; returns the ids that were new."""
    if not events:
        return set()
    hash_of = hash_of or _Hashes()
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        return _insert_new_postgres(session, events, now, hash_of)
    rows = [
        {
            "provider": e.provider,
            "event_id": e.event_id,
            "event": e.event,
            "delivery_id": e.ledger_id,
            "campaign_id": e.campaign_id,
            "email_hash": hash_of(e.email),
            "occurred_at": e.occurred_at,
            "received_at": now,
            "detail": e.reason,
        }
        for e in events
    ]
    # One cached statement for many parameter sets: SQLAlchemy sends it as multi-row
    # INSERTs ("insertmanyvalues"), RETURNING only the rows that were new.
    statement = (
        sqlite.insert(TRACKING_EVENTS)
        .on_conflict_do_nothing(index_elements=["event_id"])
        .returning(TRACKING_EVENTS.c.event_id)
    )
    return set(session.execute(statement, rows).scalars())


_INSERT_NEW_POSTGRES = text(
    """
    INSERT INTO tracking_events (provider, event_id, event, delivery_id, campaign_id,
                                 email_hash, occurred_at, received_at, detail)
    SELECT e.provider, e.event_id, e.event, e.delivery_id, e.campaign_id, e.email_hash,
           e.occurred_at, :now, e.detail
    FROM unnest(
        CAST(:event_ids AS VARCHAR[]), CAST(:kinds AS VARCHAR[]), CAST(:ledger_ids AS BIGINT[]),
        CAST(:campaign_ids AS INTEGER[]), CAST(:hashes AS VARCHAR[]),
        CAST(:occurred AS TIMESTAMPTZ[]), CAST(:details AS TEXT[]), CAST(:providers AS VARCHAR[])
    ) AS e(event_id, event, delivery_id, campaign_id, email_hash, occurred_at, detail, provider)
    ON CONFLICT (event_id) DO NOTHING
    RETURNING event_id
    """
).bindparams(bindparam("now", type_=UTCDateTime))


def _insert_new_postgres(
    session: Session, events: Sequence[Event], now: datetime, hash_of: _Hashes
) -> set[str]:
    """The same rows from arrays: one statement, in event order, whatever the post size."""
    params = {
        "now": now,
        "event_ids": [e.event_id for e in events],
        "kinds": [e.event for e in events],
        "ledger_ids": [e.ledger_id for e in events],
        "campaign_ids": [e.campaign_id for e in events],
        "hashes": [hash_of(e.email) for e in events],
        "occurred": [e.occurred_at for e in events],
        "details": [e.reason for e in events],
        "providers": [e.provider for e in events],
    }
    return set(session.execute(_INSERT_NEW_POSTGRES, params).scalars())


def _hash(email: str | None) -> str | None:
    if not email:
        return None
    from newsletter.subscribers.addresses import address_hash

    try:
        return address_hash(email)
    except ValidationError:
        return None


class _Hashes:
    """``_hash`` remembered for one ingest: an address has several events in a post."""

    def __init__(self) -> None:
        self._known: dict[str | None, str | None] = {}

    def __call__(self, email: str | None) -> str | None:
        try:
            return self._known[email]
        except KeyError:
            value = self._known[email] = _hash(email)
            return value


DEFAULT_POLICY = BouncePolicy()


def ingest(
    events: Sequence[Event],
    *,
    session: Session,
    now: datetime,
    policy: BouncePolicy = DEFAULT_POLICY,
) -> IngestReport:
    """Store and apply a webhook's (or a bounce mail's) events in a handful of statements."""
    report = IngestReport(received=len(events))
    unique = list({e.event_id: e for e in events}.values())
    hash_of = _Hashes()
    new_ids = _insert_new(session, unique, now, hash_of)
    fresh = [e for e in unique if e.event_id in new_ids]
    report.stored = len(fresh)
    report.duplicates = len(events) - len(fresh)
    _advance_states(session, fresh, now)
    _count_engagement(session, fresh)
    report.suppressed = _suppressions(session, fresh, policy, hash_of)
    webhook_outbox.message_events(session, fresh, now=now)  # message.bounced, message.complained
    if policy.guard is not None and any(e.event in GUARDED_EVENTS for e in fresh):
        from newsletter.bounces.guard import check_campaigns

        touched = {e.ledger_id for e in fresh if e.event in GUARDED_EVENTS and e.ledger_id}
        report.paused = check_campaigns(session, touched, policy.guard)
    return report


GUARDED_EVENTS = frozenset({"bounce", "spamreport"})


def _advance_states(session: Session, events: Sequence[Event], now: datetime) -> None:
    by_state: dict[DeliveryStatus, list[Event]] = {}
    for event in events:
        state = STATE_FOR_EVENT.get(event.event)
        if is_soft_bounce(event):
            state = None  # counted, not final
        if state is not None and event.ledger_id is not None:
            by_state.setdefault(state, []).append(event)
    for state in sorted(by_state, key=lambda s: RANK[s]):
        # Inlined constants: executemany cannot expand an IN list of bound parameters.
        lower = ", ".join(f"'{s.value}'" for s, rank in RANK.items() if rank < RANK[state])
        values: dict[str, Any] = {
            "status": state,
            "updated_at": now,
            "detail": bindparam("b_detail"),
        }
        if state is DeliveryStatus.DELIVERED:
            values["delivered_at"] = bindparam("b_at")
        session.execute(
            update(DELIVERIES)
            .where(DELIVERIES.c.id == bindparam("b_id"), text(f"deliveries.status IN ({lower})"))
            .values(**values),
            [
                {"b_id": e.ledger_id, "b_detail": e.reason or e.event, "b_at": e.occurred_at}
                for e in by_state[state]
            ],
        )


def _count_engagement(session: Session, events: Sequence[Event]) -> None:
    for kind, count_col, at_col in (
        ("open", "opens", "opened_at"),
        ("click", "clicks", "clicked_at"),
    ):
        hits = Counter(e.ledger_id for e in events if e.event == kind and e.ledger_id is not None)
        first: dict[int, datetime] = {}
        for e in events:
            if e.event == kind and e.ledger_id is not None:
                first[e.ledger_id] = min(first.get(e.ledger_id, e.occurred_at), e.occurred_at)
        if not hits:
            continue
        session.execute(
            update(DELIVERIES)
            .where(DELIVERIES.c.id == bindparam("b_id"))
            .values(
                {
                    count_col: DELIVERIES.c[count_col] + bindparam("b_n"),
                    at_col: func.coalesce(DELIVERIES.c[at_col], bindparam("b_at")),
                }
            ),
            [{"b_id": i, "b_n": n, "b_at": first[i]} for i, n in hits.items()],
        )


def _suppressions(
    session: Session, events: Sequence[Event], policy: BouncePolicy, hash_of: _Hashes | None = None
) -> int:
    """Hard bounces and complaints suppress at once; soft bounces count, N in a window suppress.

    A delivery resets its address's soft-bounce count.  Resets are collected and
    written together, before the next statement that could read or change a
    count or a status (a soft bounce, a suppression) and at the end, so the
    effects are those of applying every event in order, in a few statements.
    """
    from newsletter.subscribers.suppression import suppress

    hash_of = hash_of or _Hashes()
    resets: dict[str, None] = {}  # address hashes, in order, without repeats

    def flush() -> None:
        if resets:
            _reset_soft_bounce_hashes(session, list(resets))
            resets.clear()

    suppressed = 0
    for event in events:
        if not event.email:
            continue
        reason = SUPPRESS_FOR_EVENT.get(event.event)
        if is_hard_bounce(event):
            reason = "hard_bounce"
        elif is_soft_bounce(event):
            flush()
            if _soft_bounce(session, event, policy, hash_of) >= policy.soft_limit:
                reason = "hard_bounce"
        elif event.event == "delivered":
            ehash = hash_of(event.email)
            if ehash is not None:  # no valid address: the reset would match no subscriber
                resets[ehash] = None
        if reason is not None:
            flush()
            try:
                note = f"{event.provider} {event.event}"
                suppress(event.email, reason, session=session, note=note)
                suppressed += 1
            except ValidationError:
                continue
    flush()
    return suppressed


def _soft_bounce(
    session: Session, event: Event, policy: BouncePolicy, hash_of: _Hashes | None = None
) -> int:
    """Log one soft bounce; how many fall in the window ending at the newest (0: no subscriber).

    The log holds the times since the last delivery (a delivery clears it), so
    "N soft bounces within D days with no delivery between them" is "N entries
    within D days of the newest".  The row is locked first (PostgreSQL) so two
    concurrent posts for one address both count.
    """
    ehash = (hash_of or _hash)(event.email)
    row = session.execute(
        select(Subscriber.id, Subscriber.soft_bounce_log)
        .where(Subscriber.email_hash == ehash)
        .with_for_update()
    ).first()
    if row is None:
        return 0
    times = [*_times(row.soft_bounce_log), event.occurred_at]
    times.sort()
    recent = [t for t in times if t >= times[-1] - policy.soft_window][-policy.soft_limit :]
    session.execute(
        update(Subscriber)
        .where(Subscriber.id == row.id)
        .values(soft_bounces=len(recent), soft_bounce_log=[t.isoformat() for t in recent])
    )
    return len(recent)


def _times(log: Any) -> list[datetime]:
    """The stored soft-bounce times, skipping anything that is not one (never raises)."""
    found: list[datetime] = []
    for value in log if isinstance(log, list) else []:
        try:
            stamp = datetime.fromisoformat(str(value))
        except ValueError:
            continue
        found.append(stamp if stamp.tzinfo else stamp.replace(tzinfo=UTC))
    return found


_RESET_CHUNK = 900  # stays under every backend's bound-parameter limit


def _reset_soft_bounce_hashes(session: Session, hashes: Sequence[str]) -> None:
    """``_reset_soft_bounces`` for many addresses (by hash) in one statement per 900."""
    for start in range(0, len(hashes), _RESET_CHUNK):
        session.execute(
            update(Subscriber)
            .where(
                Subscriber.email_hash.in_(hashes[start : start + _RESET_CHUNK]),
                Subscriber.soft_bounces > 0,
            )
            .values(soft_bounces=0, soft_bounce_log=None)
        )
