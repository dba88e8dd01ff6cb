"""Rendering Issue 42 and crafted issues: HTML, text part, headers, web version, caching."""

from __future__ import annotations

import html as htmllib
import re
import time
from pathlib import Path

import pytest
from issue_helpers import SEED_ITEMS, SEED_URLS, THEME, issue, issue_42, item

from newsletter.errors import RenderError
from newsletter.message import Template
from newsletter.render import (
    ImageContent,
    Renderer,
    SectionContent,
    Theme,
    render_issue,
    render_web_version,
)
from newsletter.render.templates import DEFAULT_TEMPLATES

VALUES = {
    "name": "Ada",
    "email": "ada@example.org",
    "unsubscribe_url": "https://news.example.org/u/tok?a=1&b=2",
    "preferences_url": "https://news.example.org/preferences/tok",
    "web_url": "https://news.example.org/archive/42",
}


@pytest.fixture(scope="module")
def rendered_42() -> tuple[str, str]:
    rendered = render_issue(issue_42(), None, theme=THEME, renderer=Renderer())
    return rendered.html, rendered.text


def test_issue_42_html_has_the_seed_items_images_and_links(rendered_42: tuple[str, str]) -> None:
    html, _ = rendered_42
    text = htmllib.unescape(html)
    positions = [text.index(title) for title, *_ in SEED_ITEMS]
    assert positions == sorted(positions)
    for _title, alt, credit, cta in SEED_ITEMS:
        if alt:
            assert f'alt="{alt}"' in text
        if credit:
            assert credit in text
        assert cta in text
    for url in SEED_URLS:
        assert f'href="{url}"' in html
    assert "This blog and the complete series may be found at knowledgeworks.org" in text
    assert "by Emily Liebtag and Mary Ryerse" in text
    # Badges and headings keep their own case (screen readers spell out capitals); CSS raises it.
    assert 'text-transform:uppercase">report<' in text and 'uppercase">case study<' in text
    assert "<title>Issue 42: April 2018</title>" in text


def test_footer_and_per_recipient_placeholders(rendered_42: tuple[str, str]) -> None:
    html, text = rendered_42
    for name in ("unsubscribe_url", "preferences_url", "web_url"):
        assert f'href="%%{name}:html%%"' in html
    assert "1515 Central Parkway" in html and "KnowledgeWorks" in html
    assert "Unsubscribe: %%unsubscribe_url%%" in text
    assert "Manage your preferences: %%preferences_url%%" in text
    assert "%%web_url%%" in text


def test_headers() -> None:
    rendered = render_issue(issue_42(), None, theme=THEME, renderer=Renderer())
    assert rendered.subject == "Issue 42: ESSA plans, equity by design, and scheduling for learning"
    assert rendered.headers == {
        "List-Unsubscribe": "<%%unsubscribe_url%%>",
        "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
        "List-Id": "KnowledgeWorks <newsletter.example.org>",
    }
    quoted = render_issue(
        issue(), None, theme=Theme(organisation="Acme, Inc."), renderer=Renderer()
    )
    assert quoted.headers["List-Id"] == '"Acme, Inc." <newsletter.example.org>'


def test_template_fill_escapes_html_values() -> None:
    rendered = render_issue(issue_42(), None, theme=THEME, renderer=Renderer())
    filled = Template.compile(rendered).fill(VALUES)
    assert 'href="https://news.example.org/u/tok?a=1&amp;b=2"' in filled.html
    assert "Unsubscribe: https://news.example.org/u/tok?a=1&b=2" in filled.text
    assert filled.headers["List-Unsubscribe"] == "<https://news.example.org/u/tok?a=1&b=2>"
    assert "%%" not in filled.html + filled.text


def test_text_part_is_wrapped_with_numbered_links(rendered_42: tuple[str, str]) -> None:
    _, text = rendered_42
    for line in text.splitlines():
        if not re.match(r"^\[\d+\] https?://", line):
            assert len(line) <= 72, line
    assert "POLICY & ESSA" in text
    for n, url in enumerate(SEED_URLS, start=1):
        assert f"[{n}] {url}" in text
    assert "Visit to read the complete article and to download the report. [1]" in text
    assert "<" not in text.replace("<%%", "")  # no markup leaks into the text part


