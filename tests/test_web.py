"""The public web app and JSON API on both backends (FastAPI TestClient, no browser)."""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from urllib.parse import urlsplit

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import select

from newsletter.config import Settings
from newsletter.db import Database
from newsletter.errors import ConfigError
from newsletter.models import ConsentEvent, Subscriber, utcnow
from newsletter.subscribers import suppression
from newsletter.subscribers.tokens import Purpose, Tokens, tokens_for
from newsletter.transports import MemoryMessenger
from newsletter.web import create_app
from newsletter.web.limits import RateLimits

ONE_CLICK = {"List-Unsubscribe": "One-Click"}


class Clock:
    """A settable clock for the app (rate-limit windows without sleeping)."""

    def __init__(self) -> None:
        self.now = utcnow()

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def messenger() -> MemoryMessenger:
    return MemoryMessenger()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def make_client(
    settings: Settings, db: Database, messenger: MemoryMessenger, clock: Clock
) -> Iterator[Callable[..., TestClient]]:
    clients: list[TestClient] = []

    def factory(**kw: object) -> TestClient:
        app: FastAPI = create_app(settings, db, messenger=messenger, clock=clock, **kw)  # type: ignore[arg-type]
        client = TestClient(app, client=("192.0.2.1", 50000))
        clients.append(client)
        return client

    yield factory
    for client in clients:
        client.close()


@pytest.fixture
def client(make_client: Callable[..., TestClient]) -> TestClient:
    return make_client()


@pytest.fixture
def topics(settings: Settings) -> list[str]:
    return [t.name for t in settings.topics]


def link(messenger: MemoryMessenger, kind: str, index: int = -1) -> str:
    """The path of a link in a captured email (``confirm`` or ``preferences``)."""
    text = messenger.sent[index].email_message.text
    match = re.search(rf"https?://\S+/{kind}/\S+", text)
    assert match, text
    return urlsplit(match.group(0)).path


def subscriber(db: Database, email: str) -> Subscriber | None:
    with db.session() as session:
        return session.scalars(select(Subscriber).where(Subscriber.email == email)).first()


def subscribe_and_confirm(
    client: TestClient, messenger: MemoryMessenger, email: str, topics: list[str]
) -> Subscriber:
    response = client.post("/subscribe", data={"email": email, "topics": topics})
    assert response.status_code == 200
    assert client.post(link(messenger, "confirm")).status_code == 200
    row = subscriber(client.app.state.web.db, email)  # type: ignore[attr-defined]
    assert row is not None and row.status == "confirmed"
    return row


def tokens(settings: Settings) -> Tokens:
    return tokens_for(settings)


# ---------------------------------------------------------------- the whole journey


def test_subscribe_confirm_preferences_unsubscribe(
    client: TestClient, messenger: MemoryMessenger, db: Database, topics: list[str]
) -> None:
    page = client.get("/subscribe")
    assert "expert insights, success stories and resources" in page.text
    for topic in topics:
        assert f'value="{topic.replace("&", "&amp;")}"' in page.text
    response = client.post(
        "/subscribe", data={"email": "Ann@Example.org", "name": "Ann", "topics": topics[:2]}
    )
    assert response.status_code == 200 and "Check your inbox" in response.text
    assert [m.email for m in messenger.sent] == ["ann@example.org"]
    email = messenger.sent[0].email_message
    assert "Hello Ann" in email.text and "Hello Ann" in email.html
    confirm = link(messenger, "confirm")
    assert client.get(confirm).status_code == 200
    row = subscriber(db, "ann@example.org")
    assert row is not None and row.status == "pending"  # a GET never confirms
    done = client.post(confirm)
    assert done.status_code == 200 and "You're subscribed" in done.text
    row = subscriber(db, "ann@example.org")
    assert row is not None and row.status == "confirmed"
    prefs = re.search(r'href="(/preferences/[^"]+)"', done.text)
    assert prefs
    saved = client.post(prefs.group(1), data={"topics": [topics[3]], "pause": "30"})
    assert saved.status_code == 200 and "have been saved" in saved.text
    row = subscriber(db, "ann@example.org")
    assert row is not None and row.topics == [topics[3]] and row.paused_until is not None
    form = re.search(r'action="(/u/[^"]+)"', saved.text)
    assert form
    gone = client.post(form.group(1))
    assert gone.status_code == 200 and "unsubscribed" in gone.text
    row = subscriber(db, "ann@example.org")
    assert row is not None and row.status == "unsubscribed"
    assert len(messenger.sent) == 1  # nothing but the confirmation ever went to them


