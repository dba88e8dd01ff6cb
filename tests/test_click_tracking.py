"""First-party clicks and opens end to end, on both backends: sent mail, the redirect, the ledger.

A campaign of Issue 42 goes through the real preparer to the memory
transport; the test then follows its links through the real web app
(``GET /r/{token}``, ``GET /o/{token}.gif``), drains the spool, and reads the
ledger, the per-link sums and the report.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select, update
from sqlalchemy.orm import sessionmaker

from newsletter.config import Settings
from newsletter.db import Database, make_engine
from newsletter.models import Delivery, EngagementEvent, IssueLink, LinkClick, Subscriber, utcnow
from newsletter.sending import campaigns, service
from newsletter.transports import MemoryMessenger
from newsletter.web import create_app
from tests.sending_helpers import add_subscribers

FIREFOX = {"user-agent": "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"}


@dataclass
class Sent:
    db: Database
    settings: Settings
    campaign_id: int
    mail: dict[str, Any]  # address -> the email they got

    def links(self, email: str) -> list[str]:
        """The tracked links of one recipient's HTML, as paths on the app."""
        html = self.mail[email].html
        base = self.settings.base_url
        return [u.removeprefix(base) for u in re.findall(rf'href="({base}/r/[^"]+)"', html)]

    def pixel(self, email: str) -> str:
        found = re.search(r'src="[^"]*(/o/[^"]+\.gif)"', self.mail[email].html)
        assert found is not None
        return found.group(1)


def _send(db: Database, settings: Settings, count: int = 4) -> Sent:
    with db.session() as session:
        add_subscribers(session, count)
        cid = campaigns.create_campaign(42, session=session).id
    messenger = MemoryMessenger()
    assert service.start(db, settings, cid)
    service.drain(db, settings, cid, messenger=messenger)
    return Sent(db, settings, cid, {m.email: m.email_message for m in messenger.sent})


@pytest.fixture
def readers(issue42: Database, make_settings: Callable[..., Settings], settings: Settings) -> Sent:
    """Issue 42 sent to four readers; clicks count as a reader's from the first second."""
    tuned = settings.model_copy(update={"scanner_window_seconds": 0.0})
    return _send(issue42, tuned)


@pytest.fixture
def client(readers: Sent) -> Iterator[TestClient]:
    app = create_app(readers.settings, readers.db, messenger=MemoryMessenger())
    with TestClient(app, headers=FIREFOX) as test_client:
        yield test_client


def _drain(client: TestClient) -> None:
    client.app.state.recorder.drain_once()  # type: ignore[attr-defined]


def _row(db: Database, email: str) -> Delivery:
    with db.session() as session:
        row = session.scalar(
            select(Delivery).join(Subscriber, Subscriber.id == Delivery.subscriber_id)
            .where(Subscriber.email == email)
        )  # fmt: skip
        assert row is not None
        return row


def test_a_click_redirects_to_the_stored_link_and_counts_once(
    readers: Sent, client: TestClient
) -> None:
    a = "user0@example.org"
    paths = readers.links(a)
    with readers.db.session() as session:
        stored = dict(session.execute(select(IssueLink.position, IssueLink.url)).tuples().all())
    assert len(paths) == len(stored) >= 10  # every body link, the web version included
    answer = client.get(paths[1], follow_redirects=False)
    assert answer.status_code == 302
    position = int(paths[1].split(".")[2], 16)
    assert answer.headers["location"] == stored[position]
    assert answer.headers["cache-control"].startswith("no-store")
    assert client.get(paths[1], follow_redirects=False).status_code == 302  # a second click
    _drain(client)
    _drain(client)  # nothing left: stored once
    row = _row(readers.db, a)
    assert (row.clicks, row.machine_clicks) == (2, 0)
    assert row.clicked_at is not None and row.opened_at is not None  # a click is an open too
    with readers.db.session() as session:
        [(human, machine)] = session.execute(select(LinkClick.human, LinkClick.machine)).all()
        assert (human, machine) == (2, 0)
        report = campaigns.campaign_report(readers.campaign_id, session=session)
    assert report.engagement["clicked"] == 1 and report.engagement["opened"] == 1
    assert report.rates["click_rate"] == 0.25  # 1 of 4 accepted (the memory transport)


