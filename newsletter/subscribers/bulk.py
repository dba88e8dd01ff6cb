"""Set-based merge of a parsed subscriber file: a few statements per chunk, not several per row.

For each chunk of rows: one look-up of the suppression list, one of the
existing subscribers and one of their topics (each split to stay under the
backends' parameter limits), then multi-row INSERTs and executemany UPDATEs
for subscribers, topics and consent events.  Every decision (add, update,
unchanged, skipped as suppressed) is made in Python from what the look-ups
returned, with the same rules the per-row import had, so a dry run makes the
same decisions and simply skips the writes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeVar

from sqlalchemy import delete, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from newsletter.bulkdb import insert_returning_ids, insert_rows, key_in, table_of
from newsletter.models.base import utcnow
from newsletter.models.subscribers import (
    ConsentEvent,
    ConsentKind,
    Subscriber,
    SubscriberStatus,
    SubscriberTopic,
    Suppression,
)
from newsletter.subscribers import suppression as suppression_list
from newsletter.subscribers.store import Actor

if TYPE_CHECKING:
    from newsletter.subscribers.csvio import Held, ImportReport, Row

Progress = Callable[[int, int], None]  # (rows done, rows in all)
CHUNK_ROWS = 5_000  # rows per committed chunk: a fraction of a second of locks
_IN = 5_000  # keys per look-up: one JSON (SQLite) or array (PostgreSQL) parameter each
T = TypeVar("T")


def chunks(items: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


@dataclass(slots=True)
class _Existing:
    id: int
    name: str | None
    status: str
    topics: list[str]
    time_zone: str | None = None


@dataclass
class Plan:
    """One import's writes, chunk by chunk, into ``session``."""

    session: Session
    actor: Actor
    consent_text: str | None
    report: ImportReport
    tool: str | None = None  # "mailchimp", ...; None for our own CSV
    dry_run: bool = False
    commit_chunks: bool = False
    progress: Progress | None = None
    chunk_rows: int | None = None  # CHUNK_ROWS (read at run time, so tests can shrink it)
    now: datetime = field(default_factory=utcnow)
    _done: int = 0
    _total: int = 0

    def run(self, rows: Sequence[Row], held: Sequence[Held]) -> None:
        """Suppressions first (so no row of the same file re-adds one), then subscribers."""
        self._total = len(rows) + len(held)
        size = self.chunk_rows or CHUNK_ROWS
        self._advance(0)
        for part in chunks(held, size):
            self._suppressions(part)
            self._end_chunk(len(part))
        file_held = {h.email_hash for h in held}
        for rows_part in chunks(rows, size):
            self._subscribers(rows_part, file_held)
            self._end_chunk(len(rows_part))
        self.session.expire_all()  # the ORM's copies of rows changed behind its back

    def _advance(self, count: int) -> None:
        self._done += count
        if self.progress is not None:
            self.progress(self._done, self._total)

    def _end_chunk(self, count: int) -> None:
        if self.dry_run:
            pass
        elif self.commit_chunks:
            self.session.commit()
        else:
            self.session.flush()
        self._advance(count)

    # ------------------------------------------------------------ suppressions

    def _suppressions(self, part: Sequence[Held]) -> None:
        self.report.suppressions_added += len(part)
        if self.dry_run:
            return
        values = [
            {"email_hash": h.email_hash, "reason": h.reason.value, "created_at": self.now,
             "note": f"imported{f' from {self.tool}' if self.tool else ''} (line {h.line}"
                     f"{f', {h.note}' if h.note and h.note != 'imported' else ''})"}
            for h in part
        ]  # fmt: skip
        dialect = self.session.get_bind().dialect.name
        insert_ = postgresql.insert if dialect == "postgresql" else sqlite.insert
        statement = insert_(table_of(Suppression)).on_conflict_do_nothing(
            index_elements=["email_hash"]
        )
        self.session.execute(statement, values)
        self._suppress_subscribers(part)
        self._events([self._held_event(h) for h in part])

    def _suppress_subscribers(self, part: Sequence[Held]) -> None:
        """A subscriber already on the list takes the suppression's status (only upwards)."""
        by_status: dict[SubscriberStatus, list[str]] = {}
        for h in part:
            status = suppression_list.STATUS_FOR_REASON.get(h.reason)
            if status is not None:
                by_status.setdefault(status, []).append(h.email_hash)
        for status, hashes in by_status.items():
            values: dict[str, object] = {"status": status.value}
            if status is SubscriberStatus.UNSUBSCRIBED:
                values["unsubscribed_at"] = self.now
            below = suppression_list.statuses_below(status)
            for some in chunks(hashes, _IN):
                self.session.execute(
                    update(Subscriber)
                    .where(key_in(self.session, Subscriber.email_hash, some))
                    .where(Subscriber.status.in_(below))
                    .values(**values)
                    .execution_options(synchronize_session=False)
                )

    def _held_event(self, h: Held) -> dict[str, Any]:
        detail: dict[str, Any] = {"suppressed": h.reason.value, "line": h.line}
        if self.tool:
            detail.update(tool=self.tool, status=h.note, ended_at=_iso(h.at))
        return self._event(None, h.email_hash, detail)

    # ------------------------------------------------------------ subscribers

    def _subscribers(self, part: Sequence[Row], file_held: set[str]) -> None:
        held = file_held | self._suppressed([r.email_hash for r in part])
        existing = self._existing([r.email for r in part])
        new: list[Row] = []
        changes: list[tuple[Row, _Existing, list[str]]] = []
        for row in part:
            if row.email_hash in held:
                self.report.suppressed += 1
            elif row.email in existing:
                changed = self._changes(row, existing[row.email])
                if changed:
                    changes.append((row, existing[row.email], changed))
                else:
                    self.report.unchanged += 1
            else:
                new.append(row)
        self.report.added += len(new)
        self.report.updated += len(changes)
        if not self.dry_run:
            self._insert(new)
            self._update(changes)

    def _suppressed(self, hashes: Sequence[str]) -> set[str]:
        found: set[str] = set()
        for some in chunks(hashes, _IN):
            query = select(Suppression.email_hash)
            found.update(self.session.scalars(
                query.where(key_in(self.session, Suppression.email_hash, some))))  # fmt: skip
        return found

    def _existing(self, emails: Sequence[str]) -> dict[str, _Existing]:
        found: dict[str, _Existing] = {}
        by_id: dict[int, _Existing] = {}
        for some in chunks(emails, _IN):
            query = select(
                Subscriber.id, Subscriber.email, Subscriber.name, Subscriber.status,
                Subscriber.time_zone,
            )  # fmt: skip
            for id_, email, name, status, tz in self.session.execute(
                query.where(key_in(self.session, Subscriber.email, some))
            ).tuples():
                found[email] = by_id[id_] = _Existing(id_, name, status, [], tz)
        for ids in chunks(list(by_id), _IN):
            topics = select(SubscriberTopic.subscriber_id, SubscriberTopic.topic)
            for id_, topic in self.session.execute(
                topics.where(key_in(self.session, SubscriberTopic.subscriber_id, ids))
            ).tuples():
                by_id[id_].topics.append(topic)
        return found

    @staticmethod
    def _changes(row: Row, old: _Existing) -> list[str]:
        """Which fields the row changes (the rules of a one-row update, unchanged)."""
        changed: list[str] = []
        if row.name and row.name != old.name:
            changed.append("name")
        if row.topics is not None and sorted(row.topics) != sorted(old.topics):
            changed.append("topics")
        if row.time_zone and row.time_zone != old.time_zone:
            changed.append("time_zone")
        promote = row.status is SubscriberStatus.CONFIRMED
        if promote and old.status == SubscriberStatus.PENDING:
            changed.append("status")
        return changed

    def _insert(self, new: Sequence[Row]) -> None:
        if not new:
            return
        values = [
            {"email": r.email, "email_hash": r.email_hash, "name": r.name,
             "status": r.status.value, "created_at": r.opted_in_at or self.now,
             "confirmed_at": (r.confirmed_at or self.now)
             if r.status is SubscriberStatus.CONFIRMED else None,
             "soft_bounces": 0, "time_zone": r.time_zone}
            for r in new
        ]  # fmt: skip
        new_ids = insert_returning_ids(self.session, Subscriber, values, key="email")
        ids = {r.email: id_ for r, id_ in zip(new, new_ids, strict=True)}
        topics = [
            {"subscriber_id": ids[r.email], "topic": t, "created_at": None}
            for r in new
            for t in r.topics or []
        ]
        insert_rows(self.session, SubscriberTopic, topics)
        self._events([self._row_event(r, ids[r.email]) for r in new])

    def _row_event(self, row: Row, subscriber_id: int) -> dict[str, Any]:
        detail: dict[str, Any] = {"added": True, "status": row.status.value, "topics": row.topics}
        if self.tool:
            detail["tool"] = self.tool
            detail["line"] = row.line
            if row.opted_in_at:
                detail["opted_in_at"] = row.opted_in_at.isoformat()
            if row.confirmed_at:
                detail["confirmed_at"] = row.confirmed_at.isoformat()
            if row.opt_in_ip:
                detail["opt_in_network"] = row.opt_in_ip  # masked: never the IP in clear
        return self._event(subscriber_id, row.email_hash, detail)

    def _update(self, changes: Sequence[tuple[Row, _Existing, list[str]]]) -> None:
        if not changes:
            return
        names = [{"id": old.id, "name": row.name} for row, old, f in changes if "name" in f]
        zones = [{"id": old.id, "time_zone": row.time_zone}
                 for row, old, f in changes if "time_zone" in f]  # fmt: skip
        promoted = [{"id": old.id, "status": SubscriberStatus.CONFIRMED.value,
                     "confirmed_at": row.confirmed_at or self.now}
                    for row, old, f in changes if "status" in f]  # fmt: skip
        for values in (names, zones, promoted):
            if values:
                self.session.execute(update(Subscriber), values)
        retopic = [(row, old) for row, old, f in changes if "topics" in f]
        for some in chunks([old.id for _, old in retopic], _IN):
            self.session.execute(
                delete(SubscriberTopic).where(
                    key_in(self.session, SubscriberTopic.subscriber_id, some)
                )
            )
        topics = [
            {"subscriber_id": old.id, "topic": t, "created_at": None}
            for row, old in retopic
            for t in row.topics or []
        ]
        insert_rows(self.session, SubscriberTopic, topics)
        self._events([self._update_event(row, old, f) for row, old, f in changes])

    def _update_event(self, row: Row, old: _Existing, changed: list[str]) -> dict[str, Any]:
        """The trail records which fields changed, and the topics (not personal data)."""
        topics = row.topics if "topics" in changed else sorted(old.topics)
        detail: dict[str, Any] = {"updated": changed, "topics": topics}
        if self.tool:
            detail.update(tool=self.tool, line=row.line)
        return self._event(old.id, row.email_hash, detail)

    # ------------------------------------------------------------ the consent trail

    def _event(
        self, subscriber_id: int | None, email_hash: str, detail: dict[str, Any]
    ) -> dict[str, Any]:
        return {
            "subscriber_id": subscriber_id, "email_hash": email_hash,
            "kind": ConsentKind.IMPORT.value, "at": self.now,
            "ip": self.actor.ip[:45] if self.actor.ip else None,
            "user_agent": self.actor.user_agent[:500] if self.actor.user_agent else None,
            "source": self.actor.source[:300], "consent_text": self.consent_text,
            "detail": detail,
        }  # fmt: skip

    def _events(self, values: list[dict[str, Any]]) -> None:
        insert_rows(self.session, ConsentEvent, values)
