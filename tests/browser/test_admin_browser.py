"""The admin end to end in headless Chromium against a real uvicorn server (SQLite).

An editor signs in, builds an issue from library items (search as you type,
sections, reorder, a blurb override, the intro), watches the live preview,
sends a test (captured by the outbox) and marks it ready; an admin starts the
campaign, watches the progress bar while an in-process worker sends it, opens
the report, and looks up a subscriber.  Screenshots of every main page go to
``$SCREENSHOT_DIR`` (or the test's temp folder) for review; any console error
(a CSP violation included) fails the test.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, update

from newsletter.admin import users
from newsletter.config import Settings
from newsletter.db import Database, connect
from newsletter.models import Campaign, Delivery
from newsletter.sending import service
from tests.admin_helpers import fast_hashing  # noqa: F401 - autouse fixture
from tests.browser.realistic_site import PASSWORD, offline, reader_with_history
from tests.browser_helpers import CHROMIUM_ARGS, chromium, free_port, serve
from tests.issue_helpers import import_library
from tests.sending_helpers import add_subscribers

pytestmark = pytest.mark.browser
playwright_api = pytest.importorskip("playwright.sync_api")
expect = playwright_api.expect

DESKTOP = {"width": 1440, "height": 1000}
PHONE = {"width": 390, "height": 844}


@dataclass
class Site:
    url: str
    db: Database
    settings: Settings


@pytest.fixture
def site(make_settings: Callable[..., Settings], seeds_dir: Path) -> Iterator[Site]:
    port = free_port()
    settings = make_settings(
        base_url=f"http://127.0.0.1:{port}", batch_size=4, rate_limit_per_second=12.0
    )
    db = connect(settings)
    with db.session() as session:
        import_library(seeds_dir, session=session, settings=settings)
        users.add_user("editor@example.org", PASSWORD, "editor", session=session)
        users.add_user("admin@example.org", PASSWORD, "admin", session=session)
        add_subscribers(session, 16, topics=("Equity",), prefix="reader")
        add_subscribers(session, 8, prefix="friend")
        reader_with_history(session, settings)
    from newsletter.web import create_app

    app = create_app(settings, db)  # the configured transport: the outbox
    try:
        with serve(app, port) as url:
            yield Site(url, db, settings)
    finally:
        db.dispose()


@pytest.fixture
def page(site: Site) -> Iterator[Any]:
    with playwright_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium(), args=CHROMIUM_ARGS)
        context = browser.new_context(viewport=DESKTOP)
        context.route("https://**/*", offline)  # remote images in the email: a placeholder
        page = context.new_page()
        page.set_default_timeout(10_000)
        errors: list[str] = []
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.on("dialog", lambda d: d.accept())
        try:
            yield page
        finally:
            browser.close()
        assert errors == []


def snap(page: Any, shots: Path, name: str, *, phone: bool = True) -> None:
    page.screenshot(path=str(shots / f"admin-{name}-desktop.png"), full_page=True)
    if phone:
        page.set_viewport_size(PHONE)
        page.screenshot(path=str(shots / f"admin-{name}-phone.png"), full_page=True)
        page.set_viewport_size(DESKTOP)


def snap_mobile_preview(page: Any, shots: Path) -> None:
    """On a phone the preview sits below the editor: the 375 px frame, scrolled into view."""
    page.set_viewport_size(PHONE)
    page.get_by_role("tab", name="Mobile 375 px").click()
    page.locator("#preview-h").scroll_into_view_if_needed()
    page.wait_for_timeout(400)
    page.screenshot(path=str(shots / "admin-2-issue-preview-phone.png"))
    page.get_by_role("tab", name="Desktop 600 px").click()
    page.set_viewport_size(DESKTOP)
    page.evaluate("window.scrollTo(0, 0)")  # Chromium misplaces clicks after a resize otherwise


def sign_in(page: Any, site: Site, email: str) -> None:
    page.goto(site.url + "/admin/issues")
    assert "/admin/login" in page.url  # nothing answers without a login
    page.get_by_label("Email address").fill(email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url("**/admin/issues")


def preview_text(page: Any) -> str:
    return str(page.frame_locator("iframe[data-preview=desktop]").locator("body").inner_text())


def wait_for_preview(page: Any, text: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while text not in preview_text(page):
        assert time.monotonic() < deadline, f"preview never showed {text!r}"
        time.sleep(0.1)


def add_pick(page: Any, query: str, section: str) -> None:
    """Search as you type, then add the first result to ``section``."""
    search = page.get_by_label("Search resources")
    search.fill(query)
    page.wait_for_selector(f"#picker-results:has-text('found for “{query}”')")
    first = page.locator("#picker-results .pick-form").first
    first.locator("select").select_option(label=section)
    first.get_by_role("button").click()


def add_pick_by_keyboard(page: Any, query: str) -> None:
    """Search, then Tab past the Search button and the section select to Add, and press Enter."""
    page.get_by_label("Search resources").focus()
    page.keyboard.press("Control+A")
    page.keyboard.type(query)
    page.wait_for_selector(f"#picker-results:has-text('found for “{query}”')")
    for expected in ("BUTTON", "SELECT", "BUTTON"):
        page.keyboard.press("Tab")
        assert page.evaluate("document.activeElement.tagName") == expected
    assert page.evaluate("document.activeElement.id").startswith("add-")
    page.keyboard.press("Enter")


def build_issue(page: Any, site: Site, shots: Path) -> None:
    page.goto(site.url + "/admin/library")
    snap(page, shots, "1-library")
    page.get_by_label("Search").fill("personalized learning")
    page.get_by_role("button", name="Filter").click()
    assert 1 <= page.locator("table tbody tr").count() < 38
    page.goto(site.url + "/admin/issues")
    page.get_by_label("Number").fill("43")
    page.get_by_label("Title").fill("Issue 43: May 2018")
    page.get_by_label("Email subject").fill("Issue 43: personalized learning and equity")
    page.get_by_label("Date").fill("2018-05-01")
    page.get_by_role("button", name="Create draft").click()
    page.wait_for_url("**/admin/issues/43?done=created")
    for heading in ("Policy & ESSA", "Equity in Practice"):
        page.get_by_label("Section heading").fill(heading)
        page.get_by_role("button", name="Add section").click()
        page.wait_for_selector(f"#live h3:has-text('{heading}')")
    add_pick(page, "personalized", "Policy & ESSA")
    page.wait_for_selector("#live .item")
    add_pick(page, "equity", "Equity in Practice")
    expect(page.locator("#live .item")).to_have_count(2)
    add_pick_by_keyboard(page, "scheduling")  # into the last section, the select's default
    expect(page.locator("#live .item")).to_have_count(3)


def arrange_and_override(page: Any) -> None:
    items = page.locator("#live .item .item-title")
    second, third = items.nth(1).inner_text(), items.nth(2).inner_text()
    page.locator("#live .item").nth(2).get_by_role("button", name="Move").first.click()  # up
    expect(page.locator("#live .item .item-title").nth(1)).to_have_text(third)
    assert page.locator("#live .item .item-title").nth(2).inner_text() == second
    assert page.evaluate("document.activeElement.id").endswith("-up")  # focus stays on the button
    first = page.locator("#live .item").first
    first.locator("summary").click()
    first.get_by_label("Blurb (Markdown)").fill("Our pick **this month**: a map of state plans.")
    first.get_by_role("button", name="Save item").click()
    wait_for_preview(page, "Our pick this month")
    page.get_by_label("Introduction (Markdown)").fill(
        "Welcome to the May issue: personalized learning in **state plans** and equity by design."
    )
    wait_for_preview(page, "Welcome to the May issue")  # autosaved, preview reloaded


def test_editor_builds_an_issue_and_admin_sends_it(site: Site, page: Any, shots: Path) -> None:
    sign_in(page, site, "editor@example.org")
    assert page.locator("nav a[href='/admin/campaigns']").count() == 0  # editors: no sending
    build_issue(page, site, shots)
    arrange_and_override(page)
    page.get_by_role("tab", name="Mobile 375 px").click()
    assert page.locator("iframe[data-preview=mobile]").is_visible()
    page.get_by_role("tab", name="Desktop 600 px").click()
    # no scripts in the frame; same origin only so the editor's script can size it
    assert (
        page.locator("iframe[data-preview=desktop]").get_attribute("sandbox") == "allow-same-origin"
    )
    page.get_by_role("button", name="Send a test to me").click()
    page.wait_for_selector("text=A test was sent to editor@example.org")
    outbox = list(site.settings.outbox_path.glob("*.eml"))
    assert len(outbox) == 1 and b"[TEST] Issue 43" in outbox[0].read_bytes()
    page.wait_for_timeout(600)  # let the preview frames finish loading for the screenshot
    snap(page, shots, "2-issue-editor")
    snap_mobile_preview(page, shots)
    page.get_by_label("Status").select_option("ready")
    page.get_by_role("button", name="Set status").click()
    page.wait_for_selector("h1 .badge-ready")
    page.get_by_role("button", name="Sign out").click()
    page.wait_for_selector("text=You are signed out")

    sign_in(page, site, "admin@example.org")
    send_campaign(page, site, shots)
    subscriber_page(page, site, shots)


def send_campaign(page: Any, site: Site, shots: Path) -> None:
    page.goto(site.url + "/admin/campaigns")
    page.get_by_label("Issue", exact=True).select_option("43")
    page.get_by_role("button", name="Create campaign").click()
    page.wait_for_selector("text=Send to 25 subscribers now")  # the review step
    assert page.locator("#review-count").inner_text() == "25"
    page.get_by_role("button", name="Send to 25 subscribers now").click()
    page.wait_for_selector("h1 .badge-sending")
    campaign_id = int(page.url.split("/admin/campaigns/")[1].split("?")[0])
    assert page.locator("progress").get_attribute("max") == "25"
    worker = threading.Thread(target=service.drain, args=(site.db, site.settings, campaign_id))
    worker.start()
    # the bar moves while the worker sends (polled, then the page reloads when it is done)
    expect(page.locator("[data-progress-done]")).not_to_have_text("0", timeout=15_000)
    page.screenshot(path=str(shots / "admin-3-campaign-sending-desktop.png"))
    page.wait_for_selector("h1 .badge-sent", timeout=20_000)  # reloaded when it finished
    worker.join(timeout=10)
    assert page.locator("progress").get_attribute("value") == "25"
    simulate_engagement(site.db, campaign_id)
    page.reload()
    assert page.locator("svg.chart polyline").count() >= 3
    snap(page, shots, "3-campaign")
    page.get_by_label("Address contains").fill("reader1")
    page.get_by_role("button", name="Filter").click()
    rows = page.locator("#recipients tbody tr")
    assert rows.count() == 7  # reader1, reader10..reader15
    assert all("reader1" in rows.nth(i).inner_text() for i in range(rows.count()))


def simulate_engagement(db: Database, campaign_id: int) -> None:
    """What SendGrid's webhooks would have recorded: deliveries, opens and clicks over time."""
    with db.session() as session:
        campaign = session.get(Campaign, campaign_id)
        assert campaign is not None and campaign.started_at is not None
        start = campaign.started_at
        ids = session.scalars(select(Delivery.id).where(Delivery.campaign_id == campaign_id))
        for n, delivery_id in enumerate(sorted(ids)):
            values: dict[str, Any] = {"status": "delivered",
                                      "delivered_at": start + timedelta(minutes=n % 4)}  # fmt: skip
            if n % 3 != 2:
                values.update(opened_at=start + timedelta(minutes=5 + 3 * n), opens=1)
            if n % 4 == 0:
                values.update(clicked_at=start + timedelta(minutes=9 + 4 * n), clicks=1)
            session.execute(update(Delivery).where(Delivery.id == delivery_id).values(**values))


