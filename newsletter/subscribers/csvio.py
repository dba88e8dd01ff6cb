"""CSV import and export of subscribers, suppressions included.

Columns are found by header, whatever the spreadsheet called them (``E-mail``,
``Email Address``, ``Full name``, ``First name`` + ``Last name``, ``Topics``).
An import is one transaction in the caller's session: a bad row is reported
with its line number and skipped, a suppressed address is skipped and counted,
an existing subscriber is updated, and a repeated row merges into the first, so
importing the same file twice changes nothing.

Exports neutralise spreadsheet formulas (a name such as ``=HYPERLINK(...)``
typed into the public form) with a leading apostrophe, which import removes.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, TextIO

from sqlalchemy import exists, select
from sqlalchemy.orm import Session

from newsletter.errors import ImportFormatError, ValidationError
from newsletter.models.base import utcnow
from newsletter.models.subscribers import (
    ConsentKind,
    Subscriber,
    SubscriberStatus,
    Suppression,
    SuppressionReason,
)
from newsletter.subscribers import store
from newsletter.subscribers import suppression as suppression_list
from newsletter.subscribers.addresses import hash_normalised, normalise_email
from newsletter.subscribers.store import Actor

COLUMNS = (
    "email", "name", "status", "topics", "created_at", "confirmed_at",
    "unsubscribed_at", "paused_until", "suppressed", "email_hash",
)  # fmt: skip
ALIASES = {
    "email": {"email", "e-mail", "email address", "e-mail address", "address", "mail"},
    "name": {"name", "full name", "fullname", "display name", "contact name", "subscriber"},
    "first_name": {"first name", "firstname", "given name", "forename"},
    "last_name": {"last name", "lastname", "surname", "family name"},
    "topics": {"topics", "topic", "interests", "categories"},
    "status": {"status"},
    "suppressed": {"suppressed", "suppression"},
    "email_hash": {"email hash", "hash"},
}
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_TOPIC_SPLIT = re.compile(r"[;|,]")
_HEX64 = re.compile(r"[0-9a-f]{64}")
_FLUSH_EVERY = 500


@dataclass(frozen=True, slots=True)
class RowProblem:
    line: int
    message: str


@dataclass
class ImportReport:
    added: int = 0
    updated: int = 0
    unchanged: int = 0
    suppressed: int = 0  # rows skipped because the address is on the suppression list
    suppressions_added: int = 0  # rows that carried a suppression (from an export)
    invalid: list[RowProblem] = field(default_factory=list)
    duplicates: list[RowProblem] = field(default_factory=list)
    warnings: list[RowProblem] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        def lines(items: list[RowProblem]) -> list[dict[str, Any]]:
            return [{"line": p.line, "message": p.message} for p in items]

        return {
            "added": self.added,
            "updated": self.updated,
            "unchanged": self.unchanged,
            "suppressed": self.suppressed,
            "suppressions_added": self.suppressions_added,
            "invalid": lines(self.invalid),
            "duplicates": lines(self.duplicates),
            "warnings": lines(self.warnings),
        }


@dataclass
class _Row:
    """One usable CSV row, validated and normalised."""

    line: int
    email: str
    name: str | None
    topics: list[str] | None  # None: the file says nothing about topics
    status: SubscriberStatus


# ---------------------------------------------------------------- reading


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ImportFormatError(f"not UTF-8 text (byte {exc.start})", where=str(path)) from None
    except OSError as exc:
        raise ImportFormatError(f"cannot read: {exc.strerror or exc}", where=str(path)) from None


def _delimiter(text: str) -> str:
    """Comma, semicolon (European spreadsheets) or tab, judged from the header line."""
    header = text.split("\n", 1)[0]
    return max(",;\t", key=header.count)


def _map_header(header: Sequence[str]) -> dict[str, int]:
    """Our field name -> column index, from whatever the spreadsheet called the columns."""
    found: dict[str, int] = {}
    for index, raw in enumerate(header):
        label = " ".join(raw.strip().lower().replace("_", " ").split())
        for key, names in ALIASES.items():
            if label in names and key not in found:
                found[key] = index
    return found


def _records(path: Path) -> Iterator[tuple[int, dict[str, str]]]:
    """(line number, {field: cell}) for each data row; ``ImportFormatError`` for a bad file."""
    text = _read_text(path)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=_delimiter(text))
    header = next(reader, None)
    if not header:
        raise ImportFormatError("empty file (no header row)", where=str(path))
    columns = _map_header(header)
    if "email" not in columns and "email_hash" not in columns:
        raise ImportFormatError(
            "no email column (expected a header such as email, e-mail or address)",
            where=f"{path}:1",
        )
    while True:
        line = reader.line_num + 1
        try:
            cells = next(reader, None)
        except csv.Error as exc:
            raise ImportFormatError(f"malformed CSV: {exc}", where=f"{path}:{line}") from None
        if cells is None:
            return
        if any(cell.strip() for cell in cells):
            yield (
                line,
                {key: _unguard(cells[i]) if i < len(cells) else "" for key, i in columns.items()},
            )


def _unguard(cell: str) -> str:
    """Undo the apostrophe an export puts before formula-like cells."""
    if cell.startswith("'") and cell[1:2] in _FORMULA_START and cell[1:2]:
        return cell[1:]
    return cell


# ---------------------------------------------------------------- validating


def _name(cells: dict[str, str]) -> str | None:
    if cells.get("name", "").strip():
        return store.clean_name(cells["name"])
    parts = [cells.get("first_name", ""), cells.get("last_name", "")]
    return store.clean_name(" ".join(p for p in parts if p.strip()))


def _topics(
    raw: str | None, allowed: Sequence[str], line: int, report: ImportReport
) -> list[str] | None:
    if raw is None or not raw.strip():
        return None
    chosen: list[str] = []
    for topic in (t.strip() for t in _TOPIC_SPLIT.split(raw)):
        if not topic:
            continue
        try:
            chosen.extend(store.clean_topics([topic], allowed))
        except ValidationError as exc:
            report.warnings.append(RowProblem(line, f"{exc.message} ignored"))
    return list(dict.fromkeys(chosen))


def _status(raw: str, default: SubscriberStatus) -> SubscriberStatus:
    value = raw.strip().lower()
    if value in (SubscriberStatus.PENDING, SubscriberStatus.CONFIRMED):
        return SubscriberStatus(value)
    return default


def _merge(first: _Row, later: _Row) -> None:
    """A repeated address: keep the first row, filling gaps and adding topics from the later."""
    first.name = first.name or later.name
    if later.topics is not None:
        first.topics = list(dict.fromkeys([*(first.topics or []), *later.topics]))


# ---------------------------------------------------------------- importing


def import_csv(
    path: Path,
    *,
    session: Session,
    allowed_topics: Sequence[str],
    status: SubscriberStatus = SubscriberStatus.CONFIRMED,
    consent_text: str | None = None,
    actor: Actor | None = None,
    advance: Callable[[], None] | None = None,
    total: Callable[[int], None] | None = None,
) -> ImportReport:
    """Import subscribers from a CSV file into the caller's transaction."""
    actor = actor or Actor(source=f"csv:{path}")
    report = ImportReport()
    rows = _collect(path, allowed_topics, status, session=session, report=report)
    if total is not None:
        total(len(rows))
    held = suppression_list.suppressed_hashes(
        (hash_normalised(r.email) for r in rows), session=session
    )
    existing = store.by_emails([r.email for r in rows], session=session)
    context = _Apply(session, actor, consent_text, report)
    for count, row in enumerate(rows, 1):
        if hash_normalised(row.email) in held:
            report.suppressed += 1
        elif row.email in existing:
            context.update(existing[row.email], row)
        else:
            context.add(row)
        if count % _FLUSH_EVERY == 0:
            session.flush()
        if advance is not None:
            advance()
    session.flush()
    return report


