"""Screenshots for the README's "Editor's month" walk-through, taken in Chromium.

    .venv/bin/python docs/editors_month.py        # writes docs/editors-month/*.png

It builds the same realistic site as the browser tests (Issue 42 sent, Issue 43 in the
works with a history and an uploaded image) in a temp folder, serves it with uvicorn,
signs in as the editor, then the admin, and photographs each step.  The PNGs are
reduced to a 64-colour palette so they stay small in the repository.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from PIL import Image  # noqa: E402

from tests.browser.realistic_site import (  # noqa: E402
    ADMIN,
    EDITOR,
    chromium_browser,
    isolated_env,
    new_page,
    running_site,
    sign_in,
)

OUT = ROOT / "docs" / "editors-month"
SEEDS_DIR = ROOT / "newsletter" / "sample_data" / "library"
VIEW = {"width": 1100, "height": 760}


def shot(page: Any, name: str, *, selector: str | None = None) -> None:
    path = OUT / f"{name}.png"
    if selector:
        page.locator(selector).first.screenshot(path=str(path))
    else:
        page.screenshot(path=str(path))
    image = Image.open(path).convert("RGB")
    image.quantize(colors=64, method=Image.Quantize.MEDIANCUT).save(path, optimize=True)
    print(f"{path.relative_to(ROOT)}: {path.stat().st_size // 1024} KB")


def editor_steps(page: Any, site: Any) -> None:
    sign_in(page, site, EDITOR)
    page.goto(site.url + "/admin/issues")
    shot(page, "1-duplicate-last-issue")
    page.goto(site.url + "/admin/library/new")
    shot(page, "2-add-a-resource")
    page.goto(site.url + "/admin/issues/43")
    page.locator("#details summary").click()  # folded: the sections come into view
    page.locator("#sections-h").scroll_into_view_if_needed()
    shot(page, "3-editor-drag-undo-history")
    page.locator("[data-item-id] summary").first.click()
    page.locator("[data-item-id] .image-tools").first.scroll_into_view_if_needed()
    shot(page, "4-item-image", selector="[data-item-id] .image-tools")
    page.goto(site.url + "/admin/media")
    shot(page, "5-media-library")
    page.goto(site.url + "/admin/issues/43/revisions")
    page.get_by_role("link", name="edited the details").click()
    shot(page, "6-revision-diff")


def admin_steps(page: Any, site: Any) -> None:
    sign_in(page, site, ADMIN)
    page.goto(site.url + f"/admin/campaigns/{site.ids['scheduled_id']}/review")
    shot(page, "7-review-before-sending")
    page.goto(site.url + f"/admin/campaigns/{site.ids['campaign_id']}")
    shot(page, "8-report")


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    with (
        tempfile.TemporaryDirectory() as folder,
        isolated_env(Path(folder)),
        running_site(Path(folder), SEEDS_DIR) as site,
        chromium_browser() as browser,
    ):
        for steps in (editor_steps, admin_steps):
            page = new_page(browser, VIEW)
            page.on("dialog", lambda d: d.accept())
            steps(page, site)
            page.context.close()


if __name__ == "__main__":
    main()
