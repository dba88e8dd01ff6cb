"""Importers: format detection, all-or-nothing errors, feeds, CSV/JSON, and the real seed pages."""

from __future__ import annotations

import re
import shutil
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from newsletter.errors import ImportFormatError
from newsletter.resources.classify import normalise_title
from newsletter.resources.parsers import (
    html_to_text,
    parse_csv,
    parse_feed,
    parse_file,
    parse_json,
    parse_text,
    split_truncation,
)
from newsletter.resources.records import ParseResult, ResourceRecord

DATA = Path(__file__).resolve().parent / "data" / "import"

SEED_000 = "000_011b8b86067026e5.txt"
SEED_001 = "001_ecb164fccca68c19.txt"
SEED_002 = "002_64b51281825d5f4d.txt"
SEED_003 = "003_23e90bc3fab8e407.txt"
SEED_004 = "004_f2bedb134dbac900.txt"


@pytest.fixture
def seeds(seeds_dir: Path) -> Path:
    """The seed pages (``../shared/seeds``, or the bundled copy; conftest checks all five)."""
    return seeds_dir


def seed(seeds: Path, name: str) -> ParseResult:
    return parse_file(seeds / name)


def titles(result: ParseResult) -> list[str]:
    return [r.title for r in result.records]


# --------------------------------------------------------------------------- seed pages


@pytest.mark.parametrize(
    ("name", "count"),
    [(SEED_000, 11), (SEED_001, 12), (SEED_002, 11), (SEED_003, 4), (SEED_004, 1)],
)
def test_seed_record_counts(seeds: Path, name: str, count: int) -> None:
    assert len(seed(seeds, name).records) == count


def test_every_seed_record_has_an_origin_line(seeds: Path) -> None:
    for path in sorted(seeds.glob("*.txt")):
        for record in parse_file(path).records:
            assert re.fullmatch(rf"{re.escape(str(path))}:\d+", record.origin), record


def test_listing_fragment_is_skipped_with_a_warning(seeds: Path) -> None:
    result = seed(seeds, SEED_000)
    [warning] = result.warnings
    assert warning.where == f"{seeds / SEED_000}:2"
    assert warning.message.startswith("skipped a summary with no title")
    assert "In this podcast" in warning.message
    assert not any("podcast" in r.summary for r in result.records[:1])


def test_listing_items_keep_ellipsis_and_drop_read_more(seeds: Path) -> None:
    result = seed(seeds, SEED_000)
    first = result.records[0]
    assert first.title == "Envisioning the Graduate of the Future"
    assert first.origin.endswith(":4")
    assert first.summary.startswith("This course was developed by MIT")
    assert first.summary.endswith("graduates need and…")
    assert first.summary_truncated
    assert "\xa0" not in first.summary and "  " not in first.summary
    assert result.records[-1].title == "Quality Counts 2018"


def test_no_seed_summary_keeps_a_read_more_marker(seeds: Path) -> None:
    for path in sorted(seeds.glob("*.txt")):
        for record in parse_file(path).records:
            assert "Read More" not in record.summary
            assert "›" not in record.summary


def test_listing_without_read_more_is_still_truncated(seeds: Path) -> None:
    records = seed(seeds, SEED_001).records
    assert all(r.summary_truncated and r.summary.endswith("…") for r in records)
    assert records[2].title == "Golden Ticket"
    assert "Lawrence, MA Public Schools" in records[2].summary  # double space collapsed


def test_duplicate_resource_comes_out_twice(seeds: Path) -> None:
    title = "From Vision to Reality: Personalized, Competency-Based Learning for All Kids"
    found = [
        record
        for name in (SEED_000, SEED_002)
        for record in seed(seeds, name).records
        if record.title == title
    ]
    assert len(found) == 2
    assert found[0].origin != found[1].origin
    assert normalise_title(found[0].title) == normalise_title(found[1].title)


def test_issue_page_yields_its_four_articles(seeds: Path) -> None:
    result = seed(seeds, SEED_003)
    assert titles(result) == [
        "Personalized Learning and the Every Student Succeeds Act - Mapping Emerging Trends "
        "for Personalized Learning in State ESSA Plans",
        "Case Study: Distinctive Schools Leads Personalized Learning for English Language "
        "Learners in Illinois and Minnesota",
        "Designing for Equity: Leveraging Competency Based Education to Ensure All Students "
        "Succeed",
        "Scheduling for Learning, Not Convenience",
    ]
    assert [r.origin.rsplit(":", 1)[1] for r in result.records] == ["7", "14", "23", "29"]


