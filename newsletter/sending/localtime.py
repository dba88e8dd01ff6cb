"""Local-time sending: each subscriber's share of a campaign released at a local hour.

A campaign with ``local_date`` and ``local_time`` ("2027-03-28", "09:00") is
frozen once, like any other, when its first zone's hour comes; its ledger rows
are then grouped into batches per time zone, and each zone's batches get
``not_before`` = that wall time in that zone, converted to UTC with the
scheduler's one DST rule (``scheduling.times.local_to_utc``: a time skipped by
spring-forward fires after the gap, a repeated one at its first occurrence).
The worker claims nothing before its ``not_before``, so each share goes at its
hour, through the same ledger: one row per subscriber, sent once.

A subscriber without a zone, or with a name this machine's zone database does
not know, gets the ``timezone`` setting.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime, time
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import select, text, update
from sqlalchemy.orm import Session

from newsletter.errors import ValidationError
from newsletter.models.sending import SendBatch
from newsletter.models.subscribers import Subscriber
from newsletter.scheduling.times import local_to_utc, parse_clock, zone
from newsletter.sending.freeze import _last_seq, assign_batches


def check_zone(name: str, *, where: str = "time zone") -> str:
    """A valid IANA name, normalised; one clear error otherwise (CLI, imports, admin)."""
    try:
        return zone(name).key
    except ValidationError as exc:
        raise ValidationError(f"{where}: {exc}") from None


def browser_zone(name: str | None) -> str | None:
    """What a sign-up page's script sent: kept if valid, dropped (default applies) if not."""
    if not name or len(name) > 64:
        return None
    try:
        return ZoneInfo(name.strip()).key
    except (ZoneInfoNotFoundError, ValueError):
        return None


def effective_zone(name: str | None, default: ZoneInfo) -> ZoneInfo:
    if not name:
        return default
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return default


def release_at(local_date: date, clock: time, tz: ZoneInfo) -> datetime:
    """``clock`` on ``local_date`` in ``tz`` as a UTC instant (DST-safe)."""
    return local_to_utc(datetime.combine(local_date, clock), tz)


def parse_local(local_time: str) -> str:
    """``9:00`` -> ``09:00`` (one clear error for anything else)."""
    return parse_clock(local_time).strftime("%H:%M")


def first_release(session: Session, local_date: date, local_time: str, default_tz: str) -> datetime:
    """When the first zone among today's subscribers reaches the hour: the freeze time."""
    default = zone(default_tz)
    clock = parse_clock(local_time)
    names = session.scalars(select(Subscriber.time_zone).distinct()).all()
    zones = {effective_zone(n, default).key: effective_zone(n, default) for n in names}
    zones.setdefault(default.key, default)
    return min(release_at(local_date, clock, tz) for tz in zones.values())


@dataclass(frozen=True)
class ZoneShare:
    zone: str
    release_at: datetime
    batches: int


def assign_by_zone(
    campaign_id: int,
    *,
    session: Session,
    size: int,
    local_date: date,
    local_time: str,
    default_tz: str,
) -> list[ZoneShare]:
    """Batch a frozen campaign's unbatched rows per subscriber zone, each held to its hour."""
    default = zone(default_tz)
    clock = parse_clock(local_time)
    names = session.execute(
        text(
            "SELECT DISTINCT s.time_zone FROM deliveries d JOIN subscribers s"
            " ON s.id = d.subscriber_id WHERE d.campaign_id = :cid AND d.batch_id IS NULL"
        ),
        {"cid": campaign_id},
    ).scalars()
    groups: dict[str, list[str | None]] = defaultdict(list)
    for name in names:
        groups[effective_zone(name, default).key].append(name)
    shares = []
    for key, raw in sorted(groups.items()):
        when = release_at(local_date, clock, ZoneInfo(key))
        condition, params = _zone_condition(raw)
        offset = _last_seq(session, campaign_id)
        created = assign_batches(
            campaign_id, session=session, size=size, subscribers=condition, params=params
        )
        session.execute(
            update(SendBatch)
            .where(SendBatch.campaign_id == campaign_id, SendBatch.seq > offset)
            .values(not_before=when)
        )
        shares.append(ZoneShare(key, when, created))
    return shares


def _zone_condition(raw: list[str | None]) -> tuple[str, dict[str, Any]]:
    """``s.time_zone IN (...)`` (or NULL) for the stored names that mean one zone."""
    named = [n for n in raw if n is not None]
    params = {f"z{i}": n for i, n in enumerate(named)}
    parts = []
    if named:
        parts.append(f"s.time_zone IN ({', '.join(':' + k for k in params)})")
    if len(named) < len(raw):
        parts.append("s.time_zone IS NULL")
    return "(" + " OR ".join(parts) + ")", params
