"""A reader opens a sent message in real Chromium and clicks a link through the running app."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import select

from newsletter.config import Settings
from newsletter.db import Database, connect
from newsletter.issues.source import load_source
from newsletter.issues.store import import_source
from newsletter.models import Delivery, LinkClick
from newsletter.sending import campaigns, service
from newsletter.transports import MemoryMessenger
from newsletter.web import create_app
from tests.browser_helpers import CHROMIUM_ARGS, chromium, free_port, serve
from tests.issue_helpers import ISSUE_42, import_library
from tests.sending_helpers import add_subscribers

pytestmark = pytest.mark.browser
playwright_api = pytest.importorskip("playwright.sync_api")
# A desktop Chrome's user agent: HeadlessChrome's own is (rightly) taken for a bot.
CHROME = (
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Safari/537.36"
)


def test_a_reader_clicks_a_resource_in_the_email(
    make_settings: Callable[..., Settings], seeds_dir: Any
) -> None:
    port = free_port()
    settings = make_settings(base_url=f"http://127.0.0.1:{port}", scanner_window_seconds=0)
    db: Database = connect(settings)
    with db.session() as session:
        import_library(seeds_dir, session=session, settings=settings)
        import_source(load_source(ISSUE_42), session=session)
        add_subscribers(session, 1)
        cid = campaigns.create_campaign(42, session=session).id
    messenger = MemoryMessenger()
    service.start(db, settings, cid)
    service.drain(db, settings, cid, messenger=messenger)
    html = messenger.sent[0].email_message.html
    app = create_app(settings, db, messenger=MemoryMessenger())
    landed: list[str] = []

    def destination(route: Any) -> None:
        landed.append(route.request.url)
        route.fulfill(status=200, content_type="text/html", body="<h1>The resource</h1>")

    try:
        with serve(app, port), playwright_api.sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=chromium(), args=CHROMIUM_ARGS)
            context = browser.new_context(user_agent=CHROME)
            context.route("https://**/*", destination)  # the web, stood in for
            page = context.new_page()
            page.set_content(html, wait_until="load")  # the email, as a client shows it
            title = page.get_by_role("link", name="Scheduling for Learning, Not Convenience")
            assert title.get_attribute("href").startswith(f"{settings.base_url}/r/")
            title.first.click()
            page.wait_for_selector("text=The resource")
            browser.close()
            app.state.recorder.drain_once()
    finally:
        db.dispose()
    assert landed and landed[-1].startswith(
        "https://knowledgeworks.org/resources/scheduling-for-learning"
    )
    db = connect(settings)
    try:
        with db.session() as session:
            row = session.scalars(select(Delivery)).one()
            [(human, machine)] = session.execute(select(LinkClick.human, LinkClick.machine)).all()
        assert row.clicks == 1 and row.clicked_at is not None and (human, machine) == (1, 0)
        assert row.opens >= 1 or row.opened_at is not None  # its pixel loaded, or the click
    finally:
        db.dispose()
