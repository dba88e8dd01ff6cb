"""The click map drawn in real Chromium: every link's box is where Chromium puts the link."""

from __future__ import annotations

import struct
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import select

from newsletter.config import Settings
from newsletter.db import connect
from newsletter.errors import RenderError
from newsletter.insights import clickmap
from newsletter.issues import preview
from newsletter.models import Issue, IssueLink
from tests.admin_helpers import signed_in_client
from tests.browser_helpers import CHROMIUM_ARGS, chromium
from tests.insights_helpers import send_issue42
from tests.issue_helpers import ISSUE_42, import_library

pytestmark = pytest.mark.browser
playwright_api = pytest.importorskip("playwright.sync_api")


def _png_size(path: Path) -> tuple[int, int]:
    width, height = struct.unpack(">II", path.read_bytes()[16:24])  # the IHDR chunk
    return width, height


def test_click_map_boxes_are_where_chromium_lays_each_link_out(
    make_settings: Callable[..., Settings], seeds_dir: Path
) -> None:
    executable = chromium()
    settings = make_settings(scanner_window_seconds=0)
    db = connect(settings)
    with db.session() as session:
        from newsletter.issues.source import load_source
        from newsletter.issues.store import import_source

        import_library(seeds_dir, session=session, settings=settings)
        import_source(load_source(ISSUE_42), session=session)
    sent = send_issue42(db, settings)
    first = min(p for p, link in sent.links.items() if link.resource_id is not None)
    sent.click("eq0@example.org", first, times=3)
    sent.click("pol0@example.org", max(sent.links))
    client = signed_in_client(db, settings, "admin")
    base = f"/admin/campaigns/{sent.campaign_id}"
    assert client.form(f"{base}/clickmap").status_code == 303
    found = clickmap.load(settings, sent.issue_id)
    assert found is not None
    png = clickmap.image_path(settings, sent.issue_id)
    assert _png_size(png) == (found.width, found.height) and found.width == clickmap.WIDTH
    with db.session() as session:
        stored = set(session.scalars(select(IssueLink.position)))
    assert {b.position for b in found.boxes} == stored  # every link, once each
    for box in found.boxes:
        assert box.width > 0 and box.height > 0
        assert box.x >= 0 and box.x + box.width <= found.width + 0.5
        assert box.y >= 0 and box.y + box.height <= found.height + 0.5
    # Exact, not guessed: at each box's centre, Chromium finds that very link.
    html = (clickmap.folder(settings, sent.issue_id) / "email.html").read_text(encoding="utf-8")
    with playwright_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": found.width, "height": found.height})
        page.route("**/*", preview._route)  # the same offline images as the capture
        page.set_content(html)
        # A 5 x 5 grid over each box: some point is that very link, and no point another.
        hits = page.evaluate(
            """(boxes) => boxes.map((b) => {
                const found = [];
                for (let i = 1; i <= 5; i++) for (let j = 1; j <= 5; j++) {
                  const e = document.elementFromPoint(b.x + b.width * i / 6,
                                                      b.y + b.height * j / 6);
                  const link = e && e.closest('a');
                  if (link) found.push(parseInt(link.href.split('/').pop(), 10));
                }
                return found; })""",
            [vars(b) for b in found.boxes],
        )
        browser.close()
    for box, found_here in zip(found.boxes, hits, strict=True):
        assert box.position in found_here and set(found_here) == {box.position}, vars(box)
    page_html = client.get(base).text
    assert f"{base}/clickmap.png" in page_html and page_html.count("clickmap-box") >= len(stored)
    assert ">75.0%<" in page_html  # 3 of the 4 reader clicks
    image = client.get(f"{base}/clickmap.png")
    assert image.status_code == 200 and image.content[:8] == b"\x89PNG\r\n\x1a\n"


def test_without_chromium_the_click_map_says_why_and_the_report_stays(
    make_settings: Callable[..., Settings], seeds_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = make_settings()
    db = connect(settings)
    with db.session() as session:
        from newsletter.issues.source import load_source
        from newsletter.issues.store import import_source

        import_library(seeds_dir, session=session, settings=settings)
        import_source(load_source(ISSUE_42), session=session)
    sent = send_issue42(db, settings)
    monkeypatch.setenv("CHROMIUM_PATH", "/nonexistent/chromium")
    with db.session() as session:
        issue = session.scalars(select(Issue)).one()
        with pytest.raises(RenderError, match="needs headless Chromium"):
            clickmap.capture(settings, issue, session=session)
    client = signed_in_client(db, settings, "admin")
    answer = client.form(f"/admin/campaigns/{sent.campaign_id}/clickmap")
    assert answer.status_code == 422
    assert 'id="clickmap-error"' in answer.text and "apt-get install chromium" in answer.text
    assert 'id="results-links"' in answer.text  # the numbers are still there
