"""Outgoing webhooks end to end, on SQLite and PostgreSQL, against real local HTTP servers.

The receivers (tests/webhook_receivers.py) verify signatures, fail and then
recover, hang past the timeout, or are not there at all.  Time is a
``FakeClock`` the test moves, so a day of retries takes no time.
"""

from __future__ import annotations

import json
import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select

from newsletter.automation.webhooks import events as ev
from newsletter.automation.webhooks import outbox, registry
from newsletter.automation.webhooks.dispatcher import Dispatcher, backoff
from newsletter.automation.webhooks.signing import SIGNATURE_HEADER, header, verify
from newsletter.config import Settings
from newsletter.db import Database
from newsletter.errors import ValidationError
from newsletter.models import (
    Campaign,
    WebhookDelivery,
    WebhookEndpoint,
    WebhookEvent,
)
from newsletter.subscribers import service
from newsletter.subscribers.store import Actor
from newsletter.tracking.engagement import store_hits
from newsletter.tracking.events import Event, ingest
from tests.sending_helpers import FakeClock, sent_campaign
from tests.webhook_receivers import Receiver, down_url, serving

FORM = Actor(source="form:test", ip="192.0.2.1")


@pytest.fixture
def hook_settings(settings: Settings) -> Settings:
    return settings.model_copy(
        update={"webhook_allow_private_addresses": True, "webhook_timeout_seconds": 1.0}
    )


@pytest.fixture
def clock() -> FakeClock:
    """Now, then only moved by the test (the changes themselves are stamped with real time)."""
    return FakeClock(now=datetime.now(UTC) + timedelta(seconds=1))


def add_endpoint(db: Database, url: str, events: list[str], clock: FakeClock) -> tuple[int, str]:
    with db.session() as session:
        row, secret = registry.create_endpoint(
            session, url, events, allow_private=True, actor="test", now=clock()
        )
        return row.id, secret


def confirm(db: Database, email: str, *, settings: Settings) -> int:
    topics = [t.name for t in settings.topics]
    with db.session() as session:
        outcome = service.subscribe(
            service.SignupRequest(email=email, actor=FORM, topics=topics[:1]),
            session=session, allowed_topics=topics,
        )  # fmt: skip
        assert outcome.subscriber is not None
        service.confirm(outcome.subscriber, session=session, actor=FORM)
        return outcome.subscriber.id


def log(db: Database, endpoint_id: int | None = None) -> list[registry.LogRow]:
    with db.session() as session:
        return registry.deliveries(session, endpoint_id=endpoint_id)


def statuses(db: Database, delivery_id: int) -> list[int | None]:
    with db.session() as session:
        return [a.status_code for a in registry.attempts(session, delivery_id)]


def count(db: Database, model: Any) -> int:
    with db.session() as session:
        return int(session.scalar(select(func.count()).select_from(model)) or 0)


# --- signed, delivered, logged ---------------------------------------------------------------


def test_a_confirmation_reaches_a_verifying_receiver_signed(
    db: Database, hook_settings: Settings, clock: FakeClock
) -> None:
    receiver = Receiver(now=lambda: clock().timestamp())
    with serving(receiver):
        endpoint_id, secret = add_endpoint(db, receiver.url, [ev.SUBSCRIBER_CONFIRMED], clock)
        receiver.secret = secret
        subscriber_id = confirm(db, "ann@example.org", settings=hook_settings)
        assert Dispatcher(db, hook_settings, clock=clock).run_once() == 1
    [got] = receiver.requests
    assert got.verified is True
    body = got.json
    assert body["type"] == "subscriber.confirmed" and body["id"].startswith("evt_")
    assert body["data"]["email"] == "ann@example.org"
    assert body["data"]["subscriber_id"] == subscriber_id
    assert body["data"]["source"] == "form:test"
    assert got.headers["Newsletter-Event-Id"] == body["id"]
    assert got.headers["Content-Type"] == "application/json"
    [row] = log(db, endpoint_id)
    assert (row.status, row.last_status, row.attempts) == ("delivered", 200, 1)
    assert row.excerpt is not None and '"ok": true' in row.excerpt