# ---------------------------------------------------------------- RFC 8058 one-click


@pytest.mark.parametrize("encoding", ["urlencoded", "multipart"])
def test_one_click_post_twice(
    client: TestClient,
    messenger: MemoryMessenger,
    db: Database,
    settings: Settings,
    topics: list[str],
    encoding: str,
) -> None:
    row = subscribe_and_confirm(client, messenger, "ann@example.org", topics[:1])
    url = f"/u/{tokens(settings).make(Purpose.UNSUBSCRIBE, row)}"
    client.cookies.clear()
    for _ in range(2):
        if encoding == "urlencoded":
            response = client.post(url, data=ONE_CLICK, follow_redirects=False)
        else:
            response = client.post(url, files={"List-Unsubscribe": (None, "One-Click")},
                                   follow_redirects=False)  # fmt: skip
        assert response.status_code == 200
        assert "location" not in response.headers and "set-cookie" not in response.headers
    assert subscriber(db, "ann@example.org").status == "unsubscribed"  # type: ignore[union-attr]
    with db.session() as session:
        assert suppression.is_suppressed("ann@example.org", session=session)
        kinds = session.scalars(select(ConsentEvent.kind).order_by(ConsentEvent.id)).all()
        withdraw = session.scalars(
            select(ConsentEvent).where(ConsentEvent.kind == "withdraw")
        ).one()
    assert kinds.count("withdraw") == 1
    assert withdraw.source == "one-click"


def test_get_of_unsubscribe_url_only_shows_a_button(
    client: TestClient, messenger: MemoryMessenger, db: Database, settings: Settings,
    topics: list[str],
) -> None:  # fmt: skip
    row = subscribe_and_confirm(client, messenger, "ann@example.org", topics[:1])
    url = f"/u/{tokens(settings).make(Purpose.UNSUBSCRIBE, row)}"
    for _ in range(3):
        page = client.get(url)
        assert page.status_code == 200
        assert f'<form method="post" action="{url}">' in page.text
    assert subscriber(db, "ann@example.org").status == "confirmed"  # type: ignore[union-attr]
    with db.session() as session:
        assert not suppression.is_suppressed("ann@example.org", session=session)


# ---------------------------------------------------------------- tokens


def _tamper(token: str) -> str:
    return token[:-2] + ("AA" if not token.endswith("AA") else "BB")


@pytest.mark.parametrize("method", ["GET", "POST"])
def test_bad_tokens_get_4xx_and_change_nothing(
    client: TestClient, messenger: MemoryMessenger, db: Database, settings: Settings,
    topics: list[str], method: str,
) -> None:  # fmt: skip
    ann = subscribe_and_confirm(client, messenger, "ann@example.org", topics[:1])
    bob = subscribe_and_confirm(client, messenger, "bob@example.org", topics[:1])
    mine = tokens(settings)
    other_key = Tokens("another-deployment", confirm_max_age=timedelta(days=7))
    cross = Tokens(settings.secret_key.get_secret_value(), confirm_max_age=timedelta(days=7))

    class Mixed:  # ann's id with bob's address hash: a foreign token, correctly signed
        id = ann.id
        email_hash = bob.email_hash

    bad = {
        "tampered": f"/u/{_tamper(mine.make(Purpose.UNSUBSCRIBE, ann))}",
        "other purpose": f"/u/{mine.make(Purpose.PREFERENCES, ann)}",
        "other secret": f"/u/{other_key.make(Purpose.UNSUBSCRIBE, ann)}",
        "foreign": f"/u/{cross.make(Purpose.UNSUBSCRIBE, Mixed())}",
        "garbage": "/u/%00%0d%0a",
        "prefs tampered": f"/preferences/{_tamper(mine.make(Purpose.PREFERENCES, ann))}",
        "prefs with unsubscribe token": f"/preferences/{mine.make(Purpose.UNSUBSCRIBE, ann)}",
        "confirm with prefs token": f"/confirm/{mine.make(Purpose.PREFERENCES, ann)}",
    }
    for name, url in bad.items():
        response = client.request(method, url, data=ONE_CLICK if method == "POST" else None)
        assert 400 <= response.status_code < 500, name
        assert "<script" not in response.text
    for email in ("ann@example.org", "bob@example.org"):
        assert subscriber(db, email).status == "confirmed"  # type: ignore[union-attr]