def test_issue_page_alt_texts_ctas_bylines_and_credits(seeds: Path) -> None:
    mapping, case_study, designing, scheduling = seed(seeds, SEED_003).records
    assert mapping.image_alt == (
        "Cover of Personalized Learning and the Every Student Succeeds Act Report"
    )
    assert mapping.call_to_action == (
        "Visit to read the complete article and to download the report."
    )
    assert case_study.image_alt == "children in classroom sprawled on floor while discussing papers"
    assert case_study.image_credit is not None
    assert case_study.image_credit.startswith("Photo by Allison Shelley/The Verbatim Agency")
    assert case_study.call_to_action is None
    assert designing.call_to_action == "Visit to download the file."
    assert designing.image_alt is None
    assert scheduling.authors == "Emily Liebtag and Mary Ryerse"
    assert scheduling.call_to_action == "Visit to read the complete article."
    assert scheduling.summary.startswith("A/B, 4X4, or traditional block?")


def test_issue_page_summaries_are_body_text_only(seeds: Path) -> None:
    records = seed(seeds, SEED_003).records
    for record in records:
        assert not record.summary_truncated
        for junk in ("Main Menu", "Explore More", "Issue 42", "Visit to", "by Emily", "Photo by"):
            assert junk not in record.summary
    assert "may be found at" not in records[1].summary
    assert records[1].summary.endswith("becoming English-proficient.")


def test_issue_page_warns_about_the_dangling_sentence(seeds: Path) -> None:
    [warning] = seed(seeds, SEED_003).warnings
    assert warning.where == f"{seeds / SEED_003}:19"
    assert "This blog and the complete series may be found at" in warning.message


def test_single_resource_page(seeds: Path) -> None:
    result = seed(seeds, SEED_004)
    [record] = result.records
    assert record.title == (
        "Transforming for Tomorrow: A State Policymaker’s Guide for Supporting "
        "Student-Centered Education Systems"
    )
    assert record.origin == f"{seeds / SEED_004}:1"
    assert record.summary.startswith("A personalized, competency-based approach to learning")
    assert record.summary.endswith("take ownership of their learning.")
    assert "Subscribe" not in record.summary and "include:" not in record.summary
    assert result.warnings == []


# --------------------------------------------------------------------------- plain text shapes


def test_text_title_then_summary_on_consecutive_lines_is_a_listing_block() -> None:
    text = "Report One\nThis report explains things.\n\nReport Two\n\nThis report explains more…"
    result = parse_text(text, name="page.txt")
    assert titles(result) == ["Report One", "Report Two"]
    assert result.records[0].summary == "This report explains things."
    assert result.records[1].summary_truncated


def test_text_wrapped_paragraph_is_not_mistaken_for_a_title() -> None:
    text = (
        "# A Markdown Heading\n\nThis report explores the need for changes in staffing\n"
        "patterns and school organization.\n"
    )
    [record] = parse_text(text, name="notes.md").records
    assert record.title == "A Markdown Heading"
    assert record.summary == (
        "This report explores the need for changes in staffing patterns and school organization."
    )


def test_text_title_without_summary_is_skipped_with_warning() -> None:
    result = parse_text("Resources\n\nReal Title\n\nA real summary.", name="p.txt")
    assert titles(result) == ["Real Title"]
    assert result.warnings[0].where == "p.txt:1"
    assert "title with no summary" in result.warnings[0].message


def test_text_standalone_read_more_line_marks_truncation() -> None:
    [record] = parse_text("Title\n\nSome summary.\n\nRead More ›\n", name="p.txt").records
    assert record.summary == "Some summary." and record.summary_truncated


def test_text_page_with_nothing_importable_warns() -> None:
    result = parse_text("Main Menu\n\nExplore More\n", name="nav.txt")
    assert result.records == []
    assert result.warnings[-1].message == "no resources found in the page"


