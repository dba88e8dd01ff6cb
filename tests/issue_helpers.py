"""Shared builders for the issue and rendering tests (Issue 42, crafted issues, the library)."""

from __future__ import annotations

from dataclasses import replace
from datetime import date
from pathlib import Path

from sqlalchemy.orm import Session

from newsletter.config import Settings, classify_topics
from newsletter.issues.assemble import ResourceFacts, build_content
from newsletter.issues.source import load_source
from newsletter.render import IssueContent, ItemContent, SectionContent, Theme
from newsletter.resources import library
from newsletter.resources.classify import DEFAULT_TOPICS, classify
from newsletter.resources.parsers import parse_file

REPO = Path(__file__).resolve().parent.parent
ISSUE_42 = REPO / "issues" / "042-2018-04.yaml"
ISSUE_PAGE = REPO / "newsletter" / "sample_data" / "library" / "003_23e90bc3fab8e407.txt"
THEME = Theme()

# The seed page "Issue 42: April 2018", item by item: (title, image alt, photo credit, CTA).
SEED_ITEMS = [
    (
        "Personalized Learning and the Every Student Succeeds Act - Mapping Emerging Trends "
        "for Personalized Learning in State ESSA Plans",
        "Cover of Personalized Learning and the Every Student Succeeds Act Report",
        None,
        "Visit to read the complete article and to download the report.",
    ),
    (
        "Case Study: Distinctive Schools Leads Personalized Learning for English Language "
        "Learners in Illinois and Minnesota",
        "children in classroom sprawled on floor while discussing papers",
        "Photo by Allison Shelley/The Verbatim Agency for American Education: Images of "
        "Teachers and Students in Action",
        "This blog and the complete series may be found at",
    ),
    (
        "Designing for Equity: Leveraging Competency Based Education to Ensure All Students "
        "Succeed",
        None,
        None,
        "Visit to download the file.",
    ),
    ("Scheduling for Learning, Not Convenience", None, None, "Visit to read the complete article."),
]
SEED_URLS = [
    "https://knowledgeworks.org/resources/personalized-learning-essa-state-plans/",
    "https://knowledgeworks.org/resources/distinctive-schools-personalized-learning-ell/",
    "https://knowledgeworks.org/resources/designing-for-equity-competency-based-education/",
    "https://knowledgeworks.org/resources/scheduling-for-learning-not-convenience/",
]


def issue_page_facts() -> dict[str, ResourceFacts]:
    """The issue page's resources as the library would hold them, keyed by slug (no DB)."""
    facts: dict[str, ResourceFacts] = {}
    for n, record in enumerate(parse_file(ISSUE_PAGE).records, start=1):
        record = classify(record, DEFAULT_TOPICS)
        slug = library.slugify(record.title)
        facts[slug] = ResourceFacts(
            id=n,
            slug=slug,
            title=record.title,
            url=record.url,
            summary=record.summary,
            type=record.type,
            source=record.source,
            authors=record.authors,
            image_url=record.image_url,
            image_alt=record.image_alt,
            image_credit=record.image_credit,
            call_to_action=record.call_to_action,
            topics=record.topics,
        )
    return facts


def issue_42() -> IssueContent:
    """Issue 42 built from its YAML source and the seed page, without a database."""
    return build_content(load_source(ISSUE_42), issue_page_facts())


def import_library(seeds: Path, *, session: Session, settings: Settings) -> None:
    records, _warnings = library.parse_files(sorted(seeds.glob("*.txt")))
    library.import_records(records, session=session, topics=classify_topics(settings))


def item(title: str = "A resource", **fields: object) -> ItemContent:
    base = ItemContent(
        title=title,
        url="https://example.org/resources/a",
        blurb_md="A short summary.",
        kind="report",
        cta_text="Read it.",
        cta_url="https://example.org/resources/a",
    )
    return replace(base, **fields)  # type: ignore[arg-type]


def issue(*sections: SectionContent, **fields: object) -> IssueContent:
    """A small valid issue (one section, one item) unless sections are given."""
    base = IssueContent(
        number=7,
        title="Issue 7: July 2017",
        issue_date=date(2017, 7, 1),
        subject="Issue 7: a test issue",
        slug="issue-7-july-2017",
        preheader="Preheader text",
        intro_md="Hello **readers**.",
        sections=sections or (SectionContent("News", (), (item(),)),),
    )
    return replace(base, **fields)  # type: ignore[arg-type]
