"""Preview files for editors: the HTML, the text part, a full ``.eml`` and screenshots.

Screenshots come from headless Chromium at 600 px (desktop clients) and 375 px
(phones).  The browser is offline: image requests get a neutral placeholder
(the sample issue's image URLs are placeholders too) and everything else is
refused, so a preview never depends on the network and never leaks a request.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Mapping
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

from newsletter.errors import RenderError
from newsletter.message import RenderedEmail, Template
from newsletter.transports.base import Sender, message_id
from newsletter.transports.mime import build_mime, to_bytes

WIDTHS = (600, 375)
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]


def sample_values(base_url: str, number: int) -> dict[str, str]:
    """Per-recipient values a preview fills in (never a real subscriber's)."""
    from newsletter.subscribers.links import test_links

    return {
        "name": "Sample Reader",
        "email": "reader@example.org",
        "web_url": f"{base_url.rstrip('/')}/archive/{number}",
        **test_links(base_url),
    }


# --- what an editor's preview shows besides the email itself -------------------------

_DARK_QUERY = re.compile(r"@media\s*\(\s*prefers-color-scheme\s*:\s*dark\s*\)", re.IGNORECASE)
# Characters the preheader is padded with: they take room in an inbox line but show nothing.
_INVISIBLE = "\u034f\u200c\u00a0\u200b\u2007\u00ad"
INBOX_CHARS = 140  # about what a wide inbox list shows after the subject


def as_dark(html: str) -> str:
    """The email as a client in dark mode shows it: its dark-mode styles, always on.

    A browser frame cannot be put in dark mode on its own, so the preview's dark
    tab applies the template's ``prefers-color-scheme: dark`` rules unconditionally.
    """
    return _DARK_QUERY.sub("@media all", html)


class _FirstText(HTMLParser):
    """The body's text in document order, hidden preheader included, as inbox lists read it."""

    SKIP = frozenset({"head", "style", "script", "title"})
    INLINE = frozenset({"a", "span", "strong", "b", "em", "i", "u", "s", "code", "small", "sup"})

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.skipping = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.skipping += tag in self.SKIP
        if tag not in self.INLINE:
            self.parts.append(" ")  # blocks and cells read as separate words

    def handle_endtag(self, tag: str) -> None:
        self.skipping -= tag in self.SKIP and self.skipping > 0
        if tag not in self.INLINE:
            self.parts.append(" ")

    def handle_data(self, data: str) -> None:
        if not self.skipping:
            self.parts.append(data)


def inbox_snippet(html: str, limit: int = INBOX_CHARS) -> str:
    """The text an inbox list shows after the subject: the preheader, or the first words.

    The invisible padding after a preheader counts against ``limit`` as it does
    in a client (that is what it is for), then disappears from what is shown.
    """
    parser = _FirstText()
    parser.feed(html)
    parser.close()
    text = re.sub(r"[ \t\r\n]+", " ", "".join(parser.parts)).strip()[:limit]
    shown = re.sub(f"[{_INVISIBLE}]+", " ", text)
    return re.sub(r"\s+", " ", shown).strip()


@dataclass(frozen=True)
class InboxLine:
    """One message in an inbox list: who, what, and the line of text after the subject."""

    sender: str
    address: str
    subject: str
    snippet: str
    preheader: str  # empty: the snippet is the email's first words


def inbox_line(html: str, *, subject: str, sender: Sender, preheader: str) -> InboxLine:
    return InboxLine(
        sender=sender.name or sender.email, address=sender.email, subject=subject,
        snippet=inbox_snippet(html), preheader=preheader.strip(),
    )  # fmt: skip


def chromium_path() -> str | None:
    """The system Chromium (``CHROMIUM_PATH`` wins); ``None`` lets Playwright use its own."""
    configured = os.environ.get("CHROMIUM_PATH")
    if configured:
        return configured
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    return None


def _placeholder_image(label: str) -> bytes:
    """A 4:3 neutral SVG standing in for a remote image."""
    text = label.replace("&", "&amp;").replace("<", "&lt;")[:40]
    svg = (
        '<svg xmlns="http://www.w3.org/2000/svg" width="800" height="600" viewBox="0 0 800 600">'
        '<defs><linearGradient id="g" x1="0" y1="0" x2="1" y2="1">'
        '<stop offset="0" stop-color="#9fb8c8"/><stop offset="1" stop-color="#5e7f95"/>'
        '</linearGradient></defs><rect width="800" height="600" fill="url(#g)"/>'
        '<circle cx="400" cy="250" r="70" fill="#ffffff" fill-opacity="0.35"/>'
        '<rect x="250" y="360" width="300" height="22" rx="11" fill="#ffffff" fill-opacity="0.35"/>'
        f'<text x="400" y="460" font-family="sans-serif" font-size="30" fill="#ffffff" '
        f'text-anchor="middle">{text}</text></svg>'
    )
    return svg.encode()


def _route(route: Any) -> None:
    request = route.request
    if request.resource_type == "image" and request.url.startswith(("http://", "https://")):
        name = request.url.rstrip("/").rsplit("/", 1)[-1]
        route.fulfill(status=200, content_type="image/svg+xml", body=_placeholder_image(name))
    elif request.url.startswith(("http://", "https://")):
        route.abort()
    else:
        route.continue_()


def screenshots(html: str, targets: Mapping[int, Path]) -> None:
    """Full-page PNGs of ``html`` at each width (px -> file)."""
    try:
        from playwright.sync_api import Error as PlaywrightError
        from playwright.sync_api import sync_playwright
    except ImportError:
        raise RenderError(f"playwright is not installed; {SCREENSHOT_HINT}") from None
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS)
            try:
                for width, path in targets.items():
                    page = browser.new_page(viewport={"width": width, "height": 900})
                    page.route("**/*", _route)
                    page.set_content(html, wait_until="load")
                    page.screenshot(path=str(path), full_page=True)
                    page.close()
            finally:
                browser.close()
    except PlaywrightError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else repr(exc)
        raise RenderError(f"headless Chromium failed ({first}); {SCREENSHOT_HINT}") from None