def test_forged_truncated_and_unknown_tokens_get_a_page_never_a_redirect(
    readers: Sent, client: TestClient
) -> None:
    good = readers.links("user1@example.org")[0]
    delivery, issue, _pos, mac = good.removeprefix("/r/").split(".")
    forged = {
        "tampered": good[:-1] + ("A" if good[-1] != "A" else "B"),
        "truncated": good[:-4],
        "other row": f"/r/{int(delivery, 16) + 1:x}.{issue}.1.{mac}",
        "open redirect": "/r/https%3A%2F%2Fevil.example%2F",
        "nothing": "/r/",
    }
    for name, path in forged.items():
        answer = client.get(path, follow_redirects=False)
        assert answer.status_code == 404, name
        assert "location" not in answer.headers and "evil" not in answer.text
        assert answer.headers["content-type"].startswith("text/html")
    # A genuine token for a position the issue does not have: signed by us, still a 404.
    signer = client.app.state.recorder.signer  # type: ignore[attr-defined]
    unknown = signer.tokens(int(delivery, 16), int(issue, 16), 400)[399]
    assert client.get(f"/r/{unknown}", follow_redirects=False).status_code == 404
    _drain(client)
    with readers.db.session() as session:
        assert session.scalar(select(func.count(EngagementEvent.id))) == 0


def test_the_pixel_always_answers_and_only_genuine_opens_count(
    readers: Sent, client: TestClient
) -> None:
    pixel = readers.pixel("user2@example.org")
    for path in (pixel, pixel.replace(".gif", "x.gif"), "/o/nonsense.gif"):
        answer = client.get(path)
        assert answer.status_code == 200 and answer.headers["content-type"] == "image/gif"
        assert answer.content.startswith(b"GIF89a")
    _drain(client)
    row = _row(readers.db, "user2@example.org")
    assert (row.opens, row.machine_opens) == (1, 0) and row.opened_at is not None


def test_machines_are_counted_apart(readers: Sent, client: TestClient) -> None:
    a, b = "user0@example.org", "user3@example.org"
    client.head(readers.links(a)[1])
    client.get(readers.links(a)[2], headers={"user-agent": "python-requests/2.32"},
               follow_redirects=False)  # fmt: skip
    client.get(readers.pixel(b), headers={"user-agent": "Mozilla/5.0"})  # Apple's prefetch
    for path in readers.links(b)[1:5]:  # a scanner walking the message
        client.get(path, follow_redirects=False)
    _drain(client)
    first, second = _row(readers.db, a), _row(readers.db, b)
    assert (first.clicks, first.machine_clicks, first.clicked_at) == (0, 2, None)
    assert (second.opens, second.machine_opens, second.opened_at) == (0, 1, None)
    assert (second.clicks, second.machine_clicks) == (0, 4)
    with readers.db.session() as session:
        reasons = set(session.scalars(select(EngagementEvent.reason)))
        report = campaigns.campaign_report(readers.campaign_id, session=session)
    assert reasons == {
        "head request", "bot: python-requests", "apple privacy protection",
        "scanner: many links at once",
    }  # fmt: skip
    assert report.engagement["machine_clicks"] == 6 and report.engagement["clicked"] == 0


def test_a_click_right_after_sending_is_a_scanners(issue42: Database, settings: Settings) -> None:
    sent = _send(issue42, settings.model_copy(update={"scanner_window_seconds": 300.0}))
    with TestClient(create_app(sent.settings, sent.db, messenger=MemoryMessenger()),
                    headers=FIREFOX) as client:  # fmt: skip
        client.get(sent.links("user0@example.org")[1], follow_redirects=False)
        _drain(client)
    row = _row(sent.db, "user0@example.org")
    assert (row.clicks, row.machine_clicks) == (0, 1)


def test_a_reader_who_turned_tracking_off_gets_plain_links_and_is_not_counted(
    issue42: Database, settings: Settings
) -> None:
    tuned = settings.model_copy(update={"scanner_window_seconds": 0.0})
    with issue42.session() as session:
        add_subscribers(session, 2, prefix="private")
        session.execute(
            update(Subscriber).where(Subscriber.email == "private0@example.org")
            .values(tracking=False)
        )  # fmt: skip
    sent = _send(issue42, tuned, count=1)
    private = sent.mail["private0@example.org"]
    assert "/r/" not in private.html and "/o/" not in private.html
    assert 'href="https://knowledgeworks.org/resources/' in private.html
    assert "/r/" not in private.text
    assert "/r/" in sent.mail["private1@example.org"].html
    # The other reader opts out after the mail went: their clicks are not recorded any more,
    # but the link still takes them where it said.
    with issue42.session() as session:
        session.execute(
            update(Subscriber).where(Subscriber.email == "private1@example.org")
            .values(tracking=False)
        )  # fmt: skip
    with TestClient(create_app(tuned, issue42, messenger=MemoryMessenger()),
                    headers=FIREFOX) as client:  # fmt: skip
        assert client.get(sent.links("private1@example.org")[1],
                          follow_redirects=False).status_code == 302  # fmt: skip
        _drain(client)
    assert _row(issue42, "private1@example.org").clicks == 0