def subscriber_page(page: Any, site: Site, shots: Path) -> None:
    page.get_by_role("link", name="Subscribers").click()
    page.get_by_label("Address or name contains").fill("ann lee")
    page.get_by_role("button", name="Search").click()
    page.get_by_role("link", name="ann.lee@example.org").click()
    page.wait_for_selector("h2:has-text('Send history')")
    assert page.locator("#main table").nth(1).locator("text=Issue 43: May 2018").count() == 1
    assert page.locator("#main table").first.locator("tbody tr").count() == 3  # consent trail
    snap(page, shots, "4-subscriber")
    page.get_by_label("Suppress because").select_option("manual")
    page.get_by_role("button", name="Suppress").click()
    page.wait_for_selector("text=The address is suppressed")
    page.goto(site.url + "/admin")
    snap(page, shots, "0-dashboard", phone=False)
    for name in ("campaigns", "issues", "settings", "library/import"):
        page.goto(f"{site.url}/admin/{name}")
        snap(page, shots, "5-" + name.replace("/", "-"), phone=False)


def test_subscriber_import_runs_in_the_background_with_a_live_progress_bar(
    site: Site, page: Any, shots: Path, tmp_path: Path
) -> None:
    """The upload answers at once; the job page's script follows the job and shows the report."""
    rows = 30_000
    upload = tmp_path / "big-list.csv"
    upload.write_text(
        "email,name\n" + "".join(f"bulk{n}@example.org,Reader {n}\n" for n in range(rows)),
        encoding="utf-8",
    )
    sign_in(page, site, "admin@example.org")
    page.goto(site.url + "/admin/subscribers")
    page.get_by_label("CSV file").set_input_files(str(upload))
    page.locator("form[action='/admin/subscribers/import'] button[type=submit]").click()
    page.wait_for_url("**/admin/jobs/*")
    first_state = page.locator("[data-job-url]").get_attribute("data-state")
    assert first_state in ("queued", "running")  # so only the script can bring the report
    snap(page, shots, "6-import-progress", phone=False)
    page.wait_for_selector("h2:has-text('Import report')", timeout=120_000)
    assert f"Added {rows}, updated 0" in page.locator("#main").inner_text()
    assert page.locator("progress").get_attribute("value") == str(rows)
    snap(page, shots, "6-import-report")
