"""Issue YAML sources: parsing, the shipped Issue 42, round trips and file:line errors."""

from __future__ import annotations

import textwrap
from dataclasses import replace
from datetime import date
from pathlib import Path

import pytest
from issue_helpers import ISSUE_42, SEED_ITEMS, SEED_URLS, THEME, issue_42

from newsletter.errors import ValidationError
from newsletter.issues.assemble import ResourceFacts, build_item
from newsletter.issues.preflight import preflight
from newsletter.issues.source import ImageSource, ItemSource, dump_source, load_source, parse_source
from newsletter.render import Renderer, SectionContent, render_issue

GOOD = """\
number: 7
title: "Issue 7: July 2017"
date: 2017-07-01
subject: A subject
intro: |
  Hello **readers**, see [our site](https://example.org/).
sections:
  - heading: News
    topics: [Equity]
    items:
      - resource: some-slug
        blurb: Our own words.
      - title: A note from the editor
        byline: by The Editor
        body: Short and *sweet*.
        url: https://example.org/note
"""


def _error(text: str, name: str = "issue.yaml") -> ValidationError:
    with pytest.raises(ValidationError) as info:
        parse_source(textwrap.dedent(text), name)
    return info.value


def test_parse_reads_every_field() -> None:
    source = parse_source(GOOD, "issue.yaml")
    assert (source.number, source.title, source.date) == (7, "Issue 7: July 2017", date(2017, 7, 1))
    assert source.intro == "Hello **readers**, see [our site](https://example.org/)."
    section = source.sections[0]
    assert section.topics == ["Equity"]
    resource, article = section.items
    assert (resource.resource, resource.blurb) == ("some-slug", "Our own words.")
    assert article.resource is None and article.body == "Short and *sweet*."
    assert article.where == "issue.yaml:13"


def test_dump_then_parse_is_identity() -> None:
    source = parse_source(GOOD, "a.yaml")
    again = parse_source(dump_source(source), "b.yaml")
    assert again == source
    assert dump_source(again) == dump_source(source)


def test_issue_42_source_matches_the_seed_page() -> None:
    source = load_source(ISSUE_42)
    assert (source.number, source.title, source.date) == (
        42,
        "Issue 42: April 2018",
        date(2018, 4, 1),
    )
    items = [i for _, i in source.walk()]
    assert [i.url for i in items] == SEED_URLS
    assert parse_source(dump_source(source)) == source


def test_issue_42_content_has_the_four_seed_items_in_order() -> None:
    content = issue_42()
    items = content.items
    assert [i.title for i in items] == [s[0] for s in SEED_ITEMS]
    assert [i.image.alt if i.image else None for i in items] == [s[1] for s in SEED_ITEMS]
    assert [i.image.credit if i.image else None for i in items] == [s[2] for s in SEED_ITEMS]
    assert [i.cta_text for i in items] == [s[3] for s in SEED_ITEMS]
    assert items[3].byline == "by Emily Liebtag and Mary Ryerse"
    assert [i.kind for i in items[:2]] == ["report", "case study"]
    assert all(i.image.url.startswith("https://") for i in items if i.image)


@pytest.mark.parametrize(
    ("text", "line", "words"),
    [
        ("number: 7\ntitle: [unclosed\n", 3, "bad YAML"),
        ("number: 7\ntitle: T\ndate: 2017-07-01\nsections: []\n", 1, "missing subject"),
        ("number: 7\ntitle: T\ndate: 2017-07-01\nsubject: '  '\n", 4, "missing subject"),
        ("number: 7\ntitle: T\ntitle: U\n", 3, "duplicate key 'title'"),
        ("number: 7\ntitle: T\ndate: 2017-07-01\nsubject: S\nsubjekt: S\n", 5, "unknown issue key"),
        ("number: seven\ntitle: T\ndate: 2017-07-01\nsubject: S\n", 1, "positive whole number"),
        ("number: 7\ntitle: T\ndate: July\nsubject: S\n", 3, "YYYY-MM-DD"),
        ("- just\n- a list\n", 1, "must be a YAML mapping"),
    ],
)
def test_structural_errors_name_file_and_line(text: str, line: int, words: str) -> None:
    error = _error(text)
    assert error.where == f"issue.yaml:{line}"
    assert words in error.message
    assert "\n" not in str(error)