@pytest.mark.parametrize(
    ("summary", "expected", "truncated"),
    [
        ("Two students… Read More ›", "Two students…", True),
        ("Two students... read more »", "Two students…", True),
        ("Complete sentence. Read more", "Complete sentence.", True),
        ("Ends in ellipsis…", "Ends in ellipsis…", True),
        ("Ends in dots...", "Ends in dots…", True),
        ("WordPress style [&hellip;]".replace("&hellip;", "…"), "WordPress style…", True),
        ("Complete sentence.", "Complete sentence.", False),
        ("", "", False),
    ],
)
def test_split_truncation(summary: str, expected: str, truncated: bool) -> None:
    assert split_truncation(summary) == (expected, truncated)


def test_html_to_text_paragraphs_entities_and_scripts() -> None:
    markup = "<p>Hello <b>world</b> &amp; more</p><script>x()</script><div>Two<br>lines</div>"
    assert html_to_text(markup) == "Hello world & more\n\nTwo lines"


def test_html_to_text_survives_markup_that_breaks_the_stdlib_parser() -> None:
    assert html_to_text("<![< broken &amp; text") == "broken & text"


# --------------------------------------------------------------------------- feeds


def test_rss2_feed() -> None:
    path = DATA / "rss2_feed.xml"
    result = parse_file(path)
    assert result.warnings == []
    brief, _plan, quality = result.records
    assert quality.type is None and quality.authors is None
    assert brief.title == "State Policy & K-12 Competency-Based Education"
    assert brief.url is not None and brief.url.endswith("?utm_source=rss&utm_medium=rss")
    assert brief.summary == (
        "This issue brief from iNACOL offers advice for state leaders who want to support "
        "policy for K-12 competency-based education.\n\n"
        "The brief includes background on the development of & an overview of competency, "
        "sometimes called mastery-based education…"
    )
    assert brief.summary_truncated
    assert brief.published == datetime(2018, 4, 10, 14, 30, tzinfo=UTC)
    assert brief.authors == "Susan Patrick"
    assert brief.type == "issue brief"  # from the "Issue Briefs" category
    assert brief.topics == ("Competency-Based Education",)
    assert brief.source == "Aurora Institute Blog"
    assert brief.image_url == "https://aurora-institute.org/wp-content/uploads/state-policy.jpg"
    assert brief.origin == f"{path}:11"


def test_rss2_escaped_html_description_item_source_and_author_email() -> None:
    plan = parse_file(DATA / "rss2_feed.xml").records[1]
    assert plan.summary == (
        "High school sophomore Olivia Surdam thought she wanted a career in healthcare.\n\n"
        "Then she met her advisory teacher…"
    )
    assert "alert" not in plan.summary and "appeared first" not in plan.summary
    assert plan.summary_truncated
    assert plan.source == "EdSurge"
    assert plan.authors == "Jenny Abamu"
    assert plan.image_url == "https://cdn.example.org/olivia.jpg"
    assert plan.image_alt == "Olivia Surdam at her desk"
    assert plan.published == datetime(2018, 4, 19, 13, 0, tzinfo=UTC)
    assert plan.type is None


def test_atom_feed() -> None:
    path = DATA / "atom_feed.atom"
    guide, equity = parse_file(path).records
    assert guide.title == "Transforming for Tomorrow"
    assert guide.url == "https://knowledgeworks.example/resources/transforming-tomorrow/"
    assert guide.authors == "Lillian Pace, Katie King and Matt Williams"
    assert guide.published == datetime(2018, 4, 20, 13, 15, tzinfo=UTC)
    assert guide.type == "guide"
    assert guide.topics == ("Policy & ESSA",)
    assert guide.source == "KnowledgeWorks Publications"
    assert guide.origin == f"{path}:7"
    assert equity.title == "Designing for Equity"  # type="html" title stripped
    assert equity.summary.startswith("This publication offers equity strategies")
    assert equity.published == datetime(2018, 3, 1, tzinfo=UTC)  # falls back to <updated>


@pytest.mark.parametrize(
    ("fixture", "suffix"), [("atom_feed.atom", ".feed"), ("rss2_feed.xml", "")]
)
def test_feed_is_sniffed_from_content(tmp_path: Path, fixture: str, suffix: str) -> None:
    target = tmp_path / f"download{suffix}"
    shutil.copy(DATA / fixture, target)
    assert len(parse_file(target).records) in (2, 3)


