"""Email-link tokens against the real app and database: tampered, swapped, expired, ancient.

A link speaks for one subscriber and one purpose.  Anything else (a changed
byte, another subscriber's signature, a confirmation link used to unsubscribe,
an expired confirmation) is refused with 400 and changes nothing; an
unsubscribe link never expires, however old the email it sits in.
"""

from __future__ import annotations

import base64
import time
from collections.abc import Iterator
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

import pytest
from fastapi.testclient import TestClient
from itsdangerous import URLSafeSerializer
from sqlalchemy import func, select

from newsletter.config import Settings
from newsletter.db import Database
from newsletter.models import ConsentEvent, Subscriber, Suppression
from newsletter.subscribers import service
from newsletter.subscribers.store import CLI
from newsletter.subscribers.tokens import HASH_PREFIX, Purpose, Tokens, tokens_for
from newsletter.transports import MemoryMessenger
from newsletter.web import create_app

DAY = 86_400
ONE_CLICK = {"List-Unsubscribe": "One-Click"}


@pytest.fixture
def client(settings: Settings, db: Database) -> Iterator[TestClient]:
    app = create_app(settings, db, messenger=MemoryMessenger())
    with TestClient(app, client=("198.51.100.4", 4000)) as test_client:
        yield test_client


@pytest.fixture
def people(settings: Settings, db: Database) -> dict[str, Subscriber]:
    topics = [t.name for t in settings.topics]
    with db.session() as session:
        made = {
            name: service.add(
                f"{name}@example.org",
                session=session,
                actor=CLI,
                allowed_topics=topics,
                topics=topics[:1],
                confirmed=True,
            )
            for name in ("ann", "bob")
        }
        made["pat"] = service.add(
            "pat@example.org", session=session, actor=CLI, allowed_topics=topics
        )  # pending
    return made


def state(db: Database) -> tuple[Any, ...]:
    with db.session() as session:
        return (
            session.execute(
                select(Subscriber.email, Subscriber.status).order_by(Subscriber.id)
            ).all(),
            session.scalar(select(func.count()).select_from(ConsentEvent)),
            session.scalar(select(func.count()).select_from(Suppression)),
        )


def status(db: Database, email: str) -> str:
    with db.session() as session:
        return str(session.scalar(select(Subscriber.status).where(Subscriber.email == email)))


def refused(client: TestClient, token: str, purpose: Purpose) -> bool:
    """Every way a link of this purpose can be used answers 400."""
    if purpose is Purpose.UNSUBSCRIBE:
        answers = [
            client.post(f"/u/{token}", data=ONE_CLICK),
            client.get(f"/u/{token}"),
            client.post("/api/unsubscribe", json={"token": token}),
        ]
    elif purpose is Purpose.CONFIRM:
        answers = [
            client.post(f"/confirm/{token}"),
            client.get(f"/confirm/{token}"),
            client.post("/api/confirm", json={"token": token}),
        ]
    else:
        answers = [
            client.get(f"/preferences/{token}"),
            client.get(f"/api/preferences/{token}"),
            client.put(f"/api/preferences/{token}", json={"topics": []}),
        ]
    return all(a.status_code == 400 for a in answers)


