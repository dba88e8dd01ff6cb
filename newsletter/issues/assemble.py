"""Issue source + library resources -> ``IssueContent`` (what rendering consumes).

Resolution (the only database step) snapshots each referenced resource into a
plain ``ResourceFacts``; ``build_content`` then merges resource and overrides
without touching the database, so the same merge serves a YAML preview, a
stored issue, and tests that have no database at all.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from sqlalchemy.orm import Session

from newsletter.errors import NotFoundError, ValidationError
from newsletter.issues.source import (
    ImageSource,
    IssueSource,
    ItemSource,
    Problems,
    SectionSource,
)
from newsletter.models import Resource
from newsletter.render.content import ImageContent, IssueContent, ItemContent, SectionContent
from newsletter.render.markup import escape_markdown
from newsletter.resources.library import get_resource, slugify


@dataclass(frozen=True)
class ResourceFacts:
    """A library resource as an issue uses it (a detached snapshot of the row)."""

    id: int
    slug: str
    title: str
    url: str | None = None
    summary: str = ""
    type: str | None = None
    source: str | None = None
    authors: str | None = None
    image_url: str | None = None
    image_alt: str | None = None
    image_credit: str | None = None
    call_to_action: str | None = None
    topics: tuple[str, ...] = ()

    @classmethod
    def from_row(cls, row: Resource) -> ResourceFacts:
        return cls(
            id=row.id,
            slug=row.slug,
            title=row.title,
            url=row.url,
            summary=row.summary,
            type=row.type,
            source=row.source,
            authors=row.authors,
            image_url=row.image_url,
            image_alt=row.image_alt,
            image_credit=row.image_credit,
            call_to_action=row.call_to_action,
            topics=tuple(row.topics),
        )


def resolve_resources(source: IssueSource, *, session: Session) -> dict[str, ResourceFacts]:
    """Every ``resource:`` reference resolved; every unknown or repeated one is reported."""
    facts: dict[str, ResourceFacts] = {}
    first_seen: dict[int, str] = {}
    problems = Problems()
    for _section, item in source.walk():
        if item.resource is None:
            continue
        try:
            row = get_resource(item.resource, session=session)
        except NotFoundError as exc:
            problems.add(ValidationError(f"unknown resource: {exc.message}", where=item.where))
            continue
        if row.id in first_seen:
            earlier = first_seen[row.id]
            problems.add(ValidationError(
                f"duplicate item: resource #{row.id} ({row.slug}) is already at {earlier}",
                where=item.where,
            ))  # fmt: skip
            continue
        first_seen[row.id] = item.where
        facts[item.resource] = ResourceFacts.from_row(row)
    problems.raise_any()
    return facts


def _image(override: ImageSource | None, res: ResourceFacts | None) -> ImageContent | None:
    """The card's image; the resource's alt text and credit describe the resource's image only.

    An editor who swaps in another image without writing its alt text gets an
    empty alt (which preflight refuses), never the old picture's description.
    """
    over = override or ImageSource()
    own = res.image_url if res else None
    url = over.url or own
    if not url:
        return None
    inherited = res if res is not None and url == own else None
    return ImageContent(
        url=url,
        alt=over.alt or (inherited.image_alt if inherited else None) or "",
        caption=over.caption,
        credit=over.credit or (inherited.image_credit if inherited else None),
    )


def _byline(item: ItemSource, res: ResourceFacts | None) -> str | None:
    if item.byline:
        return item.byline
    return f"by {res.authors}" if res and res.authors else None


def _blurb(item: ItemSource, res: ResourceFacts | None) -> str:
    if item.blurb is not None:
        return item.blurb
    if item.body is not None:
        return item.body
    return escape_markdown(res.summary) if res else ""


def build_item(item: ItemSource, res: ResourceFacts | None) -> ItemContent:
    """One card: the editor's overrides win over the resource's own fields."""
    url = item.url or (res.url if res else None)
    cta = item.cta
    kind = res.type if res and res.type != "other" else None
    return ItemContent(
        title=item.title or (res.title if res else ""),
        url=url,
        blurb_md=_blurb(item, res),
        kind=kind,
        source=res.source if res else None,
        byline=_byline(item, res),
        image=_image(item.image, res),
        cta_text=(cta.text if cta else None) or (res.call_to_action if res else None),
        cta_url=(cta.url if cta else None) or url,
        topics=res.topics if res else (),
        resource_id=res.id if res else None,
    )


def build_content(source: IssueSource, facts: Mapping[str, ResourceFacts]) -> IssueContent:
    """The renderable issue; ``facts`` must hold every reference (see ``resolve_resources``)."""

    def section(s: SectionSource) -> SectionContent:
        items = tuple(build_item(i, facts[i.resource] if i.resource else None) for i in s.items)
        url = s.image.url if s.image else None
        image = ImageContent(url=url, alt=(s.image and s.image.alt) or "") if url else None
        return SectionContent(heading=s.heading, topics=tuple(s.topics), items=items, image=image)

    return IssueContent(
        number=source.number,
        title=source.title,
        issue_date=source.date,
        subject=source.subject,
        slug=source.slug or slugify(source.title),
        preheader=source.preheader,
        intro_md=source.intro,
        sections=tuple(section(s) for s in source.sections),
    )


def content_from_source(source: IssueSource, *, session: Session) -> IssueContent:
    """Resolve and build in one step (preview of a YAML file without storing it)."""
    return build_content(source, resolve_resources(source, session=session))
