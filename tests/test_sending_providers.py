"""Campaigns through real wire protocols: a SendGrid-compatible server, worker processes, SMTP.

These are issue 5's acceptance tests: exactly-once under provider back-pressure,
several worker processes on PostgreSQL, a SIGKILL between the provider's 202
and the ledger commit, and a per-recipient SMTP 4xx/5xx mix.
"""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from newsletter.config import Settings
from newsletter.db import Database
from newsletter.models import Delivery, SendBatch, Subscriber
from newsletter.sending import campaigns, service
from newsletter.sending.engine import Policy, Worker
from newsletter.sending.sqlstore import SqlStore
from newsletter.testing.fake_sendgrid import FakeSendGrid, Reply
from newsletter.testing.smtp_sink import SmtpSink
from newsletter.testing.webhook_signer import Signer
from newsletter.transports.sendgrid import SendGridMessenger
from newsletter.transports.smtp import SMTPMessenger
from newsletter.web import create_app
from tests.sending_helpers import (
    FakeClock,
    add_subscribers,
    started_campaign,
    stub_preparer,
)

REPO = Path(__file__).resolve().parent.parent
KEY = "SG.test-key"


def _statuses(db: Database, cid: int) -> Counter[str]:
    with db.session() as session:
        return Counter(session.scalars(select(Delivery.status).where(Delivery.campaign_id == cid)))


def _started_campaign(db: Database, recipients: int, *, batch_size: int = 1000) -> int:
    return started_campaign(db, FakeClock(), recipients=recipients, batch_size=batch_size)


def test_5000_recipients_through_sendgrid_with_429_and_500s(db: Database) -> None:
    cid = _started_campaign(db, 5000)
    clock = FakeClock()
    replies = [
        Reply(202),
        Reply.rate_limited(reset_in=2),
        Reply.error(500, "boom"),
        Reply.error(503, "busy"),
    ]
    with FakeSendGrid(KEY, replies=replies) as server:
        messenger = SendGridMessenger(KEY, host=server.url, timeout=10)
        store = SqlStore(db, worker_id="sg")
        try:
            worker = Worker(
                store=store,
                messenger=messenger,
                prepare=stub_preparer,
                policy=Policy(idle_poll_seconds=1),
                clock=clock,
                sleep=clock.sleep,
            )
            worker.run(threading.Event(), until=service.campaign_finished(db, cid))
        finally:
            store.close()
        accepted = server.accepted_ledger_ids()
        statuses = [r.status for r in server.requests]
    retries = 3  # the 429 and the two 5xx batches were each sent once more
    assert len(statuses) == math.ceil(5000 / 1000) + retries
    assert Counter(statuses) == {202: 5, 429: 1, 500: 1, 503: 1}
    assert len(accepted) == 5000 and set(accepted.values()) == {1}
    assert _statuses(db, cid) == {"accepted": 5000}
    with db.session() as session:
        ids = set(session.scalars(select(Delivery.id).where(Delivery.campaign_id == cid)))
        provider_ids = set(session.scalars(select(Delivery.provider_id)))
    assert {int(i) for i in accepted} == ids
    assert None not in provider_ids and len(provider_ids) == 5  # one X-Message-Id per request
    assert clock.slept >= 2  # the rate-limit reset was waited for (on the fake clock)