SCREENSHOT_HINT = (
    "screenshots need the optional preview extra and a system Chromium: "
    "pip install 'newsletter[preview]' and apt-get install chromium"
)


@dataclass
class PreviewFiles:
    html: Path
    text: Path
    eml: Path
    pngs: list[Path] = field(default_factory=list)
    # Why there are no screenshots, when they were asked for and could not be taken:
    # a preview without Chromium is still a preview (the files above are written).
    screenshots_skipped: str | None = None

    @property
    def written(self) -> list[Path]:
        return [self.html, self.text, self.eml, *self.pngs]


def write_preview(
    rendered: RenderedEmail,
    out: Path,
    *,
    sender: Sender,
    values: Mapping[str, str],
    take_screenshots: bool = True,
) -> PreviewFiles:
    """Write ``email.html``, ``email.txt``, ``email.eml`` and ``email-600/375.png`` into ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    filled = Template.compile(rendered).fill(values)
    files = PreviewFiles(out / "email.html", out / "email.txt", out / "email.eml")
    files.html.write_text(filled.html, encoding="utf-8")
    files.text.write_text(filled.text, encoding="utf-8")
    mime = build_mime(
        filled,
        sender=sender,
        to=values["email"],
        to_name=values.get("name") or None,
        msg_id=message_id("preview", sender),
    )
    files.eml.write_bytes(to_bytes(mime))
    if take_screenshots:
        targets = {width: out / f"email-{width}.png" for width in WIDTHS}
        try:
            screenshots(filled.html, targets)
        except RenderError as exc:
            files.screenshots_skipped = str(exc)
        else:
            files.pngs = list(targets.values())
    return files
