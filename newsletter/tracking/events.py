"""Ingest provider events in bulk: store each once, then move the ledger forward.

Events arrive late, twice, and out of order.  Storage is idempotent on the
provider's event id (``INSERT ... ON CONFLICT DO NOTHING RETURNING``), and a
ledger row only ever moves *up* the ranking below, so a late ``processed``
never undoes a ``delivered`` and a replayed request changes nothing.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, cast

from sqlalchemy import Table, bindparam, func, select, text, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from newsletter.errors import ValidationError
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


@dataclass(frozen=True, slots=True)
class Event:
    event_id: str
    event: str
    email: str | None
    ledger_id: int | None
    campaign_id: int | None
    occurred_at: datetime
    bounce_type: str | None
    reason: str | None


@dataclass
class IngestReport:
    received: int = 0
    stored: int = 0
    duplicates: int = 0
    ignored: int = 0
    suppressed: int = 0


def _int(value: Any) -> int | None:
    try:
        return int(value) if value not in (None, "") else None
    except (TypeError, ValueError):
        return None


def _event(raw: Any) -> Event | None:
    if not isinstance(raw, dict):
        return None
    event_id, kind = raw.get("sg_event_id"), raw.get("event")
    if not isinstance(event_id, str) or not isinstance(kind, str) or not event_id:
        return None
    stamp = _int(raw.get("timestamp"))
    occurred = datetime.fromtimestamp(stamp, UTC) if stamp else datetime.now(UTC)
    email = raw.get("email")
    reason = raw.get("reason") or raw.get("response") or raw.get("url")
    return Event(
        event_id=event_id[:200],
        event=kind[:30],
        email=email if isinstance(email, str) else None,
        ledger_id=_int(raw.get("ledger_id")),
        campaign_id=_int(raw.get("campaign_id")),
        occurred_at=occurred,
        bounce_type=raw.get("type") if isinstance(raw.get("type"), str) else None,
        reason=str(reason)[:1000] if reason else None,
    )


def parse_events(body: bytes) -> tuple[list[Event], int]:
    """The events in a webhook body, and how many entries were not events."""
    try:
        data = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise ValidationError("webhook body is not JSON") from None
    if not isinstance(data, list):
        raise ValidationError("webhook body must be a JSON array of events")
    events = [e for e in (_event(raw) for raw in data) if e is not None]
    return events, len(data) - len(events)


def _insert_new(session: Session, events: Sequence[Event], now: datetime) -> set[str]:
    """Store events not seen before; returns the ids that were new."""
    if not events:
        return set()
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    rows = [
        {
            "provider": "sendgrid",
            "event_id": e.event_id,
            "event": e.event,
            "delivery_id": e.ledger_id,
            "campaign_id": e.campaign_id,
            "email_hash": _hash(e.email),
            "occurred_at": e.occurred_at,
            "received_at": now,
            "detail": e.reason,
        }
        for e in events
    ]
    statement = (
        insert(TrackingEvent)
        .values(rows)
        .on_conflict_do_nothing(index_elements=["event_id"])
        .returning(TrackingEvent.event_id)
    )
    return set(session.scalars(statement))


def _hash(email: str | None) -> str | None:
    if not email:
        return None
    from newsletter.subscribers.addresses import address_hash

    try:
        return address_hash(email)
    except ValidationError:
        return None


def ingest(
    events: Sequence[Event], *, session: Session, now: datetime, soft_bounce_limit: int = 3
) -> IngestReport:
    """Store and apply a webhook's events in a handful of statements."""
    report = IngestReport(received=len(events))
    unique = list({e.event_id: e for e in events}.values())
    new_ids = _insert_new(session, unique, now)
    fresh = [e for e in unique if e.event_id in new_ids]
    report.stored = len(fresh)
    report.duplicates = len(events) - len(fresh)
    _advance_states(session, fresh, now)
    _count_engagement(session, fresh)
    report.suppressed = _suppressions(session, fresh, soft_bounce_limit)
    return report


def _advance_states(session: Session, events: Sequence[Event], now: datetime) -> None:
    by_state: dict[DeliveryStatus, list[Event]] = {}
    for event in events:
        state = STATE_FOR_EVENT.get(event.event)
        if event.event == "bounce" and event.bounce_type == "blocked":
            state = None  # a block is a soft bounce: counted, not final
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


def _suppressions(session: Session, events: Sequence[Event], soft_limit: int) -> int:
    """Hard bounces and complaints suppress at once; soft bounces count, N in a row suppress."""
    from newsletter.subscribers.suppression import suppress

    suppressed = 0
    for event in events:
        if not event.email:
            continue
        reason = SUPPRESS_FOR_EVENT.get(event.event)
        if event.event == "bounce":
            reason = None if event.bounce_type == "blocked" else "hard_bounce"
            if reason is None and _soft_bounce(session, event.email) >= soft_limit:
                reason = "hard_bounce"
        elif event.event == "delivered":
            _reset_soft_bounces(session, event.email)
        if reason is not None:
            try:
                suppress(event.email, reason, session=session, note=f"sendgrid {event.event}")
                suppressed += 1
            except ValidationError:
                continue
    return suppressed


def _soft_bounce(session: Session, email: str) -> int:
    ehash = _hash(email)
    session.execute(
        update(Subscriber)
        .where(Subscriber.email_hash == ehash)
        .values(soft_bounces=Subscriber.soft_bounces + 1)
    )
    return int(
        session.scalar(select(Subscriber.soft_bounces).where(Subscriber.email_hash == ehash)) or 0
    )


def _reset_soft_bounces(session: Session, email: str) -> None:
    session.execute(
        update(Subscriber)
        .where(Subscriber.email_hash == _hash(email), Subscriber.soft_bounces > 0)
        .values(soft_bounces=0)
    )
