"""Editor markup is untrusted: scripts, handlers and javascript: URLs must come out inert."""

from __future__ import annotations

from html.parser import HTMLParser

import pytest
from issue_helpers import THEME, issue, item

from newsletter.render import Renderer, SectionContent, render_issue, render_web_version
from newsletter.render.markup import (
    LinkRefs,
    bad_urls,
    escape_markdown,
    markdown_to_html,
    markdown_to_text,
    sanitize_html,
)

ATTACKS = [
    "<script>alert('x')</script>",
    '<img src="https://example.org/a.png" alt="a" onerror="alert(1)">',
    '<a href="javascript:alert(1)">click</a>',
    "[click](javascript:alert(1))",
    '<a href="JaVaScRiPt:alert(1)">mixed case</a>',
    '<iframe src="https://evil.example/"></iframe>',
    '<p style="background:url(javascript:alert(1))" onclick="alert(1)">styled</p>',
    '<svg onload="alert(1)"><circle r="1"/></svg>',
    '<a href="data:text/html;base64,PHNjcmlwdD4=">data</a>',
    "<style>body{display:none}</style>",
    '<form action="https://evil.example/"><input name="password"></form>',
]


FORBIDDEN_TAGS = {"script", "iframe", "svg", "form", "input", "object", "embed"}


class _Audit(HTMLParser):
    """Every tag and attribute of a document, to prove nothing active survived."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.bad: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in FORBIDDEN_TAGS:
            self.bad.append(f"<{tag}>")
        for name, value in attrs:
            url = (value or "").strip().lower()
            if name.startswith("on"):
                self.bad.append(f"{tag} {name}=")
            if name in ("href", "src", "action") and url.startswith(("javascript:", "data:")):
                self.bad.append(f"{tag} {name}={url}")
            if name == "style" and "javascript:" in url:
                self.bad.append(f"{tag} style={url}")


def _inert(html: str) -> None:
    audit = _Audit()
    audit.feed(html)
    assert audit.bad == []
    assert "display:none}" not in html  # the editor's <style> block is gone


@pytest.mark.parametrize("attack", ATTACKS)
def test_markdown_attacks_are_inert(attack: str) -> None:
    _inert(markdown_to_html(f"Before\n\n{attack}\n\nafter"))


@pytest.mark.parametrize("attack", ATTACKS)
def test_attacks_are_inert_in_the_email_and_web_page(attack: str) -> None:
    content = issue(SectionContent("S", (), (item(blurb_md=attack),)), intro_md=attack)
    renderer = Renderer()
    rendered = render_issue(content, None, theme=THEME, renderer=renderer)
    _inert(rendered.html)
    _inert(render_web_version(content, theme=THEME, renderer=renderer))
    assert "<script" not in rendered.text and "alert('x')" not in rendered.text
    assert "] javascript:" not in rendered.text  # never listed as a link


def test_safe_markup_survives() -> None:
    html = markdown_to_html(
        "**bold** _it_ [link](https://example.org/a?b=1&c=2) <em>raw</em>\n\n"
        "- one\n- two\n\n> quoted\n\n![alt text](https://example.org/i.png)"
    )
    assert "<strong>bold</strong>" in html and "<em>it</em>" in html and "<em>raw</em>" in html
    assert 'href="https://example.org/a?b=1&amp;c=2"' in html
    assert "<li>one</li>" in html and "<blockquote>" in html
    assert '<img src="https://example.org/i.png" alt="alt text"' in html
    assert 'href="mailto:ed@example.org"' in markdown_to_html("[mail](mailto:ed@example.org)")


def test_relative_urls_are_dropped_by_the_sanitiser() -> None:
    html = sanitize_html('<a href="/relative">r</a><img src="img.png" alt="x">')
    assert "/relative" not in html and "img.png" not in html


def test_bad_urls_reports_what_the_sanitiser_would_drop() -> None:
    assert bad_urls("[ok](https://example.org) ![ok](http://example.org/a.png)") == []
    problems = bad_urls(
        "[a](javascript:alert(1)) ![b](/rel.png) <img src='data:x'> [c](relative/page) [d](#top)"
    )
    assert len(problems) == 5
    assert bad_urls("[mail](mailto:ed@example.org)") == []
    assert bad_urls("![mail](mailto:ed@example.org)") != []  # an image is never mailto


def test_summaries_are_literal_not_markdown() -> None:
    summary = "Use *stars* and [brackets] and <b>tags</b> # not a heading"
    html = markdown_to_html(escape_markdown(summary))
    assert "<em>" not in html and "<b>" not in html
    assert "*stars*" in html and "[brackets]" in html and "&lt;b&gt;tags&lt;/b&gt;" in html


def test_markdown_to_text_numbers_links() -> None:
    refs = LinkRefs()
    text = markdown_to_text("See [this](https://a.example/) and [that](https://b.example/).", refs)
    assert text == "See this [1] and that [2]."
    assert refs.render() == "[1] https://a.example/\n[2] https://b.example/"
