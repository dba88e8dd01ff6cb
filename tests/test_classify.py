"""Classification: dedupe keys for URLs/titles, type inference, topic tagging."""

from __future__ import annotations

from pathlib import Path

import pytest

from newsletter.resources.classify import (
    DEFAULT_TOPICS,
    RESOURCE_TYPES,
    Topic,
    classify,
    infer_topics,
    infer_type,
    normalise_title,
    normalise_type,
    normalise_url,
)
from newsletter.resources.parsers import parse_file
from newsletter.resources.records import ResourceRecord


@pytest.fixture(scope="module")
def seed_records(seeds_dir: Path) -> dict[str, ResourceRecord]:
    """Every seed record by title (a missing seed directory fails, never skips)."""
    paths = sorted(seeds_dir.glob("*.txt"))
    return {r.title: r for path in paths for r in parse_file(path).records}


# --------------------------------------------------------------------------- URLs and titles


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("HTTPS://Aurora-Institute.ORG/Resource/", "https://aurora-institute.org/Resource"),
        ("http://example.org:80/a", "http://example.org/a"),
        ("https://example.org:443/", "https://example.org"),
        ("https://example.org:8443/a", "https://example.org:8443/a"),
        ("https://example.org/a#section-2", "https://example.org/a"),
        (
            "https://example.org/a?utm_source=rss&utm_medium=email&b=2&a=1",
            "https://example.org/a?a=1&b=2",
        ),
        ("https://example.org/a?fbclid=xyz&mc_cid=1", "https://example.org/a"),
        ("https://example.org/a?b=2&a=1&a=0", "https://example.org/a?a=1&a=0&b=2"),
        ("  https://user@Example.org./x  ", "https://user@example.org/x"),
        ("https://[2001:DB8::1]:443/x", "https://[2001:db8::1]/x"),
        ("https://example.org:notaport/x", "https://example.org:notaport/x"),
    ],
)
def test_normalise_url(url: str, expected: str) -> None:
    assert normalise_url(url) == expected


def test_normalise_url_makes_variants_equal() -> None:
    variants = [
        "https://www.example.org/report/",
        "HTTPS://WWW.EXAMPLE.ORG/report",
        "https://www.example.org:443/report?utm_campaign=april#top",
    ]
    assert len({normalise_url(v) for v in variants}) == 1


@pytest.mark.parametrize(
    ("title", "expected"),
    [
        (
            "Kettle Moraine’s Approach  to\u00a0Personalized Learning.",
            "kettle moraine's approach to personalized learning",
        ),
        ("“Fake News” – A Primer", '"fake news" - a primer'),
        (
            "  Competency-Based Education: Staying Shallow or Going Deep? ",
            "competency-based education: staying shallow or going deep",
        ),
        ("The Consortium (MAPLE)", "the consortium (maple)"),
        ("STRASSE", "strasse"),
        ("...Ellipsis Title…", "ellipsis title"),
    ],
)
def test_normalise_title(title: str, expected: str) -> None:
    assert normalise_title(title) == expected


def test_normalise_title_unifies_curly_and_straight_quotes() -> None:
    assert normalise_title("Here’s What Happens") == normalise_title("Here's what happens")


# --------------------------------------------------------------------------- types


