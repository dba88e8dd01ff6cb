"""Editing that forgives, in real Chromium: drag and drop, undo, a revision restored, images.

One small site (SQLite, Issue 42 and the library) served by uvicorn.  The editor drags an
item into another section and a section above another with the mouse (the order is saved),
undoes the last change, restores a revision from the history, and tries a file that is not
an image (a clear line in the editor, nothing saved).  axe-core checks the new pages.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from newsletter.admin import users
from newsletter.db import Database
from newsletter.issues import store
from newsletter.models import IssueRevision, MediaImage
from tests.admin_helpers import fast_hashing, load_issue_42  # noqa: F401 - autouse fixture
from tests.browser.realistic_site import (
    EDITOR,
    PASSWORD,
    Site,
    chromium_browser,
    new_page,
    serious_violations,
    sign_in,
)
from tests.browser_helpers import free_port, serve
from tests.editing_helpers import image_server, png

pytestmark = pytest.mark.browser
playwright_api = pytest.importorskip("playwright.sync_api")
pytest.importorskip("axe_playwright_python.sync_playwright")
expect = playwright_api.expect


@pytest.fixture
def site(make_settings: Any, seeds_dir: Path) -> Iterator[Site]:
    from newsletter.db import connect
    from newsletter.web import create_app

    port = free_port()
    settings = make_settings(base_url=f"http://127.0.0.1:{port}")
    db = connect(settings)
    load_issue_42(db, settings, seeds_dir)
    with db.session() as session:
        users.add_user(EDITOR, PASSWORD, "editor", session=session)
    try:
        with serve(create_app(settings, db), port) as url:
            yield Site(url, db, settings, None)
    finally:
        db.dispose()


@pytest.fixture
def page(site: Site) -> Iterator[Any]:
    with chromium_browser() as browser:
        tab = new_page(browser, {"width": 1440, "height": 1000})
        errors: list[str] = []
        tab.on("pageerror", lambda e: errors.append(str(e)))
        tab.on("dialog", lambda d: d.accept())
        sign_in(tab, site, EDITOR)
        yield tab
        assert errors == []


def structure(db: Database) -> list[tuple[str, list[int]]]:
    with db.session() as session:
        issue = store.get_issue(42, session=session)
        return [(s.heading, [i.resource_id or 0 for i in s.items]) for s in issue.sections]


def revision_labels(db: Database) -> list[str]:
    with db.session() as session:
        rows = session.scalars(select(IssueRevision.label).order_by(IssueRevision.id.desc()))
        return list(rows)


def wait_saved(page: Any, db: Database, count: int) -> None:
    """The live fragment came back (the server answered) and ``count`` revisions exist."""
    page.wait_for_function("document.querySelectorAll('[data-item-id]').length > 0")
    for _ in range(100):
        if len(revision_labels(db)) >= count:
            return
        page.wait_for_timeout(50)
    raise AssertionError(f"no revision {count}: {revision_labels(db)}")


def test_drag_and_drop_undo_restore_and_images(page: Any, site: Site, tmp_path: Path) -> None:
    """One test, one browser and one site: Chromium's start-up is most of the time here."""
    db = site.db
    original = structure(db)
    page.goto(site.url + "/admin/issues/42")
    first, second = (
        page.locator("[data-section-id]").nth(0),
        page.locator("[data-section-id]").nth(1),
    )
    moved = first.locator("[data-item-id]").first
    moved_resource = original[0][1][0]
    # an item by its handle onto the second section's first item (lower half: after it)
    target = second.locator("[data-item-id]").first
    box = target.bounding_box()
    moved.locator("[data-drag=item]").drag_to(
        target, target_position={"x": 40, "y": box["height"] - 4}
    )
    wait_saved(page, db, 2)
    after_item = structure(db)
    assert moved_resource not in after_item[0][1]
    assert after_item[1][1][:2] == [original[1][1][0], moved_resource]
    assert revision_labels(db) == ["reordered by drag and drop", "as it was"]
    # a section by its handle above the first (a tall window: the drag needs no scrolling)
    page.set_viewport_size({"width": 1440, "height": 4000})
    page.locator("[data-section-id]").nth(2).locator("[data-drag=section]").drag_to(
        page.locator("[data-section-id]").nth(0), target_position={"x": 60, "y": 4}
    )
    wait_saved(page, db, 3)
    after_section = structure(db)
    assert [h for h, _ in after_section] == [
        original[2][0],
        original[0][0],
        original[1][0],
        *[h for h, _ in original[3:]],
    ]
    # undo: the section goes back; the item move stays
    page.get_by_role("button", name="Undo last change").click()
    page.wait_for_url("**/admin/issues/42?done=undone*")
    expect(page.locator(".alert-ok")).to_contain_text("Undone")
    assert structure(db) == after_item
    # restore "as it was" from the history: the original issue again
    page.get_by_role("link", name="History").click()
    assert serious_violations(page) == []
    page.get_by_role("link", name="as it was").click()
    expect(page.locator(".diff")).to_contain_text("sections:")
    assert serious_violations(page) == []
    page.get_by_role("button", name="Restore this revision").click()
    page.wait_for_url("**/admin/issues/42?done=restored*")
    assert structure(db) == original
    assert revision_labels(db)[0].startswith("restored revision #")
    page.set_viewport_size({"width": 1440, "height": 1000})
    upload_images(page, site, tmp_path)