def test_text_part_lists_and_links_from_markdown() -> None:
    intro = "Read:\n\n- [one](https://example.org/1)\n- two\n\n1. first\n2. second"
    text = render_issue(issue(intro_md=intro), None, theme=THEME, renderer=Renderer()).text
    assert "- one [1]\n- two" in text
    assert "1. first\n2. second" in text
    assert "[1] https://example.org/1" in text


def test_web_version_is_standalone_without_placeholders() -> None:
    page = render_web_version(issue_42(), theme=THEME, renderer=Renderer())
    assert page.lstrip().lower().startswith("<!doctype html>")
    assert "%%" not in page
    assert "Unsubscribe" not in page and "Subscribe" in page
    assert all(f'href="{url}"' in page for url in SEED_URLS)


def test_render_is_cached_per_content_and_theme() -> None:
    renderer = Renderer()
    content = issue_42()
    first = render_issue(content, None, theme=THEME, renderer=renderer)
    assert render_issue(issue_42(), None, theme=THEME, renderer=renderer) is first
    assert renderer.stats.compilations == 1 and renderer.stats.hits == 1
    render_issue(content, None, theme=Theme(organisation="Other"), renderer=renderer)
    render_issue(issue(), None, theme=THEME, renderer=renderer)
    assert renderer.stats.compilations == 3


def test_rendering_is_fast_enough_to_do_per_segment() -> None:
    content = issue_42()
    start = time.perf_counter()
    render_issue(content, None, theme=THEME, renderer=Renderer())
    assert time.perf_counter() - start < 1.0


def test_items_without_images_urls_or_ctas_render() -> None:
    bare = item("Bare", url=None, cta_url=None, cta_text=None, kind=None, blurb_md="")
    captioned = item(
        "Pictured",
        image=ImageContent("https://example.org/a.jpg", "An alt", caption="Cap", credit="Cred"),
    )
    content = issue(SectionContent("S", (), (bare, captioned)))
    html = render_issue(content, None, theme=THEME, renderer=Renderer()).html
    assert "Bare" in html and 'alt="An alt"' in html and "Cap" in html and "Cred" in html


def test_logo_and_template_override(tmp_path: Path) -> None:
    themed = Theme(logo_url="https://example.org/logo.png")
    html = render_issue(issue(), None, theme=themed, renderer=Renderer()).html
    assert 'src="https://example.org/logo.png"' in html and 'alt="KnowledgeWorks"' in html
    email = tmp_path / "email"
    email.mkdir()
    source = (DEFAULT_TEMPLATES / "issue.mjml.j2").read_text()
    (email / "issue.mjml.j2").write_text(source.replace("{{ theme.tagline }}", "OVERRIDDEN"))
    html = render_issue(issue(), None, theme=Theme(template_dir=tmp_path), renderer=Renderer()).html
    assert "OVERRIDDEN" in html  # the override wins; macros still come from the default


def test_template_errors_become_render_errors(tmp_path: Path) -> None:
    (tmp_path / "issue.mjml.j2").write_text("<mjml>{{ nope.nothing }}</mjml>")
    with pytest.raises(RenderError):
        render_issue(issue(), None, theme=Theme(template_dir=tmp_path), renderer=Renderer())
    (tmp_path / "issue.mjml.j2").write_text("<mjml><mj-body><mj-section>")
    with pytest.raises(RenderError):
        render_issue(issue(), None, theme=Theme(template_dir=tmp_path), renderer=Renderer())


def test_settings_are_accepted_as_theme(make_settings: object) -> None:
    from newsletter.config import Settings

    assert callable(make_settings)
    settings = make_settings(organisation="Org X", list_id="x.example.org")
    assert isinstance(settings, Settings)
    rendered = render_issue(issue(), None, theme=settings, renderer=Renderer())
    assert rendered.headers["List-Id"] == "Org X <x.example.org>"
