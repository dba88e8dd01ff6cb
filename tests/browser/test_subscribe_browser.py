"""The whole sign-up journey in headless Chromium against a real uvicorn server.

Subscribe (by keyboard only), confirm from the link in the captured email,
change topics, unsubscribe; screenshots of each page at desktop and phone
widths go to ``$SCREENSHOT_DIR`` (or the test's temp folder) for review.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from newsletter.config import Settings
from newsletter.db import Database, connect
from newsletter.transports import MemoryMessenger
from newsletter.web import create_app
from tests.browser_helpers import CHROMIUM_ARGS, chromium, free_port, serve

pytestmark = pytest.mark.browser
playwright_api = pytest.importorskip("playwright.sync_api")

VIEWPORTS = {"desktop": {"width": 1280, "height": 900}, "phone": {"width": 390, "height": 844}}


@dataclass
class Site:
    url: str
    db: Database
    messenger: MemoryMessenger

    def email_to(self, address: str, timeout: float = 10.0) -> str:
        """The text of the first email to ``address`` (sent after the response: poll)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = self.messenger.to(address)
            if found:
                return found[0].email_message.text
            time.sleep(0.05)
        raise AssertionError(f"no email to {address}")


@pytest.fixture
def site(make_settings: Callable[..., Settings]) -> Iterator[Site]:
    port = free_port()
    settings = make_settings(base_url=f"http://127.0.0.1:{port}")
    db = connect(settings)
    messenger = MemoryMessenger()
    app = create_app(settings, db, messenger=messenger)
    try:
        with serve(app, port) as url:
            yield Site(url, db, messenger)
    finally:
        db.dispose()


@pytest.fixture
def browser() -> Iterator[object]:
    with playwright_api.sync_playwright() as pw:
        instance = pw.chromium.launch(executable_path=chromium(), args=CHROMIUM_ARGS)
        try:
            yield instance
        finally:
            instance.close()


def snap(page: object, shots: Path, name: str) -> None:
    """Full-page screenshots at desktop and phone widths."""
    for label, size in VIEWPORTS.items():
        page.set_viewport_size(size)  # type: ignore[attr-defined]
        page.screenshot(path=str(shots / f"{name}-{label}.png"), full_page=True)  # type: ignore[attr-defined]
    page.set_viewport_size(VIEWPORTS["desktop"])  # type: ignore[attr-defined]


def focused(page: object) -> str:
    return str(page.evaluate("document.activeElement.id || document.activeElement.tagName"))  # type: ignore[attr-defined]


def test_subscribe_confirm_change_topics_unsubscribe(
    site: Site, browser: object, shots: Path
) -> None:
    context = browser.new_context(viewport=VIEWPORTS["desktop"])  # type: ignore[attr-defined]
    page = context.new_page()
    errors: list[str] = []
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)

    # 1. subscribe, keyboard only: skip link, email, name, topics, button
    page.goto(site.url + "/subscribe")
    assert page.title().startswith("Subscribe")
    snap(page, shots, "1-subscribe")
    page.keyboard.press("Tab")
    assert focused(page) == "A"  # the skip link comes first
    page.keyboard.press("Tab")
    assert focused(page) == "email"
    page.keyboard.type("Ann.Lee@Example.org")
    page.keyboard.press("Tab")
    assert focused(page) == "name"
    page.keyboard.type("Ann Lee")
    page.keyboard.press("Tab")
    assert focused(page) == "topic-1"
    page.keyboard.press("Space")  # untick the first topic
    assert not page.get_by_label(page.locator("label[for=topic-1]").inner_text()).is_checked()
    for _ in range(20):  # on through the topics to the button (the honeypot is skipped)
        page.keyboard.press("Tab")
        if focused(page) == "BUTTON":
            break
    assert focused(page) == "BUTTON"
    page.keyboard.press("Enter")
    page.wait_for_selector("text=Check your inbox")
    assert "ann.lee@example.org" in page.inner_text("main")
    snap(page, shots, "2-check-inbox")

    # 2. confirm from the link in the captured email
    text = site.email_to("ann.lee@example.org")
    link = re.search(r"http://\S+/confirm/\S+", text)
    assert link, text
    page.goto(link.group(0))
    snap(page, shots, "3-confirm")
    page.get_by_role("button", name="Confirm my subscription").click()
    page.wait_for_selector("text=You're subscribed")
    snap(page, shots, "4-confirmed")

    # 3. change topics and pause in the preference centre
    page.get_by_role("link", name="Manage my preferences").click()
    page.wait_for_selector("h1:has-text('Your email preferences')")
    snap(page, shots, "5-preferences")
    boxes = page.get_by_role("group", name="Topics").get_by_role("checkbox")
    names = [page.locator(f"label[for={boxes.nth(i).get_attribute('id')}]").inner_text()
             for i in range(boxes.count())]  # fmt: skip
    for i in range(boxes.count()):
        boxes.nth(i).set_checked(i in (2, 4))
    page.get_by_label("Pause for 3 months").check()
    page.get_by_role("button", name="Save preferences").click()
    page.wait_for_selector("text=Your preferences have been saved")
    assert page.get_by_label(re.compile("Stay paused until")).is_checked()
    snap(page, shots, "6-preferences-saved")
    with site.db.session() as session:
        from newsletter.subscribers import store

        row = store.get("ann.lee@example.org", session=session)
        assert row.topics == sorted([names[2], names[4]])
        assert row.paused_until is not None and row.status == "confirmed"

    # 4. unsubscribe: open the List-Unsubscribe URL (a GET only shows a button), then press it
    unsubscribe_form = page.locator("form[action^='/u/']")
    target = site.url + str(unsubscribe_form.get_attribute("action"))
    page.goto(target)
    assert page.get_by_role("button", name="Unsubscribe").is_visible()
    snap(page, shots, "7-unsubscribe")
    page.get_by_role("button", name="Unsubscribe").click()
    page.wait_for_selector("text=You won't receive any more emails")
    assert urlsplit(page.url).path == urlsplit(target).path  # no redirect
    snap(page, shots, "8-unsubscribed")
    with site.db.session() as session:
        assert store.get("ann.lee@example.org", session=session).status == "unsubscribed"
    assert errors == []  # no CSP violations or script errors
    context.close()


def test_form_errors_are_announced_and_keep_input(site: Site, browser: object, shots: Path) -> None:
    page = browser.new_page(viewport=VIEWPORTS["phone"])  # type: ignore[attr-defined]
    page.goto(site.url + "/subscribe")
    page.get_by_label("Email address").fill("not an address")
    page.get_by_label("Name").fill("Ann")
    page.get_by_role("button", name="Subscribe").click()
    alert = page.get_by_role("alert")
    assert "invalid email address" in alert.inner_text()
    assert page.get_by_label("Email address").input_value() == "not an address"
    assert page.get_by_label("Email address").get_attribute("aria-invalid") == "true"
    page.screenshot(path=str(shots / "9-subscribe-error-phone.png"), full_page=True)
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 390  # nothing overflows sideways on a phone
    page.close()