def _collect(
    path: Path,
    allowed: Sequence[str],
    default_status: SubscriberStatus,
    *,
    session: Session,
    report: ImportReport,
) -> list[_Row]:
    """Valid, de-duplicated rows; bad rows and suppression rows are dealt with here."""
    rows: dict[str, _Row] = {}
    for line, cells in _records(path):
        if cells.get("suppressed", "").strip():
            _import_suppression(line, cells, session=session, report=report)
            continue
        try:
            email = normalise_email(cells.get("email", ""))
            row = _Row(
                line, email, _name(cells), _topics(cells.get("topics"), allowed, line, report),
                _status(cells.get("status", ""), default_status),
            )  # fmt: skip
        except ValidationError as exc:
            report.invalid.append(RowProblem(line, exc.message))
            continue
        if email in rows:
            report.duplicates.append(RowProblem(line, f"repeats line {rows[email].line}"))
            _merge(rows[email], row)
        else:
            rows[email] = row
    return list(rows.values())


def _import_suppression(
    line: int, cells: dict[str, str], *, session: Session, report: ImportReport
) -> None:
    """A row from an export that carries a suppression: keep honouring it here."""
    try:
        reason = SuppressionReason(cells["suppressed"].strip().lower())
        raw_hash = cells.get("email_hash", "").strip().lower()
        if cells.get("email", "").strip():
            email_hash = hash_normalised(normalise_email(cells["email"]))
        elif _HEX64.fullmatch(raw_hash):
            email_hash = raw_hash
        else:
            raise ValidationError("suppression row without an email or a valid email_hash")
    except (ValueError, ValidationError) as exc:
        message = exc.message if isinstance(exc, ValidationError) else "unknown suppression reason"
        report.invalid.append(RowProblem(line, message))
        return
    suppression_list.suppress_hash(
        email_hash, reason, session=session, note=f"imported (line {line})"
    )
    report.suppressions_added += 1


