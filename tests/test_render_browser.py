"""Preview screenshots in headless Chromium (desktop 600 px and phone 375 px)."""

from __future__ import annotations

import struct
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest
from issue_helpers import THEME, issue_42

from newsletter.issues.preview import sample_values, write_preview
from newsletter.render import Renderer, render_issue
from newsletter.transports import Sender

pytestmark = pytest.mark.browser
T = TypeVar("T")


def _png_size(path: Path) -> tuple[int, int]:
    header = path.read_bytes()[:24]
    assert header[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", header[16:24])
    return width, height


def _in_chromium(html: str, widths: tuple[int, ...], look: Callable[[Any], T]) -> list[T]:
    """``look(page)`` for ``html`` at each viewport width, in one headless Chromium."""
    from playwright.sync_api import sync_playwright

    from newsletter.issues.preview import CHROMIUM_ARGS, _route, chromium_path

    seen = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS)
        for width in widths:
            page = browser.new_page(viewport={"width": width, "height": 800})
            page.route("**/*", _route)
            page.set_content(html, wait_until="load")
            seen.append(look(page))
            page.close()
        browser.close()
    return seen


def _page_width(html: str, viewport: int) -> int:
    """The document's scroll width: wider than the viewport means sideways scrolling."""
    look = lambda page: int(page.evaluate("document.documentElement.scrollWidth"))  # noqa: E731
    return _in_chromium(html, (viewport,), look)[0]


def test_preview_writes_screenshots_at_both_widths(tmp_path: Path) -> None:
    rendered = render_issue(issue_42(), None, theme=THEME, renderer=Renderer())
    files = write_preview(
        rendered,
        tmp_path,
        sender=Sender(email="news@example.org", name="News"),
        values=sample_values(THEME.base_url, 42),
    )
    sizes = {path.name: _png_size(path) for path in files.pngs}
    assert set(sizes) == {"email-600.png", "email-375.png"}
    assert sizes["email-600.png"][0] == 600 and sizes["email-375.png"][0] == 375
    # A whole issue is long, and the phone layout (stacked cards) is longer still.
    assert 1500 < sizes["email-600.png"][1] < sizes["email-375.png"][1]
    html = files.html.read_text()
    assert _page_width(html, 375) <= 375  # no sideways scrolling on a phone


def _screenshots(html: str) -> list[bytes]:
    return _in_chromium(html, (600, 375), lambda page: page.screenshot(full_page=True))


def test_a_line_per_table_row_renders_pixel_for_pixel_like_mjmls_own_lines(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The newlines ``compile_mjml`` adds after rows and cells (so that quoted-printable
    re-breaks a row per recipient, not a whole section) change no pixel at either width."""
    import re

    from newsletter.render import email as email_render

    ours = render_issue(issue_42(), None, theme=THEME, renderer=Renderer()).html
    monkeypatch.setattr(email_render, "_ROW_ENDS", re.compile("((?!))"))  # mjml-python as is
    theirs = render_issue(issue_42(), None, theme=THEME, renderer=Renderer()).html
    assert ours.replace("\n", "") == theirs.replace("\n", "")
    assert max(map(len, ours.splitlines())) < 2000 < max(map(len, theirs.splitlines()))
    assert _screenshots(ours) == _screenshots(theirs)