@pytest.mark.parametrize(
    ("title", "summary", "expected"),
    [
        (
            "Season 2",
            "In this podcast, eight student interns report stories from inside NYC.",
            "podcast",
        ),
        ("Envisioning the Graduate of the Future", "This course was developed by MIT.", "course"),
        (
            "State Strategies",
            "This issue brief outlines state policy recommendations. The report says",
            "issue brief",
        ),
        ("State Policy", "This brief highlights four strategies.", "issue brief"),
        ("Visioning Toolkit: Laying the Groundwork", "It helps districts.", "toolkit"),
        (
            "The State Innovator’s Toolkit: A Guide to Managing Innovation",
            "This guide addresses ESSA.",
            "toolkit",
        ),
        ("Resources for Creating a School Culture", "This tool offers lessons.", "toolkit"),
        (
            "Restorative Justice: Resources for Schools",
            "This resource page focuses on practices.",
            "toolkit",
        ),
        ("From Vision to Reality", "This report was written to help school districts.", "report"),
        ("Innovative Assessments", "In this blog article, the manager explores ESSA.", "article"),
        ("Model Schools", "This article catalogues successful models.", "article"),
        ("Kettle Moraine", "This series of articles provides an in-depth look.", "article"),
        (
            "Golden Ticket",
            "This dynamic case study combines narrative, video, data visuals.",
            "case study",
        ),
        (
            "Case Study: Lindsay High School",
            "This article features Lindsay High School.",
            "case study",
        ),
        ("Communicating", "This white paper is a guide to creating conversations.", "white paper"),
        ("Fit for Purpose", "This paper explores state policy.", "report"),
        ("Designing for Equity", "This publication offers equity strategies.", "report"),
        ("Trusted Learning", "The following guidebook was designed to help communities.", "guide"),
        ("Guide for Creating Trusted Learning Environments", "Communities need it.", "guide"),
        (
            "A Year Of Love",
            "NPR's Cory Turner reported. Code Switch, an NPR podcast, aired it.",
            "article",
        ),
        (
            "Quality Counts 2018",
            "Every year, Education Week releases a Quality Counts report.",
            "report",
        ),
        ("Resource Bank", "It helps states. Their website features a large database.", "website"),
        ("Watch This", "This video explains blended learning.", "video"),
        ("Report Cards Matter", "Families read them.", None),
        ("MAPLE", "MAPLE is an initiative of the LearnLaunch Institute.", None),
        ("Interns", "Eight student interns report stories from inside the system.", None),
    ],
)
def test_infer_type(title: str, summary: str, expected: str | None) -> None:
    assert infer_type(title, summary) == expected


def test_infer_type_uses_hints_last() -> None:
    assert infer_type(
        "Scheduling", "A/B or block?", hints="Visit to read the complete article."
    ) == ("article")
    assert infer_type("X", "This podcast rocks.", hints="Visit to read the complete article.") == (
        "podcast"
    )


def test_resource_types() -> None:
    assert set(RESOURCE_TYPES) == {
        "report",
        "article",
        "podcast",
        "course",
        "toolkit",
        "guide",
        "case study",
        "issue brief",
        "white paper",
        "video",
        "website",
        "other",
    }


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("Report", "report"),
        ("Podcasts", "podcast"),
        ("case-study", "case study"),
        ("Case Studies", "case study"),
        ("issue_brief", "issue brief"),
        ("Whitepaper", "white paper"),
        ("blog post", "article"),
        ("webinar", "video"),
        ("infographic", None),
        ("", None),
    ],
)
def test_normalise_type(raw: str, expected: str | None) -> None:
    assert normalise_type(raw) == expected


# --------------------------------------------------------------------------- topics


def test_infer_topics_whole_word_case_insensitive_with_plurals() -> None:
    topics = [Topic("Assessment", ("assessment",)), Topic("Equity", ("equity",))]
    assert infer_topics("New ASSESSMENTS for all", topics) == ("Assessment",)
    assert infer_topics("A reassessment of inequity", topics) == ()


def test_infer_topics_keeps_the_topic_list_order() -> None:
    text = "Equity and technology in personalized learning"
    assert infer_topics(text, DEFAULT_TOPICS) == (
        "Personalized Learning",
        "Equity",
        "Technology & Connectivity",
    )


def test_infer_topics_hyphens_and_spaces_are_interchangeable() -> None:
    assert "Competency-Based Education" in infer_topics("competency based models", DEFAULT_TOPICS)
    assert "School Culture & SEL" in infer_topics("social–emotional skills", DEFAULT_TOPICS)


def test_acronym_keywords_are_case_sensitive() -> None:
    assert "English Language Learners" in infer_topics("support for ELLs", DEFAULT_TOPICS)
    assert "English Language Learners" not in infer_topics("ring the bell, ell", DEFAULT_TOPICS)
    assert "Policy & ESSA" in infer_topics("Under ESSA", DEFAULT_TOPICS)


def test_default_topics_cover_the_org_sections() -> None:
    names = {t.name for t in DEFAULT_TOPICS}
    assert {
        "Personalized Learning",
        "Competency-Based Education",
        "Assessment",
        "Policy & ESSA",
        "Equity",
        "English Language Learners",
        "Educator Development",
        "School Culture & SEL",
        "Technology & Connectivity",
        "Media Literacy",
    } <= names
    assert all(t.keywords for t in DEFAULT_TOPICS)


# --------------------------------------------------------------------------- classify


