"""The click map: the issue's desktop screenshot with each link's box and share of clicks.

The boxes are not guessed from the HTML: Chromium lays out the email exactly
as it is sent to everyone (the whole issue, its links at the positions
``issue_links`` stores) at 600 px, and each anchor's bounding box (the union
of its own and its children's boxes, so a linked image counts whole) is read
from the page in the same render the screenshot comes from.  Each tracked
link's URL is replaced by a marker naming its position, so every box is
known by the position its clicks are counted under.

The map is stored under ``var_dir/clickmaps/issue-<id>/``: ``desktop.png``,
``boxes.json`` and the ``email.html`` it was taken from.  Chromium is never a
hard requirement: without it ``capture`` raises a ``RenderError`` saying what
is missing, and the results table (the map's text alternative) still works.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

from newsletter.config import Settings
from newsletter.errors import RenderError, StateError
from newsletter.issues import store
from newsletter.issues.preview import (
    CHROMIUM_ARGS,
    SCREENSHOT_HINT,
    _route,
    chromium_path,
    sample_values,
)
from newsletter.message import Template, link_field, placeholder
from newsletter.models import Issue
from newsletter.render import render_issue
from newsletter.render.segments import select_sections
from newsletter.sending.prepare import web_url
from newsletter.tracking.links import track
from newsletter.tracking.linkstore import stored_positions

WIDTH = 600  # desktop clients' reading width, as the preview's desktop screenshot
MARKER = "https://clickmap.invalid/link/"
_BOXES_JS = """
(marker) => Array.from(document.querySelectorAll('a[href^="' + marker + '"]')).map((a) => {
  const rects = [a, ...a.querySelectorAll('*')].map((e) => e.getBoundingClientRect())
    .filter((r) => r.width > 0 && r.height > 0);
  if (!rects.length) return null;
  const left = Math.min(...rects.map((r) => r.left)), top = Math.min(...rects.map((r) => r.top));
  const right = Math.max(...rects.map((r) => r.right));
  const bottom = Math.max(...rects.map((r) => r.bottom));
  return {position: parseInt(a.href.slice(marker.length), 10), x: left + window.scrollX,
          y: top + window.scrollY, width: right - left, height: bottom - top};
}).filter((b) => b !== null)
"""
_SIZE_JS = "() => [document.documentElement.scrollWidth, document.documentElement.scrollHeight]"


@dataclass(frozen=True)
class Box:
    position: int
    x: float
    y: float
    width: float
    height: float


@dataclass
class ClickMap:
    issue_id: int
    width: int  # the screenshot's size in CSS pixels (device scale 1)
    height: int
    taken_at: str
    boxes: list[Box] = field(default_factory=list)

    def style(self, box: Box) -> str:
        """The box as percentages of the screenshot, so it follows the image's shown size."""
        w, h = self.width or 1, self.height or 1
        return (
            f"left:{100 * box.x / w:.3f}%;top:{100 * box.y / h:.3f}%;"
            f"width:{100 * box.width / w:.3f}%;height:{100 * box.height / h:.3f}%"
        )


def folder(settings: Settings, issue_id: int) -> Path:
    return settings.var_dir / "clickmaps" / f"issue-{issue_id}"


def image_path(settings: Settings, issue_id: int) -> Path:
    return folder(settings, issue_id) / "desktop.png"


def load(settings: Settings, issue_id: int) -> ClickMap | None:
    """The stored map, or ``None`` if none was drawn (or its files are unreadable)."""
    path = folder(settings, issue_id) / "boxes.json"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        boxes = [Box(**b) for b in data.pop("boxes")]
        return ClickMap(**data, boxes=boxes)
    except (OSError, ValueError, TypeError, KeyError):
        return None


def email_html(settings: Settings, issue: Issue, *, session: Session) -> str:
    """The whole issue's email as sent, each tracked link's URL a marker of its position."""
    content = store.issue_content(issue, session=session)
    positions = stored_positions(issue.id, session=session)
    if not positions:
        raise StateError(
            f"issue {issue.number} has no stored links yet: they are stored when its first "
            "campaign message is prepared"
        )
    rendered = render_issue(content, None, theme=settings)
    resolve = {placeholder("web_url", html=True): web_url(settings, content)}
    tracked = track(rendered, sections=select_sections(content, None), positions=positions,
                    resolve=resolve, pixel=False)  # fmt: skip
    values: dict[str, str] = dict(sample_values(settings.base_url, content.number))
    values.update({link_field(p): f"{MARKER}{p}" for p in set(positions.values())})
    return Template.compile(tracked).fill(values).html


def capture(settings: Settings, issue: Issue, *, session: Session) -> ClickMap:
    """Lay the email out in Chromium, store the screenshot and each link's box."""
    html = email_html(settings, issue, session=session)
    out = folder(settings, issue.id)
    out.mkdir(parents=True, exist_ok=True)
    boxes, size = _shoot(html, out / "desktop.png")
    found = ClickMap(issue.id, int(size[0]), int(size[1]),
                     datetime.now(UTC).isoformat(timespec="seconds"),
                     [Box(**b) for b in boxes])  # fmt: skip
    (out / "email.html").write_text(html, encoding="utf-8")
    data = {**asdict(found), "boxes": [asdict(b) for b in found.boxes]}
    (out / "boxes.json").write_text(json.dumps(data), encoding="utf-8")
    return found


def _shoot(html: str, png: Path) -> tuple[list[dict[str, Any]], list[int]]:
    try:
        from playwright.sync_api import Error as PlaywrightError
        from playwright.sync_api import sync_playwright
    except ImportError:
        raise RenderError(f"the click map needs playwright; {SCREENSHOT_HINT}") from None
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS)
            try:
                page = browser.new_page(viewport={"width": WIDTH, "height": 900})
                page.route("**/*", _route)  # offline: placeholder images, nothing else fetched
                page.set_content(html, wait_until="load")
                size = page.evaluate(_SIZE_JS)
                boxes = page.evaluate(_BOXES_JS, MARKER)
                page.screenshot(path=str(png), full_page=True)
            finally:
                browser.close()
    except PlaywrightError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else repr(exc)
        raise RenderError(f"the click map needs headless Chromium ({first}); "
                          f"{SCREENSHOT_HINT}") from None  # fmt: skip
    return boxes, size


def shares(found: ClickMap, clicks: Mapping[int, int]) -> dict[int, float]:
    """Each box's share of all human clicks on the issue's links (position -> 0..1)."""
    total = sum(clicks.values())
    return {b.position: (clicks.get(b.position, 0) / total if total else 0.0) for b in found.boxes}
