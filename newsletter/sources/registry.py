"""The sources editors register: add, list, remove, and how often each is polled."""

from __future__ import annotations

import re
from datetime import datetime

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from newsletter.errors import FetchError, NotFoundError, ValidationError
from newsletter.fetching import check_url
from newsletter.models.sources import ItemState, Source, SourceItem, SourceKind

MIN_MINUTES = 5
MAX_MINUTES = 60 * 24 * 30
_EVERY = re.compile(r"^\s*(\d+)\s*([mhd])\s*$", re.IGNORECASE)
_UNIT_MINUTES = {"m": 1, "h": 60, "d": 60 * 24}


def parse_every(text: str) -> int:
    """ "30m", "6h", "1d" as minutes (5 minutes to 30 days)."""
    found = _EVERY.match(text)
    if not found:
        raise ValidationError(f"--every {text!r}: give a number and m, h or d (e.g. 6h)")
    minutes = int(found.group(1)) * _UNIT_MINUTES[found.group(2).lower()]
    if not MIN_MINUTES <= minutes <= MAX_MINUTES:
        raise ValidationError(f"--every {text!r}: between {MIN_MINUTES}m and 30d")
    return minutes


def describe_every(minutes: int) -> str:
    for unit, size in (("d", 60 * 24), ("h", 60)):
        if minutes % size == 0:
            return f"{minutes // size}{unit}"
    return f"{minutes}m"


def add_source(
    url: str, *, session: Session, every_minutes: int, now: datetime,
    kind: str = SourceKind.AUTO, actor: str = "",
) -> Source:  # fmt: skip
    """Register a source, due at once; the URL must be http(s) and not already registered."""
    url = url.strip()
    try:
        check_url(url)
    except FetchError as exc:
        raise ValidationError(exc.message) from None
    if kind not in set(SourceKind):
        raise ValidationError(f"unknown source kind {kind!r} (auto, feed, listing or sitemap)")
    existing = session.scalar(select(Source).where(Source.url == url))
    if existing is not None:
        raise ValidationError(f"{url} is already source #{existing.id}")
    source = Source(
        url=url, kind=kind, every_minutes=every_minutes, enabled=True, next_poll_at=now,
        last_added=0, created_by=actor, created_at=now,
    )  # fmt: skip
    session.add(source)
    session.flush()
    return source


def get_source(source_id: int, *, session: Session) -> Source:
    source = session.get(Source, source_id)
    if source is None:
        raise NotFoundError(f"no source #{source_id} (see: newsletter sources list)")
    return source


def list_sources(*, session: Session) -> list[Source]:
    return list(session.scalars(select(Source).order_by(Source.id)))


def pending_counts(*, session: Session) -> dict[int, int]:
    """New (undecided) inbox items per source id."""
    rows = session.execute(
        select(SourceItem.source_id, func.count())
        .where(SourceItem.state == ItemState.NEW, SourceItem.source_id.is_not(None))
        .group_by(SourceItem.source_id)
    ).all()
    return {int(sid): int(n) for sid, n in rows}


def remove_source(source_id: int, *, session: Session) -> Source:
    """Forget a source; what it already brought stays in the inbox and the library."""
    source = get_source(source_id, session=session)
    session.execute(
        update(SourceItem).where(SourceItem.source_id == source_id).values(source_id=None)
    )
    session.delete(source)
    session.flush()
    return source
