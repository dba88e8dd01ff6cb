"""SIGKILL a worker (or ``campaign start``) at the worst moments, restart, and audit the ledger.

Three places to die: inside the audience freeze (one transaction: it must roll
back, and starting again must work), between the provider's 202 and the ledger
commit (``KILL_AT=sent``: the batch is maybe-sent, listed as unknown, never
resent), and in the middle of an SMTP batch (the relay has taken some of it).
"""

from __future__ import annotations

import signal
import threading
import uuid
from collections import Counter

import pytest
import sqlalchemy as sa
from sqlalchemy import func, select

from newsletter.config import Settings
from newsletter.db import Database
from newsletter.models import Campaign, Delivery, SendBatch
from newsletter.sending import campaigns, service
from newsletter.testing.fake_sendgrid import FakeSendGrid
from newsletter.testing.smtp_sink import SmtpSink
from tests.conftest import PG_URL
from tests.reliability.helpers import (
    RecordingMessenger,
    audit,
    calls_by_email,
    campaign_status,
    cli,
    ledger_ids_by_email,
    proc_env,
    sigkill,
    spawn,
    stalling_sink,
    statuses,
    wait_for,
)
from tests.sending_helpers import add_subscribers

KEY = "SG.test-key"


def _draft(db: Database, recipients: int) -> int:
    with db.session() as session:
        add_subscribers(session, recipients)
        return campaigns.create_campaign(42, session=session).id


def _assert_never_started(db: Database, cid: int) -> None:
    with db.session() as session:
        campaign = session.get(Campaign, cid)
        assert campaign is not None
        assert (campaign.status, campaign.frozen_at, campaign.total_recipients) == (
            "draft",
            None,
            0,
        )
        rows = session.scalar(select(func.count()).where(Delivery.campaign_id == cid))
        batches = session.scalar(select(func.count()).where(SendBatch.campaign_id == cid))
    assert (rows, batches) == (0, 0), "a killed freeze left part of the audience behind"


def _restart_and_finish(db: Database, settings: Settings, cid: int, recipients: int) -> None:
    assert service.start(db, settings, cid), "starting again after the crash must work"
    messenger = RecordingMessenger()
    service.drain(db, settings, cid, messenger=messenger)
    result = audit(db, cid, messenger.taken)
    assert result.states == {"accepted": recipients}


# --------------------------------------------------------------------------- 1. mid-freeze


@pytest.mark.parametrize("point", ["before_assign", "before_commit"])
def test_sigkill_inside_the_freeze_rolls_back_and_start_again_works(
    issue42: Database, settings: Settings, point: str
) -> None:
    settings = settings.model_copy(update={"batch_size": 50})
    cid = _draft(issue42, 300)
    proc = spawn(
        ["-m", "tests.reliability.procs", "start", str(cid)],
        proc_env(settings, KILL_FREEZE=point),
    )
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == -signal.SIGKILL, (out, err)
    _assert_never_started(issue42, cid)
    _restart_and_finish(issue42, settings, cid, 300)


@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
def test_sigkill_of_campaign_start_while_its_audience_insert_is_running(
    issue42: Database, settings: Settings, pg_admin: sa.Engine
) -> None:
    """The real CLI, SIGKILLed while its INSERT of the audience is in progress.

    A DBA's lock on the ledger table holds the INSERT mid-statement (it runs in
    milliseconds otherwise), so the kill lands inside the freeze every time.
    The orphaned backend then finishes the statement, finds its client gone
    and rolls the whole transaction back, the campaign's gate UPDATE included.
    """
    recipients = 3000
    cid = _draft(issue42, recipients)
    schema = settings.database_schema
    engine = sa.create_engine(PG_URL)
    app = f"rel-start-{cid}-{uuid.uuid4().hex[:8]}"  # (query texts are truncated in the view)
    watch = sa.text(
        "SELECT count(*) FROM pg_stat_activity WHERE application_name = :app"
        " AND state = 'active' AND wait_event_type = 'Lock'"
    )
    try:
        # The observer autocommits: inside a transaction pg_stat_activity is a snapshot.
        with engine.connect() as dba, pg_admin.connect() as observer:
            dba.execute(sa.text(f'LOCK TABLE "{schema}".deliveries IN SHARE MODE'))
            env = proc_env(settings, NEWSLETTER_DATABASE_URL=f"{PG_URL}?application_name={app}")
            proc = cli(["campaign", "start", str(cid)], env)

            def freezing() -> bool:
                assert proc.poll() is None, proc.communicate()
                return bool(observer.execute(watch, {"app": app}).scalar())

            wait_for(freezing, timeout=60, interval=0.02, what="the audience INSERT")
            sigkill(proc)
            dba.rollback()  # the lock goes; the orphan runs on into its rollback
    finally:
        engine.dispose()
    _assert_never_started(issue42, cid)
    _restart_and_finish(issue42, settings, cid, recipients)


# --------------------------------------------------------------------------- 2. after the 202


def _worker_env(settings: Settings, server: FakeSendGrid, **extra: str) -> dict[str, str]:
    return proc_env(
        settings,
        NEWSLETTER_TRANSPORT="sendgrid",
        NEWSLETTER_SENDGRID_API_KEY=KEY,
        NEWSLETTER_SENDGRID_HOST=server.url,
        **extra,
    )


