"""Emitting: events go into the outbox in the caller's transaction, never over the network.

``emit(session, event, data)`` inserts the event and one pending delivery per
enabled endpoint that asked for it, in the session the change itself is
written in.  So an event is stored exactly when its change commits: a
rollback takes both away, and a crash after the commit leaves the event for
the dispatcher.  Nothing here waits for an endpoint; a slow or dead one costs
the sender an INSERT.

With no endpoint wanting the event, emitting costs one indexed query (and
``data`` given as a function is never built).  Facts that can only happen
once carry a ``key`` (``campaign.sent:42``): the unique index makes a second
emission of the same fact, by a racing worker, insert nothing.

The PostgreSQL send path finishes campaigns inside one statement
(``sending.pgsql.RECORD``); ``CAMPAIGN_SENT_CTES`` are the extra CTEs that emit
``campaign.sent`` there, in that same statement, for the campaigns it just
finished.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy import insert, literal, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from newsletter.automation.webhooks import events as ev
from newsletter.models.automation import (
    WebhookDelivery,
    WebhookEndpoint,
    WebhookEvent,
    WebhookState,
    WebhookSubscription,
)
from newsletter.models.base import UTCDateTime, utcnow


@dataclass(frozen=True, slots=True)
class Emission:
    """One event to emit; ``data`` may be a function, called only if an endpoint wants it."""

    event: str
    data: ev.LazyData
    key: str | None = None


def wanted(session: Session, events: Iterable[str]) -> set[str]:
    """Which of these event types some enabled endpoint asked for (one query)."""
    query = (
        select(WebhookSubscription.event)
        .join(WebhookEndpoint, WebhookEndpoint.id == WebhookSubscription.endpoint_id)
        .where(WebhookSubscription.event.in_(sorted(set(events))), WebhookEndpoint.enabled)
        .distinct()
    )
    return set(session.scalars(query))


def emit(
    session: Session,
    event: str,
    data: ev.LazyData,
    *,
    key: str | None = None,
    now: datetime | None = None,
) -> int:
    """Put one event in the outbox for every endpoint that wants it; how many deliveries."""
    return emit_many(session, [Emission(event, data, key)], now=now)


def emit_many(
    session: Session, emissions: Sequence[Emission], *, now: datetime | None = None
) -> int:
    """``emit`` for a batch (a webhook request's bounces, a drain's clicks): three statements."""
    if not emissions:
        return 0
    chosen = wanted(session, {e.event for e in emissions})
    return _insert(session, [e for e in emissions if e.event in chosen], now or utcnow())


def _insert(session: Session, todo: Sequence[Emission], now: datetime) -> int:
    """The events (unless their key is taken) and their deliveries: two statements."""
    if not todo:
        return 0
    rows = []
    for emission in todo:
        data = emission.data() if callable(emission.data) else emission.data
        public_id = ev.new_event_id()
        rows.append({
            "public_id": public_id, "type": emission.event, "dedupe_key": emission.key,
            "body": ev.envelope(public_id, emission.event, now, data), "created_at": now,
        })  # fmt: skip
    postgres = session.get_bind().dialect.name == "postgresql"
    statement = (
        (postgresql.insert if postgres else sqlite.insert)(WebhookEvent)
        .on_conflict_do_nothing(index_elements=["dedupe_key"])
        .returning(WebhookEvent.id)
    )
    ids = list(session.execute(statement, rows).scalars())
    return _fan_out(session, ids, now)


def _fan_out(session: Session, event_ids: list[int], now: datetime, only: int | None = None) -> int:
    """One pending delivery per (event, enabled endpoint subscribed to its type)."""
    if not event_ids:
        return 0
    source = (
        select(
            WebhookEvent.id,
            WebhookSubscription.endpoint_id,
            literal(WebhookState.PENDING.value),
            literal(0),
            literal(now, UTCDateTime),
            literal(now, UTCDateTime),
        )
        .join(WebhookSubscription, WebhookSubscription.event == WebhookEvent.type)
        .join(WebhookEndpoint, WebhookEndpoint.id == WebhookSubscription.endpoint_id)
        .where(WebhookEvent.id.in_(event_ids), WebhookEndpoint.enabled)
    )
    if only is not None:
        source = source.where(WebhookEndpoint.id == only)
    columns = ["event_id", "endpoint_id", "status", "attempts", "next_attempt_at", "created_at"]
    inserted = session.execute(insert(WebhookDelivery).from_select(columns, source))
    return int(getattr(inserted, "rowcount", 0) or 0)


def send_test(session: Session, endpoint: WebhookEndpoint, *, actor: str, now: datetime) -> int:
    """A ``webhook.test`` event for one endpoint only (its own button); the delivery's id."""
    public_id = ev.new_event_id()
    data = {"endpoint_id": endpoint.id, "url": endpoint.url, "requested_by": actor}
    row = WebhookEvent(
        public_id=public_id, type=ev.TEST, body=ev.envelope(public_id, ev.TEST, now, data),
        created_at=now,
    )  # fmt: skip
    session.add(row)
    session.flush()
    delivery = WebhookDelivery(
        event_id=row.id, endpoint_id=endpoint.id, status=WebhookState.PENDING, attempts=0,
        next_attempt_at=now, created_at=now,
    )  # fmt: skip
    session.add(delivery)
    session.flush()
    return int(delivery.id)


