"""Issue edits the web editor needs beyond ``newsletter.issues.editor``.

Adding, moving and removing items are ``editor`` operations and are called as
they are; this module adds what only a visual editor does (issue details,
sections, per-item overrides, one-step up/down moves across sections) on the
same rules: ``editor.ensure_editable`` first, positions renumbered 0..n-1, and
every change checked by ``source.check_source``, the same checks a YAML file
gets, so the web and the file can never disagree about what is valid.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date

from sqlalchemy import select
from sqlalchemy.orm import Session

from newsletter.errors import NotFoundError, ValidationError
from newsletter.issues import editor, store
from newsletter.issues.source import check_source
from newsletter.message import check_header_value
from newsletter.models import Issue, IssueItem, IssueSection, IssueStatus

ITEM_OVERRIDES = ("title", "byline", "url", "blurb", "image_url", "image_alt", "image_caption",
                  "image_credit", "cta_text", "cta_url")  # fmt: skip


@dataclass(frozen=True)
class Details:
    """The issue-level fields an editor types."""

    title: str
    subject: str
    issue_date: date
    preheader: str = ""
    intro_md: str = ""


def check(issue: Issue, *, session: Session) -> None:
    """The YAML file's checks (Markdown links and images, item URLs) on the stored issue."""
    session.flush()
    check_source(store.export_source(issue, session=session))


def _required(value: str, what: str) -> str:
    text = value.strip()
    if not text:
        raise ValidationError(f"an issue needs a {what}")
    return text


def update_details(issue: Issue, details: Details, *, session: Session) -> None:
    editor.ensure_editable(issue)
    issue.title = _required(details.title, "title")
    issue.subject = check_header_value("subject", _required(details.subject, "subject"))
    issue.issue_date = details.issue_date
    issue.preheader = details.preheader.strip()
    issue.intro_md = details.intro_md.replace("\r\n", "\n").strip("\n")
    check(issue, session=session)


# --- sections --------------------------------------------------------------------------


def find_section(issue: Issue, section_id: int) -> IssueSection:
    for section in issue.sections:
        if section.id == section_id:
            return section
    raise NotFoundError(f"issue {issue.number} has no section #{section_id}")


def _renumber(rows: Sequence[IssueSection | IssueItem]) -> None:
    for index, row in enumerate(rows):
        row.position = index


def _heading_free(issue: Issue, heading: str, keep: IssueSection | None = None) -> str:
    text = heading.strip()
    if not text:
        raise ValidationError("a section needs a heading")
    for section in issue.sections:
        if section is not keep and section.heading.casefold() == text.casefold():
            raise ValidationError(f"issue {issue.number} already has a section {text!r}")
    return text


def add_section(
    issue: Issue, heading: str, topics: Sequence[str], *, session: Session
) -> IssueSection:
    """A new, empty section at the end (``editor.section_named`` creates it)."""
    editor.ensure_editable(issue)
    section = editor.section_named(issue, _heading_free(issue, heading), create=True)
    section.topics = list(dict.fromkeys(topics))
    session.flush()
    return section


def update_section(
    issue: Issue, section_id: int, heading: str, topics: Sequence[str], *, session: Session
) -> None:
    editor.ensure_editable(issue)
    section = find_section(issue, section_id)
    section.heading = _heading_free(issue, heading, keep=section)
    section.topics = list(dict.fromkeys(topics))
    session.flush()


def set_section_image(
    issue: Issue, section_id: int, url: str | None, alt: str | None, *, session: Session
) -> IssueSection:
    """The banner under a section's heading (``None``: no image)."""
    editor.ensure_editable(issue)
    section = find_section(issue, section_id)
    section.image_url = (url or "").strip() or None
    section.image_alt = (alt or "").strip() or None
    check(issue, session=session)
    return section


def move_section(issue: Issue, section_id: int, step: int, *, session: Session) -> None:
    """One place up (-1) or down (+1); at either end nothing moves."""
    editor.ensure_editable(issue)
    section = find_section(issue, section_id)
    index = issue.sections.index(section)
    target = index + step
    if 0 <= target < len(issue.sections):
        issue.sections.insert(target, issue.sections.pop(index))
        _renumber(issue.sections)
        session.flush()