def test_a_receiver_that_fails_twice_gets_the_event_once_it_recovers(
    db: Database, hook_settings: Settings, clock: FakeClock
) -> None:
    receiver = Receiver(codes=[500, 500, 200], now=lambda: clock().timestamp())
    with serving(receiver):
        endpoint_id, secret = add_endpoint(db, receiver.url, [], clock)
        receiver.secret = secret
        confirm(db, "bob@example.org", settings=hook_settings)
        dispatcher = Dispatcher(db, hook_settings, clock=clock)
        assert dispatcher.run_once() == 1  # 500
        [row] = log(db, endpoint_id)
        assert (row.status, row.last_status) == ("pending", 500)
        assert row.next_attempt_at is not None
        wait = row.next_attempt_at - clock()
        assert timedelta(seconds=30) <= wait <= timedelta(seconds=36)
        assert dispatcher.run_once() == 0  # not due yet: no hammering
        clock.now += wait
        assert dispatcher.run_once() == 1  # 500 again, and the wait doubles
        [row] = log(db, endpoint_id)
        assert row.next_attempt_at is not None
        second = row.next_attempt_at - clock()
        assert timedelta(seconds=60) <= second <= timedelta(seconds=72)
        with db.session() as session:
            assert session.get(WebhookEndpoint, endpoint_id).state == "failing"  # type: ignore[union-attr]
        clock.now += second
        assert dispatcher.run_once() == 1  # 200
    [row] = log(db, endpoint_id)
    assert (row.status, row.attempts) == ("delivered", 3)
    assert statuses(db, row.id) == [500, 500, 200]
    assert [r.verified for r in receiver.requests] == [True, True, True]
    assert len({r.json["id"] for r in receiver.requests}) == 1  # one event, three attempts
    assert len({r.headers[SIGNATURE_HEADER] for r in receiver.requests}) == 3  # signed anew
    with db.session() as session:
        endpoint = session.get(WebhookEndpoint, endpoint_id)
        assert endpoint is not None and endpoint.state == "active"  # the streak ended


def test_a_dead_endpoint_is_retried_for_a_day_then_failed_and_disabled(
    db: Database, hook_settings: Settings, clock: FakeClock
) -> None:
    endpoint_id, _ = add_endpoint(db, down_url(), [ev.SUBSCRIBER_CONFIRMED], clock)
    confirm(db, "cat@example.org", settings=hook_settings)
    dispatcher = Dispatcher(db, hook_settings, clock=clock)
    start, tries = clock(), 0
    while tries < 100 and dispatcher.run_once():
        tries += 1
        [row] = log(db, endpoint_id)
        if row.status != "pending":
            break
        assert row.next_attempt_at is not None
        clock.now = row.next_attempt_at
    [row] = log(db, endpoint_id)
    assert row.status == "failed" and row.last_status is None
    assert row.last_error and "ConnectError" in row.last_error
    assert clock() - start >= timedelta(hours=24)
    assert 20 <= tries <= 40  # 30 s doubling to an hour, then hourly
    with db.session() as session:
        endpoint = session.get(WebhookEndpoint, endpoint_id)
        assert endpoint is not None and endpoint.state == "disabled"
        assert (
            endpoint.disabled_reason and "no delivery succeeded since" in endpoint.disabled_reason
        )
    # Disabled: new events are not even queued for it.
    confirm(db, "dan@example.org", settings=hook_settings)
    assert len(log(db, endpoint_id)) == 1


def test_backoff_doubles_from_30_seconds_to_an_hour_with_a_little_spread() -> None:
    waits = [backoff(n, 7).total_seconds() for n in range(1, 12)]
    assert 30 <= waits[0] <= 36 and 60 <= waits[1] <= 72 and 120 <= waits[2] <= 144
    assert all(3600 <= w <= 4320 for w in waits[8:])
    assert backoff(3, 7) == backoff(3, 7)  # repeatable for a delivery


def test_an_endpoint_that_never_answers_times_out_without_holding_others_up(
    db: Database, hook_settings: Settings, clock: FakeClock
) -> None:
    hanging = Receiver(hang=threading.Event())
    quick = Receiver()
    with serving(hanging), serving(quick):
        slow_id, _ = add_endpoint(db, hanging.url, [ev.SUBSCRIBER_CONFIRMED], clock)
        quick_id, _ = add_endpoint(db, quick.url, [ev.SUBSCRIBER_CONFIRMED], clock)
        confirm(db, "eve@example.org", settings=hook_settings)
        began = time.monotonic()
        assert Dispatcher(db, hook_settings, clock=clock).run_once() == 2
        took = time.monotonic() - began
    assert took < 10  # the 1 s timeout, not the receiver's 30 s hold
    [slow] = log(db, slow_id)
    assert slow.status == "pending" and slow.last_error == "no answer within 1 s"
    [fast] = log(db, quick_id)
    assert fast.status == "delivered" and len(quick.requests) == 1