def test_expired_confirmation_link(
    client: TestClient, db: Database, settings: Settings, topics: list[str]
) -> None:
    client.post("/subscribe", data={"email": "ann@example.org"})
    row = subscriber(db, "ann@example.org")
    assert row is not None
    eight_days_ago = time.time() - 8 * 86_400
    old = Tokens(
        settings.secret_key.get_secret_value(),
        confirm_max_age=timedelta(days=settings.confirm_token_max_age_days),
        clock=lambda: eight_days_ago,
    ).make(Purpose.CONFIRM, row)
    for method in ("GET", "POST"):
        response = client.request(method, f"/confirm/{old}")
        assert response.status_code == 400 and "expired" in response.text
    assert client.post("/api/confirm", json={"token": old}).json() == {
        "detail": "this link has expired"
    }
    assert subscriber(db, "ann@example.org").status == "pending"  # type: ignore[union-attr]


def test_400_day_old_unsubscribe_link_still_works(
    client: TestClient, messenger: MemoryMessenger, db: Database, settings: Settings,
    topics: list[str],
) -> None:  # fmt: skip
    row = subscribe_and_confirm(client, messenger, "ann@example.org", topics[:1])
    long_ago = time.time() - 400 * 86_400
    old = Tokens(
        settings.secret_key.get_secret_value(),
        confirm_max_age=timedelta(days=7),
        clock=lambda: long_ago,
    ).make(Purpose.UNSUBSCRIBE, row)
    assert client.post(f"/u/{old}", data=ONE_CLICK).status_code == 200
    assert subscriber(db, "ann@example.org").status == "unsubscribed"  # type: ignore[union-attr]


# ---------------------------------------------------------------- abuse


def test_honeypot_looks_like_success_and_does_nothing(
    client: TestClient, messenger: MemoryMessenger, db: Database
) -> None:
    human = client.post("/subscribe", data={"email": "ann@example.org"})
    bot = client.post("/subscribe", data={"email": "bot@example.org", "website": "http://spam"})
    assert bot.status_code == human.status_code == 200
    assert bot.text == human.text.replace("ann@example.org", "bot@example.org")
    api = client.post("/api/subscribe", json={"email": "bot2@example.org", "website": "x"})
    assert api.status_code == 202
    assert subscriber(db, "bot@example.org") is None and subscriber(db, "bot2@example.org") is None
    assert [m.email for m in messenger.sent] == ["ann@example.org"]


def test_rate_limit_per_ip_shared_by_form_and_api(
    make_client: Callable[..., TestClient],
) -> None:
    client = make_client(limits=RateLimits(per_ip=3, window_seconds=600))
    assert client.post("/subscribe", data={"email": "a@example.org"}).status_code == 200
    assert client.post("/api/subscribe", json={"email": "b@example.org"}).status_code == 202
    assert client.post("/subscribe", data={"email": "c@example.org"}).status_code == 200
    blocked_page = client.post("/subscribe", data={"email": "d@example.org"})
    blocked_api = client.post("/api/subscribe", json={"email": "d@example.org"})
    assert blocked_page.status_code == blocked_api.status_code == 429
    assert int(blocked_api.headers["retry-after"]) > 0
    assert "too many requests" in blocked_api.json()["detail"]
    other_ip = TestClient(client.app, client=("192.0.2.99", 50000))
    assert other_ip.post("/subscribe", data={"email": "d@example.org"}).status_code == 200