# --- the emission points' shapes ----------------------------------------------------------


def _key(event: str, source_id: str) -> str:
    """The dedupe key of an event about a stored provider or reader event (ids up to 200)."""
    return f"{event}:{hashlib.sha256(source_id.encode()).hexdigest()[:40]}"


def campaigns_sent(session: Session, campaign_ids: Sequence[int], *, now: datetime) -> int:
    """``campaign.sent`` for campaigns this transaction just finished (the portable store)."""
    if not campaign_ids or not wanted(session, {ev.CAMPAIGN_SENT}):
        return 0
    built = ev.campaign_sent(session, list(campaign_ids))
    return _insert(
        session,
        [Emission(ev.CAMPAIGN_SENT, built[cid], f"{ev.CAMPAIGN_SENT}:{cid}")
         for cid in campaign_ids if cid in built],
        now,
    )  # fmt: skip


class ProviderEvent(Protocol):
    """What ``tracking.events.Event`` looks like to us (tracking imports this module)."""

    @property
    def event_id(self) -> str: ...
    @property
    def event(self) -> str: ...
    @property
    def email(self) -> str | None: ...
    @property
    def ledger_id(self) -> int | None: ...
    @property
    def campaign_id(self) -> int | None: ...
    @property
    def occurred_at(self) -> datetime: ...
    @property
    def bounce_type(self) -> str | None: ...
    @property
    def reason(self) -> str | None: ...
    @property
    def provider(self) -> str: ...


SOFT_TYPES = frozenset({"blocked", "soft"})
MESSAGE_TYPES = {"bounce": ev.MESSAGE_BOUNCED, "spamreport": ev.MESSAGE_COMPLAINED}


def message_events(session: Session, events: Sequence[ProviderEvent], *, now: datetime) -> int:
    """``message.bounced`` and ``message.complained`` for newly stored provider events."""
    relevant = [e for e in events if e.event in MESSAGE_TYPES]
    if not relevant:
        return 0
    chosen = wanted(session, {MESSAGE_TYPES[e.event] for e in relevant})
    relevant = [e for e in relevant if MESSAGE_TYPES[e.event] in chosen]
    if not relevant:
        return 0
    context = ev.message_context(session, {e.ledger_id for e in relevant if e.ledger_id})

    def data(e: ProviderEvent) -> ev.Data:
        base = context.get(e.ledger_id or -1) or ev.unknown_message(
            e.ledger_id, e.campaign_id, e.email
        )
        extra: dict[str, Any] = {"reason": e.reason, "occurred_at": ev.iso(e.occurred_at),
                                 "provider": e.provider}  # fmt: skip
        if e.event == "bounce":
            extra = {"bounce_type": "soft" if e.bounce_type in SOFT_TYPES else "hard", **extra}
        return {**base, "email": base["email"] or e.email, **extra}

    return _insert(
        session,
        [Emission(MESSAGE_TYPES[e.event], data(e), _key(MESSAGE_TYPES[e.event], e.event_id))
         for e in relevant],
        now,
    )  # fmt: skip


