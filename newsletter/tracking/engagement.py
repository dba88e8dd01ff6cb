"""Spooled clicks and opens into the database: events once, then the ledger and per-link sums.

``store_hits`` is what the spool drainer calls with a batch of records.  In
one transaction it classifies each hit (``machine``), inserts the new ones
into ``engagement_events`` (unique on the record id, so a batch stored twice
changes nothing), and adds them up on the ledger rows (human opens and
clicks, machine ones apart; a reader's click also marks the message opened)
per link and recipient (``link_clicks``) and per library resource and
recipient (``resource_clicks``), both with the recipient's segment.  Hits for a
reader who turned tracking off since, or for a ledger row that does not exist, are dropped.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, cast

from sqlalchemy import Table, bindparam, delete, func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from newsletter.automation.webhooks import outbox as webhook_outbox
from newsletter.models.sending import Campaign, Delivery, SendBatch
from newsletter.models.subscribers import Subscriber
from newsletter.models.tracking import EngagementEvent, IssueLink, LinkClick, ResourceClick
from newsletter.tracking import machine, pgsql
from newsletter.tracking.machine import Hit

DELIVERIES = cast(Table, Delivery.__table__)
EVENTS = cast(Table, EngagementEvent.__table__)  # Core tables: the ORM's bulk path costs
LINK_CLICKS = cast(Table, LinkClick.__table__)  # ~100 us a row, Core's a few
RESOURCE_CLICKS = cast(Table, ResourceClick.__table__)
CHUNK = 900  # bound parameters per IN list, under every backend's limit


@dataclass
class StoreReport:
    received: int = 0
    stored: int = 0
    duplicates: int = 0
    dropped: int = 0  # malformed, unknown ledger row, or a reader who opted out
    machine: int = 0
    campaigns: set[int] = field(default_factory=set)


@dataclass(frozen=True, slots=True)
class _Row:
    """A validated record and what the database says about its ledger row."""

    event_id: str
    hit: Hit
    issue_id: int
    network: str | None


def _record(raw: dict[str, Any]) -> _Row | None:
    try:
        kind = {"c": "click", "o": "open"}[raw["k"]]
        delivery, issue, position = int(raw["d"]), int(raw["i"]), int(raw["p"])
        at = datetime.fromtimestamp(float(raw["t"]), UTC)
        event_id = str(raw["id"])[:40]
    except (KeyError, TypeError, ValueError, OverflowError, OSError):
        return None
    ua = str(raw.get("ua") or "")[:300]
    hit = Hit(kind, delivery, position, at, ua, head=bool(raw.get("h")), apple=bool(raw.get("a")))
    network = str(raw["n"])[:32] if raw.get("n") else None
    return _Row(event_id, hit, issue, network)


def _chunks(values: Sequence[int]) -> Iterable[Sequence[int]]:
    for start in range(0, len(values), CHUNK):
        yield values[start : start + CHUNK]


def _deliveries(
    session: Session, ids: Sequence[int]
) -> dict[int, tuple[int, int, datetime | None, str]]:
    """Ledger id -> (campaign, issue, when its batch was sent, segment), for readers still
    tracked."""
    found: dict[int, tuple[int, int, datetime | None, str]] = {}
    for chunk in _chunks(ids):
        rows = session.execute(
            select(
                Delivery.id,
                Delivery.campaign_id,
                Campaign.issue_id,
                func.coalesce(SendBatch.submitted_at, Delivery.updated_at),
                Delivery.segment,
            )
            .join(Campaign, Campaign.id == Delivery.campaign_id)
            .outerjoin(SendBatch, SendBatch.id == Delivery.batch_id)
            .outerjoin(Subscriber, Subscriber.id == Delivery.subscriber_id)
            .where(Delivery.id.in_(chunk), func.coalesce(Subscriber.tracking, True).is_(True))
        )
        for did, cid, issue_id, sent_at, segment in rows:
            found[did] = (cid, issue_id, sent_at, segment or "")
    return found


def _links(session: Session, issues: set[int]) -> dict[tuple[int, int], tuple[int, int | None]]:
    """(issue, position) -> (link id, its library resource)."""
    rows = session.execute(
        select(IssueLink.issue_id, IssueLink.position, IssueLink.id, IssueLink.resource_id).where(
            IssueLink.issue_id.in_(issues)
        )
    )
    return {(issue, position): (link_id, rid) for issue, position, link_id, rid in rows}


def _postgres(session: Session) -> bool:
    return session.get_bind().dialect.name == "postgresql"


def _insert(session: Session, table: Any) -> Any:
    dialect = session.get_bind().dialect.name
    return (postgresql.insert if dialect == "postgresql" else sqlite.insert)(table)


def store_hits(
    records: Sequence[dict[str, Any]], *, session: Session, now: datetime, window: timedelta
) -> StoreReport:
    """Classify, store and count a batch of spooled hits (idempotent: see the module)."""
    report = StoreReport(received=len(records))
    rows = [row for row in (_record(r) for r in records) if row is not None]
    ledger = _deliveries(session, sorted({r.hit.delivery_id for r in rows}))
    rows = [r for r in rows if ledger.get(r.hit.delivery_id, (0, -1, None, ""))[1] == r.issue_id]
    report.dropped = len(records) - len(rows)
    if not rows:
        return report
    links = _links(session, {r.issue_id for r in rows})
    burst = machine.bursts([r.hit for r in rows])
    events: list[dict[str, Any]] = []
    resource_of: dict[int, int | None] = {}
    for index, row in enumerate(rows):
        campaign_id, _issue, sent_at, _segment = ledger[row.hit.delivery_id]
        reason = machine.classify(row.hit, sent_at=sent_at, window=window)
        if reason is None and index in burst:
            reason = "scanner: many links at once"
        found = links.get((row.issue_id, row.hit.position)) if row.hit.kind == "click" else None
        link_id = found[0] if found else None
        if found:
            resource_of[found[0]] = found[1]
        events.append({
            "event_id": row.event_id, "kind": row.hit.kind, "delivery_id": row.hit.delivery_id,
            "campaign_id": campaign_id, "link_id": link_id, "occurred_at": row.hit.at,
            "machine": reason is not None, "reason": reason,
            "user_agent": row.hit.user_agent or None, "network": row.network, "received_at": now,
        })  # fmt: skip
    if _postgres(session):
        fresh_ids = pgsql.insert_events(session, events, now)
    else:
        statement = (
            _insert(session, EVENTS)
            .on_conflict_do_nothing(index_elements=["event_id"])
            .returning(EVENTS.c.event_id)
        )
        fresh_ids = set(session.execute(statement, events).scalars())
    fresh = [e for e in events if e["event_id"] in fresh_ids]
    report.stored, report.duplicates = len(fresh), len(events) - len(fresh)
    report.machine = sum(1 for e in fresh if e["machine"])
    report.campaigns = {int(e["campaign_id"]) for e in fresh}
    _count_on_ledger(session, fresh)
    segments = {did: entry[3] for did, entry in ledger.items()}
    _count_per_link(session, fresh, segments)
    _count_per_resource(session, fresh, segments, resource_of)
    webhook_outbox.human_clicks(session, fresh, now=now)  # message.clicked (people only)
    return report


def _count_on_ledger(session: Session, events: Sequence[dict[str, Any]]) -> None:
    sums: dict[int, dict[str, Any]] = {}
    for e in events:
        did, at = e["delivery_id"], e["occurred_at"]
        row = sums.get(did)
        if row is None:
            row = sums[did] = {"b_id": did, "b_opens": 0, "b_clicks": 0, "b_mopens": 0,
                               "b_mclicks": 0, "b_opened": None, "b_clicked": None}  # fmt: skip
        key = ("b_m" if e["machine"] else "b_") + ("opens" if e["kind"] == "open" else "clicks")
        row[key] += 1
        if not e["machine"]:  # a reader's click also means they opened it
            if row["b_opened"] is None or at < row["b_opened"]:
                row["b_opened"] = at
            if e["kind"] == "click" and (row["b_clicked"] is None or at < row["b_clicked"]):
                row["b_clicked"] = at
    if not sums:
        return
    if _postgres(session):
        pgsql.add_to_ledger(session, list(sums.values()))
        return
    c = DELIVERIES.c
    session.execute(
        update(DELIVERIES)
        .where(c.id == bindparam("b_id"))
        .values(
            opens=c.opens + bindparam("b_opens"),
            clicks=c.clicks + bindparam("b_clicks"),
            machine_opens=c.machine_opens + bindparam("b_mopens"),
            machine_clicks=c.machine_clicks + bindparam("b_mclicks"),
            opened_at=func.coalesce(c.opened_at, bindparam("b_opened", type_=c.opened_at.type)),
            clicked_at=func.coalesce(c.clicked_at, bindparam("b_clicked", type_=c.clicked_at.type)),
        ),
        list(sums.values()),
    )


def _sum_clicks(
    events: Sequence[dict[str, Any]], segments: dict[int, str], key_of: Any, name: str
) -> list[dict[str, Any]]:
    """Clicks added up per (``name`` = ``key_of(event)``, recipient); ``None`` keys skipped."""
    sums: dict[tuple[int, int], dict[str, Any]] = {}
    for e in events:
        key_id = key_of(e)
        if key_id is None:
            continue
        key = (key_id, e["delivery_id"])
        row = sums.get(key)
        if row is None:
            row = sums[key] = {
                name: key_id, "delivery_id": e["delivery_id"],
                "campaign_id": e["campaign_id"], "human": 0, "machine": 0,
                "first_at": e["occurred_at"], "segment": segments.get(e["delivery_id"], ""),
            }  # fmt: skip
        row["machine" if e["machine"] else "human"] += 1
        if e["occurred_at"] < row["first_at"]:
            row["first_at"] = e["occurred_at"]
    return list(sums.values())


def _count_per_link(
    session: Session, events: Sequence[dict[str, Any]], segments: dict[int, str]
) -> None:
    rows = _sum_clicks(events, segments, lambda e: e["link_id"], "link_id")
    if rows:
        _upsert(session, LINK_CLICKS, rows, "link_id")


def _count_per_resource(
    session: Session, events: Sequence[dict[str, Any]], segments: dict[int, str],
    resource_of: dict[int, int | None],
) -> None:  # fmt: skip
    def resource(e: dict[str, Any]) -> int | None:
        return resource_of.get(e["link_id"]) if e["link_id"] is not None else None

    rows = _sum_clicks(events, segments, resource, "resource_id")
    if rows:
        _upsert(session, RESOURCE_CLICKS, rows, "resource_id")


def _upsert(session: Session, table: Table, rows: list[dict[str, Any]], key: str) -> None:
    if _postgres(session):
        pgsql.add_per_key(session, table.name, key, rows)
        return
    insert = _insert(session, table)
    c = table.c
    session.execute(
        insert.on_conflict_do_update(
            index_elements=[key, "delivery_id"],
            set_={
                "human": c.human + insert.excluded.human,
                "machine": c.machine + insert.excluded.machine,
                "first_at": func.min(c.first_at, insert.excluded.first_at),  # SQLite's scalar min
            },
        ),
        rows,
    )


def purge(*, session: Session, before: datetime) -> int:
    """Delete raw events older than the retention limit; the sums on the ledger stay."""
    result: Any = session.execute(
        delete(EngagementEvent).where(EngagementEvent.occurred_at < before)
    )
    return int(result.rowcount or 0)
