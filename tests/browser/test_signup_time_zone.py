"""The sign-up page's script sends the browser's time zone (real Chromium, real server).

Chromium is told it is in Tokyo; the subscriber row gets ``Asia/Tokyo``.  The
script is our own file under the page's CSP (``script-src 'self'``), so a CSP
violation would leave the field empty and fail the test.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from sqlalchemy import select

from newsletter.config import Settings
from newsletter.db import connect
from newsletter.models import Subscriber
from newsletter.transports import MemoryMessenger
from newsletter.web import create_app
from tests.browser_helpers import CHROMIUM_ARGS, chromium, free_port, serve

pytestmark = pytest.mark.browser
playwright_api = pytest.importorskip("playwright.sync_api")


def test_signup_records_the_browsers_time_zone(make_settings: Callable[..., Settings]) -> None:
    port = free_port()
    settings = make_settings(base_url=f"http://127.0.0.1:{port}")
    db = connect(settings)
    try:
        app = create_app(settings, db, messenger=MemoryMessenger())
        with serve(app, port) as url, playwright_api.sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=chromium(), args=CHROMIUM_ARGS)
            try:
                page = browser.new_context(timezone_id="Asia/Tokyo").new_page()
                page.goto(f"{url}/subscribe")
                assert page.input_value("#time_zone") == "Asia/Tokyo"
                page.fill("#email", "kenji@example.org")
                page.click("button[type=submit]")
                page.wait_for_selector("text=open the email")
            finally:
                browser.close()
        with db.session() as session:
            zone = session.scalar(
                select(Subscriber.time_zone).where(Subscriber.email == "kenji@example.org")
            )
        assert zone == "Asia/Tokyo"
    finally:
        db.dispose()