def remove_section(issue: Issue, section_id: int, *, session: Session) -> None:
    """The section and its items (the library's resources stay)."""
    editor.ensure_editable(issue)
    issue.sections.remove(find_section(issue, section_id))
    _renumber(issue.sections)
    session.flush()


# --- items -----------------------------------------------------------------------------


def nudge_item(issue: Issue, item_id: int, step: int, *, session: Session) -> None:
    """One place up or down; past a section's edge it moves into the neighbouring section."""
    section, item = editor.find_item(issue, item_id)
    index = section.items.index(item)
    position = index + 1 + step  # 1-based, as editor.move_item takes it
    if 1 <= position <= len(section.items):
        editor.move_item(issue, item_id, to=position, session=session)
        return
    neighbour = issue.sections.index(section) + step
    if not 0 <= neighbour < len(issue.sections):
        editor.ensure_editable(issue)
        return
    target = issue.sections[neighbour]
    to = len(target.items) + 1 if step < 0 else 1
    editor.move_item(issue, item_id, to=to, section=target.heading, session=session)


def update_item(
    issue: Issue, item_id: int, values: Mapping[str, str], *, session: Session
) -> IssueItem:
    """Overrides for one item; an empty field means "use the library's value"."""
    editor.ensure_editable(issue)
    _section, item = editor.find_item(issue, item_id)
    for name in ITEM_OVERRIDES:
        if name in values:
            text = values[name].replace("\r\n", "\n").strip()
            setattr(item, name, text or None)
    check(issue, session=session)
    return item


# --- whole-issue edits: drag-and-drop order, duplication --------------------------------


def reorder(issue: Issue, order: Sequence[tuple[int, Sequence[int]]], *, session: Session) -> None:
    """Sections and items in the order a drag-and-drop left them, all at once.

    ``order`` lists every section id with its item ids; anything missing, repeated or
    foreign is refused whole, so a stale page (another tab removed an item) cannot
    silently drop or duplicate anything.
    """
    editor.ensure_editable(issue)
    sections = {s.id: s for s in issue.sections}
    items = {i.id: i for s in issue.sections for i in s.items}
    given_sections = [sid for sid, _ in order]
    given_items = [iid for _, ids in order for iid in ids]
    if sorted(given_sections) != sorted(sections) or sorted(given_items) != sorted(items):
        raise ValidationError("the page is out of date: reload the editor and move again")
    for section_id, item_ids in order:
        section = sections[section_id]
        for item_id in item_ids:
            item = items[item_id]
            if item.section is not section:
                item.section.items.remove(item)
                section.items.append(item)
    issue.sections.sort(key=lambda s: given_sections.index(s.id))
    _renumber(issue.sections)
    for section_id, item_ids in order:
        section = sections[section_id]
        section.items.sort(key=lambda i: list(item_ids).index(i.id))
        _renumber(section.items)
    session.flush()


def duplicate_last(today: date, *, session: Session) -> Issue:
    """The newest issue copied as the next number's draft: same sections, items and intro.

    The copy is a starting point for next month (replace the items, keep the structure);
    it is dated today and named "<title> (copy)" until the editor renames it.
    """
    last = session.scalar(select(Issue).order_by(Issue.number.desc()).limit(1))
    if last is None:
        raise ValidationError("there is no issue to duplicate yet; create the first one")
    source = store.export_source(last, session=session)
    source.number = last.number + 1
    source.title = f"{last.title} (copy)"
    source.slug = f"{last.slug}-copy-{source.number}"[:200]
    source.date = today
    source.status = IssueStatus.DRAFT
    return store.import_source(source, session=session)


def add_proposed(issue: Issue, resource_id: int, *, session: Session) -> IssueItem:
    """A proposed resource the editor ticked, in the section named after its first topic
    ("In brief" without one), created if the issue has none by that name.  The section
    gets no topics: who receives it stays the editor's choice."""
    from newsletter.resources.library import get_resource

    resource = get_resource(resource_id, session=session)
    heading = resource.topics[0] if resource.topics else "In brief"
    for section in issue.sections:
        if section.heading.casefold() == heading.casefold():
            heading = section.heading
    return editor.add_item(issue, section=heading, resource=str(resource_id), session=session)
