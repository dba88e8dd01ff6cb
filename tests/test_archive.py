"""The public archive and its RSS feed show sent issues only."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from pathlib import Path

from fastapi.testclient import TestClient

from newsletter.config import Settings
from newsletter.db import Database
from newsletter.issues.source import load_source
from newsletter.issues.store import import_source
from newsletter.sending import campaigns, service
from newsletter.transports import MemoryMessenger
from newsletter.web import create_app
from tests.issue_helpers import ISSUE_42, import_library
from tests.sending_helpers import add_subscribers


def test_issue_is_public_only_after_it_was_sent(
    db: Database, settings: Settings, seeds_dir: Path
) -> None:
    with db.session() as session:
        import_library(seeds_dir, session=session, settings=settings)
        import_source(load_source(ISSUE_42), session=session)
        add_subscribers(session, 3)
        cid = campaigns.create_campaign(42, session=session).id
    messenger = MemoryMessenger()
    with TestClient(create_app(settings, db, messenger=messenger)) as client:
        assert client.get("/archive/42").status_code == 404
        assert "No issues have been sent yet" in client.get("/archive").text
        assert (
            ET.fromstring(client.get("/archive/feed.xml").content).findall("./channel/item") == []
        )

        assert service.start(db, settings, cid)
        service.drain(db, settings, cid, messenger=messenger)

        listing = client.get("/archive")
        assert "Issue 42: April 2018" in listing.text and 'href="/archive/42"' in listing.text
        page = client.get("/archive/42")
        assert page.status_code == 200 and "Scheduling for Learning, Not Convenience" in page.text
        assert "%%" not in page.text and "/u/" not in page.text  # no personal unsubscribe link
        csp = page.headers["content-security-policy"]
        assert "script-src" not in csp and "default-src 'none'" in csp
        rss = ET.fromstring(client.get("/archive/feed.xml").content)
        [item] = rss.findall("./channel/item")
        assert item.findtext("link") == f"{settings.base_url}/archive/42"
        assert item.findtext("title") == "Issue 42: April 2018"
        # The issue's own date, not the day this test happened to send it.
        assert item.findtext("pubDate", "").startswith("Sun, 01 Apr 2018 00:00:00")
        # The email's "view in browser" link (tracked, its first link) leads to that page.
        html = messenger.sent[0].email_message.html
        first = re.search(r'href="(http://[^"]+/r/[^"]+)"', html)
        assert first is not None
        answer = client.get(first.group(1).removeprefix(settings.base_url), follow_redirects=False)
        assert answer.status_code == 302
        assert answer.headers["location"] == f"{settings.base_url}/archive/42"
