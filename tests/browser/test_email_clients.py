"""Issue 42 as readers get it, in real Chromium: accessible, in light and dark, at every width.

axe-core checks the email and its web version in both colour schemes (contrast
included); the headings outline the issue; widths from 320 to 800 px never
overflow and never stack columns off-centre; Outlook.com's dark-mode attributes
recolour like the media query.  Screenshots at 320, 375, 480, 540, 600 and 800 px,
light and dark, go to ``$SCREENSHOT_DIR`` (or the test's temp folder) for review.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from issue_helpers import THEME, issue_42

from newsletter.issues.preview import _route, sample_values
from newsletter.message import Template
from newsletter.render import Renderer, render_issue, render_web_version
from tests.browser.realistic_site import chromium_browser, serious_violations

pytestmark = pytest.mark.browser
pytest.importorskip("playwright.sync_api")
pytest.importorskip("axe_playwright_python.sync_playwright")

SHOT_WIDTHS = (320, 375, 480, 540, 600, 800)
# Every element's box against the viewport (the hidden preheader has no box).
OVERFLOW = """() => {
  const width = document.documentElement.clientWidth, wide = [];
  for (const el of document.querySelectorAll('body *')) {
    const box = el.getBoundingClientRect();
    if (box.width > 0 && (box.right > width + 0.5 || box.left < -0.5)) {
      wide.push(`${el.tagName.toLowerCase()}.${el.className} ${Math.round(box.left)}..${Math.round(box.right)}`);
    }
  }
  return {scroll: document.documentElement.scrollWidth, wide: wide.slice(0, 5)};
}"""
# Each card with an image: where its two columns sit, and how centred the card is.
CARDS = """() => [...document.querySelectorAll('.nl-item')].filter(c => c.querySelector('.nl-media'))
  .map(card => {
    const outer = card.getBoundingClientRect();
    const [media, text] = [...card.querySelectorAll('.mj-outlook-group-fix')].map(c => c.getBoundingClientRect());
    const section = card.closest('.nl-card').getBoundingClientRect();
    return {mediaTop: media.top, textTop: text.top, mediaLeft: media.left, textLeft: text.left,
            mediaWidth: media.width, textRight: text.right, cardLeft: outer.left, cardRight: outer.right,
            gapLeft: section.left, gapRight: document.documentElement.clientWidth - section.right};
  })"""


@pytest.fixture(scope="module")
def email_html() -> str:
    rendered = render_issue(issue_42(), theme=THEME, renderer=Renderer())
    return Template.compile(rendered).fill(sample_values(THEME.base_url, 42)).html


@pytest.fixture(scope="module")
def web_html() -> str:
    return render_web_version(issue_42(), theme=THEME, renderer=Renderer())


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with chromium_browser() as instance:
        yield instance


def open_html(browser: Any, html: str, *, width: int = 600, scheme: str = "light") -> Any:
    page = browser.new_page(viewport={"width": width, "height": 900}, color_scheme=scheme)
    page.route("**/*", _route)  # images: an offline placeholder; nothing else leaves
    page.set_content(html, wait_until="load")
    return page


@pytest.mark.parametrize("scheme", ["light", "dark"])
@pytest.mark.parametrize("which", ["email", "web version"])
def test_no_serious_axe_violation(
    browser: Any, email_html: str, web_html: str, which: str, scheme: str
) -> None:
    page = open_html(browser, email_html if which == "email" else web_html, scheme=scheme)
    assert serious_violations(page) == []
    page.close()


def test_headings_outline_the_issue_with_lang_and_title(browser: Any, email_html: str) -> None:
    page = open_html(browser, email_html)
    content = issue_42()
    assert page.evaluate("document.documentElement.lang") == "en"
    assert page.title() == content.title

    def texts(tag: str) -> list[str]:
        found = page.locator(tag).all_inner_texts()
        return [" ".join(t.split()) for t in found]

    assert texts("h1") == [content.title]
    assert texts("h2") == [s.heading.upper() for s in content.sections]  # CSS capitals
    assert page.locator("h2").first.evaluate("h => h.textContent") == content.sections[0].heading
    assert texts("h3") == [item.title for item in content.items]
    alts = page.locator("img").evaluate_all("imgs => imgs.map(i => i.alt)")
    assert alts == [i.image.alt for i in content.items if i.image]
    page.close()


def test_no_overflow_and_no_off_centre_columns_from_320_to_800_px(
    browser: Any, email_html: str
) -> None:
    page = open_html(browser, email_html, width=320)
    for width in range(320, 801, 10):
        page.set_viewport_size({"width": width, "height": 900})
        measured = page.evaluate(OVERFLOW)
        assert measured == {"scroll": width, "wide": []}, width
        for card in page.evaluate(CARDS):
            assert abs(card["gapLeft"] - card["gapRight"]) <= 1, (width, card)  # centred
            if width >= 480:  # side by side, within the card
                assert abs(card["mediaTop"] - card["textTop"]) <= 1, (width, card)
                assert (
                    card["mediaLeft"] < card["textLeft"]
                    and card["textRight"] <= card["cardRight"] + 1
                )
            else:  # stacked, the image as wide as the card's text
                assert (
                    card["mediaTop"] < card["textTop"]
                    and abs(card["mediaLeft"] - card["textLeft"]) <= 1
                )
    page.close()


def _colours(page: Any) -> dict[str, str]:
    return dict(
        page.evaluate("""() => ({
        page: getComputedStyle(document.querySelector('.nl-body')).backgroundColor,
        card: getComputedStyle(document.querySelector('.nl-card')).backgroundColor,
        text: getComputedStyle(document.querySelector('.nl-ink div')).color,
        heading: getComputedStyle(document.querySelector('h2')).color,
        title: getComputedStyle(document.querySelector('h3 a')).color})""")
    )


LIGHT = {"page": "rgb(238, 242, 245)", "card": "rgb(255, 255, 255)", "text": "rgb(31, 42, 51)",
         "heading": "rgb(179, 84, 14)", "title": "rgb(31, 42, 51)"}  # fmt: skip
DARK = {"page": "rgb(17, 23, 28)", "card": "rgb(27, 34, 40)", "text": "rgb(227, 233, 238)",
        "heading": "rgb(240, 163, 94)", "title": "rgb(227, 233, 238)"}  # fmt: skip


def test_dark_mode_by_media_query_and_by_outlook_attributes(
    browser: Any, email_html: str, shots: Path
) -> None:
    metas = open_html(browser, email_html)
    names = metas.locator("meta[name$=color-schemes], meta[name=color-scheme]")
    assert names.evaluate_all("ms => ms.map(m => m.name + '=' + m.content)") == [
        "color-scheme=light dark", "supported-color-schemes=light dark",
    ]  # fmt: skip
    assert _colours(metas) == LIGHT
    # Outlook.com marks what it recolours; the same palette follows without the media query.
    metas.evaluate(
        "document.body.setAttribute('data-ogsc', ''); document.body.setAttribute('data-ogsb', '')"
    )
    assert _colours(metas) == DARK
    metas.close()
    for scheme, expected in (("light", LIGHT), ("dark", DARK)):
        page = open_html(browser, email_html, scheme=scheme)
        assert _colours(page) == expected
        for width in SHOT_WIDTHS:
            page.set_viewport_size({"width": width, "height": 900})
            assert page.evaluate(OVERFLOW)["wide"] == []
            page.screenshot(path=str(shots / f"email-{scheme}-{width}.png"), full_page=True)
        page.close()
    assert len(list(shots.glob("email-*.png"))) == 2 * len(SHOT_WIDTHS)