# --- replay and the test event ---------------------------------------------------------------


def test_replay_sends_the_same_event_again_and_keeps_the_log(
    db: Database, hook_settings: Settings, clock: FakeClock
) -> None:
    receiver = Receiver(now=lambda: clock().timestamp())
    with serving(receiver):
        endpoint_id, receiver.secret = add_endpoint(db, receiver.url, [], clock)
        confirm(db, "fay@example.org", settings=hook_settings)
        dispatcher = Dispatcher(db, hook_settings, clock=clock)
        dispatcher.run_once()
        [first] = log(db, endpoint_id)
        with db.session() as session:
            again = registry.replay(session, first.id, now=clock())
        with db.session() as session, pytest.raises(Exception, match="still pending"):
            registry.replay(session, again, now=clock())
        dispatcher.run_once()
    rows = log(db, endpoint_id)
    assert [(r.id, r.status, r.replay_of) for r in rows] == [
        (again, "delivered", first.id), (first.id, "delivered", None),
    ]  # fmt: skip
    assert [r.verified for r in receiver.requests] == [True, True]
    assert receiver.requests[0].body == receiver.requests[1].body  # same event, same bytes


def test_the_test_event_goes_to_its_endpoint_only(
    db: Database, hook_settings: Settings, clock: FakeClock
) -> None:
    one, two = Receiver(), Receiver()
    with serving(one), serving(two):
        first, _ = add_endpoint(db, one.url, [], clock)
        add_endpoint(db, two.url, [], clock)
        with db.session() as session:
            endpoint = registry.get_endpoint(session, first)
            delivery = outbox.send_test(session, endpoint, actor="admin@example.org", now=clock())
        outcome = Dispatcher(db, hook_settings, clock=clock).deliver_now(delivery)
    assert outcome.ok and outcome.status_code == 200
    assert [r.json["type"] for r in one.requests] == ["webhook.test"] and two.requests == []


# --- the outbox: same transaction, exactly once ----------------------------------------------


def test_no_event_for_a_change_that_rolled_back(
    db: Database, hook_settings: Settings, clock: FakeClock
) -> None:
    add_endpoint(db, "http://127.0.0.1:9/hooks", [], clock)
    topics = [t.name for t in hook_settings.topics]
    with pytest.raises(RuntimeError), db.session() as session:
        outcome = service.subscribe(
            service.SignupRequest(email="gus@example.org", actor=FORM),
            session=session, allowed_topics=topics,
        )  # fmt: skip
        assert outcome.subscriber is not None
        service.confirm(outcome.subscriber, session=session, actor=FORM)
        assert session.scalar(select(func.count()).select_from(WebhookEvent)) == 1  # written...
        raise RuntimeError("the request failed after the change")
    assert count(db, WebhookEvent) == 0 and count(db, WebhookDelivery) == 0  # ...and gone
    confirm(db, "gus@example.org", settings=hook_settings)
    assert count(db, WebhookEvent) == 1


def test_nothing_is_written_when_no_endpoint_wants_the_event(
    db: Database, hook_settings: Settings, clock: FakeClock
) -> None:
    add_endpoint(db, "http://127.0.0.1:9/hooks", [ev.CAMPAIGN_SENT], clock)
    confirm(db, "hal@example.org", settings=hook_settings)
    assert count(db, WebhookEvent) == 0


