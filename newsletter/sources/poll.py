"""Polling a source: conditional GET, parse, drop what the library or inbox already has.

The request is made outside any transaction; what it found is written in one
short transaction afterwards, so a slow source never holds the database.  A
failure (no answer, a refused address, garbage) is recorded on the source as
its last result and changes nothing else: the validators (ETag,
Last-Modified) are kept, so the next poll asks again.

Duplicates follow the importer's rule (``library.find_match``): the same
normalised URL, or the same normalised title where one side has no URL; the
inbox is checked the same way, so a rejected item is never offered again.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from newsletter.config import Settings
from newsletter.db import Database
from newsletter.errors import NewsletterError
from newsletter.fetching import Answer, Fetcher
from newsletter.models import Resource
from newsletter.models.sources import ItemState, Source, SourceItem, SourceKind
from newsletter.resources.classify import normalise_title, normalise_url
from newsletter.resources.records import ParseResult, ResourceRecord
from newsletter.sources import content

CHUNK = 500


@dataclass(frozen=True, slots=True)
class PollResult:
    """One poll's outcome, as ``sources poll`` prints it and the source row keeps it."""

    source_id: int
    url: str
    result: str  # "ok", "unchanged", "error"
    added: int = 0
    known: int = 0
    message: str = ""

    @property
    def ok(self) -> bool:
        return self.result != "error"

    @property
    def empty(self) -> bool:
        """Fetched and parsed, and nothing at all in it (not even known items)."""
        return self.result == "ok" and self.added + self.known == 0


def record_json(record: ResourceRecord) -> dict[str, Any]:
    data = asdict(record)
    data["topics"] = list(record.topics)
    data["published"] = record.published.isoformat() if record.published else None
    return data


def record_from_json(data: dict[str, Any]) -> ResourceRecord:
    values = dict(data)
    values["topics"] = tuple(values.get("topics") or ())
    published = values.get("published")
    values["published"] = datetime.fromisoformat(published) if published else None
    return ResourceRecord(**values)


@dataclass(slots=True)
class _Known:
    urls: set[str]
    titles: set[str]  # every known title key
    bare_titles: set[str]  # title keys of rows without a URL

    def has(self, url_key: str | None, title_key: str) -> bool:
        if url_key and url_key in self.urls:
            return True
        return title_key in self.titles and (url_key is None or title_key in self.bare_titles)

    def add(self, url_key: str | None, title_key: str) -> None:
        if url_key:
            self.urls.add(url_key)
        else:
            self.bare_titles.add(title_key)
        self.titles.add(title_key)


def _known(keys: Sequence[tuple[str | None, str]], *, session: Session) -> _Known:
    """What the library and the inbox already hold among these (url key, title key) pairs."""
    known = _Known(set(), set(), set())
    for start in range(0, len(keys), CHUNK):
        part = keys[start : start + CHUNK]
        urls = {u for u, _ in part if u}
        titles = {t for _, t in part}
        for model in (Resource, SourceItem):
            rows = session.execute(
                select(model.url_key, model.title_key).where(
                    or_(model.url_key.in_(urls), model.title_key.in_(titles))
                )
            ).all()
            for url_key, title_key in rows:
                known.add(url_key, title_key)
    return known


def store_new(
    source_id: int, records: Iterable[ResourceRecord], *, session: Session, now: datetime
) -> tuple[int, int]:
    """Put the records nobody has yet into the inbox; (added, already known)."""
    pending = [(r, normalise_url(r.url) if r.url else None, normalise_title(r.title))
               for r in records]  # fmt: skip
    known = _known([(u, t) for _, u, t in pending], session=session)
    added = 0
    for record, url_key, title_key in pending:
        if known.has(url_key, title_key):
            continue
        known.add(url_key, title_key)  # the same item twice on one page counts once
        session.add(SourceItem(
            source_id=source_id, state=ItemState.NEW, title=record.title, title_key=title_key,
            url=record.url, url_key=url_key, summary=record.summary, record=record_json(record),
            found_at=now,
        ))  # fmt: skip
        added += 1
    return added, len(pending) - added