def _env(settings: Settings, server: FakeSendGrid, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSLETTER_")}
    env.update(
        {
            "NEWSLETTER_DATABASE_URL": settings.database_url,
            "NEWSLETTER_VAR_DIR": str(settings.var_dir),
            "NEWSLETTER_SECRET_KEY": "test-secret-key-not-default",
            "NEWSLETTER_TRANSPORT": "sendgrid",
            "NEWSLETTER_SENDGRID_API_KEY": KEY,
            "NEWSLETTER_SENDGRID_HOST": server.url,
            "NEWSLETTER_BATCH_SIZE": "25",
            "PYTHONPATH": str(REPO),
            **extra,
        }
    )
    if settings.database_schema:
        env["NEWSLETTER_DATABASE_SCHEMA"] = settings.database_schema
    return env


def _spawn(env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.worker_proc"],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _start_issue42(db: Database, settings: Settings, recipients: int) -> int:
    with db.session() as session:
        add_subscribers(session, recipients)
        cid = campaigns.create_campaign(42, session=session).id
    assert service.start(db, settings.model_copy(update={"batch_size": 25}), cid)
    return cid


@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
def test_four_worker_processes_send_each_recipient_exactly_once(
    issue42: Database, settings: Settings
) -> None:
    with FakeSendGrid(KEY) as server:
        env = _env(settings, server)
        workers = [_spawn(env) for _ in range(4)]
        time.sleep(1.5)  # all four are polling before there is work
        cid = _start_issue42(issue42, settings, 1000)
        done = service.campaign_finished(issue42, cid)
        deadline = time.monotonic() + 120
        while not done() and time.monotonic() < deadline:
            time.sleep(0.2)
        for proc in workers:
            proc.send_signal(signal.SIGTERM)  # graceful: finish the batch in hand, exit
        outputs = [proc.communicate(timeout=60) for proc in workers]
        accepted = server.accepted_ledger_ids()
    assert all(proc.returncode == 0 for proc in workers), outputs
    assert len(accepted) == 1000 and set(accepted.values()) == {1}
    assert _statuses(issue42, cid) == {"accepted": 1000}
    with issue42.session() as session:
        claimers = set(
            session.scalars(select(SendBatch.claimed_by).where(SendBatch.campaign_id == cid))
        )
    assert len(claimers) >= 2, "the batches should have been shared between processes"


def test_sigkill_between_202_and_commit_is_unknown_never_resent_and_reconciled(
    issue42: Database, settings: Settings, signer: Signer
) -> None:
    cid = _start_issue42(issue42, settings, 60)
    with FakeSendGrid(KEY) as server:
        doomed = _spawn(_env(settings, server, KILL_AT="sent"))
        doomed.communicate(timeout=60)
        assert doomed.returncode == -signal.SIGKILL
        assert len(server.requests) == 1 and server.requests[0].status == 202
        lost = {int(i) for i in server.requests[0].ledger_ids}
        survivor = _spawn(_env(settings, server, UNTIL_IDLE="1"))
        _out, err = survivor.communicate(timeout=120)
        assert survivor.returncode == 0, err
        accepted = server.accepted_ledger_ids()
    assert len(accepted) == 60 and set(accepted.values()) == {1}  # nothing sent twice
    assert _statuses(issue42, cid) == {"accepted": 35, "unknown": 25}
    with issue42.session() as session:
        unknown = set(session.scalars(select(Delivery.id).where(Delivery.status == "unknown")))
        emails = dict(
            session.execute(
                select(Delivery.id, Subscriber.email).join(
                    Subscriber, Subscriber.id == Delivery.subscriber_id
                )
            ).all()
        )
    assert unknown == lost
    configured = settings.model_copy(update={"sendgrid_webhook_public_key": signer.public_b64})
    events = [
        {
            "email": emails[i],
            "event": "delivered",
            "sg_event_id": f"d-{i}",
            "timestamp": int(time.time()),
            "ledger_id": str(i),
        }
        for i in sorted(lost)
    ]
    body = json.dumps(events).encode()
    with TestClient(create_app(configured, issue42, messenger=None)) as client:
        assert (
            client.post("/webhooks/sendgrid", content=body, headers=signer.headers(body)).json()[
                "stored"
            ]
            == 25
        )
    assert _statuses(issue42, cid) == {"accepted": 35, "delivered": 25}


@pytest.fixture
def signer() -> Signer:
    return Signer.new()


def test_smtp_per_recipient_4xx_retry_and_5xx_fail(db: Database) -> None:
    cid = _started_campaign(db, 20)
    clock = FakeClock()
    with SmtpSink() as sink:
        sink.rcpt_replies["user3@example.org"] = "451 4.3.0 greylisted, try later"
        sink.rcpt_replies["user7@example.org"] = "550 5.1.1 no such user"
        messenger = SMTPMessenger(sink.host, sink.port, connections=2, timeout=10)
        store = SqlStore(db, worker_id="smtp")
        try:
            worker = Worker(
                store=store,
                messenger=messenger,
                prepare=stub_preparer,
                policy=Policy(),
                clock=clock,
                sleep=clock.sleep,
            )
            assert worker.step()
            del sink.rcpt_replies["user3@example.org"]  # the greylisting lifts
            worker.run(threading.Event(), until=service.campaign_finished(db, cid))
        finally:
            store.close()
            messenger.close()
        received = Counter(addr for m in sink.messages for addr in m.rcpt_tos)
    assert _statuses(db, cid) == {"accepted": 19, "failed": 1}
    assert received["user3@example.org"] == 1 and "user7@example.org" not in received
    assert len(received) == 19 and set(received.values()) == {1}
    with db.session() as session:
        rows = dict(
            session.execute(
                select(Subscriber.email, Delivery.detail).join(
                    Delivery, Delivery.subscriber_id == Subscriber.id
                )
            ).all()
        )
        attempts = dict(
            session.execute(
                select(Subscriber.email, Delivery.attempts).join(
                    Delivery, Delivery.subscriber_id == Subscriber.id
                )
            ).all()
        )
    assert "550" in (rows["user7@example.org"] or "")
    assert attempts["user3@example.org"] == 2


def test_sigterm_finishes_the_batch_in_hand_then_exits(
    issue42: Database, settings: Settings
) -> None:
    cid = _start_issue42(issue42, settings, 75)  # 3 batches of 25
    with FakeSendGrid(KEY, replies=[Reply.hanging(seconds=3.0, status=202)]) as server:
        worker = _spawn(_env(settings, server))
        deadline = time.monotonic() + 60
        while not server.requests and time.monotonic() < deadline:
            with issue42.session() as session:  # wait until the first batch is on the wire
                if session.scalar(select(SendBatch.id).where(SendBatch.status == "submitting")):
                    break
            time.sleep(0.05)
        worker.send_signal(signal.SIGTERM)
        _out, err = worker.communicate(timeout=60)
        assert worker.returncode == 0, err
        accepted = server.accepted_ledger_ids()
    assert len(server.requests) == 1 and len(accepted) == 25  # the batch in hand went out
    assert _statuses(issue42, cid) == {"accepted": 25, "queued": 50}  # nothing else was claimed
    with issue42.session() as session:
        states = Counter(
            session.scalars(select(SendBatch.status).where(SendBatch.campaign_id == cid))
        )
    assert states == {"done": 1, "pending": 2}
