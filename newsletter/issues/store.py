"""Issues in the database: import from a source, export back, look up, build content.

Rows store what the editor wrote (overrides), not the merged result, so an
export is the editor's file again and re-importing it changes nothing.  Once
sending has stamped ``published_at`` the content is frozen: re-importing the
same content is a no-op, a different one is refused.
"""

from __future__ import annotations

from dataclasses import replace

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from newsletter.errors import NotFoundError, StateError, ValidationError
from newsletter.issues.assemble import ResourceFacts, build_content, resolve_resources
from newsletter.issues.source import (
    CtaSource,
    ImageSource,
    IssueSource,
    ItemSource,
    SectionSource,
)
from newsletter.models import Issue, IssueItem, IssueSection, IssueStatus, Resource
from newsletter.render.content import IssueContent
from newsletter.resources.library import slugify

# --- lookups ---------------------------------------------------------------------


def find_issue(number: int, *, session: Session) -> Issue | None:
    return session.scalar(select(Issue).where(Issue.number == number))


def get_issue(ref: int | str, *, session: Session) -> Issue:
    """An issue by number or slug; ``NotFoundError`` otherwise."""
    key = str(ref).strip()
    if key.isdigit():
        issue = find_issue(int(key), session=session)
    else:
        issue = session.scalar(select(Issue).where(Issue.slug == key))
    if issue is None:
        raise NotFoundError(f"no issue {key!r} (give its number or slug)")
    return issue


def list_issues(*, session: Session) -> list[Issue]:
    return list(session.scalars(select(Issue).order_by(Issue.number.desc())))


def item_count(issue: Issue) -> int:
    return sum(len(section.items) for section in issue.sections)


# --- rows -> source (export) ------------------------------------------------------


def _image_source(item: IssueItem) -> ImageSource | None:
    fields = (item.image_url, item.image_alt, item.image_caption, item.image_credit)
    if not any(fields):
        return None
    return ImageSource(*fields)


def _item_source(item: IssueItem, slugs: dict[int, str], where: str) -> ItemSource:
    cta = CtaSource(item.cta_text, item.cta_url) if item.cta_text or item.cta_url else None
    return ItemSource(
        resource=slugs[item.resource_id] if item.resource_id is not None else None,
        title=item.title,
        byline=item.byline,
        url=item.url,
        blurb=item.blurb,
        body=item.body_md,
        image=_image_source(item),
        cta=cta,
        where=where,
    )


def _resource_slugs(issue: Issue, *, session: Session) -> dict[int, str]:
    ids = {i.resource_id for s in issue.sections for i in s.items if i.resource_id is not None}
    if not ids:
        return {}
    rows = session.execute(select(Resource.id, Resource.slug).where(Resource.id.in_(ids)))
    return {row.id: row.slug for row in rows}


def export_source(issue: Issue, *, session: Session) -> IssueSource:
    """The issue as an editable source; resources are referenced by slug."""
    slugs = _resource_slugs(issue, session=session)
    name = f"issue {issue.number}"
    sections = [
        SectionSource(
            heading=s.heading,
            topics=list(s.topics or []),
            items=[_item_source(i, slugs, f"{name} item #{i.id}") for i in s.items],
            image=ImageSource(s.image_url, s.image_alt) if s.image_url or s.image_alt else None,
            where=f"{name} section {s.heading!r}",
        )
        for s in issue.sections
    ]
    return IssueSource(
        number=issue.number,
        title=issue.title,
        date=issue.issue_date,
        subject=issue.subject,
        slug=issue.slug,
        status=issue.status,
        preheader=issue.preheader,
        intro=issue.intro_md,
        sections=sections,
        name=name,
    )


def issue_content(issue: Issue, *, session: Session) -> IssueContent:
    """What rendering needs, resolved from the library now (no DB access after this)."""
    source = export_source(issue, session=session)
    return build_content(source, resolve_resources(source, session=session))