def test_feed_with_no_items_warns() -> None:
    result = parse_feed('<rss version="2.0"><channel><title>x</title></channel></rss>', name="f")
    assert result.records == []
    assert result.warnings[0].message == "RSS feed has no items"


# --------------------------------------------------------------------------- CSV and JSON


def test_csv_with_aliases_quoted_commas_and_multiline_cells() -> None:
    path = DATA / "resources.csv"
    result = parse_file(path)
    golden, fit, rethinking = result.records
    assert golden.summary == (
        "This dynamic case study combines narrative, video, data visuals, and photos."
    )
    assert golden.url == "https://www.example.org/golden-ticket"
    assert golden.source == "Lawrence Public Schools"
    assert golden.topics == ("Personalized Learning", "Equity")
    assert golden.published == datetime(2018, 2, 14, tzinfo=UTC)
    assert golden.type is None
    assert fit.type == "report"
    assert fit.topics == ("policy", "competency")
    assert fit.authors == "Chris Sturgis, Katherine Casey"
    assert fit.published == datetime(2018, 4, 19, tzinfo=UTC)
    assert fit.summary.endswith("This publication was written…") and fit.summary_truncated
    assert rethinking.summary == 'He said, "rethink it"…'
    assert rethinking.type == "issue brief"
    assert rethinking.published == datetime(2016, 10, 1, 9, 30, tzinfo=UTC)
    assert [r.origin for r in result.records] == [f"{path}:2", f"{path}:3", f"{path}:6"]
    [warning] = result.warnings
    assert warning.where == f"{path}:1" and "Notes" in warning.message


def test_csv_semicolon_delimiter_and_bom() -> None:
    [record] = parse_file(DATA / "semicolon_bom.csv").records
    assert record.title == "CoSN Empowered Superintendents Resources"
    assert record.topics == ("Technology & Connectivity",)


def test_csv_unknown_type_is_a_warning_and_left_for_inference() -> None:
    result = parse_csv("title,type\nA thing,infographic\n", name="t.csv")
    assert result.records[0].type is None
    assert result.warnings[0].where == "t.csv:2"
    assert "infographic" in result.warnings[0].message


def test_csv_header_only_warns() -> None:
    result = parse_csv("title,url\n", name="t.csv")
    assert result.records == [] and "no rows" in result.warnings[0].message


def test_json_resources_object() -> None:
    path = DATA / "resources.json"
    result = parse_file(path)
    teens, communicating = result.records
    assert teens.source == "School Library Journal"
    assert teens.topics == ("Personalized Learning", "makerspace")
    assert teens.summary_truncated
    assert teens.published == datetime(2018, 3, 5, tzinfo=UTC)
    assert communicating.type == "white paper"
    assert communicating.image_url == "https://www.example.org/cover.png"
    assert communicating.image_alt == "Cover of the white paper"
    assert communicating.call_to_action == "Visit to download the white paper."
    assert [r.origin for r in result.records] == [f"{path}:4", f"{path}:12"]
    [warning] = result.warnings
    assert warning.where == f"{path}:12" and "colour" in warning.message


def test_json_top_level_list_with_case_insensitive_keys() -> None:
    path = DATA / "resources_list.json"
    envisioning, quality = parse_file(path).records
    assert envisioning.url == "https://www.edx.example/graduate"
    assert quality.title == "Quality Counts 2018"
    assert quality.topics == ("Assessment", "Policy & ESSA")
    assert [envisioning.origin, quality.origin] == [f"{path}:2", f"{path}:3"]


def test_parse_functions_return_plain_records() -> None:
    result = parse_json('[{"title": "T"}]', name="x.json")
    assert result.records == [ResourceRecord(title="T", origin="x.json:1")]


# --------------------------------------------------------------------------- malformed input

