"""The inbox: what sources found, waiting for an editor to accept or reject it.

Accepting goes through the library's importer (``library.import_records``),
so an accepted item is classified and merged exactly like an imported file's
record (a resource added by hand meanwhile gets merged, not duplicated).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from newsletter.errors import NotFoundError, ValidationError
from newsletter.models.sources import ItemState, SourceItem
from newsletter.resources import library
from newsletter.resources.classify import Topic
from newsletter.sources.poll import record_from_json


def list_items(
    *, session: Session, state: str = ItemState.NEW, limit: int = 500
) -> list[SourceItem]:
    return list(session.scalars(
        select(SourceItem).where(SourceItem.state == state)
        .order_by(SourceItem.found_at.desc(), SourceItem.id.desc()).limit(limit)
    ))  # fmt: skip


def count_new(*, session: Session) -> int:
    query = select(func.count()).select_from(SourceItem).where(SourceItem.state == ItemState.NEW)
    return int(session.scalar(query) or 0)


def _undecided(ids: Sequence[int], *, session: Session) -> list[SourceItem]:
    if not ids:
        raise ValidationError("choose at least one item")
    items = list(session.scalars(select(SourceItem).where(SourceItem.id.in_(ids))))
    missing = sorted(set(ids) - {i.id for i in items})
    if missing:
        raise NotFoundError(f"no inbox item #{missing[0]}")
    decided = [i for i in items if i.state != ItemState.NEW]
    if decided:
        raise ValidationError(f"inbox item #{decided[0].id} was already {decided[0].state}")
    return items


def accept(
    ids: Sequence[int], *, session: Session, topics: Sequence[Topic], actor: str, now: datetime
) -> library.ImportReport:
    """Add the items to the library (merging with what is there); they leave the inbox."""
    items = _undecided(ids, session=session)
    records = [record_from_json(item.record) for item in items]
    report = library.import_records(records, session=session, topics=topics)
    for item, record in zip(items, records, strict=True):
        found = library.find_match(record, session=session)
        item.resource_id = found.id if found is not None else None
        item.state, item.decided_at, item.decided_by = ItemState.ACCEPTED, now, actor
    session.flush()
    return report


def reject(ids: Sequence[int], *, session: Session, actor: str, now: datetime) -> int:
    """Keep the items out of the library; kept as rejected so no poll offers them again."""
    items = _undecided(ids, session=session)
    for item in items:
        item.state, item.decided_at, item.decided_by = ItemState.REJECTED, now, actor
    session.flush()
    return len(items)
