"""CSV import and export of subscribers, suppressions included.

Columns are found by header, whatever the spreadsheet called them (``E-mail``,
``Email Address``, ``Full name``, ``First name`` + ``Last name``, ``Topics``),
and exports of other tools (Mailchimp, Substack, listmonk, Buttondown, Ghost:
``formats``) are recognised from theirs.  The whole file is read and checked
before anything is written (a malformed file stores nothing); then ``bulk``
merges it a chunk at a time.  A bad row is reported with its line number and
skipped, a suppressed address is skipped and counted, an existing subscriber
is updated, and a repeated row merges into the first, so importing the same
file twice changes nothing.

Exports neutralise spreadsheet formulas (a name such as ``=HYPERLINK(...)``
typed into the public form) with a leading apostrophe, which import removes.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, TextIO

from sqlalchemy import exists, select
from sqlalchemy.orm import Session

from newsletter.csvfiles import csv_error_message
from newsletter.errors import ImportFormatError, ValidationError
from newsletter.models.subscribers import (
    Subscriber,
    SubscriberStatus,
    Suppression,
    SuppressionReason,
)
from newsletter.sending.localtime import browser_zone, check_zone
from newsletter.subscribers import bulk, formats, store
from newsletter.subscribers.addresses import hash_normalised, normalise_email
from newsletter.subscribers.bulk import Progress
from newsletter.subscribers.ips import masked_ip
from newsletter.subscribers.store import Actor

COLUMNS = (
    "email", "name", "status", "topics", "created_at", "confirmed_at",
    "unsubscribed_at", "paused_until", "suppressed", "email_hash", "time_zone",
)  # fmt: skip
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_TOPIC_SPLIT = re.compile(r"[;|,]")
_HEX64 = re.compile(r"[0-9a-f]{64}")
MAX_LISTED = 500  # problems listed per kind in a report (all are counted)


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
    counts: dict[str, int] = field(default_factory=dict)  # problems of each kind, all of them
    unmatched_topics: dict[str, int] = field(default_factory=dict)  # tool tags -> rows
    format: str = "native"
    dry_run: bool = False

    def note(self, kind: str, line: int, message: str) -> None:
        """Count a problem; list it while fewer than ``MAX_LISTED`` of its kind are listed."""
        self.counts[kind] = self.counts.get(kind, 0) + 1
        listed: list[RowProblem] = getattr(self, kind)
        if len(listed) < MAX_LISTED:
            listed.append(RowProblem(line, message))

    def count(self, kind: str) -> int:
        return self.counts.get(kind, len(getattr(self, kind)))

    def as_dict(self) -> dict[str, Any]:
        def lines(items: list[RowProblem]) -> list[dict[str, Any]]:
            return [{"line": p.line, "message": p.message} for p in items]

        return {
            "format": self.format,
            "dry_run": self.dry_run,
            "added": self.added,
            "updated": self.updated,
            "unchanged": self.unchanged,
            "suppressed": self.suppressed,
            "suppressions_added": self.suppressions_added,
            "invalid": lines(self.invalid),
            "duplicates": lines(self.duplicates),
            "warnings": lines(self.warnings),
            "counts": {k: self.count(k) for k in ("invalid", "duplicates", "warnings")},
            "unmatched_topics": dict(sorted(self.unmatched_topics.items())),
        }


@dataclass(slots=True)
class Row:
    """One usable subscriber row, validated and normalised."""

    line: int
    email: str
    email_hash: str
    name: str | None
    topics: list[str] | None  # None: the file says nothing about topics
    status: SubscriberStatus
    opted_in_at: datetime | None = None  # the original tool's times and IP, when it kept them
    confirmed_at: datetime | None = None
    opt_in_ip: str | None = None  # masked (never the address in clear)
    time_zone: str | None = None  # IANA name (local-time sending); None: the default


@dataclass(frozen=True, slots=True)
class Held:
    """A row that carries a suppression: the address is never to be mailed or re-added."""

    line: int
    email_hash: str
    reason: SuppressionReason
    note: str = ""
    at: datetime | None = None


@dataclass
class Parsed:
    """A whole file, read and validated before anything is written."""

    format: formats.Format
    rows: list[Row] = field(default_factory=list)
    held: list[Held] = field(default_factory=list)


# ---------------------------------------------------------------- reading


def _open(path: Path) -> TextIO:
    try:
        return path.open(encoding="utf-8-sig", newline="")
    except OSError as exc:
        raise ImportFormatError(f"cannot read: {exc.strerror or exc}", where=str(path)) from None


def _delimiter(header: str) -> str:
    """Comma, semicolon (European spreadsheets) or tab, judged from the header line."""
    return max(",;\t", key=header.count)


def _first_undecodable_line(path: Path) -> int | None:
    with path.open("rb") as handle:
        for number, raw in enumerate(handle, 1):
            try:
                raw.decode("utf-8")
            except UnicodeDecodeError:
                return number
    return None


def _csv_problem(exc: Exception, path: Path, line: int) -> ImportFormatError:
    """A reading error as one line naming the place (never csv's own traceback)."""
    if isinstance(exc, UnicodeDecodeError):  # decoded ahead in blocks: find the line itself
        where = f"{path}:{_first_undecodable_line(path) or line}"
        return ImportFormatError("not UTF-8 text (save the file as UTF-8)", where=where)
    if isinstance(exc, OSError):
        return ImportFormatError(f"cannot read: {exc.strerror or exc}", where=str(path))
    assert isinstance(exc, csv.Error)
    return ImportFormatError(csv_error_message(exc), where=f"{path}:{line}")


def _records(
    path: Path, forced: str | None = None
) -> tuple[formats.Format, set[str], Iterator[tuple[int, dict[str, str]]]]:
    """The file's format, its header labels and its (line, {field: cell}) rows."""
    handle = _open(path)
    try:
        fmt, labels, columns, reader = _header(handle, path, forced)
    except BaseException:
        handle.close()
        raise
    return fmt, labels, _rows(handle, reader, columns, path)


def _header(
    handle: TextIO, path: Path, forced: str | None
) -> tuple[formats.Format, set[str], dict[str, int], Any]:
    """Read the header row, detect (or check) the format and find our columns."""
    try:
        header_line = handle.readline()
        handle.seek(0)
        reader = csv.reader(handle, delimiter=_delimiter(header_line))
        header = next(reader, None)
    except (csv.Error, UnicodeDecodeError, OSError) as exc:
        raise _csv_problem(exc, path, 1) from None
    if not header or not any(h.strip() for h in header):
        raise ImportFormatError("empty file (no header row)", where=str(path))
    fmt = formats.detect(header, forced)
    labels = {formats.label(h) for h in header}
    if forced and fmt is not formats.NATIVE and not fmt.detect(labels):
        raise ImportFormatError(
            f"the header is not that of a {fmt.title} export", where=f"{path}:1"
        )
    columns = fmt.map_header(header)
    if "email" not in columns and "email_hash" not in columns:
        raise ImportFormatError(
            "no email column (expected a header such as email, e-mail or address)",
            where=f"{path}:1",
        )
    return fmt, labels, columns, reader


def _rows(
    handle: TextIO, reader: Any, columns: dict[str, int], path: Path
) -> Iterator[tuple[int, dict[str, str]]]:
    with handle:
        while True:
            line = reader.line_num + 1
            try:
                cells = next(reader, None)
            except (csv.Error, UnicodeDecodeError, OSError) as exc:
                raise _csv_problem(exc, path, line) from None
            if cells is None:
                return
            if any(cell.strip() for cell in cells):
                width = len(cells)
                yield line, {k: _unguard(cells[i]) if i < width else "" for k, i in columns.items()}


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


@dataclass
class _Reader:
    """Turns each record of one file into a ``Row`` or a ``Held``, reporting the rest."""

    fmt: formats.Format
    allowed: dict[str, str]  # casefolded topic -> its configured spelling
    default_status: SubscriberStatus
    report: ImportReport
    header: set[str]  # the file's column labels (Mailchimp's tell its status)

    def topics(self, raw: str | None, line: int) -> list[str] | None:
        if raw is None or not raw.strip():
            return None
        native = self.fmt is formats.NATIVE
        names = _TOPIC_SPLIT.split(raw) if native else formats.split_tags(raw)
        chosen: list[str] = []
        for topic in (t.strip() for t in names):
            if not topic:
                continue
            known = self.allowed.get(topic.casefold())
            if known is not None:
                chosen.append(known)
            elif native:
                self.report.note("warnings", line, f"unknown topic {topic[:100]!r} ignored")
            else:  # a tool's tag or label that is not one of our topics: counted, not per row
                key = topic[:100]
                self.report.unmatched_topics[key] = self.report.unmatched_topics.get(key, 0) + 1
        return list(dict.fromkeys(chosen))

    def read(self, line: int, cells: dict[str, str]) -> Row | Held:
        """``ValidationError`` for a row that cannot be imported."""
        if cells.get("suppressed", "").strip():
            return _held_from_export(line, cells)
        disposition = self.fmt.disposition(cells, self.header)
        email = normalise_email(cells.get("email", ""))
        if disposition.reason is not None:
            at = formats.parse_time(cells.get("ended_at", ""))
            return Held(line, hash_normalised(email), disposition.reason, disposition.note, at)
        if disposition.status is None and self.fmt is not formats.NATIVE:
            raise ValidationError(f"unknown {self.fmt.title} status {disposition.note!r}")
        status = disposition.status or self.default_status
        opted_in = formats.parse_time(cells.get("optin_time", ""))
        confirmed = formats.parse_time(cells.get("confirm_time", "")) or (
            opted_in if status is SubscriberStatus.CONFIRMED else None
        )
        ip = masked_ip(cells.get("confirm_ip") or cells.get("optin_ip"))
        return Row(
            line, email, hash_normalised(email), _name(cells),
            self.topics(cells.get("topics"), line), status, opted_in, confirmed, ip,
            self.time_zone(cells.get("time_zone", ""), line),
        )  # fmt: skip

    def time_zone(self, raw: str, line: int) -> str | None:
        """Our CSV: an unknown zone makes the row invalid (it names the line); another tool's
        export: a warning, and the default zone applies."""
        if not raw.strip():
            return None
        if self.fmt is formats.NATIVE:
            return check_zone(raw, where="time_zone")
        known = browser_zone(raw)
        if known is None:
            self.report.note("warnings", line, f"unknown time zone {raw[:64]!r} ignored")
        return known


def _held_from_export(line: int, cells: dict[str, str]) -> Held:
    """A row of our own export that carries a suppression: keep honouring it here."""
    try:
        reason = SuppressionReason(cells["suppressed"].strip().lower())
    except ValueError:
        raise ValidationError("unknown suppression reason") from None
    raw_hash = cells.get("email_hash", "").strip().lower()
    if cells.get("email", "").strip():
        email_hash = hash_normalised(normalise_email(cells["email"]))
    elif _HEX64.fullmatch(raw_hash):
        email_hash = raw_hash
    else:
        raise ValidationError("suppression row without an email or a valid email_hash")
    return Held(line, email_hash, reason, "imported")


def _merge(first: Row, later: Row) -> None:
    """A repeated address: keep the first row, filling gaps and adding topics from the later."""
    first.name = first.name or later.name
    first.time_zone = first.time_zone or later.time_zone
    if later.topics is not None:
        first.topics = list(dict.fromkeys([*(first.topics or []), *later.topics]))


def parse(
    path: Path,
    *,
    allowed_topics: Sequence[str],
    status: SubscriberStatus = SubscriberStatus.CONFIRMED,
    fmt: str | None = None,
    report: ImportReport | None = None,
) -> tuple[Parsed, ImportReport]:
    """Read and check the whole file; ``ImportFormatError`` (nothing stored) for a bad one."""
    report = report or ImportReport()
    detected, header, records = _records(path, fmt)
    report.format = detected.name
    known = {name for names in detected.columns.values() for name in names}
    unknown = sorted(h for h in header - known if h)
    if unknown and detected is formats.NATIVE:  # a tool's extra columns are expected
        report.note("warnings", 1, f"ignored unknown column(s): {', '.join(unknown)[:300]}")
    allowed = {t.casefold(): t for t in allowed_topics}
    reader = _Reader(detected, allowed, status, report, header)
    parsed = Parsed(detected)
    rows: dict[str, Row] = {}
    held: dict[str, Held] = {}
    for line, cells in records:
        try:
            item = reader.read(line, cells)
        except ValidationError as exc:
            report.note("invalid", line, exc.message)
            continue
        if isinstance(item, Held):
            held.setdefault(item.email_hash, item)
        elif item.email in rows:
            report.note("duplicates", line, f"repeats line {rows[item.email].line}")
            _merge(rows[item.email], item)
        else:
            rows[item.email] = item
    parsed.rows, parsed.held = list(rows.values()), list(held.values())
    return parsed, report


# ---------------------------------------------------------------- importing


def import_csv(
    path: Path,
    *,
    session: Session,
    allowed_topics: Sequence[str],
    status: SubscriberStatus = SubscriberStatus.CONFIRMED,
    consent_text: str | None = None,
    actor: Actor | None = None,
    fmt: str | None = None,
    dry_run: bool = False,
    commit_chunks: bool = False,
    progress: Progress | None = None,
) -> ImportReport:
    """Import subscribers from a CSV file (ours, or another tool's export).

    The whole file is read and checked first, so a malformed file stores
    nothing; then rows are merged in bulk, a chunk at a time.  By default the
    chunks stay in the caller's transaction; ``commit_chunks`` commits each one
    (the CLI and the admin do, so the database is never held for long; a
    re-run after a crash is idempotent).  ``dry_run`` reports what would change
    and writes nothing.
    """
    actor = actor or Actor(source=f"csv:{path}")
    parsed, report = parse(path, allowed_topics=allowed_topics, status=status, fmt=fmt)
    report.dry_run = dry_run
    plan = bulk.Plan(
        session=session, actor=actor, consent_text=consent_text, report=report,
        tool=None if parsed.format is formats.NATIVE else parsed.format.name,
        dry_run=dry_run, commit_chunks=commit_chunks, progress=progress,
    )  # fmt: skip
    plan.run(parsed.rows, parsed.held)
    return report


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
        writer.writerow(["", "", "", "", "", "", "", "", reason, email_hash, ""])
        count += 1
    return count


def _subscriber_cells(row: Subscriber, reason: str | None) -> list[str]:
    values: list[Any] = [
        row.email, row.name, row.status, "; ".join(row.topics), row.created_at,
        row.confirmed_at, row.unsubscribed_at, row.paused_until, reason, row.email_hash,
        row.time_zone,
    ]  # fmt: skip
    return [_cell(v) for v in values]