HEAD = "number: 7\ntitle: T\ndate: 2017-07-01\nsubject: S\n"


@pytest.mark.parametrize(
    ("body", "line", "words"),
    [
        ("intro: '![x](/img/a.png)'\n", 5, "relative image URL"),
        ("intro: '![x](javascript:alert(1))'\n", 5, "uses javascript:"),
        ("intro: '<img src=\"data:image/png;base64,AAAA\">'\n", 5, "uses data:"),
        ("intro: '[click](javascript:alert(1))'\n", 5, "link URL"),
        ("intro: '![x](//cdn.example.org/a.png)'\n", 5, "relative image URL"),
    ],
)
def test_bad_markdown_urls_are_refused(body: str, line: int, words: str) -> None:
    error = _error(HEAD + body)
    assert error.where == f"issue.yaml:{line}"
    assert "bad Markdown" in error.message and words in error.message


def _items(*lines: str) -> str:
    return HEAD + "sections:\n  - heading: News\n    items:\n" + "".join(lines)


def test_bad_item_urls_and_duplicates_are_refused() -> None:
    image = _items("      - resource: a\n", "        image: {url: /a.png, alt: A}\n")
    assert _error(image).where == "issue.yaml:8"
    blurb = _items("      - resource: a\n", "        blurb: '![x](ftp://h/a.png)'\n")
    assert "uses ftp:" in _error(blurb).message
    dup = _items("      - resource: a\n", "      - resource: b\n", "      - resource: a\n")
    error = _error(dup)
    assert error.where == "issue.yaml:10"
    assert "duplicate item: resource a is already at issue.yaml:8" in error.message


def test_item_shape_errors() -> None:
    assert "needs a resource" in _error(_items("      - byline: by Me\n")).message
    assert "unknown item key" in _error(_items("      - resource: a\n        blurp: x\n")).message
    assert "not a blurb" in _error(_items("      - title: T\n        blurb: x\n")).message
    assert "not a body" in _error(_items("      - resource: a\n        body: x\n")).message


def test_missing_file_and_bad_bytes(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="no such issue file"):
        load_source(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_bytes(b"title: \xff\xfe\n")
    with pytest.raises(ValidationError) as info:
        load_source(bad)
    assert info.value.where == str(bad)


COVER = ResourceFacts(
    id=1, slug="report", title="A report", url="https://example.org/report",
    image_url="https://example.org/cover.jpg", image_alt="Cover of the report",
    image_credit="Photo by Ann Lee",
)  # fmt: skip


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        (None, ("https://example.org/cover.jpg", "Cover of the report", "Photo by Ann Lee")),
        (ImageSource(url="https://example.org/cover.jpg"),
         ("https://example.org/cover.jpg", "Cover of the report", "Photo by Ann Lee")),
        (ImageSource(alt="The report's cover"),
         ("https://example.org/cover.jpg", "The report's cover", "Photo by Ann Lee")),
        # another image, no alt written: the cover's description must not follow it
        (ImageSource(url="https://example.org/chart.png"), ("https://example.org/chart.png", "", None)),
        (ImageSource(url="https://example.org/chart.png", alt="A bar chart of results"),
         ("https://example.org/chart.png", "A bar chart of results", None)),
    ],
)  # fmt: skip
def test_alt_text_and_credit_follow_their_image(
    override: ImageSource | None, expected: tuple[str, str, str | None]
) -> None:
    image = build_item(ItemSource(resource="report", image=override), COVER).image
    assert image is not None
    assert (image.url, image.alt, image.credit) == expected


def test_a_changed_image_without_alt_is_refused_not_misdescribed() -> None:
    item = build_item(
        ItemSource(resource="report", image=ImageSource(url="https://example.org/chart.png")), COVER
    )
    content = replace(issue_42(), sections=(SectionContent("S", (), (item,)),))
    rendered = render_issue(content, theme=THEME, renderer=Renderer())
    assert "Cover of the report" not in rendered.html
    assert "image 'https://example.org/chart.png' has no alt text" in preflight(rendered)