def test_tracking_off_for_everyone(issue42: Database, settings: Settings) -> None:
    off = settings.model_copy(update={"tracking": False})
    sent = _send(issue42, off, count=2)
    html = sent.mail["user0@example.org"].html
    assert "/r/" not in html and "/o/" not in html and "https://knowledgeworks.org/" in html
    with issue42.session() as session:
        assert session.scalar(select(func.count(IssueLink.id))) == 0


def test_the_redirect_answers_with_the_database_down(readers: Sent, client: TestClient) -> None:
    """Links cached by a running app, or its snapshot after a restart, still redirect."""
    a = "user1@example.org"
    client.app.state.recorder.cache.refresh(now=utcnow())  # type: ignore[attr-defined]
    down_engine = make_engine("postgresql+psycopg://nobody@127.0.0.1:1/none")
    down = Database(engine=down_engine, sessions=sessionmaker(down_engine))
    restarted = create_app(readers.settings, down, messenger=MemoryMessenger())
    with TestClient(restarted, headers=FIREFOX) as offline:
        for _ in range(3):  # the same link (three different ones at once would be a scanner)
            assert offline.get(readers.links(a)[1], follow_redirects=False).status_code == 302
    down_engine.dispose()
    _drain(client)  # the spooled clicks reach the database once it answers
    assert _row(readers.db, a).clicks == 3


def test_the_purge_deletes_old_events_and_keeps_the_sums(readers: Sent, client: TestClient) -> None:
    from newsletter.tracking.engagement import purge

    client.get(readers.links("user0@example.org")[1], follow_redirects=False)
    _drain(client)
    with readers.db.session() as session:
        assert purge(session=session, before=utcnow() - timedelta(days=1)) == 0
        assert purge(session=session, before=utcnow() + timedelta(seconds=1)) == 1
        assert session.scalar(select(func.count(EngagementEvent.id))) == 0
    assert _row(readers.db, "user0@example.org").clicks == 1


def test_the_reader_chooses_on_the_preferences_page(readers: Sent, client: TestClient) -> None:
    from newsletter.subscribers.links import preferences_url

    with readers.db.session() as session:
        ann = session.scalar(select(Subscriber).where(Subscriber.email == "user0@example.org"))
        assert ann is not None
        path = preferences_url(readers.settings, ann).removeprefix(readers.settings.base_url)
    page = client.get(path).text
    assert 'name="tracking"' in page and "checked" in page.split('id="tracking"')[1][:120]
    saved = client.post(path, data={"pause": "keep", "tracking_shown": "1"})
    assert saved.status_code == 200
    with readers.db.session() as session:
        assert session.scalar(select(Subscriber.tracking).where(Subscriber.id == ann.id)) is False
    client.post(path, data={"pause": "keep"})  # a form without the box: the choice stays
    with readers.db.session() as session:
        assert session.scalar(select(Subscriber.tracking).where(Subscriber.id == ann.id)) is False
    client.post(path, data={"pause": "keep", "tracking_shown": "1", "tracking": "on"})
    with readers.db.session() as session:
        assert session.scalar(select(Subscriber.tracking).where(Subscriber.id == ann.id)) is True


def test_the_gdpr_export_shows_what_was_recorded_and_erasure_removes_it(
    readers: Sent, client: TestClient
) -> None:
    from newsletter.subscribers import service as subscribers
    from newsletter.subscribers.store import Actor

    client.get(readers.links("user0@example.org")[1], follow_redirects=False)
    _drain(client)
    with readers.db.session() as session:
        data = subscribers.gdpr_export("user0@example.org", session=session)
    assert data["subscriber"]["tracking"] is True
    [send] = data["sends"]
    [click] = send["engagement"]
    assert click["kind"] == "click" and click["link"].startswith("https://")
    assert "testclient" not in str(click) and "127.0.0.1" not in str(data)  # no IP kept
    with readers.db.session() as session:
        subscribers.erase("user0@example.org", session=session, actor=Actor(source="test"))
    with readers.db.session() as session:
        assert session.scalar(select(func.count(EngagementEvent.id))) == 0
        assert session.scalar(select(func.sum(LinkClick.human))) == 1  # anonymous sums stay