def test_one_confirmation_email_per_address_per_hour(
    client: TestClient, messenger: MemoryMessenger, clock: Clock
) -> None:
    for _ in range(3):
        client.post("/subscribe", data={"email": "ann@example.org"})
        client.post("/api/subscribe", json={"email": "ANN@example.org"})
    assert len(messenger.to("ann@example.org")) == 1
    clock.now += timedelta(minutes=61)
    client.post("/api/subscribe", json={"email": "ann@example.org"})
    assert len(messenger.to("ann@example.org")) == 2


def test_same_answer_whether_or_not_the_address_is_known(
    client: TestClient, messenger: MemoryMessenger, db: Database, topics: list[str], clock: Clock
) -> None:
    subscribe_and_confirm(client, messenger, "known@example.org", topics[:1])
    client.post("/subscribe", data={"email": "pending@example.org"})
    with db.session() as session:
        suppression.suppress("bounced@example.org", "hard_bounce", session=session)
    clock.now += timedelta(hours=2)
    answers = {}
    for email in ("new@example.org", "known@example.org", "pending@example.org",
                  "bounced@example.org"):  # fmt: skip
        page = client.post("/subscribe", data={"email": email})
        api = client.post("/api/subscribe", json={"email": email})
        answers[email] = (
            page.status_code, page.text.replace(email, "X"),
            api.status_code, api.text.replace(email, "X"),
            tuple(sorted(page.headers)), tuple(sorted(api.headers)),
        )  # fmt: skip
    assert len(set(answers.values())) == 1
    assert messenger.to("known@example.org")[-1].email_message.subject.startswith(
        "You're already subscribed"
    )
    assert messenger.to("bounced@example.org") == []


@pytest.mark.parametrize(
    "fields",
    [
        {"email": "ann@example.org", "name": "Ann\r\nBcc: victim@example.org"},
        {"email": "ann@example.org", "name": "Ann\x00"},
        {"email": "ann@example.org\r\nBcc: victim@example.org"},
        {"email": "ann@example.org\x00"},
        {"email": "ann@example.org", "topics": ["No such topic"]},
        {"email": "not-an-address"},
    ],
)
def test_invalid_input_rejected_on_form_and_api(
    client: TestClient, messenger: MemoryMessenger, db: Database, fields: dict[str, object]
) -> None:
    page = client.post("/subscribe", data=fields)
    assert page.status_code == 422 and 'role="alert"' in page.text
    api = client.post("/api/subscribe", json=fields)
    assert api.status_code == 422 and "\n" not in api.json()["detail"]
    assert subscriber(db, "ann@example.org") is None and messenger.sent == []


# ---------------------------------------------------------------- API


def test_api_journey(
    client: TestClient, messenger: MemoryMessenger, settings: Settings, topics: list[str]
) -> None:
    info = client.get("/api/topics").json()
    assert info["topics"] == topics and "expert insights" in info["consent_text"]
    accepted = client.post(
        "/api/subscribe", json={"email": "ann@example.org", "topics": topics[:1]}
    )
    assert accepted.status_code == 202 and accepted.json()["status"] == "pending_confirmation"
    token = link(messenger, "confirm").rsplit("/", 1)[1]
    for _ in range(2):
        assert client.post("/api/confirm", json={"token": token}).json() == {"status": "confirmed"}
    row = subscriber(client.app.state.web.db, "ann@example.org")  # type: ignore[attr-defined]
    assert row is not None
    prefs = tokens(settings).make(Purpose.PREFERENCES, row)
    got = client.get(f"/api/preferences/{prefs}").json()
    assert (got["status"], got["topics"], got["paused_until"]) == ("confirmed", topics[:1], None)
    put = client.put(f"/api/preferences/{prefs}", json={"topics": topics[1:3], "pause_days": 90})
    assert put.status_code == 200 and put.json()["topics"] == sorted(topics[1:3])
    assert put.json()["paused_until"] is not None
    kept = client.put(f"/api/preferences/{prefs}", json={"topics": topics[1:3]}).json()
    assert kept["paused_until"] == put.json()["paused_until"]  # omitted: the pause stays
    resumed = client.put(f"/api/preferences/{prefs}", json={"topics": [], "pause_days": 0})
    assert resumed.json()["paused_until"] is None and resumed.json()["topics"] == []
    unsub = tokens(settings).make(Purpose.UNSUBSCRIBE, row)
    for _ in range(2):
        done = client.post("/api/unsubscribe", json={"token": unsub})
        assert done.json() == {"status": "unsubscribed"}
    assert client.post("/api/unsubscribe", json={"token": prefs}).status_code == 400