def content_for_id(issue_id: int, *, session: Session) -> IssueContent:
    """``issue_content`` by primary key (what campaigns hold)."""
    issue = session.get(Issue, issue_id)
    if issue is None:
        raise NotFoundError(f"no issue with id {issue_id}")
    return issue_content(issue, session=session)


# --- source -> rows (import) ------------------------------------------------------


def _item_row(item: ItemSource, position: int, facts: dict[str, ResourceFacts]) -> IssueItem:
    image = item.image or ImageSource()
    cta = item.cta or CtaSource()
    return IssueItem(
        position=position,
        resource_id=facts[item.resource].id if item.resource else None,
        title=item.title,
        byline=item.byline,
        url=item.url,
        blurb=item.blurb,
        body_md=item.body,
        image_url=image.url,
        image_alt=image.alt,
        image_caption=image.caption,
        image_credit=image.credit,
        cta_text=cta.text,
        cta_url=cta.url,
    )


def _section_rows(source: IssueSource, facts: dict[str, ResourceFacts]) -> list[IssueSection]:
    return [
        IssueSection(
            position=index,
            heading=section.heading,
            topics=list(section.topics),
            items=[_item_row(item, n, facts) for n, item in enumerate(section.items)],
            image_url=section.image.url if section.image else None,
            image_alt=section.image.alt if section.image else None,
        )
        for index, section in enumerate(source.sections)
    ]


def _check_slug(slug: str, number: int, source: IssueSource, *, session: Session) -> None:
    query = select(func.count()).select_from(Issue).where(Issue.slug == slug)
    if session.scalar(query.where(Issue.number != number)):
        raise ValidationError(f"slug {slug!r} is used by another issue", where=source.where("slug"))


def import_source(source: IssueSource, *, session: Session) -> Issue:
    """Create or replace the issue ``source.number``; the caller's transaction scopes it."""
    facts = resolve_resources(source, session=session)
    slug = source.slug or slugify(source.title)
    _check_slug(slug, source.number, source, session=session)
    issue = find_issue(source.number, session=session)
    if issue is None:
        issue = Issue(number=source.number, status=source.status or IssueStatus.DRAFT)
        session.add(issue)
    elif issue.published_at is not None:
        _refuse_changes_to_sent(issue, source, facts, session=session)
        return issue
    _apply(issue, source, slug, facts)
    session.flush()
    return issue


def _apply(issue: Issue, source: IssueSource, slug: str, facts: dict[str, ResourceFacts]) -> None:
    issue.slug = slug
    issue.title = source.title
    issue.issue_date = source.date
    issue.subject = source.subject
    issue.preheader = source.preheader
    issue.intro_md = source.intro
    if source.status:
        issue.status = source.status
    issue.sections = _section_rows(source, facts)


def _comparable(source: IssueSource, facts: dict[str, ResourceFacts]) -> IssueSource:
    """``source`` with every resource reference spelled as its slug (how exports spell it)."""
    sections = [
        SectionSource(
            heading=s.heading,
            topics=list(s.topics),
            items=[_respelled(i, facts) for i in s.items],
            image=s.image,
        )
        for s in source.sections
    ]
    return IssueSource(
        number=source.number,
        title=source.title,
        date=source.date,
        subject=source.subject,
        slug=source.slug or slugify(source.title),
        status=source.status,
        preheader=source.preheader,
        intro=source.intro,
        sections=sections,
    )


def _respelled(item: ItemSource, facts: dict[str, ResourceFacts]) -> ItemSource:
    if item.resource is None:
        return item
    return replace(item, resource=facts[item.resource].slug)


def _refuse_changes_to_sent(
    issue: Issue, source: IssueSource, facts: dict[str, ResourceFacts], *, session: Session
) -> None:
    current = export_source(issue, session=session)
    incoming = _comparable(source, facts)
    incoming.status = source.status or current.status
    if incoming != current:
        sent = issue.published_at.isoformat() if issue.published_at else "?"
        raise StateError(
            f"issue {issue.number} was sent on {sent}; its content is frozen "
            "(give the changed issue a new number)",
            where=source.where(),
        )
