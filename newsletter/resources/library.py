"""The resource library in the database: import with merging, search, edit.

Parsing lives in ``parsers`` and tagging in ``classify``; this module only
decides how records become rows, so the same rules serve the CLI, the admin
upload and any future API.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from newsletter.errors import NotFoundError, ValidationError
from newsletter.models import Resource, ResourceTopic
from newsletter.resources import bulk
from newsletter.resources.bulk import slugify as slugify  # re-exported: callers import it here
from newsletter.resources.classify import (
    RESOURCE_TYPES,
    Topic,
    classify,
    normalise_title,
    normalise_url,
)
from newsletter.resources.parsers import parse_file
from newsletter.resources.records import ImportWarning, ResourceRecord

# Fields copied from a record onto a row when the row lacks them.
FILLABLE = bulk.FILLABLE


@dataclass
class ImportReport:
    """What an import did, per record; printed by the CLI and shown by the admin UI."""

    added: list[str] = field(default_factory=list)
    merged: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    skipped: list[ImportWarning] = field(default_factory=list)

    dry_run: bool = False

    def as_dict(self, titles: int = 0) -> dict[str, Any]:
        """Counts and skipped fragments; with ``titles``, the first so many of each list too."""
        data: dict[str, Any] = {
            "added": len(self.added),
            "merged": len(self.merged),
            "unchanged": len(self.unchanged),
            "skipped": [{"where": w.where, "reason": w.message} for w in self.skipped],
            "dry_run": self.dry_run,
        }
        if titles:
            data["titles"] = {"added": self.added[:titles], "merged": self.merged[:titles]}
        return data


def _unique_slug(title: str, *, session: Session) -> str:
    base = slugify(title)
    taken = set(session.scalars(select(Resource.slug).where(Resource.slug.like(f"{base}%"))))
    candidate, n = base, 2
    while candidate in taken:
        candidate, n = f"{base}-{n}", n + 1
    return candidate


def same_url(url: str, *, session: Session) -> Resource | None:
    return session.scalar(select(Resource).where(Resource.url_key == normalise_url(url)))


def find_match(record: ResourceRecord, *, session: Session) -> Resource | None:
    """The existing row this record describes: same normalised URL, else same title.

    A title match only counts where one side has no URL: two different URLs
    under one title are two resources (a series, a re-edition).
    """
    if record.url:
        found = same_url(record.url, session=session)
        if found is not None:
            return found
    candidates = session.scalars(
        select(Resource).where(Resource.title_key == normalise_title(record.title))
    ).all()
    for row in candidates:
        if not record.url or row.url is None:
            return row
    return None


def _new_row(record: ResourceRecord, *, session: Session) -> Resource:
    row = Resource(
        slug=_unique_slug(record.title, session=session),
        title=record.title,
        title_key=normalise_title(record.title),
        url=record.url,
        url_key=normalise_url(record.url) if record.url else None,
        summary=record.summary,
        summary_truncated=record.summary_truncated,
        type=record.type,
        type_locked=False,
        topics_locked=False,
        published_at=record.published,
        origin=record.origin,
        **{name: getattr(record, name) for name in FILLABLE},
    )
    row.set_topics(list(record.topics))
    session.add(row)
    return row


def import_records(
    records: Sequence[ResourceRecord],
    *,
    session: Session,
    topics: Sequence[Topic],
    report: ImportReport | None = None,
    progress: bulk.Progress | None = None,
    commit_chunks: bool = False,
    dry_run: bool = False,
) -> ImportReport:
    """Classify and merge records in bulk (``bulk.Plan``), a chunk at a time.

    By default everything stays in the caller's transaction; ``commit_chunks``
    commits each chunk so a large import never holds the database for long
    (re-running an interrupted one is idempotent); ``dry_run`` writes nothing.
    """
    report = report or ImportReport()
    plan = bulk.Plan(session=session, topics=topics, report=report, dry_run=dry_run,
                     commit_chunks=commit_chunks, progress=progress)  # fmt: skip
    plan.run(records)
    return report


def parse_files(paths: Sequence[Path]) -> tuple[list[ResourceRecord], list[ImportWarning]]:
    """Parse every file before anything is written, so one bad file stores nothing."""
    records: list[ResourceRecord] = []
    warnings: list[ImportWarning] = []
    for path in paths:
        result = parse_file(path)
        records.extend(result.records)
        warnings.extend(result.warnings)
    return records, warnings


# --- queries -----------------------------------------------------------------


def list_resources(
    *, session: Session, topic: str | None = None, type_: str | None = None
) -> list[Resource]:
    query = select(Resource).order_by(Resource.id)
    if type_:
        query = query.where(func.lower(Resource.type) == type_.lower())
    if topic:
        topic_ids = select(ResourceTopic.resource_id).where(
            func.lower(ResourceTopic.topic) == topic.lower()
        )
        query = query.where(Resource.id.in_(topic_ids))
    return list(session.scalars(query))


def get_resource(ref: str | int, *, session: Session) -> Resource:
    """A resource by id, slug or URL; ``NotFoundError`` names what was asked for."""
    key = str(ref).strip()
    row: Resource | None
    if key.isdigit():
        row = session.get(Resource, int(key))
    elif key.startswith(("http://", "https://")):
        row = session.scalar(select(Resource).where(Resource.url_key == normalise_url(key)))
    else:
        row = session.scalar(select(Resource).where(Resource.slug == key))
    if row is None:
        raise NotFoundError(f"no resource {key!r} (give an id, slug or URL)")
    return row


def _fts5_query(query: str) -> str:
    """User words as quoted FTS5 prefix terms, so punctuation can never be a syntax error."""
    words = re.findall(r"\w+", query, flags=re.UNICODE)
    return " ".join(f'"{w}"*' for w in words)


def search_resources(query: str, *, session: Session, limit: int = 50) -> list[Resource]:
    """Full-text search, best match first (FTS5 bm25 on SQLite, ts_rank on PostgreSQL)."""
    if not re.search(r"\w", query):
        raise ValidationError("search needs at least one word")
    if session.get_bind().dialect.name == "sqlite":
        sql = text(
            "SELECT rowid FROM resources_fts WHERE resources_fts MATCH :q "
            "ORDER BY bm25(resources_fts, 10.0, 3.0, 1.0) LIMIT :limit"
        )
        ids = list(session.scalars(sql, {"q": _fts5_query(query), "limit": limit}))
    else:
        sql = text(
            "SELECT id FROM resources, websearch_to_tsquery('english', :q) AS q "
            "WHERE search_vector @@ q ORDER BY ts_rank(search_vector, q) DESC, id LIMIT :limit"
        )
        ids = list(session.scalars(sql, {"q": query, "limit": limit}))
    rows = {r.id: r for r in session.scalars(select(Resource).where(Resource.id.in_(ids)))}
    return [rows[i] for i in ids if i in rows]


# --- editing -----------------------------------------------------------------

EDITABLE = {f.name for f in fields(ResourceRecord)} - {"origin", "published"}


def _check_type(type_: str | None) -> None:
    if type_ is not None and type_ not in RESOURCE_TYPES:
        raise ValidationError(f"unknown type {type_!r} (one of: {', '.join(RESOURCE_TYPES)})")


def add_resource(record: ResourceRecord, *, session: Session, topics: Sequence[Topic]) -> Resource:
    """Add one resource by hand; refuses a duplicate instead of merging silently.

    With a URL, the URL decides: a resource of the same title without a URL
    (an import merges into it) is another entry to an editor adding by hand.
    """
    if not record.title.strip():
        raise ValidationError("a resource needs a title")
    _check_type(record.type)
    if record.url:
        existing = same_url(record.url, session=session)
    else:
        existing = find_match(record, session=session)
    if existing is not None:
        raise ValidationError(f"already in the library as #{existing.id} ({existing.slug})")
    row = _new_row(classify(record, topics), session=session)
    row.type_locked = record.type is not None
    row.topics_locked = bool(record.topics)
    session.flush()
    return row


def edit_resource(row: Resource, changes: dict[str, Any], *, session: Session) -> Resource:
    """Apply an editor's changes; a type or topics set by hand are locked against re-imports."""
    unknown = set(changes) - EDITABLE
    if unknown:
        raise ValidationError(f"cannot edit {', '.join(sorted(unknown))}")
    if "title" in changes:
        if not str(changes["title"]).strip():
            raise ValidationError("a resource needs a title")
        row.title = changes["title"]
        row.title_key = normalise_title(changes["title"])
    if "url" in changes:
        row.url = changes["url"] or None
        row.url_key = normalise_url(row.url) if row.url else None
    if "type" in changes:
        _check_type(changes["type"])
        row.type, row.type_locked = changes["type"], True
    if "topics" in changes:
        row.set_topics(list(changes["topics"]))
        row.topics_locked = True
    for name in ("summary", "summary_truncated", *FILLABLE):
        if name in changes:
            setattr(row, name, changes[name])
    session.flush()
    return row


def delete_resource(row: Resource, *, session: Session) -> None:
    session.delete(row)
    session.flush()


def resource_as_dict(row: Resource) -> dict[str, Any]:
    """A JSON-ready view of a row (CLI ``--json``, API)."""
    return {
        "id": row.id,
        "slug": row.slug,
        "title": row.title,
        "url": row.url,
        "type": row.type,
        "source": row.source,
        "topics": row.topics,
        "summary": row.summary,
        "summary_truncated": row.summary_truncated,
        "authors": row.authors,
        "image_url": row.image_url,
        "image_alt": row.image_alt,
        "image_credit": row.image_credit,
        "call_to_action": row.call_to_action,
        "published_at": row.published_at.isoformat() if row.published_at else None,
        "created_at": row.created_at.isoformat(),
    }


def record_from_row(row: Resource) -> ResourceRecord:
    """The row as a record (for export and re-classification)."""
    return replace(
        ResourceRecord(title=row.title),
        summary=row.summary,
        url=row.url,
        type=row.type,
        source=row.source,
        topics=tuple(row.topics),
        summary_truncated=row.summary_truncated,
        published=row.published_at,
        **{name: getattr(row, name) for name in FILLABLE},
    )
