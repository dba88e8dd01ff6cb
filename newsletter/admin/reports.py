"""Campaign numbers for the admin: progress, activity over time, and the recipient table.

Counts by state and rates come from ``campaigns.campaign_report``; this module
adds what only a web page needs, all as set-based SQL so a 100,000-recipient
campaign costs a handful of grouped queries, never a row per recipient.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import BigInteger, ColumnElement, Integer, Select, cast, func, or_, select
from sqlalchemy.orm import InstrumentedAttribute, Session

from newsletter.admin.charts import Timeline
from newsletter.admin.paging import Paging, paging
from newsletter.models import Campaign, CampaignStatus, Delivery, DeliveryStatus, Subscriber
from newsletter.sending.sqlstore import count_by_status

ACTIVE = (CampaignStatus.SENDING, CampaignStatus.PAUSED, CampaignStatus.SCHEDULED)
SENT_STATES = (DeliveryStatus.ACCEPTED, DeliveryStatus.DELIVERED, DeliveryStatus.BOUNCED,
               DeliveryStatus.DROPPED)  # fmt: skip
STEPS = (60, 300, 900, 3600, 3 * 3600, 6 * 3600, 86400, 7 * 86400)
MAX_BUCKETS = 60


@dataclass(frozen=True)
class Progress:
    status: str
    total: int
    done: int
    counts: dict[str, int]
    reason: str | None
    complained: int = 0

    @property
    def percent(self) -> float:
        return round(100 * self.done / self.total, 1) if self.total else 0.0

    @property
    def finished(self) -> bool:
        return self.status not in (*ACTIVE, CampaignStatus.DRAFT)

    def as_dict(self) -> dict[str, Any]:
        return {
            "status": self.status, "total": self.total, "done": self.done,
            "queued": self.total - self.done, "percent": self.percent, "counts": self.counts,
            "finished": self.finished, "reason": self.reason, "complained": self.complained,
        }  # fmt: skip


def progress(session: Session, campaign: Campaign) -> Progress:
    """How far a send has got: recipients no longer queued, out of those frozen."""
    counts = count_by_status(session, campaign.id)
    queued = counts.get(DeliveryStatus.QUEUED, 0)
    total = campaign.total_recipients
    from newsletter.bounces.guard import complaint_count

    done = max(0, total - queued)
    complained = complaint_count(session, campaign.id)
    return Progress(campaign.status, total, done, counts, campaign.status_reason, complained)


# --- activity over time --------------------------------------------------------------------


def _series_columns() -> dict[str, tuple[InstrumentedAttribute[Any], ColumnElement[bool] | None]]:
    sent = Delivery.status.in_([s.value for s in SENT_STATES])
    return {
        "sent": (Delivery.updated_at, sent),
        "delivered": (Delivery.delivered_at, None),
        "opened": (Delivery.opened_at, None),
        "clicked": (Delivery.clicked_at, None),
    }


def _epoch(column: Any, dialect: str) -> ColumnElement[int]:
    """Seconds since 1970 (UTC) in SQL; SQLite stores naive UTC text, PostgreSQL timestamptz."""
    if dialect == "sqlite":
        return cast(func.strftime("%s", column), Integer)
    return cast(func.extract("epoch", column), BigInteger)


def _filtered(query: Select[Any], campaign_id: int, column: Any, extra: Any) -> Select[Any]:
    query = query.where(Delivery.campaign_id == campaign_id, column.is_not(None))
    return query if extra is None else query.where(extra)


def _span(session: Session, campaign_id: int) -> tuple[datetime, datetime] | None:
    found: list[datetime] = []
    for column, extra in _series_columns().values():
        query = _filtered(select(func.min(column), func.max(column)), campaign_id, column, extra)
        low, high = session.execute(query).one()
        found += [v for v in (low, high) if v is not None]
    return (min(found), max(found)) if found else None


def _as_utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def choose_step(span: timedelta) -> int:
    """The smallest bucket giving at most ``MAX_BUCKETS`` buckets."""
    seconds = span.total_seconds()
    for step in STEPS:
        if seconds / step < MAX_BUCKETS:
            return step
    return int(seconds // MAX_BUCKETS) + 1


def timeline(session: Session, campaign_id: int) -> Timeline | None:
    """Sent, delivered, opened and clicked per time bucket; ``None`` before anything happened."""
    span = _span(session, campaign_id)
    if span is None:
        return None
    low, high = _as_utc(span[0]), _as_utc(span[1])
    step = choose_step(high - low)
    start = int(low.timestamp()) // step * step
    buckets = int(high.timestamp()) // step * step
    size = (buckets - start) // step + 1
    dialect = session.get_bind().dialect.name
    series: dict[str, list[int]] = {}
    for name, (column, extra) in _series_columns().items():
        bucket = ((_epoch(column, dialect) - start) // step).label("bucket")
        query = _filtered(select(bucket, func.count()), campaign_id, column, extra)
        counts = [0] * size
        for index, count in session.execute(query.group_by(bucket)).tuples():
            counts[min(max(int(index), 0), size - 1)] += int(count)
        series[name] = counts
    return Timeline(datetime.fromtimestamp(start, UTC), timedelta(seconds=step), series)


# --- recipients ----------------------------------------------------------------------------


def _like(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def recipients(
    session: Session, campaign_id: int, *, q: str = "", status: str = "", page: int = 1
) -> tuple[list[dict[str, Any]], Paging]:
    """One page of the ledger, searchable by address and filterable by state."""
    query = (
        select(Delivery, Subscriber.email)
        .outerjoin(Subscriber, Subscriber.id == Delivery.subscriber_id)
        .where(Delivery.campaign_id == campaign_id)
    )
    if q.strip():
        query = query.where(Subscriber.email.ilike(_like(q.strip().lower()), escape="\\"))
    if status:
        query = query.where(Delivery.status == status)
    total = int(session.scalar(select(func.count()).select_from(query.subquery())) or 0)
    pages = paging(page, total)
    rows = session.execute(
        query.order_by(Delivery.id).offset(pages.offset).limit(pages.per_page)
    ).tuples()
    return [{"delivery": d, "email": email or "(erased)"} for d, email in rows], pages


def campaigns_with_issue(session: Session, *, limit: int = 100) -> list[tuple[Campaign, int]]:
    from newsletter.models import Issue

    query = (
        select(Campaign, Issue.number)
        .join(Issue, Issue.id == Campaign.issue_id)
        .where(Campaign.sequence_id.is_(None))  # sequence steps: on the sequences page
        .order_by(Campaign.id.desc())
        .limit(limit)
    )
    return [(c, n) for c, n in session.execute(query).tuples()]


def search_filter(q: str) -> ColumnElement[bool]:
    """Subscribers whose address or name contains ``q`` (case-insensitive, wildcards literal)."""
    pattern = _like(q.strip().lower())
    return or_(
        Subscriber.email.ilike(pattern, escape="\\"), Subscriber.name.ilike(pattern, escape="\\")
    )
