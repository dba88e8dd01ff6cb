"""Webhooks under attack: forged, re-serialised, stale, replayed, huge, malformed, hostile.

Each request is either rejected (403 signature, 413 size, 400 not JSON) or a
no-op, and the database is compared before and after: nothing stored that
should not be.  Signed but hostile event contents (huge numbers, NUL bytes,
deep nesting, wrong types) must never make the endpoint answer 5xx: SendGrid
would retry that batch for three days and every good event in it with it.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from newsletter.config import Settings
from newsletter.db import Database
from newsletter.models import Delivery, Subscriber, Suppression, TrackingEvent
from newsletter.testing.webhook_signer import Signer
from newsletter.tracking.signature import SIGNATURE_HEADER, TIMESTAMP_HEADER
from newsletter.transports import MemoryMessenger
from newsletter.web import create_app
from tests.sending_helpers import (
    sent_campaign,
)

URL = "/webhooks/sendgrid"


@pytest.fixture
def ledger(db: Database) -> dict[str, int]:
    """Five recipients sent through the engine: ledger id by address."""
    return sent_campaign(db)


@pytest.fixture
def client(settings: Settings, db: Database, signer: Signer) -> Iterator[TestClient]:
    configured = settings.model_copy(update={"sendgrid_webhook_public_key": signer.public_b64})
    app = create_app(configured, db, messenger=MemoryMessenger())
    with TestClient(app, raise_server_exceptions=False) as test_client:
        yield test_client


def snapshot(db: Database) -> tuple[Any, ...]:
    with db.session() as session:
        return (
            session.execute(
                select(
                    Delivery.id, Delivery.status, Delivery.opens, Delivery.clicks, Delivery.detail
                ).order_by(Delivery.id)
            ).all(),
            session.execute(select(TrackingEvent.event_id).order_by(TrackingEvent.id)).all(),
            session.execute(select(Suppression.email_hash, Suppression.reason)).all(),
            session.execute(
                select(Subscriber.id, Subscriber.status, Subscriber.soft_bounces)
            ).all(),
        )


def event(kind: str, email: str, ledger_id: int | str, n: int = 1, **extra: Any) -> dict[str, Any]:
    return {
        "email": email,
        "event": kind,
        "sg_event_id": f"ev-{kind}-{ledger_id}-{n}",
        "timestamp": int(time.time()),
        "ledger_id": str(ledger_id),
        **extra,
    }


def post(client: TestClient, body: bytes, headers: dict[str, str]) -> tuple[int, Any]:
    response = client.post(URL, content=body, headers=headers)
    try:
        return response.status_code, response.json()
    except ValueError:
        return response.status_code, response.text


# --------------------------------------------------------------------------- rejected


def test_forged_reserialised_stale_and_unsigned_requests_change_nothing(
    client: TestClient, signer: Signer, db: Database, ledger: dict[str, int]
) -> None:
    a = "user0@example.org"
    body = json.dumps(
        [event("bounce", a, ledger[a], type="bounce"), event("delivered", a, ledger[a])]
    ).encode()
    good = signer.headers(body)
    other = Signer.new()
    attacks = {
        "bad signature": (
            body,
            {**good, SIGNATURE_HEADER: base64.b64encode(b"\x30" * 70).decode()},
        ),
        "not base64": (body, {**good, SIGNATURE_HEADER: "%%%not base64%%%"}),
        "other key": (body, other.headers(body)),
        "re-serialised": (json.dumps(json.loads(body), separators=(",", ":")).encode(), good),
        "one byte changed": (body.replace(b"bounce", b"bounc3", 1), good),
        "stale": (body, signer.headers(body, int(time.time()) - 3600)),
        "future": (body, signer.headers(body, int(time.time()) + 3600)),
        "timestamp not a number": (body, {**good, TIMESTAMP_HEADER: "soon"}),
        "timestamp swapped": (body, {**good, TIMESTAMP_HEADER: str(int(time.time()) - 1)}),
        "no signature": (body, {"content-type": "application/json"}),
        "empty signature": (body, {**good, SIGNATURE_HEADER: ""}),
    }
    before = snapshot(db)
    for name, (content, headers) in attacks.items():
        status, answer = post(client, content, headers)
        assert status == 403, (name, status, answer)
    assert snapshot(db) == before


def test_a_replayed_request_and_replayed_event_ids_are_no_ops(
    client: TestClient, signer: Signer, db: Database, ledger: dict[str, int]
) -> None:
    a, b = "user1@example.org", "user2@example.org"
    events = [
        event("delivered", a, ledger[a]),
        event("open", a, ledger[a]),
        event("click", a, ledger[a], url="https://x.test"),
        event("spamreport", b, ledger[b]),
    ]
    body = json.dumps(events).encode()
    headers = signer.headers(body)
    status, answer = post(client, body, headers)
    assert status == 200 and answer["stored"] == 4 and answer["suppressed"] == 1
    after_first = snapshot(db)
    # The captured request, byte for byte, within the freshness window: a no-op.
    status, answer = post(client, body, headers)
    assert status == 200 and answer["stored"] == 0 and answer["duplicates"] == 4
    # The same event ids in a new, properly signed request (SendGrid retrying): a no-op.
    again = json.dumps(list(reversed(events))).encode()
    status, answer = post(client, again, signer.headers(again))
    assert status == 200 and answer["stored"] == 0
    # The same id twice within one request counts once.
    twice = json.dumps([event("open", a, ledger[a], 7), event("open", a, ledger[a], 7)]).encode()
    status, answer = post(client, twice, signer.headers(twice))
    assert status == 200 and answer["stored"] == 1
    with db.session() as session:
        row = session.get(Delivery, ledger[a])
        assert row is not None and row.opens == 2 and row.clicks == 1
    assert snapshot(db)[2:] == after_first[2:]


def test_a_ten_megabyte_body_is_refused_before_it_is_read_whole(
    client: TestClient, signer: Signer, db: Database, ledger: dict[str, int]
) -> None:
    a = "user3@example.org"
    one = json.dumps(event("delivered", a, ledger[a])).encode()
    big = b"[" + b",".join([one] * (10 * 1024 * 1024 // len(one) + 1)) + b"]"
    assert len(big) > 10 * 1024 * 1024
    before = snapshot(db)
    status, _ = post(client, big, signer.headers(big))
    assert status == 413

    def chunks() -> Iterator[bytes]:  # no Content-Length: the cap must hold while streaming
        for start in range(0, len(big), 64 * 1024):
            yield big[start : start + 64 * 1024]

    response = client.post(URL, content=chunks(), headers=signer.headers(big))
    assert response.status_code == 413
    assert snapshot(db) == before


MALFORMED = {
    "empty": b"",
    "text": b"not json",
    "truncated": b"{",
    "not utf-8": b"\xff\xfe\x00",
    "object": b'{"event": "delivered"}',
    "null": b"null",
    "number": b"42",
    "string": b'"string"',
    "nested 100k deep": b"[" * 100_000 + b"]" * 100_000,
    "huge exponent": b"[1e999999]",
    "id not a string": b'[{"sg_event_id": 1}]',
}


@pytest.mark.parametrize("body", list(MALFORMED.values()), ids=list(MALFORMED))
def test_signed_but_malformed_bodies_are_rejected_or_ignored(
    client: TestClient, signer: Signer, db: Database, ledger: dict[str, int], body: bytes
) -> None:
    before = snapshot(db)
    status, answer = post(client, body, signer.headers(body))
    assert status in (200, 400, 403), (status, answer)  # 403: not UTF-8 cannot verify
    if status == 200:
        assert answer["stored"] == 0
    assert snapshot(db) == before


# --------------------------------------------------------------------------- hostile contents

_hostile_scalar = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=-(2**80), max_value=2**80),
    st.sampled_from([2**31, 2**63, -(2**63) - 1, 10**30, -1, 0]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=40),
    st.sampled_from(
        [
            "\x00",
            "a\x00b",
            "\ud800",
            "9" * 400,
            "1e400",
            "delivered",
            "bounce",
            "open",
            "click",
            "spamreport",
            "user0@example.org",
            "x" * 5000,
        ]
    ),
)
_hostile_value = st.recursive(
    _hostile_scalar,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=6,
)
_keys = st.sampled_from(
    [
        "email",
        "event",
        "sg_event_id",
        "timestamp",
        "ledger_id",
        "campaign_id",
        "type",
        "reason",
        "response",
        "url",
        "sg_message_id",
    ]
)


@settings(max_examples=120, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    st.lists(
        st.fixed_dictionaries(
            {
                "sg_event_id": st.text(min_size=1, max_size=30) | st.just("a\x00b"),
                "event": st.sampled_from(
                    [
                        "delivered",
                        "bounce",
                        "open",
                        "click",
                        "spamreport",
                        "dropped",
                        "processed",
                        "deferred",
                        "x\x00",
                    ]
                ),
            },
            optional={
                "ledger_id": _hostile_value,
                "timestamp": _hostile_value,
                "campaign_id": _hostile_value,
                "email": _hostile_value,
                "type": _hostile_value,
                "reason": _hostile_value,
                "url": _hostile_value,
            },
        )
        | st.dictionaries(_keys, _hostile_value, max_size=6)
        | _hostile_value,
        max_size=8,
    )
)
def test_signed_hostile_events_never_make_the_endpoint_fail(
    client: TestClient, signer: Signer, ledger: dict[str, int], events: list[Any]
) -> None:
    body = json.dumps(events, allow_nan=True).encode()  # ASCII: "\ud800" stays an escape
    status, answer = post(client, body, signer.headers(body))
    assert status in (200, 400), (status, answer, events)