def test_an_unsubscribe_emits_unsubscribed_and_suppressed_once_each(
    db: Database, hook_settings: Settings, clock: FakeClock
) -> None:
    add_endpoint(db, "http://127.0.0.1:9/hooks", [], clock)
    subscriber_id = confirm(db, "ida@example.org", settings=hook_settings)
    for _ in range(2):  # the second unsubscribe changes nothing, so emits nothing
        with db.session() as session:
            row = session.get(service.Subscriber, subscriber_id)  # type: ignore[attr-defined]
            service.unsubscribe(row, session=session, actor=FORM)
    with db.session() as session:
        bodies = [json.loads(b) for b in session.scalars(select(WebhookEvent.body))]
    assert sorted(b["type"] for b in bodies) == [
        "subscriber.confirmed", "subscriber.suppressed", "subscriber.unsubscribed",
    ]  # fmt: skip
    suppressed = next(b for b in bodies if b["type"] == "subscriber.suppressed")["data"]
    assert suppressed["reason"] == "unsubscribed" and suppressed["email"] == "ida@example.org"


def test_an_erasure_says_only_the_hash(
    db: Database, hook_settings: Settings, clock: FakeClock
) -> None:
    add_endpoint(db, "http://127.0.0.1:9/hooks", [ev.SUBSCRIBER_SUPPRESSED], clock)
    confirm(db, "jo@example.org", settings=hook_settings)
    with db.session() as session:
        service.erase("jo@example.org", session=session, actor=FORM)
    with db.session() as session:
        [body] = [json.loads(b) for b in session.scalars(select(WebhookEvent.body))]
    assert body["data"]["reason"] == "erased" and body["data"]["email"] is None
    assert "jo@example.org" not in json.dumps(body)


def test_campaign_sent_is_emitted_once_by_the_send_path(
    db: Database, hook_settings: Settings, clock: FakeClock
) -> None:
    """On PostgreSQL inside the RECORD statement, on SQLite in finish_campaigns' transaction."""
    add_endpoint(db, "http://127.0.0.1:9/hooks", [ev.CAMPAIGN_SENT], clock)
    add_endpoint(db, "http://127.0.0.1:10/hooks", [ev.CAMPAIGN_SENT, ev.MESSAGE_CLICKED], clock)
    sent_campaign(db, recipients=3)
    with db.session() as session:
        campaign = session.scalars(select(Campaign)).one()
        assert campaign.status == "sent"
        [body] = [json.loads(b) for b in session.scalars(select(WebhookEvent.body))]
        expected = ev.campaign_sent(session, [campaign.id])[campaign.id]
        # The finish may also come again (another worker, a retry): still one event.
        outbox.campaigns_sent(session, [campaign.id], now=clock())
    assert body["type"] == "campaign.sent" and body["data"] == expected
    assert expected["recipients"] == 3 and expected["issue_number"] == 42
    assert count(db, WebhookEvent) == 1 and count(db, WebhookDelivery) == 2


def _provider_event(event_id: str, kind: str, ledger: int, email: str, **extra: Any) -> Event:
    values: dict[str, Any] = {"bounce_type": None, "reason": None}
    values.update(extra)
    return Event(
        event_id=event_id, event=kind, email=email, ledger_id=ledger, campaign_id=None,
        occurred_at=datetime(2026, 4, 3, 14, 0, tzinfo=UTC), provider="sendgrid", **values,
    )  # fmt: skip


def test_bounces_and_complaints_are_emitted_once_per_provider_event(
    db: Database, hook_settings: Settings, clock: FakeClock
) -> None:
    add_endpoint(db, "http://127.0.0.1:9/hooks", [ev.MESSAGE_BOUNCED, ev.MESSAGE_COMPLAINED], clock)
    ledger = sent_campaign(db, recipients=3)
    batch = [
        _provider_event("e1", "bounce", ledger["user0@example.org"], "user0@example.org",
                        bounce_type="bounce", reason="550 5.1.1 no such user"),
        _provider_event("e2", "spamreport", ledger["user1@example.org"], "user1@example.org"),
        _provider_event("e3", "delivered", ledger["user2@example.org"], "user2@example.org"),
    ]  # fmt: skip
    for _ in range(2):  # SendGrid retries a whole request: stored once, emitted once
        with db.session() as session:
            ingest(batch, session=session, now=clock())
    with db.session() as session:
        bodies = [json.loads(b) for b in session.scalars(select(WebhookEvent.body))]
    by_type = {b["type"]: b["data"] for b in bodies}
    assert set(by_type) == {"message.bounced", "message.complained"} and len(bodies) == 2
    bounced = by_type["message.bounced"]
    assert bounced["email"] == "user0@example.org" and bounced["bounce_type"] == "hard"
    assert bounced["delivery_id"] == ledger["user0@example.org"] and bounced["issue_id"]
    assert bounced["reason"] == "550 5.1.1 no such user"
    assert by_type["message.complained"]["email"] == "user1@example.org"