@pytest.mark.parametrize(
    "body",
    [
        {"topics": ["x"] * 101, "pause_days": 0},
        {"topics": [], "pause_days": 366},
        {"topics": [], "pause_days": -1},
        {"topics": [], "extra": 1},
        '{"topics": ["\\ud800"]}',  # a lone surrogate, as raw JSON
    ],
)
def test_api_rejects_out_of_range_preferences(
    client: TestClient, messenger: MemoryMessenger, settings: Settings, topics: list[str],
    body: dict[str, object] | str,
) -> None:  # fmt: skip
    row = subscribe_and_confirm(client, messenger, "ann@example.org", topics[:1])
    url = f"/api/preferences/{tokens(settings).make(Purpose.PREFERENCES, row)}"
    if isinstance(body, str):
        response = client.put(url, content=body, headers={"content-type": "application/json"})
    else:
        response = client.put(url, json=body)
    assert response.status_code == 422 and isinstance(response.json()["detail"], str)


def test_openapi_describes_the_json_api(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    paths = spec["paths"]
    public = {p for p in paths if not p.startswith("/api/v1/")}  # tests/test_api_tokens.py
    assert public == {
        "/api/topics", "/api/subscribe", "/api/confirm", "/api/preferences/{token}",
        "/api/unsubscribe", "/webhooks/sendgrid",
    }  # fmt: skip
    subscribe = paths["/api/subscribe"]["post"]
    assert "requestBody" in subscribe and {"202", "422", "429"} <= set(subscribe["responses"])
    assert {"get", "put"} <= set(paths["/api/preferences/{token}"])


# ---------------------------------------------------------------- pages and headers


@pytest.mark.parametrize("path", ["/subscribe", "/u/bad-token", "/openapi.json"])
def test_security_headers(client: TestClient, path: str) -> None:
    response = client.get(path)
    csp = response.headers["content-security-policy"]
    assert "frame-ancestors 'none'" in csp and "unsafe-inline" not in csp
    assert response.headers["x-frame-options"] == "DENY"
    assert response.headers["referrer-policy"] == "no-referrer"
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["cache-control"] == "no-store"


def test_pages_have_no_inline_script_or_style(
    client: TestClient, messenger: MemoryMessenger, settings: Settings, topics: list[str]
) -> None:
    row = subscribe_and_confirm(client, messenger, "ann@example.org", topics[:1])
    t = tokens(settings)
    pages = ["/subscribe", f"/preferences/{t.make(Purpose.PREFERENCES, row)}",
             f"/u/{t.make(Purpose.UNSUBSCRIBE, row)}", "/u/bad"]  # fmt: skip
    for path in pages:
        text = client.get(path).text
        # the one script: the sign-up form's time zone, from our own origin, not inline
        text = text.replace('<script src="/static/timezone.js" defer></script>', "")
        assert "<script" not in text and "style=" not in text and "<style" not in text, path
        assert re.search(r"<html lang=\"en\">", text)


def test_user_text_is_escaped(client: TestClient, messenger: MemoryMessenger) -> None:
    response = client.post("/subscribe", data={"email": "ann@example.org", "name": "<b>x</b>"})
    assert response.status_code == 200
    assert "<b>x</b>" not in messenger.sent[0].email_message.html
    assert "&lt;b&gt;x&lt;/b&gt;" in messenger.sent[0].email_message.html


def test_default_secret_refused_outside_debug(
    make_settings: Callable[..., Settings], db: Database
) -> None:
    from newsletter.config import DEFAULT_SECRET

    with pytest.raises(ConfigError, match="shipped placeholder"):
        create_app(make_settings(secret_key=DEFAULT_SECRET, debug=False), db)
    create_app(
        make_settings(secret_key=DEFAULT_SECRET, debug=True), db, messenger=MemoryMessenger()
    )