@pytest.mark.parametrize(
    ("stage", "expected"),
    [
        ("claimed", {"accepted": 60}),  # nothing left: the batch is handed back and sent
        ("submitting", {"accepted": 35, "unknown": 25}),  # committed "maybe sent", never called
        ("sent", {"accepted": 35, "unknown": 25}),  # the provider said 202, the commit never came
    ],
)
def test_sigkill_of_a_worker_at_each_stage_then_restart(
    issue42: Database, settings: Settings, stage: str, expected: dict[str, int]
) -> None:
    settings = settings.model_copy(update={"batch_size": 25})
    with issue42.session() as session:
        add_subscribers(session, 60)
        cid = campaigns.create_campaign(42, session=session).id
    assert service.start(issue42, settings, cid)
    with FakeSendGrid(KEY) as server:
        doomed = spawn(["-m", "tests.worker_proc"], _worker_env(settings, server, KILL_AT=stage))
        out, err = doomed.communicate(timeout=120)
        assert doomed.returncode == -signal.SIGKILL, (out, err)
        survivor = spawn(["-m", "tests.worker_proc"], _worker_env(settings, server, UNTIL_IDLE="1"))
        out, err = survivor.communicate(timeout=120)
        assert survivor.returncode == 0, err
        calls = server.accepted_ledger_ids()
    result = audit(issue42, cid, calls)
    assert result.states == expected
    assert campaign_status(issue42, cid) == "sent"
    if stage == "sent":
        assert all(calls[str(i)] == 1 for i in result.unknown)  # maybe sent: it was
    if stage == "submitting":
        assert not any(calls[str(i)] for i in result.unknown)  # maybe sent: it was not


# --------------------------------------------------------------------------- 3. mid SMTP batch


def test_sigkill_in_the_middle_of_an_smtp_batch(issue42: Database, settings: Settings) -> None:
    settings = settings.model_copy(update={"batch_size": 25})
    with issue42.session() as session:
        add_subscribers(session, 60)
        cid = campaigns.create_campaign(42, session=session).id
    assert service.start(issue42, settings, cid)
    sink, handler = stalling_sink(stall_at=10)
    with sink:
        env = proc_env(
            settings,
            NEWSLETTER_TRANSPORT="smtp",
            NEWSLETTER_SMTP_HOST=sink.host,
            NEWSLETTER_SMTP_PORT=str(sink.port),
            NEWSLETTER_SMTP_CONNECTIONS="1",
        )
        doomed = spawn(["-m", "tests.worker_proc"], env)
        try:
            assert handler.stalled.wait(60), "the worker never reached the 10th message"
        finally:
            sigkill(doomed)
            handler.release.set()
        assert len(sink.messages) == 10  # 9 answered 250, the 10th taken but never answered
        survivor = spawn(["-m", "tests.worker_proc"], {**env, "UNTIL_IDLE": "1"})
        _out, err = survivor.communicate(timeout=120)
        assert survivor.returncode == 0, err
        received = [rcpt for m in sink.messages for rcpt in m.rcpt_tos]
    result = audit(issue42, cid, calls_by_email(issue42, cid, received))
    # The whole batch in flight is "maybe sent": 10 were taken, 15 never left, and the
    # ledger cannot tell which is which, so none is resent automatically.
    assert result.states == {"accepted": 35, "unknown": 25}
    assert Counter(received).most_common(1)[0][1] == 1 and len(received) == 45
    assert statuses(issue42, cid)["unknown"] == 25


def test_smtp_connection_dropped_after_data_is_unknown_for_that_recipient_only(
    db: Database, settings: Settings
) -> None:
    from newsletter.sending.engine import Policy, Worker
    from newsletter.sending.sqlstore import SqlStore
    from newsletter.transports.smtp import SMTPMessenger
    from tests.sending_helpers import FakeClock, started_campaign, stub_preparer

    clock = FakeClock()
    cid = started_campaign(db, clock, recipients=30, batch_size=10)
    with SmtpSink() as sink:
        sink.drop_after_data["user4@example.org"] = 1
        sink.drop_at_rcpt["user15@example.org"] = 1  # never started: safe to retry at once
        messenger = SMTPMessenger(sink.host, sink.port, connections=2, timeout=10)
        store = SqlStore(db, worker_id="smtp-drop")
        try:
            worker = Worker(
                store=store,
                messenger=messenger,
                prepare=stub_preparer,
                policy=Policy(),
                clock=clock,
                sleep=clock.sleep,
            )
            worker.run(threading.Event(), until=service.campaign_finished(db, cid))
        finally:
            store.close()
            messenger.close()
        received = [rcpt for m in sink.messages for rcpt in m.rcpt_tos]
    result = audit(db, cid, calls_by_email(db, cid, received))
    assert result.states == {"accepted": 29, "unknown": 1}
    assert result.unknown == [ledger_ids_by_email(db, cid)["user4@example.org"]]
    assert Counter(received)["user15@example.org"] == 1 and len(received) == 30
