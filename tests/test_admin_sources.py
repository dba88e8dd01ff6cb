"""The library inbox in the admin: sources added, polled now, items accepted or rejected;
the library list shows each link's health."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime

import pytest
from sqlalchemy import select

from newsletter.config import Settings
from newsletter.db import Database, connect
from newsletter.models import Resource
from newsletter.models.sources import ItemState, SourceItem
from newsletter.resources.classify import normalise_url
from tests.admin_helpers import (
    fast_hashing,  # noqa: F401 - autouse fixture
    signed_in_client,
)
from tests.site_server import Page, Site, rss, serving

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


@pytest.fixture
def site() -> Iterator[Site]:
    with serving(Site()) as running:
        yield running


@pytest.fixture
def local_db(make_settings: Callable[..., Settings]) -> Iterator[tuple[Database, Settings]]:
    settings = make_settings(fetch_allow_private_addresses=True, fetch_timeout_seconds=0.5)
    database = connect(settings)
    try:
        yield database, settings
    finally:
        database.dispose()


def test_inbox_add_poll_accept_and_reject(local_db: tuple[Database, Settings], site: Site) -> None:
    db, settings = local_db
    client = signed_in_client(db, settings, "editor")
    site.pages["/feed.xml"] = Page(rss(("Keep me", "https://example.org/keep"),
                                       ("Drop me", "https://example.org/drop")))  # fmt: skip
    bad = client.form("/admin/library/sources", {"url": "ftp://nope", "every": "6h"})
    assert bad.status_code == 422 and "must start with http:// or https://" in bad.text
    added = client.form("/admin/library/sources", {"url": site.url("/feed.xml"), "every": "2h"})
    assert added.status_code == 303
    page = client.get(added.headers["location"]).text
    assert "Source added" in page and site.url("/feed.xml") in page and "never" in page
    polled = client.form("/admin/library/sources/1/poll")
    assert polled.status_code == 200 and "2 new, 0 already known" in polled.text
    assert "Keep me" in polled.text and "Drop me" in polled.text
    with db.session() as session:
        ids = {i.title: i.id for i in session.scalars(select(SourceItem))}
    accepted = client.form("/admin/library/inbox", {"action": "accept", "item": [ids["Keep me"]]})
    assert accepted.status_code == 303
    rejected = client.form("/admin/library/inbox", {"action": "reject", "item": [ids["Drop me"]]})
    assert rejected.status_code == 303
    twice = client.form("/admin/library/inbox", {"action": "reject", "item": [ids["Drop me"]]})
    assert twice.status_code == 422 and "was already rejected" in twice.text
    none = client.form("/admin/library/inbox", {"action": "accept"})
    assert none.status_code == 422 and "choose at least one item" in none.text
    with db.session() as session:
        states = {i.title: i.state for i in session.scalars(select(SourceItem))}
        titles = list(session.scalars(select(Resource.title)))
    assert states == {"Keep me": ItemState.ACCEPTED, "Drop me": ItemState.REJECTED}
    assert titles == ["Keep me"]
    assert "Keep me" in client.get("/admin/library/inbox?state=accepted").text
    site.pages["/feed.xml"] = Page(b"<rss><channel>", content_type="application/rss+xml")
    failed = client.form("/admin/library/sources/1/poll")
    assert (
        failed.status_code == 422
        and "poll failed" in failed.text
        and "not well-formed" in failed.text
    )
    removed = client.form("/admin/library/sources/1/remove")
    assert removed.status_code == 303
    assert "No source yet" in client.get("/admin/library/inbox").text


def test_library_list_shows_link_health_and_the_inbox(
    local_db: tuple[Database, Settings],
) -> None:
    db, settings = local_db
    with db.session() as session:
        for n, (status, final, detail) in enumerate(
            [("dead", None, "HTTP 404"), ("moved", "https://example.org/new", None),
             (None, None, None)]
        ):  # fmt: skip
            url = f"https://example.org/r{n}"
            session.add(Resource(slug=f"r{n}", title=f"R{n}", title_key=f"r{n}", url=url,
                                 url_key=normalise_url(url), link_status=status,
                                 link_final_url=final, link_detail=detail))  # fmt: skip
        session.add(SourceItem(title="Waiting", title_key="waiting", summary="", record={}))
    text = signed_in_client(db, settings, "editor").get("/admin/library").text
    assert '<span class="badge badge-dead">dead</span>' in text and "HTTP 404" in text
    assert (
        '<span class="badge badge-moved">moved</span>' in text
        and "to https://example.org/new" in text
    )
    assert "not checked" in text and "Inbox (1 new)" in text


def test_the_issue_editor_warns_about_a_dead_link(issue42: Database, settings: Settings) -> None:
    from tests.issue_helpers import SEED_URLS

    with issue42.session() as session:
        session.add(Resource(slug="dead", title="Dead", title_key="dead", url=SEED_URLS[3],
                             url_key=normalise_url(SEED_URLS[3]), link_status="dead",
                             link_detail="HTTP 410", link_checked_at=NOW))  # fmt: skip
    text = signed_in_client(issue42, settings, "editor").get("/admin/issues/42").text
    assert f"link {SEED_URLS[3]} is dead (HTTP 410)" in text