def test_human_clicks_are_emitted_and_machine_clicks_are_not(
    db: Database, hook_settings: Settings, clock: FakeClock
) -> None:
    add_endpoint(db, "http://127.0.0.1:9/hooks", [ev.MESSAGE_CLICKED], clock)
    ledger = sent_campaign(db, recipients=2)
    with db.session() as session:
        issue_id = session.scalars(select(Campaign.issue_id)).one()
    late = (clock() + timedelta(hours=2)).timestamp()
    browser = (
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 Chrome/124.0 Safari/537.36"
    )
    hits = [
        {"id": "h1", "k": "c", "d": ledger["user0@example.org"], "i": issue_id, "p": 1,
         "t": late, "ua": browser, "n": "n1"},
        {"id": "h2", "k": "c", "d": ledger["user1@example.org"], "i": issue_id, "p": 1,
         "t": late, "ua": browser, "n": "n2", "h": 1},  # a HEAD request: a link scanner
    ]  # fmt: skip
    for _ in range(2):
        with db.session() as session:
            store_hits(hits, session=session, now=clock(), window=timedelta(seconds=10))
    with db.session() as session:
        bodies = [json.loads(b) for b in session.scalars(select(WebhookEvent.body))]
    assert [b["data"]["email"] for b in bodies] == ["user0@example.org"]
    assert bodies[0]["data"]["delivery_id"] == ledger["user0@example.org"]


# --- never in the way of sending -------------------------------------------------------------


def test_a_hanging_endpoint_does_not_slow_a_send(
    db: Database, hook_settings: Settings, clock: FakeClock
) -> None:
    """The dispatcher runs on its own thread; the send path only inserts rows."""
    hanging = Receiver(hang=threading.Event())
    settings = hook_settings.model_copy(update={"webhook_timeout_seconds": 20.0})
    with serving(hanging):
        add_endpoint(db, hanging.url, [], clock)
        confirm(db, "kim@example.org", settings=settings)  # something for it to hang on
        dispatcher = Dispatcher(db, settings)
        dispatcher.start()
        try:
            deadline = time.monotonic() + 10
            while not hanging.holding and time.monotonic() < deadline:
                time.sleep(0.05)
            assert hanging.holding == 1  # the dispatcher is stuck in a request...
            began = time.monotonic()
            sent_campaign(db, recipients=50)  # ...while a campaign goes out
            took = time.monotonic() - began
            assert hanging.holding == 1 and len(hanging.requests) == 1  # still stuck
            assert threading.current_thread().name != "newsletter-webhooks"
        finally:
            hanging.hang.set()  # type: ignore[union-attr]
            dispatcher.close()
    assert took < 15  # the hold is 20 s: the send never waited for it
    with db.session() as session:
        assert session.scalars(select(Campaign.status)).one() == "sent"
        types = set(session.scalars(select(WebhookEvent.type)))
    assert "campaign.sent" in types  # queued for the endpoint, not sent inline


# --- addresses: no server-side request forgery -----------------------------------------------


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("http://127.0.0.1:8000/hook", "must start with https://"),
        ("https://127.0.0.1/hook", "private or loopback address (127.0.0.1)"),
        ("https://10.1.2.3/hook", "private or loopback"),
        ("https://169.254.169.254/latest/meta-data", "private or loopback"),
        ("https://[::1]/hook", "private or loopback"),
        ("https://[::ffff:192.168.0.1]/hook", "private or loopback"),
        ("https://localhost/hook", "private or loopback"),
        ("https://user:pw@hooks.example.org/x", "user name or password"),
        ("ftp://hooks.example.org/x", "must start with https://"),
    ],
)
def test_private_and_odd_urls_are_refused(url: str, problem: str) -> None:
    with pytest.raises(ValidationError, match=problem.replace("(", r"\(").replace(")", r"\)")):
        registry.safe_target(url, allow_private=False)


def test_a_public_name_is_accepted_and_pinned_to_the_address_checked() -> None:
    target = registry.safe_target(
        "https://hooks.example.org/in?x=1", allow_private=False,
        resolve=lambda host, port: ["93.184.216.34"],
    )  # fmt: skip
    assert target.url == "https://93.184.216.34:443/in?x=1"
    assert target.host_header == "hooks.example.org"