def _fetch_and_parse(source: Source, fetcher: Fetcher) -> tuple[Answer, ParseResult]:
    answer = fetcher.get(source.url, etag=source.etag, modified=source.last_modified)
    if answer.status == 304:
        return answer, ParseResult([], [])
    if answer.status >= 400 or answer.status < 200:
        raise NewsletterError(f"the server answered HTTP {answer.status}", where=source.url)
    kind = source.kind
    if kind == SourceKind.AUTO:
        kind = content.detect_kind(answer.body, answer.content_type)
    result = content.parse(kind, answer.body, name=source.url, content_type=answer.content_type)
    source.kind = kind
    return answer, result


def poll_source(source_id: int, *, db: Database, fetcher: Fetcher, now: datetime) -> PollResult:
    """Poll one source now and record the result on it; never raises for the source's faults."""
    with db.session() as session:
        source = session.get(Source, source_id)
        if source is None:
            return PollResult(source_id, "", "error", message=f"no source #{source_id}")
        session.expunge(source)
    try:
        answer, parsed = _fetch_and_parse(source, fetcher)
    except NewsletterError as exc:
        return _record(source_id, PollResult(source_id, source.url, "error", message=str(exc)),
                       db=db, now=now)  # fmt: skip
    with db.session() as session:
        row = session.get(Source, source_id)
        if row is None:  # removed while we fetched
            return PollResult(source_id, source.url, "error", message="source was removed")
        if answer.status == 304:
            result = PollResult(source_id, source.url, "unchanged", message="not modified (304)")
        else:
            added, known = store_new(source_id, parsed.records, session=session, now=now)
            message = f"{added} new, {known} already known"
            if not parsed.records and parsed.warnings:
                message += f" ({parsed.warnings[-1].message})"
            result = PollResult(source_id, source.url, "ok", added, known, message)
            row.kind = source.kind
            row.etag = answer.headers.get("etag")
            row.last_modified = answer.headers.get("last-modified")
        _apply(row, result, now)
    return result


def _apply(row: Source, result: PollResult, now: datetime) -> None:
    row.last_polled_at = now
    row.next_poll_at = now + timedelta(minutes=row.every_minutes)
    row.last_result = result.result
    row.last_message = result.message[:2000]
    row.last_added = result.added


def _record(source_id: int, result: PollResult, *, db: Database, now: datetime) -> PollResult:
    with db.session() as session:
        row = session.get(Source, source_id)
        if row is not None:
            _apply(row, result, now)
    return result


def due_ids(*, session: Session, now: datetime) -> list[int]:
    return list(session.scalars(
        select(Source.id)
        .where(Source.enabled.is_(True), or_(Source.next_poll_at.is_(None),
                                             Source.next_poll_at <= now))
        .order_by(Source.next_poll_at, Source.id)
    ))  # fmt: skip


def poll_many(
    ids: Sequence[int], *, db: Database, settings: Settings, now: Callable[[], datetime],
    progress: Callable[[PollResult], None] | None = None, fetcher: Fetcher | None = None,
) -> list[PollResult]:  # fmt: skip
    """Poll each source in turn (one at a time: sources are few, and polite to their hosts)."""
    results = []
    own = fetcher is None
    fetcher = fetcher or Fetcher(settings)
    try:
        for source_id in ids:
            result = poll_source(source_id, db=db, fetcher=fetcher, now=now())
            results.append(result)
            if progress is not None:
                progress(result)
    finally:
        if own:
            fetcher.close()
    return results


def poll_due(db: Database, settings: Settings, *, now: Callable[[], datetime]) -> list[PollResult]:
    """What the scheduler runs: every enabled source whose next poll is due."""
    with db.session() as session:
        ids = due_ids(session=session, now=now())
    return poll_many(ids, db=db, settings=settings, now=now)