def test_tampered_tokens_are_refused_and_change_nothing(
    settings: Settings, db: Database, client: TestClient, people: dict[str, Subscriber]
) -> None:
    tokens = tokens_for(settings)
    before = state(db)
    for purpose in Purpose:
        good = tokens.make(purpose, people["pat" if purpose is Purpose.CONFIRM else "ann"])
        variants = {
            good[:-1],
            good + "A",
            good[1:],
            good.replace(".", "", 1),
            good.upper(),
            good[: len(good) // 2],
            "",
            "x",
            "." * 10,
        }
        for index in range(0, len(good), 3):  # every third character, changed
            flipped = "A" if good[index] != "A" else "B"
            variants.add(good[:index] + flipped + good[index + 1 :])
        for bad in variants - {good}:
            if not bad or "/" in bad:
                continue
            assert refused(client, bad, purpose), (purpose, bad)
    assert state(db) == before


def test_tokens_swapped_between_subscribers_or_purposes_are_refused(
    settings: Settings, db: Database, client: TestClient, people: dict[str, Subscriber]
) -> None:
    tokens = tokens_for(settings)
    ann, bob = people["ann"], people["bob"]
    before = state(db)
    a_unsub, b_unsub = tokens.make(Purpose.UNSUBSCRIBE, ann), tokens.make(Purpose.UNSUBSCRIBE, bob)
    a_payload, _, _a_sig = a_unsub.rpartition(".")
    _b_payload, _, b_sig = b_unsub.rpartition(".")
    assert refused(client, f"{a_payload}.{b_sig}", Purpose.UNSUBSCRIBE)  # Ann's claims, Bob's seal
    # Properly signed, but naming Ann's id with Bob's address (a forged or buggy payload).
    secret = settings.secret_key.get_secret_value()
    mixed = URLSafeSerializer(secret, salt="newsletter.unsubscribe").dumps(
        [ann.id, bob.email_hash[:HASH_PREFIX]]
    )
    assert refused(client, mixed, Purpose.UNSUBSCRIBE)
    unsigned = base64.urlsafe_b64encode(f'[{bob.id},"{bob.email_hash[:16]}"]'.encode()).decode()
    assert refused(client, unsigned.rstrip("="), Purpose.UNSUBSCRIBE)
    # A link for one purpose never works for another.
    for made_for in Purpose:
        for used_for in set(Purpose) - {made_for}:
            assert refused(client, tokens.make(made_for, ann), used_for), (made_for, used_for)
    assert state(db) == before
    # Ann's own link unsubscribes Ann, and only Ann.
    assert client.post(f"/u/{a_unsub}", data=ONE_CLICK).status_code == 200
    assert (status(db, "ann@example.org"), status(db, "bob@example.org")) == (
        "unsubscribed",
        "confirmed",
    )


def test_an_expired_confirmation_is_refused_and_one_inside_the_window_works(
    settings: Settings, db: Database, client: TestClient, people: dict[str, Subscriber]
) -> None:
    secret = settings.secret_key.get_secret_value()
    days = settings.confirm_token_max_age_days
    old = Tokens(
        secret, confirm_max_age=timedelta(days=days), clock=lambda: time.time() - (days + 1) * DAY
    )
    expired = old.make(Purpose.CONFIRM, people["pat"])
    before = state(db)
    response = client.post(f"/confirm/{expired}")
    assert response.status_code == 400 and "expired" in response.text.lower()
    assert (
        client.post("/api/confirm", json={"token": expired}).json()["detail"]
        == "this link has expired"
    )
    assert state(db) == before and status(db, "pat@example.org") == "pending"
    # Just inside the window it still works.
    fresh = Tokens(
        secret, confirm_max_age=timedelta(days=days), clock=lambda: time.time() - (days - 1) * DAY
    )
    assert client.post(f"/confirm/{fresh.make(Purpose.CONFIRM, people['pat'])}").status_code == 200
    assert status(db, "pat@example.org") == "confirmed"


def test_a_very_old_unsubscribe_link_still_works_every_time(
    settings: Settings, db: Database, client: TestClient, people: dict[str, Subscriber]
) -> None:
    secret = settings.secret_key.get_secret_value()
    ten_years_ago = Tokens(
        secret, confirm_max_age=timedelta(days=7), clock=lambda: time.time() - 3650 * DAY
    )
    ancient = ten_years_ago.make(Purpose.UNSUBSCRIBE, people["bob"])
    assert client.get(f"/u/{ancient}").status_code == 200  # the page with the button
    assert status(db, "bob@example.org") == "confirmed"  # a GET (a link scanner) changes nothing
    for _ in range(3):  # RFC 8058 one-click, retried by the mail provider: always 200
        response = client.post(f"/u/{ancient}", data=ONE_CLICK, follow_redirects=False)
        assert response.status_code == 200
    assert status(db, "bob@example.org") == "unsubscribed"
    with db.session() as session:
        withdrawals = session.scalar(
            select(func.count()).select_from(ConsentEvent).where(ConsentEvent.kind == "withdraw")
        )
    assert withdrawals == 1  # idempotent: one withdrawal recorded, not three
    prefs = ten_years_ago.make(Purpose.PREFERENCES, people["bob"])
    assert client.get(f"/api/preferences/{prefs}").json()["status"] == "unsubscribed"
    # Bob signs up again and confirms: the ten-year-old link in an old email still works.
    assert client.post("/api/subscribe", json={"email": "bob@example.org"}).status_code == 202
    messenger: MemoryMessenger = client.app.state.web.messenger  # type: ignore[attr-defined]
    link = next(
        line for line in messenger.sent[-1].email_message.text.split() if "/confirm/" in line
    )
    assert client.post(urlsplit(link).path).status_code == 200
    assert status(db, "bob@example.org") == "confirmed"
    assert client.post(f"/u/{ancient}", data=ONE_CLICK).status_code == 200
    assert status(db, "bob@example.org") == "unsubscribed"
