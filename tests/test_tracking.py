"""Signed SendGrid webhooks: verification, idempotent storage, ledger and suppression effects."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable, Iterator

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from newsletter.config import Settings
from newsletter.db import Database, connect
from newsletter.models import Delivery, Subscriber, Suppression, TrackingEvent
from newsletter.testing.webhook_signer import Signer
from newsletter.tracking.signature import SIGNATURE_HEADER
from newsletter.transports import MemoryMessenger
from newsletter.web import create_app
from tests.sending_helpers import (
    sent_campaign,
)


@pytest.fixture
def signer() -> Signer:
    return Signer.new()


@pytest.fixture
def sent(db: Database) -> dict[str, int]:
    """A campaign of 5 sent through the engine; returns ledger id by address."""
    return sent_campaign(db)


@pytest.fixture
def client(settings: Settings, signer: Signer) -> Iterator[TestClient]:
    configured = settings.model_copy(update={"sendgrid_webhook_public_key": signer.public_b64})
    database = connect(configured)
    app = create_app(configured, database, messenger=MemoryMessenger())
    with TestClient(app) as test_client:
        yield test_client
    database.dispose()


def _event(kind: str, email: str, ledger_id: int, n: int, **extra: object) -> dict[str, object]:
    return {
        "email": email,
        "event": kind,
        "sg_event_id": f"ev-{kind}-{ledger_id}-{n}",
        "timestamp": int(time.time()),
        "ledger_id": str(ledger_id),
        "campaign_id": "1",
        "sg_message_id": "abc.filter",
        **extra,
    }


def _post(
    client: TestClient, signer: Signer, events: list[dict[str, object]]
) -> tuple[int, dict[str, object]]:
    body = json.dumps(events).encode()
    response = client.post("/webhooks/sendgrid", content=body, headers=signer.headers(body))
    return response.status_code, response.json()


def _status(db: Database, ledger_id: int) -> Delivery:
    with db.session() as session:
        row = session.get(Delivery, ledger_id)
        assert row is not None
        return row


def test_signed_events_update_the_ledger_once(
    client: TestClient, signer: Signer, db: Database, sent: dict[str, int]
) -> None:
    a, b = "user0@example.org", "user1@example.org"
    events = [
        _event("processed", a, sent[a], 1),
        _event("delivered", a, sent[a], 1),
        _event("open", a, sent[a], 1),
        _event("open", a, sent[a], 2),
        _event("click", a, sent[a], 1, url="https://x.org"),
        _event("delivered", b, sent[b], 1),
    ]
    status, body = _post(client, signer, events)
    assert status == 200 and body["stored"] == 6 and body["duplicates"] == 0
    row = _status(db, sent[a])
    assert row.status == "delivered" and row.opens == 2 and row.clicks == 1 and row.opened_at
    # The same events again (a SendGrid retry), freshly signed: stored nothing, counted nothing.
    status, body = _post(client, signer, events)
    assert status == 200 and body["stored"] == 0 and body["duplicates"] == 6
    assert _status(db, sent[a]).opens == 2
    # A late "processed" never moves a delivered row backwards.
    _post(client, signer, [_event("processed", b, sent[b], 9)])
    assert _status(db, sent[b]).status == "delivered"


def test_hard_bounce_and_complaint_suppress_at_once(
    client: TestClient, signer: Signer, db: Database, sent: dict[str, int]
) -> None:
    a, b = "user2@example.org", "user3@example.org"
    status, body = _post(
        client,
        signer,
        [
            _event("bounce", a, sent[a], 1, type="bounce", reason="550 5.1.1 unknown user"),
            _event("spamreport", b, sent[b], 1),
        ],
    )
    assert status == 200 and body["suppressed"] == 2
    assert _status(db, sent[a]).status == "bounced"
    with db.session() as session:
        reasons = dict(session.execute(select(Subscriber.email, Subscriber.status)).all())
        assert reasons[a] == "bounced" and reasons[b] == "complained"
        assert session.scalar(select(func.count()).select_from(Suppression)) == 2


def test_soft_bounces_suppress_after_three_in_a_row(
    client: TestClient, signer: Signer, db: Database, sent: dict[str, int]
) -> None:
    a = "user4@example.org"
    for n in range(2):
        _post(client, signer, [_event("bounce", a, sent[a], n, type="blocked")])
    _post(client, signer, [_event("delivered", a, sent[a], 1)])  # a delivery resets the run
    for n in range(2, 4):
        _post(client, signer, [_event("bounce", a, sent[a], n, type="blocked")])
    with db.session() as session:
        assert session.scalar(select(func.count()).select_from(Suppression)) == 0
    _post(client, signer, [_event("bounce", a, sent[a], 4, type="blocked")])
    with db.session() as session:
        assert session.scalar(select(Subscriber.status).where(Subscriber.email == a)) == "bounced"


@pytest.mark.parametrize(
    "attack", ["reserialised", "bad_signature", "stale", "future", "no_headers", "other_key"]
)
def test_unverifiable_requests_are_rejected_and_store_nothing(
    client: TestClient, signer: Signer, db: Database, sent: dict[str, int], attack: str
) -> None:
    a = "user0@example.org"
    body = json.dumps([_event("delivered", a, sent[a], 1)]).encode()
    headers = signer.headers(body)
    tamper: dict[str, Callable[[], tuple[bytes, dict[str, str]]]] = {
        "reserialised": lambda: (json.dumps(json.loads(body), indent=1).encode(), headers),
        "bad_signature": lambda: (
            body,
            {**headers, SIGNATURE_HEADER: base64.b64encode(b"x" * 70).decode()},
        ),
        "stale": lambda: (body, signer.headers(body, int(time.time()) - 3600)),
        "future": lambda: (body, signer.headers(body, int(time.time()) + 3600)),
        "no_headers": lambda: (body, {"content-type": "application/json"}),
        "other_key": lambda: (body, Signer.new().headers(body)),
    }
    content, sent_headers = tamper[attack]()
    response = client.post("/webhooks/sendgrid", content=content, headers=sent_headers)
    assert response.status_code == 403
    with db.session() as session:
        assert session.scalar(select(func.count()).select_from(TrackingEvent)) == 0
    assert _status(db, sent[a]).status == "accepted"


def test_oversized_and_non_json_bodies(client: TestClient, signer: Signer, db: Database) -> None:
    big = b"[" + b" " * (10 * 1024 * 1024) + b"]"
    assert (
        client.post("/webhooks/sendgrid", content=big, headers=signer.headers(big)).status_code
        == 413
    )
    junk = b"this is not json"
    response = client.post("/webhooks/sendgrid", content=junk, headers=signer.headers(junk))
    assert response.status_code == 400
    odd = json.dumps([{"event": "delivered"}, "x", 3]).encode()  # no event ids: ignored, not errors
    response = client.post("/webhooks/sendgrid", content=odd, headers=signer.headers(odd))
    assert response.status_code == 200 and response.json()["ignored"] == 3


def test_unconfigured_key_refuses_everything(
    settings: Settings, db: Database, signer: Signer
) -> None:
    app = create_app(settings, db, messenger=MemoryMessenger())
    body = b"[]"
    with TestClient(app) as test_client:
        assert (
            test_client.post(
                "/webhooks/sendgrid", content=body, headers=signer.headers(body)
            ).status_code
            == 503
        )


def test_gdpr_export_includes_sends_and_their_events(
    client: TestClient, signer: Signer, db: Database, sent: dict[str, int]
) -> None:
    from newsletter.subscribers.service import gdpr_export

    a = "user1@example.org"
    _post(client, signer, [_event("delivered", a, sent[a], 1), _event("open", a, sent[a], 1)])
    with db.session() as session:
        export = gdpr_export(a, session=session)
    [send] = export["sends"]
    assert send["ledger_id"] == sent[a] and send["status"] == "delivered" and send["opens"] == 1
    assert [e["event"] for e in send["events"]] == ["delivered", "open"]
    json.dumps(export)  # JSON-ready