def test_a_name_that_rebinds_to_loopback_is_refused_at_delivery(
    db: Database, hook_settings: Settings, clock: FakeClock
) -> None:
    """Registered while it resolved to a public address; by delivery time it points inside."""
    receiver = Receiver()
    strict = hook_settings.model_copy(update={"webhook_allow_private_addresses": False})
    answers = iter([["93.184.216.34"]])
    with serving(receiver):
        with db.session() as session:
            row, _ = registry.create_endpoint(
                session, f"https://hooks.example.org:{receiver.port}/x", [],
                allow_private=False, actor="test", now=clock(),
                resolve=lambda host, port: next(answers),
            )  # fmt: skip
            endpoint_id = row.id
        confirm(db, "lee@example.org", settings=strict)
        dispatcher = Dispatcher(db, strict, clock=clock, resolve=lambda host, port: ["127.0.0.1"])
        assert dispatcher.run_once() == 1
    assert receiver.requests == []  # never connected
    [row_] = log(db, endpoint_id)
    assert row_.last_error and "private or loopback address (127.0.0.1)" in row_.last_error


def test_unknown_events_are_refused(db: Database, clock: FakeClock) -> None:
    with db.session() as session, pytest.raises(ValidationError, match="unknown webhook event"):
        registry.create_endpoint(
            session, "http://127.0.0.1:9/", ["subscriber.sneezed"], allow_private=True,
            actor="test", now=clock(),
        )  # fmt: skip


# --- the scheme as documented ----------------------------------------------------------------


def test_the_signature_is_hmac_sha256_of_timestamp_dot_body() -> None:
    import hashlib
    import hmac

    body = b'{"id":"evt_1","type":"webhook.test"}'
    value = header("whsec_test", 1_700_000_000, body)
    expected = hmac.new(b"whsec_test", b"1700000000." + body, hashlib.sha256).hexdigest()
    assert value == f"t=1700000000,v1={expected}"
    assert verify("whsec_test", value, body, now=1_700_000_100)
    assert not verify("whsec_test", value, body + b" ", now=1_700_000_100)  # body changed
    assert not verify("whsec_other", value, body, now=1_700_000_100)  # another secret
    assert not verify("whsec_test", value, body, now=1_700_000_000 + 301)  # too old


def test_the_shell_snippet_in_the_readme_verifies_a_real_signature(tmp_path: Any) -> None:
    """README's openssl recipe, run as written, agrees with the signer."""
    import re
    import subprocess
    from pathlib import Path

    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    snippet = re.search(r"```sh\n(# verify-webhook.*?)```", readme, re.S)
    assert snippet, "README lost its shell verification snippet"
    body = '{"id":"evt_1","type":"webhook.test","data":{}}'
    (tmp_path / "body.json").write_text(body)
    value = header("whsec_abc", 1_700_000_000, body.encode())
    env = {"SECRET": "whsec_abc", "SIGNATURE": value, "BODY_FILE": str(tmp_path / "body.json"),
           "PATH": "/usr/bin:/bin"}  # fmt: skip
    done = subprocess.run(["bash", "-c", snippet.group(1)], env=env, capture_output=True, text=True)
    assert done.returncode == 0 and "valid" in done.stdout, done.stdout + done.stderr
    env["SECRET"] = "whsec_wrong"
    done = subprocess.run(["bash", "-c", snippet.group(1)], env=env, capture_output=True, text=True)
    assert done.returncode == 1


def test_the_python_snippet_in_the_readme_verifies_a_real_signature() -> None:
    import re
    from pathlib import Path

    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    snippet = re.search(r"```python\n(import hashlib, hmac, time\n.*?)```", readme, re.S)
    assert snippet, "README lost its Python verification snippet"
    namespace: dict[str, Any] = {}
    exec(snippet.group(1), namespace)
    body = b'{"id":"evt_1","type":"webhook.test","data":{}}'
    value = header("whsec_abc", int(time.time()), body)
    assert namespace["verify"]("whsec_abc", value, body) is True
    assert namespace["verify"]("whsec_abd", value, body) is False
    assert namespace["verify"]("whsec_abc", header("whsec_abc", 1_700_000_000, body), body) is False
