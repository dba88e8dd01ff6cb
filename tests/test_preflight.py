"""Preflight: Issue 42 passes, and a crafted issue fails each rule with a clear message."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from issue_helpers import THEME, issue, issue_42, item

from newsletter.errors import PreflightError
from newsletter.issues.preflight import GMAIL_CLIP_BYTES, check_or_raise, inspect, preflight
from newsletter.message import RenderedEmail
from newsletter.render import ImageContent, Renderer, SectionContent, Theme, render_issue
from newsletter.render.content import IssueContent
from newsletter.render.templates import DEFAULT_TEMPLATES


def _render(content: IssueContent, theme: Theme = THEME) -> RenderedEmail:
    return render_issue(content, None, theme=theme, renderer=Renderer())


def _only(problems: list[str], words: str) -> None:
    assert len(problems) == 1, problems
    assert words in problems[0]


def test_issue_42_passes_preflight() -> None:
    rendered = _render(issue_42())
    assert preflight(rendered) == []
    assert check_or_raise(rendered) == []
    assert len(rendered.html.encode()) < GMAIL_CLIP_BYTES / 2


def test_every_segment_of_issue_42_passes() -> None:
    content = issue_42()
    for topic in ("Policy & ESSA", "Equity", "English Language Learners", "Assessment"):
        assert preflight(render_issue(content, frozenset({topic}), theme=THEME)) == []


def test_the_crafted_baseline_passes() -> None:
    assert preflight(_render(issue())) == []


def test_html_over_gmails_clipping_limit() -> None:
    paragraphs = "\n\n".join(f"Paragraph {n} " + "lorem ipsum dolor " * 40 for n in range(160))
    _only(preflight(_render(issue(intro_md=paragraphs))), "Gmail clips")


def test_relative_link() -> None:
    bad = item(url="/resources/a", cta_url="/resources/a")
    _only(preflight(_render(issue(SectionContent("S", (), (bad,))))), "'/resources/a' is not")


def test_non_http_link() -> None:
    bad = item(url="ftp://example.org/a", cta_url=None, cta_text=None)
    _only(preflight(_render(issue(SectionContent("S", (), (bad,))))), "not an absolute http(s)")


def test_image_without_alt_text() -> None:
    bad = item(image=ImageContent("https://example.org/a.jpg", alt=""))
    _only(preflight(_render(issue(SectionContent("S", (), (bad,))))), "has no alt text")


def test_relative_image() -> None:
    bad = item(image=ImageContent("images/a.jpg", alt="An image"))
    _only(preflight(_render(issue(SectionContent("S", (), (bad,))))), "'images/a.jpg' is not")


def test_missing_unsubscribe_link(tmp_path: Path) -> None:
    source = (DEFAULT_TEMPLATES / "issue.mjml.j2").read_text()
    unsubscribe = '<a href="{{ links.unsubscribe_url }}"'
    assert unsubscribe in source
    (tmp_path / "issue.mjml.j2").write_text(source.replace(unsubscribe, "<a"))
    problems = preflight(_render(issue(), Theme(template_dir=tmp_path)))
    _only(problems, "no unsubscribe link in the HTML part")


def test_missing_unsubscribe_in_text_part_and_headers() -> None:
    rendered = _render(issue())
    text = rendered.text.replace("Unsubscribe: %%unsubscribe_url%%", "")
    problems = preflight(replace(rendered, text=text, headers={}))
    assert problems == ["no unsubscribe link in the text part", "no List-Unsubscribe header"]


def test_missing_postal_address() -> None:
    _only(preflight(_render(issue(), Theme(postal_address=""))), "no postal address")


def test_empty_section() -> None:
    content = issue(SectionContent("Full", (), (item(),)), SectionContent("Empty", (), ()))
    _only(preflight(_render(content)), "1 empty section(s)")


def test_no_items_at_all() -> None:
    problems = preflight(_render(issue(SectionContent("Empty", (), ()))))
    assert problems == [
        "the issue has no items",
        "1 empty section(s): every section needs at least one item",
    ]


@pytest.mark.parametrize("subject", ["", "   ", "x" * 151])
def test_subject_length(subject: str) -> None:
    _only(preflight(_render(issue(subject=subject))), "subject is")


def test_long_subject_is_only_a_warning() -> None:
    report = inspect(_render(issue(subject="A fairly long subject line " * 3)))
    assert report.ok and report.warnings == [
        "subject is over 78 characters; inboxes will cut it off"
    ]


def test_check_or_raise_lists_every_problem() -> None:
    bad = item(url="/a", cta_url=None, image=ImageContent("https://example.org/a.jpg", alt=""))
    content = issue(SectionContent("S", (), (bad,)), SectionContent("E", (), ()), subject="")
    with pytest.raises(PreflightError) as info:
        check_or_raise(_render(content, Theme(postal_address="")))
    assert len(info.value.problems) == 5
    assert "subject is 0 characters" in str(info.value)