MALFORMED = [
    ("bad_xml.xml", r"bad_xml\.xml:6: not well-formed XML: mismatched tag"),
    ("not_a_feed.xml", r"not_a_feed\.xml: XML root element <html> is not an RSS or Atom feed"),
    ("entity_bomb.xml", r"entity_bomb\.xml:3: XML entity declarations are not allowed"),
    ("feed_item_no_title.rss", r"feed_item_no_title\.rss:6: feed item has no title"),
    (
        "missing_title_column.csv",
        r"missing_title_column\.csv: CSV has no 'title' column \(found: heading, link, summary\)",
    ),
    ("row_without_title.csv", r"row_without_title\.csv:4: record has no title"),
    ("extra_fields.csv", r"extra_fields\.csv:2: row has 4 fields but the header has 2"),
    ("bad_quote.csv", r"bad_quote\.csv:2: malformed CSV"),
    ("javascript_url.csv", r"javascript_url\.csv:2: URL is not an absolute http\(s\) URL"),
    ("bad_date.csv", r"bad_date\.csv:2: unrecognised date 'next Tuesday'"),
    ("latin1.csv", r"latin1\.csv:3: not valid UTF-8 at byte 35 \(0xef\)"),
    ("cp1252.txt", r"cp1252\.txt:3: not valid UTF-8 at byte 29 \(0x93\)"),
    ("numbers.json", r"numbers\.json: JSON must be a list of objects .*keys: a, b"),
    ("bad_syntax.json", r"bad_syntax\.json:3: not valid JSON"),
    ("item_not_object.json", r"item_not_object\.json:3: resource #2 is a number, not an object"),
    ("json_no_title.json", r"json_no_title\.json:3: record has no title"),
    ("json_wrong_type.json", r"json_wrong_type\.json:1: field 'title' must be a string"),
    ("empty.txt", r"empty\.txt: file is empty"),
    ("blank.csv", r"blank\.csv: file is empty"),
    ("notes.unknown", r"notes\.unknown: unknown format \(extension '\.unknown'"),
]


@pytest.mark.parametrize(("fixture", "pattern"), MALFORMED, ids=[m[0] for m in MALFORMED])
def test_malformed_files_raise_one_clear_error(fixture: str, pattern: str) -> None:
    with pytest.raises(ImportFormatError) as caught:
        parse_file(DATA / fixture)
    line = str(caught.value)
    assert "\n" not in line
    assert re.search(pattern, line), line
    assert caught.value.where is not None and caught.value.where.startswith(str(DATA))


def test_missing_file_is_an_import_error(tmp_path: Path) -> None:
    with pytest.raises(ImportFormatError, match="cannot read file"):
        parse_file(tmp_path / "nope.csv")


def test_bom_is_accepted_and_other_encodings_are_not(tmp_path: Path) -> None:
    path = tmp_path / "page.txt"
    path.write_bytes("\ufeffTitle\n\nSummary text.".encode())
    assert parse_file(path).records[0].title == "Title"
    path.write_bytes("Title\n\nSummary text.".encode("utf-16"))
    with pytest.raises(ImportFormatError, match="not valid UTF-8 at byte 0"):
        parse_file(path)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "   \n",
        ",,,\n",
        "title\n\x00",
        '"unterminated',
        "[" * 100_000,
        "[1" + "0" * 5000 + "]",
        "<rss><channel><item><title>x</title></item></channel></rss",
        '<rss xmlns:a="x"><b:c/></rss>',
        '{"resources": {"title": "x"}}',
        '[{"title": "x", "topics": [1, 2]}]',
    ],
)
def test_edge_cases_raise_only_import_format_error(text: str) -> None:
    for parse in (parse_csv, parse_json, parse_feed, parse_text):
        try:
            parse(text, name="edge")
        except ImportFormatError as exc:
            assert exc.where is not None and exc.where.startswith("edge")


_FRAGMENTS = st.sampled_from(
    [
        *',;"\n\r\t{}[]:<>/ &',
        *("title", '"title"', "url", '{"resources":', "null", "1e999"),
        *("<rss>", "</rss>", "<channel>", "<item>", "</item>", "<title>", "</title>", "<![<"),
    ]
)


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.text(max_size=120) | st.lists(_FRAGMENTS, max_size=25).map("".join))
def test_arbitrary_input_never_leaks_a_raw_exception(text: str) -> None:
    for parse in (parse_csv, parse_json, parse_feed, parse_text):
        try:
            result = parse(text, name="fuzz")
        except ImportFormatError:
            continue
        assert all(r.title and r.origin.startswith("fuzz:") for r in result.records)
