"""Set-based merge of parsed resources into the library, a chunk at a time.

The rules are the per-record ones (same normalised URL, else same title where
one side has no URL; the richer field wins; a type or topics an editor set
stay), applied to an in-memory index of the rows this import touches instead
of one query per record: per chunk, one look-up of the rows whose URL or title
keys appear in it, then multi-row INSERTs and executemany UPDATEs.  Records of
the same import merge with each other exactly as they did when each was
flushed before the next was matched.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeVar

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from newsletter.bulkdb import insert_returning_ids, insert_rows, key_in
from newsletter.models import Resource, ResourceTopic
from newsletter.models.base import utcnow
from newsletter.resources.classify import Topic, classify, normalise_title, normalise_url
from newsletter.resources.records import ResourceRecord

if TYPE_CHECKING:
    from newsletter.resources.library import ImportReport

Progress = Callable[[int, int], None]  # (records done, records in all)
CHUNK_ROWS = 5_000
FILLABLE = ("source", "authors", "image_url", "image_alt", "image_credit", "call_to_action")
_IN = 5_000  # keys per look-up: one JSON (SQLite) or array (PostgreSQL) parameter each
T = TypeVar("T")
_COLUMNS = (
    "id", "slug", "title", "title_key", "url", "url_key", "summary", "summary_truncated",
    "type", "type_locked", "topics_locked", *FILLABLE, "published_at", "origin",
)  # fmt: skip


def slugify(title: str) -> str:
    """A URL-safe, readable slug ("ESSA and Learning" -> "essa-and-learning")."""
    ascii_title = unicodedata.normalize("NFKD", title).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_title.lower()).strip("-")
    return slug[:80].rstrip("-") or "resource"


def chunks(items: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


@dataclass(slots=True, eq=False)  # identity: one entry per library row
class Entry:
    """A library row as this import sees it (stored or about to be)."""

    id: int | None
    slug: str
    title: str
    title_key: str
    url: str | None
    url_key: str | None
    summary: str
    summary_truncated: bool
    type: str | None
    type_locked: bool
    topics_locked: bool
    source: str | None
    authors: str | None
    image_url: str | None
    image_alt: str | None
    image_credit: str | None
    call_to_action: str | None
    published_at: datetime | None
    origin: str
    topics: list[str] = field(default_factory=list)
    dirty: bool = False  # fields changed since written
    topics_dirty: bool = False

    @classmethod
    def of(cls, record: ResourceRecord) -> Entry:
        return cls(
            id=None, slug="", title=record.title, title_key=normalise_title(record.title),
            url=record.url, url_key=normalise_url(record.url) if record.url else None,
            summary=record.summary, summary_truncated=record.summary_truncated,
            type=record.type, type_locked=False, topics_locked=False,
            published_at=record.published, origin=record.origin,
            topics=list(dict.fromkeys(t.strip() for t in record.topics if t.strip())),
            **{name: getattr(record, name) for name in FILLABLE},
        )  # fmt: skip

    def values(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in _COLUMNS if name != "id"}


def _better_summary(entry: Entry, record: ResourceRecord) -> bool:
    """A complete summary beats a truncated one; otherwise the longer one wins."""
    if not record.summary:
        return False
    if entry.summary_truncated != record.summary_truncated:
        return entry.summary_truncated
    return len(record.summary) > len(entry.summary)


def merge_into(entry: Entry, record: ResourceRecord) -> bool:
    """Copy what the record adds onto the entry; True if anything changed."""
    changed = False
    if _better_summary(entry, record):
        entry.summary, entry.summary_truncated = record.summary, record.summary_truncated
        changed = True
    if record.url and entry.url is None:
        entry.url, entry.url_key = record.url, normalise_url(record.url)
        changed = True
    for name in FILLABLE:
        value = getattr(record, name)
        if value and not getattr(entry, name):
            setattr(entry, name, value)
            changed = True
    if record.published and entry.published_at is None:
        entry.published_at, changed = record.published, True
    if record.type and not entry.type and not entry.type_locked:
        entry.type, changed = record.type, True
    if not entry.topics_locked:
        merged = list(dict.fromkeys([*entry.topics, *(t.strip() for t in record.topics)]))
        merged = [t for t in merged if t]
        if merged != entry.topics:
            entry.topics, entry.topics_dirty, changed = merged, True, True
    entry.dirty = entry.dirty or changed
    return changed


@dataclass
class Plan:
    """One import of records into ``session``, chunk by chunk."""

    session: Session
    topics: Sequence[Topic]
    report: ImportReport
    dry_run: bool = False
    commit_chunks: bool = False
    progress: Progress | None = None
    chunk_rows: int | None = None  # CHUNK_ROWS, read at run time
    by_url: dict[str, Entry] = field(default_factory=dict)
    by_title: dict[str, list[Entry]] = field(default_factory=dict)
    _loaded: set[int] = field(default_factory=set)
    _urls_seen: set[str] = field(default_factory=set)
    _titles_seen: set[str] = field(default_factory=set)
    _slugs: set[str] = field(default_factory=set)  # taken, in the database or by this import
    _bases_seen: set[str] = field(default_factory=set)

    def run(self, records: Sequence[ResourceRecord]) -> None:
        done, total = 0, len(records)
        if self.progress:
            self.progress(0, total)
        for part in chunks(records, self.chunk_rows or CHUNK_ROWS):
            classified = [classify(r, self.topics) for r in part]
            self._load(classified)
            touched = [self._apply(r) for r in classified]
            if not self.dry_run:
                self._write([e for e in dict.fromkeys(touched) if e is not None])
                if self.commit_chunks:
                    self.session.commit()
            done += len(part)
            if self.progress:
                self.progress(done, total)
        self.session.expire_all()

    # ------------------------------------------------------------ matching

    def _load(self, records: Sequence[ResourceRecord]) -> None:
        """Bring into the index every stored row a record of this chunk could match."""
        urls = {normalise_url(r.url) for r in records if r.url} - self._urls_seen
        titles = {normalise_title(r.title) for r in records} - self._titles_seen
        self._urls_seen |= urls
        self._titles_seen |= titles
        found: list[Entry] = []
        for column, keys in (
            (Resource.url_key, sorted(urls)),
            (Resource.title_key, sorted(titles)),
        ):
            for some in chunks(keys, _IN):
                query = select(*(getattr(Resource, c) for c in _COLUMNS))
                query = query.where(key_in(self.session, column, some))
                for row in self.session.execute(query):
                    if row.id not in self._loaded:
                        self._loaded.add(row.id)
                        found.append(Entry(**row._asdict()))
        self._load_topics(found)
        for entry in sorted(found, key=lambda e: e.id or 0):
            self._index(entry)

    def _load_topics(self, entries: Sequence[Entry]) -> None:
        by_id = {e.id: e for e in entries}
        for some in chunks(list(by_id), _IN):
            query = (
                select(ResourceTopic.resource_id, ResourceTopic.topic)
                .where(key_in(self.session, ResourceTopic.resource_id, some))
                .order_by(ResourceTopic.resource_id, ResourceTopic.position)
            )
            for resource_id, topic in self.session.execute(query).tuples():
                by_id[resource_id].topics.append(topic)

    def _index(self, entry: Entry) -> None:
        if entry.url_key:
            self.by_url.setdefault(entry.url_key, entry)
        self.by_title.setdefault(entry.title_key, []).append(entry)

    def _match(self, record: ResourceRecord) -> Entry | None:
        """Same normalised URL, else the same title where one side has no URL (oldest first)."""
        if record.url:
            found = self.by_url.get(normalise_url(record.url))
            if found is not None:
                return found
        for entry in self.by_title.get(normalise_title(record.title), []):
            if not record.url or entry.url is None:
                return entry
        return None

    def _apply(self, record: ResourceRecord) -> Entry | None:
        """Add or merge one record; the entry to write, if any."""
        entry = self._match(record)
        if entry is None:
            entry = Entry.of(record)
            entry.dirty = True
            self._index(entry)
            self.report.added.append(record.title)
            return entry
        had_url = entry.url_key
        if not merge_into(entry, record):
            self.report.unchanged.append(record.title)
            return None
        if entry.url_key and not had_url:
            self.by_url.setdefault(entry.url_key, entry)
        self.report.merged.append(record.title)
        return entry

    # ------------------------------------------------------------ writing

    def _write(self, entries: Sequence[Entry]) -> None:
        new = [e for e in entries if e.id is None]
        self._assign_slugs(new)
        if new:
            now = utcnow()
            values = [{**e.values(), "created_at": now, "updated_at": now} for e in new]
            ids = insert_returning_ids(self.session, Resource, values, key="slug")
            for entry, id_ in zip(new, ids, strict=True):
                entry.id = id_
        fresh = {id(e) for e in new}
        changed = [e for e in entries if id(e) not in fresh]
        if changed:
            now = utcnow()
            values = [{"id": e.id, **e.values(), "updated_at": now} for e in changed]
            self.session.execute(update(Resource), values)
        retopic = [e for e in changed if e.topics_dirty]
        for some in chunks([e.id for e in retopic], _IN):
            stale = key_in(self.session, ResourceTopic.resource_id, some)
            self.session.execute(delete(ResourceTopic).where(stale))
        rows = [
            {"resource_id": e.id, "topic": t, "position": n}
            for e in (*new, *retopic)
            for n, t in enumerate(e.topics)
        ]
        insert_rows(self.session, ResourceTopic, rows)
        for entry in entries:
            entry.dirty = entry.topics_dirty = False

    def _assign_slugs(self, entries: Sequence[Entry]) -> None:
        """Readable, unique slugs ("title", "title-2", ...) without a query per record."""
        bases = [slugify(e.title) for e in entries]
        fresh = sorted(set(bases) - self._bases_seen)
        self._bases_seen |= set(fresh)
        taken: set[str] = set()
        for some in chunks(fresh, _IN):
            query = select(Resource.slug).where(key_in(self.session, Resource.slug, some))
            taken |= set(self.session.scalars(query))
        for base in taken:  # rare: only titles already in the library need the numbered ones
            pattern = f"{base}-%"
            self._slugs |= set(
                self.session.scalars(select(Resource.slug).where(Resource.slug.like(pattern)))
            )
        self._slugs |= taken
        for entry, base in zip(entries, bases, strict=True):
            candidate, n = base, 2
            while candidate in self._slugs:
                candidate, n = f"{base}-{n}", n + 1
            self._slugs.add(candidate)
            entry.slug = candidate
