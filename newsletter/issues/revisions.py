"""Revisions of an issue: its whole source after each saved change, to diff, undo and restore.

A revision is the YAML ``newsletter issue export`` writes, so restoring one is
an import of that text (``store.import_source``) and a diff is two texts.  The
first change made in the admin first records the issue as it was (so that
change can be undone too); a change that leaves the source as it was records
nothing, and the details form's saves while someone types (every pause) are
one revision, updated, for up to two minutes.  Undo restores the revision
before the newest and records that as a change of its own, so an undo can
itself be undone.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from newsletter.errors import NotFoundError, ValidationError
from newsletter.issues import editor, store
from newsletter.issues.source import dump_source, parse_source
from newsletter.models import Issue, IssueRevision, utcnow

KEEP = 200  # revisions kept per issue; the oldest go first
# Typing in the details form saves every pause; one burst of typing is one revision.
COALESCED = frozenset({"edited the details"})
COALESCE_SECONDS = 120


def snapshot(issue: Issue, *, session: Session) -> str:
    """The issue's content as YAML; the workflow status is not content and is left out."""
    session.flush()
    source = store.export_source(issue, session=session)
    source.status = None
    return dump_source(source)


def history(issue: Issue, *, session: Session, limit: int = KEEP) -> list[IssueRevision]:
    """Newest first."""
    query = (
        select(IssueRevision).where(IssueRevision.issue_id == issue.id)
        .order_by(IssueRevision.id.desc()).limit(limit)
    )  # fmt: skip
    return list(session.scalars(query))


def _latest(issue: Issue, *, session: Session) -> IssueRevision | None:
    found = history(issue, session=session, limit=1)
    return found[0] if found else None


def baseline(issue: Issue, *, author: str, session: Session) -> None:
    """Before the first recorded change: the issue as it was (imported, duplicated, created)."""
    if _latest(issue, session=session) is None:
        session.add(IssueRevision(issue_id=issue.id, label="as it was", author=author,
                                  source=snapshot(issue, session=session)))  # fmt: skip
        session.flush()


def record(issue: Issue, label: str, *, author: str, session: Session) -> IssueRevision | None:
    """A revision for this change, unless the source did not change."""
    text = snapshot(issue, session=session)
    latest = _latest(issue, session=session)
    if latest is not None and latest.source == text:
        return None
    if latest is not None and _same_burst(latest, label, author, session=session):
        latest.source, latest.created_at = text, utcnow()
        session.flush()
        return latest
    row = IssueRevision(issue_id=issue.id, label=label[:300], author=author, source=text)
    session.add(row)
    session.flush()
    _prune(issue, session=session)
    return row


def _same_burst(latest: IssueRevision, label: str, author: str, *, session: Session) -> bool:
    """The same person still typing in the same form (and not the issue's first revision)."""
    recent = (utcnow() - latest.created_at).total_seconds() < COALESCE_SECONDS
    same = latest.label == label and latest.author == author and label in COALESCED
    return same and recent and previous(latest, session=session) is not None


def _prune(issue: Issue, *, session: Session) -> None:
    old = history(issue, session=session, limit=KEEP + 50)[KEEP:]
    for row in old:
        session.delete(row)


def get_revision(issue: Issue, revision_id: int, *, session: Session) -> IssueRevision:
    row = session.get(IssueRevision, revision_id)
    if row is None or row.issue_id != issue.id:
        raise NotFoundError(f"issue {issue.number} has no revision #{revision_id}")
    return row


def previous(row: IssueRevision, *, session: Session) -> IssueRevision | None:
    query = (
        select(IssueRevision)
        .where(IssueRevision.issue_id == row.issue_id, IssueRevision.id < row.id)
        .order_by(IssueRevision.id.desc()).limit(1)
    )  # fmt: skip
    return session.scalar(query)


@dataclass(frozen=True)
class DiffLine:
    kind: str  # "add", "del", "hunk" or "same"
    text: str


def diff(row: IssueRevision, *, session: Session) -> list[DiffLine]:
    """What this revision changed, against the one before it (a unified diff of the YAML)."""
    before = previous(row, session=session)
    old = before.source.splitlines() if before else []
    lines = difflib.unified_diff(old, row.source.splitlines(), lineterm="", n=2)
    kinds = {"+": "add", "-": "del", "@": "hunk"}
    return [DiffLine(kinds.get(line[:1], "same"), line) for line in list(lines)[2:]]


def restore(issue: Issue, row: IssueRevision, *, session: Session) -> None:
    """The issue's content as it was at ``row`` (a sent or archived issue stays as it is)."""
    editor.ensure_editable(issue)
    source = parse_source(row.source, name=f"issue {issue.number} revision #{row.id}")
    store.import_source(source, session=session)
    session.expire(issue, ["sections"])


def undo(issue: Issue, *, session: Session) -> str:
    """Back to the revision before the newest; the label of the change undone."""
    newest = history(issue, session=session, limit=2)
    if len(newest) < 2:
        raise ValidationError(f"issue {issue.number} has no change to undo")
    restore(issue, newest[1], session=session)
    return newest[0].label