@dataclass
class _Apply:
    """Adds and updates rows, recording one consent event per change."""

    session: Session
    actor: Actor
    consent_text: str | None
    report: ImportReport
    now: datetime = field(default_factory=utcnow)

    def add(self, row: _Row) -> None:
        subscriber = Subscriber(
            email=row.email, email_hash=hash_normalised(row.email), name=row.name,
            status=row.status.value, created_at=self.now, soft_bounces=0,
            confirmed_at=self.now if row.status is SubscriberStatus.CONFIRMED else None,
        )  # fmt: skip
        subscriber.set_topics(row.topics or [])
        self.session.add(subscriber)
        self.session.flush()
        self._event(subscriber, {"added": True, "status": row.status.value, "topics": row.topics})
        self.report.added += 1

    def update(self, subscriber: Subscriber, row: _Row) -> None:
        changed: list[str] = []
        if row.name and row.name != subscriber.name:
            subscriber.name = row.name
            changed.append("name")
        if row.topics is not None and sorted(row.topics) != sorted(subscriber.topics):
            subscriber.set_topics(row.topics)
            changed.append("topics")
        promote = row.status is SubscriberStatus.CONFIRMED
        if promote and subscriber.status == SubscriberStatus.PENDING:
            subscriber.status = SubscriberStatus.CONFIRMED.value
            subscriber.confirmed_at = self.now
            changed.append("status")
        if not changed:
            self.report.unchanged += 1
            return
        # the trail records which fields changed, and the topics (not personal data)
        self._event(subscriber, {"updated": changed, "topics": subscriber.topics})
        self.report.updated += 1

    def _event(self, subscriber: Subscriber, detail: dict[str, Any]) -> None:
        store.record(
            self.session, ConsentKind.IMPORT, actor=self.actor, email_hash=subscriber.email_hash,
            subscriber=subscriber, consent_text=self.consent_text, detail=detail, now=self.now,
        )  # fmt: skip


# ---------------------------------------------------------------- exporting


def _guard(value: str) -> str:
    """Stop a spreadsheet from running a cell as a formula."""
    return "'" + value if value.startswith(_FORMULA_START) else value


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.isoformat()
    return _guard(str(value))


def export_csv(out: Path | TextIO, *, session: Session) -> int:
    """Write every subscriber and every suppression; returns the number of data rows."""
    if isinstance(out, Path):
        with out.open("w", newline="", encoding="utf-8") as handle:
            return export_csv(handle, session=session)
    writer = csv.writer(out)
    writer.writerow(COLUMNS)
    count = 0
    subscribers = (
        select(Subscriber, Suppression.reason)
        .outerjoin(Suppression, Suppression.email_hash == Subscriber.email_hash)
        .order_by(Subscriber.id)
        .execution_options(yield_per=1000)
    )
    for row, reason in session.execute(subscribers).tuples():
        writer.writerow(_subscriber_cells(row, reason))
        count += 1
    orphans = (  # suppressed addresses with no subscriber row (erased, bounced imports...)
        select(Suppression.email_hash, Suppression.reason)
        .where(~exists().where(Subscriber.email_hash == Suppression.email_hash))
        .order_by(Suppression.id)
        .execution_options(yield_per=1000)
    )
    for email_hash, reason in session.execute(orphans).tuples():
        writer.writerow(["", "", "", "", "", "", "", "", reason, email_hash])
        count += 1
    return count


def _subscriber_cells(row: Subscriber, reason: str | None) -> list[str]:
    values: list[Any] = [
        row.email, row.name, row.status, "; ".join(row.topics), row.created_at,
        row.confirmed_at, row.unsubscribed_at, row.paused_until, reason, row.email_hash,
    ]  # fmt: skip
    return [_cell(v) for v in values]
