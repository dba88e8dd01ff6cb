"""Editor operations on stored issues: create, add/move/remove items, change status.

Positions are 1-based for people (``--position 1`` is the top) and stored
0-based, renumbered after every change so they always read 0..n-1.  A sent
issue (``published_at`` set) or an archived one is frozen.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date

from sqlalchemy import select
from sqlalchemy.orm import Session

from newsletter.errors import NotFoundError, StateError, ValidationError
from newsletter.issues.store import find_issue
from newsletter.models import Issue, IssueItem, IssueSection, IssueStatus
from newsletter.resources.library import get_resource, slugify


def ensure_editable(issue: Issue) -> None:
    """Refuse to change content that subscribers already received (or that is archived)."""
    if issue.published_at is not None:
        raise StateError(f"issue {issue.number} was sent; its content is frozen")
    if issue.status == IssueStatus.ARCHIVED:
        raise StateError(f"issue {issue.number} is archived; set it to draft to edit it")


def new_issue(
    *,
    number: int,
    title: str,
    issue_date: date,
    subject: str,
    preheader: str = "",
    intro_md: str = "",
    session: Session,
) -> Issue:
    """An empty draft issue; refuses a number or slug already taken."""
    if number < 1:
        raise ValidationError("an issue number must be positive")
    if not title.strip():
        raise ValidationError("an issue needs a title")
    if not subject.strip():
        raise ValidationError("missing subject")
    if find_issue(number, session=session) is not None:
        raise ValidationError(f"issue {number} already exists")
    slug = slugify(title)
    if session.scalar(select(Issue.id).where(Issue.slug == slug)) is not None:
        raise ValidationError(f"another issue already uses the slug {slug!r}; change the title")
    issue = Issue(
        number=number,
        slug=slug,
        title=title.strip(),
        issue_date=issue_date,
        subject=subject.strip(),
        preheader=preheader,
        intro_md=intro_md,
        status=IssueStatus.DRAFT,
        sections=[],
    )
    session.add(issue)
    session.flush()
    return issue


def _renumber(rows: Sequence[IssueSection | IssueItem]) -> None:
    for index, row in enumerate(rows):
        row.position = index


def _insert_at(items: list[IssueItem], item: IssueItem, position: int | None) -> None:
    """Insert at a 1-based position (None or past the end: last)."""
    if position is not None and position < 1:
        raise ValidationError("positions start at 1")
    index = len(items) if position is None else min(position - 1, len(items))
    items.insert(index, item)
    _renumber(items)


def section_named(issue: Issue, heading: str, *, create: bool) -> IssueSection:
    """The section with this heading (case-insensitive), created at the end if asked."""
    for section in issue.sections:
        if section.heading.casefold() == heading.strip().casefold():
            return section
    if not create:
        raise NotFoundError(f"issue {issue.number} has no section {heading!r}")
    section = IssueSection(heading=heading.strip(), topics=[], items=[])
    issue.sections.append(section)
    _renumber(issue.sections)
    return section


def add_item(
    issue: Issue, *, section: str, resource: str, position: int | None = None, session: Session
) -> IssueItem:
    """Add a library resource to a section (created if new); a resource appears once per issue."""
    ensure_editable(issue)
    row = get_resource(resource, session=session)
    for existing in issue.sections:
        if any(i.resource_id == row.id for i in existing.items):
            raise ValidationError(
                f"duplicate item: resource #{row.id} is already in section {existing.heading!r}"
            )
    target = section_named(issue, section, create=True)
    item = IssueItem(resource_id=row.id)
    _insert_at(target.items, item, position)
    session.flush()
    return item


def find_item(issue: Issue, item_id: int) -> tuple[IssueSection, IssueItem]:
    for section in issue.sections:
        for item in section.items:
            if item.id == item_id:
                return section, item
    raise NotFoundError(f"issue {issue.number} has no item #{item_id}")


def move_item(
    issue: Issue, item_id: int, *, to: int, section: str | None = None, session: Session
) -> IssueItem:
    """Move an item to a 1-based position, optionally into another (existing) section."""
    ensure_editable(issue)
    source_section, item = find_item(issue, item_id)
    target = section_named(issue, section, create=False) if section else source_section
    source_section.items.remove(item)
    _renumber(source_section.items)
    _insert_at(target.items, item, to)
    session.flush()
    return item


def remove_item(issue: Issue, item_id: int, *, session: Session) -> None:
    ensure_editable(issue)
    section, item = find_item(issue, item_id)
    section.items.remove(item)
    _renumber(section.items)
    session.flush()


def set_status(issue: Issue, status: str, *, session: Session) -> None:
    """draft -> ready -> archived (and back to draft to edit again)."""
    if status not in set(IssueStatus):
        raise ValidationError(f"status must be one of {', '.join(IssueStatus)}")
    issue.status = status
    session.flush()