def open_overrides(item: Any) -> None:
    """Unfold the item's "Edit blurb, image and link" (left open when a save was refused)."""
    if not item.locator("details.overrides").evaluate("d => d.open"):
        item.locator("details.overrides > summary").click()


def upload_images(page: Any, site: Site, tmp_path: Path) -> None:
    """A file that is not an image: one line in the editor, nothing saved; then a real one."""
    fake = tmp_path / "notes.png"
    fake.write_text("these are notes, not pixels")
    good = tmp_path / "classroom.png"
    good.write_bytes(png(900, 600))
    page.goto(site.url + "/admin/issues/42")
    item = page.locator("[data-item-id]").first
    open_overrides(item)
    item.get_by_label("Upload an image").set_input_files(str(fake))
    item.get_by_role("button", name="Upload and use").click()
    expect(page.locator("#live .alert-error")).to_contain_text("notes.png is not an image")
    huge = tmp_path / "huge.png"
    with huge.open("wb") as out:  # 30 MB: refused from its size before the server reads it
        out.truncate(30 * 1024 * 1024)
    item = page.locator("[data-item-id]").first
    open_overrides(item)
    item.get_by_label("Upload an image").set_input_files(str(huge))
    item.get_by_role("button", name="Upload and use").click()
    expect(page.locator("#live .alert-error")).to_contain_text(
        "Not saved: the image is larger than the 10 MB this server accepts"
    )
    with image_server({}) as base:  # a URL that answers 404
        item = page.locator("[data-item-id]").first
        open_overrides(item)
        item.get_by_label("Or fetch an image from a URL").fill(f"{base}/gone.png")
        item.get_by_role("button", name="Fetch and use").click()
        expect(page.locator("#live .alert-error")).to_contain_text(
            f"image {base}/gone.png answered 404; nothing saved"
        )
    with site.db.session() as session:
        assert session.scalar(select(func.count()).select_from(MediaImage)) == 0
    item = page.locator("[data-item-id]").first
    open_overrides(item)
    item.get_by_label("Upload an image").set_input_files(str(good))
    item.get_by_label("Its alt text").first.fill("Students at a table")
    item.get_by_role("button", name="Upload and use").click()
    expect(page.locator("#live .alert-ok")).to_contain_text("The image is stored")
    page.goto(site.url + "/admin/media")
    expect(page.locator(".media-card")).to_have_count(1)
    assert page.locator(".media-card img").evaluate("i => i.naturalWidth") == 340
    assert serious_violations(page) == []
    page.goto(site.url + "/admin/library/new")
    assert serious_violations(page) == []