def human_clicks(session: Session, hits: Sequence[dict[str, Any]], *, now: datetime) -> int:
    """``message.clicked`` for newly stored clicks by people (``engagement.store_hits`` rows)."""
    clicks = [h for h in hits if h["kind"] == "click" and not h["machine"]]
    if not clicks or not wanted(session, {ev.MESSAGE_CLICKED}):
        return 0
    from newsletter.models.tracking import IssueLink

    context = ev.message_context(session, {int(h["delivery_id"]) for h in clicks})
    link_ids = sorted({h["link_id"] for h in clicks if h["link_id"] is not None})
    urls: dict[int, str] = {}
    if link_ids:
        query = select(IssueLink.id, IssueLink.url).where(IssueLink.id.in_(link_ids))
        found = session.execute(query)
        urls = dict(found.tuples().all())

    def data(hit: dict[str, Any]) -> ev.Data:
        base = context.get(int(hit["delivery_id"])) or ev.unknown_message(
            hit["delivery_id"], hit["campaign_id"], None
        )
        return {**base, "url": urls.get(hit["link_id"]), "clicked_at": ev.iso(hit["occurred_at"])}

    return _insert(
        session,
        [Emission(ev.MESSAGE_CLICKED, data(h), _key(ev.MESSAGE_CLICKED, h["event_id"]))
         for h in clicks],
        now,
    )  # fmt: skip


# --- PostgreSQL: campaign.sent inside the send path's RECORD statement -----------------------

# ``camp`` (sending.pgsql) returns every campaign row it updated with its new status;
# the ones in ``fin`` whose status is now 'sent' are the ones this statement finished.
# Their event is built here with the fields of ``events.campaign_sent``, only if an
# enabled endpoint wants it, and fanned out to those endpoints, all in the statement.


def _iso_sql(expression: str) -> str:
    """``events.iso`` in SQL."""
    return f"""to_char(({expression}) AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"')"""


_SENT = ev.CAMPAIGN_SENT
CAMPAIGN_SENT_CTES = f"""
    hook_wanted AS MATERIALIZED (
        SELECT s.endpoint_id FROM webhook_subscriptions s
        JOIN webhook_endpoints e ON e.id = s.endpoint_id
        WHERE s.event = '{_SENT}' AND e.enabled
    ),
    hook_done AS MATERIALIZED (
        SELECT camp.id, camp.name, camp.issue_id, camp.total_recipients, camp.started_at,
               camp.finished_at, 'evt_' || replace(CAST(gen_random_uuid() AS TEXT), '-', '') AS eid
        FROM camp
        WHERE camp.status = 'sent' AND camp.id IN (SELECT id FROM fin)
          AND EXISTS (SELECT 1 FROM hook_wanted)
    ),
    hook_events AS (
        INSERT INTO webhook_events (public_id, type, body, dedupe_key, created_at)
        SELECT d.eid, '{_SENT}',
               CAST(json_build_object(
                   'id', d.eid, 'type', '{_SENT}',
                   'created_at', {_iso_sql("CAST(:now AS timestamptz)")},
                   'data', json_build_object(
                       'campaign_id', d.id, 'name', d.name, 'issue_id', d.issue_id,
                       'issue_number', i.number, 'issue_title', i.title,
                       'recipients', d.total_recipients, 'started_at', {_iso_sql("d.started_at")},
                       'finished_at', {_iso_sql("d.finished_at")})) AS TEXT),
               '{_SENT}:' || d.id, :now
        FROM hook_done d JOIN issues i ON i.id = d.issue_id
        ON CONFLICT (dedupe_key) DO NOTHING
        RETURNING id
    ),
    hook_deliveries AS (
        INSERT INTO webhook_deliveries (event_id, endpoint_id, status, attempts,
                                        next_attempt_at, created_at)
        SELECT he.id, w.endpoint_id, 'pending', 0, :now, :now
        FROM hook_events he CROSS JOIN hook_wanted w
        RETURNING id
    )
"""