def test_classify_fills_type_and_merges_topics() -> None:
    record = ResourceRecord(
        title="Separating Facts from Myths in the Competency-Based Transcript",
        summary="This article discusses misconceptions.",
        topics=("personalized learning", "ESSA", "Rural schools", "Personalized Learning"),
    )
    result = classify(record, DEFAULT_TOPICS)
    assert result.type == "article"
    assert result.topics == (
        "Personalized Learning",
        "Policy & ESSA",
        "Rural schools",
        "Competency-Based Education",
        "Assessment",
    )
    assert record.type is None  # records are immutable; classify returns a copy


def test_classify_keeps_a_given_type_and_falls_back_to_other() -> None:
    assert classify(ResourceRecord(title="X", summary="This podcast", type="report"), []).type == (
        "report"
    )
    assert classify(ResourceRecord(title="Golden Ticket"), []).type == "other"


def test_classify_uses_alt_text_and_call_to_action_as_hints() -> None:
    record = ResourceRecord(
        title="Personalized Learning and the Every Student Succeeds Act",
        summary="Over the past decade, a shift toward personalization has begun.",
        image_alt="Cover of Personalized Learning and the Every Student Succeeds Act Report",
        call_to_action="Visit to read the complete article and to download the report.",
    )
    assert classify(record, DEFAULT_TOPICS).type == "report"


SEED_TYPES = {
    "Envisioning the Graduate of the Future": "course",
    "State Strategies to Develop Teacher Capacity for Personalized, Competency-Based Learning": (
        "issue brief"
    ),
    "Rethinking State Accountability to Support Personalized, Competency-Based Learning in K-12 "
    "Education": "issue brief",
    "Visioning Toolkit: Laying the Groundwork for a Community-Wide Vision for Personalized "
    "Learning": "toolkit",
    "The State Innovator’s Toolkit: A Guide to Successfully Managing Innovation under ESSA": (
        "toolkit"
    ),
    "Golden Ticket": "case study",
    "Case Study: Lindsay High School Transforms Learning for English Language Learners with "
    "Personalized, Competency-Based Education in California": "case study",
    "Communicating Personalized Learning to Families and Stakeholders: Terminology, Tools and Tips "
    "for Success": "white paper",
    "Guide for Creating Trusted Learning Environments": "guide",
    "Kettle Moraine’s Approach to Personalized Learning": "article",
    "A Year Of Love And Struggle In A New High School": "article",
    "Quality Counts 2018": "report",
    "Fit for Purpose: Taking the Long View on Systems Change and Policy to Support Competency "
    "Education": "report",
    "Scheduling for Learning, Not Convenience": "article",
    "Transforming for Tomorrow: A State Policymaker’s Guide for Supporting Student-Centered "
    "Education Systems": "guide",
}


@pytest.mark.parametrize("title", list(SEED_TYPES))
def test_seed_types(seed_records: dict[str, ResourceRecord], title: str) -> None:
    assert classify(seed_records[title], DEFAULT_TOPICS).type == SEED_TYPES[title]


def test_every_seed_record_classifies_into_a_known_type(
    seed_records: dict[str, ResourceRecord],
) -> None:
    for record in seed_records.values():
        assert classify(record, DEFAULT_TOPICS).type in RESOURCE_TYPES


def test_seed_topics_sample(seed_records: dict[str, ResourceRecord]) -> None:
    def topics(title: str) -> tuple[str, ...]:
        return classify(seed_records[title], DEFAULT_TOPICS).topics

    assert "Media Literacy" in topics("The Promises, Challenges, and Futures of Media Literacy")
    assert "English Language Learners" in topics(
        "Case Study: Distinctive Schools Leads Personalized Learning for English Language "
        "Learners in Illinois and Minnesota"
    )
    assert "School Culture & SEL" in topics("Restorative Justice: Resources for Schools")
    assert "Technology & Connectivity" in topics("2017 State of the States: Connectivity")


@pytest.mark.parametrize(
    ("summary", "source"),
    [
        ("This issue brief from Aurora Institute shares state policy.", "Aurora Institute"),
        ("This issue brief from iNACOL offers advice for state leaders.", "iNACOL"),
        (
            "This report by the National Center for Learning Disabilities (NCLD) looks at it.",
            "National Center for Learning Disabilities (NCLD)",
        ),
        (
            "This report was compiled by EducationSuperHighway, a nonprofit.",
            "EducationSuperHighway",
        ),
        ("This article discusses a hands on approach. It was written by Jane.", None),
        ("This report was written to help school districts take steps.", None),
    ],
)
def test_infer_source_reads_the_publisher_from_the_first_sentence(
    summary: str, source: str | None
) -> None:
    from newsletter.resources.classify import infer_source

    assert infer_source(summary) == source
