"""The provider or the disk fails under the worker: timeouts, a full disk, a read-only outbox.

A request that left but got no answer is *unknown* (maybe sent) and never
retried automatically; a write that failed is never recorded as sent, and the
campaign pauses with an error that says what to fix.
"""

from __future__ import annotations

import errno
import os
import signal
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from newsletter.config import Settings
from newsletter.db import Database
from newsletter.sending import campaigns, service
from newsletter.sending.engine import Policy, Worker
from newsletter.sending.sqlstore import SqlStore
from newsletter.testing.fake_sendgrid import FakeSendGrid, Reply
from newsletter.transports import outbox as outbox_module
from newsletter.transports.base import Messenger
from newsletter.transports.outbox import OutboxMessenger
from newsletter.transports.sendgrid import SendGridMessenger
from newsletter.transports.smtp import SMTPMessenger
from tests.reliability.helpers import (
    audit,
    calls_by_email,
    campaign_status,
    ledger_ids_by_email,
    outbox_refs,
    proc_env,
    spawn,
    stalling_sink,
    statuses,
    unprivileged,
    wait_for,
)
from tests.sending_helpers import (
    FakeClock,
    add_subscribers,
    started_campaign,
    stub_preparer,
)

KEY = "SG.test-key"


def _drain(db: Database, cid: int, messenger: Messenger, clock: FakeClock) -> Worker:
    store = SqlStore(db, worker_id="faults")
    worker = Worker(
        store=store,
        messenger=messenger,
        prepare=stub_preparer,
        policy=Policy(),
        clock=clock,
        sleep=clock.sleep,
    )
    try:
        worker.run(threading.Event(), until=service.campaign_finished(db, cid))
    finally:
        store.close()
    return worker


def _reason(db: Database, cid: int) -> str:
    with db.session() as session:
        return campaigns.get_campaign(cid, session=session).status_reason or ""


# --------------------------------------------------------------------------- 4. provider timeout


def test_provider_timeout_after_the_request_was_sent_is_unknown_and_never_retried(
    db: Database,
) -> None:
    clock = FakeClock()
    cid = started_campaign(db, clock, recipients=75, batch_size=25)
    replies = [Reply(202), Reply.hanging(3.0), Reply(202)]
    with FakeSendGrid(KEY, replies=replies) as server:
        messenger = SendGridMessenger(KEY, host=server.url, timeout=0.5)
        worker = _drain(db, cid, messenger, clock)
        calls = server.accepted_ledger_ids()
        requests = len(server.requests)
    assert requests == 3, "the timed-out batch must not be sent again automatically"
    result = audit(db, cid, calls)
    assert result.states == {"accepted": 50, "unknown": 25}
    assert all(calls[str(i)] == 1 for i in result.unknown)  # SendGrid did take them
    assert worker.stats.unknown == 25 and campaign_status(db, cid) == "sent"
    with db.session() as session:
        report = campaigns.campaign_report(cid, session=session, with_recipients=False)
        assert {row["ledger_id"] for row in report.unknown} == set(result.unknown)
        assert all("may have been sent" in (row["detail"] or "") for row in report.unknown)
        requeued = campaigns.retry_failed(
            cid, session=session, include_unknown=False, batch_size=25, now=clock()
        )
    assert requeued == 0  # only the admin's explicit --include-unknown resends them


# --------------------------------------------------------------------------- 5. disk full


class _FullDisk:
    """``open`` for the outbox module: after ``room`` files, every write fails with ENOSPC."""

    def __init__(self, room: int) -> None:
        self.room = room
        self.full = True

    def __call__(self, path: Any, mode: str = "r", *args: Any, **kwargs: Any) -> Any:
        handle = open(path, mode, *args, **kwargs)  # noqa: SIM115 - returned to the caller
        if not self.full or "w" not in mode:
            return handle
        if self.room > 0:
            self.room -= 1
            return handle
        disk = self

        class Handle:
            def __enter__(self) -> Handle:
                return self

            def __exit__(self, *exc: object) -> None:
                handle.close()

            def write(self, data: bytes) -> int:
                if disk.full:
                    handle.write(data[: len(data) // 2])  # half of it made it to disk
                    handle.flush()
                    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
                return handle.write(data)

            def __getattr__(self, name: str) -> Any:
                return getattr(handle, name)

        return Handle()


def test_disk_full_mid_batch_pauses_and_nothing_unwritten_is_marked_sent(
    db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = FakeClock()
    cid = started_campaign(db, clock, recipients=30, batch_size=10)
    folder = tmp_path / "outbox"
    disk = _FullDisk(room=14)  # batch 1 fits, batch 2 fills the disk after 4 messages
    monkeypatch.setattr(outbox_module, "open", disk, raising=False)
    messenger = OutboxMessenger(folder)
    worker = _drain(db, cid, messenger, clock)
    assert campaign_status(db, cid) == "paused"
    reason = _reason(db, cid)
    assert "No space left on device" in reason and str(folder) in reason
    assert worker.stats.paused == [reason]
    written = outbox_refs(folder)
    assert len(written) == 14 and set(written.values()) == {1}
    assert statuses(db, cid) == {"accepted": 14, "queued": 16}  # the rest waits, unsent
    assert not list(folder.glob(".*.tmp")), "a half-written message was left in the outbox"
    audit(db, cid, written, check=False)  # (queued rows are not final yet: resume below)

    disk.full = False  # space freed; the admin resumes
    with db.session() as session:
        campaigns.resume_campaign(cid, session=session)
    _drain(db, cid, messenger, clock)
    result = audit(db, cid, outbox_refs(folder))
    assert result.states == {"accepted": 30} and campaign_status(db, cid) == "sent"


@pytest.fixture
def read_only_outbox() -> Iterator[Path]:
    """A folder its owner may not write to (as root, the worker runs without DAC override)."""
    folder = Path(tempfile.mkdtemp(prefix="ro-outbox-"))
    folder.chmod(0o555)
    try:
        yield folder
    finally:
        folder.chmod(0o755)
        for path in folder.iterdir():
            path.unlink()
        folder.rmdir()


@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
def test_read_only_outbox_pauses_with_a_clear_error_then_resumes(
    issue42: Database, settings: Settings, read_only_outbox: Path
) -> None:
    """A real worker process; PostgreSQL so an unprivileged process can reach the database."""
    settings = settings.model_copy(update={"batch_size": 10})
    with issue42.session() as session:
        add_subscribers(session, 30)
        cid = campaigns.create_campaign(42, session=session).id
    assert service.start(issue42, settings, cid)
    env = proc_env(
        settings,
        NEWSLETTER_TRANSPORT="outbox",
        NEWSLETTER_OUTBOX_DIR=str(read_only_outbox),
        UNTIL_IDLE="1",
        PYTHONDONTWRITEBYTECODE="1",
    )
    wrapper = unprivileged()
    worker = spawn(["-m", "tests.worker_proc"], env, wrapper=wrapper)
    out, err = worker.communicate(timeout=120)
    assert worker.returncode == 0, (out, err)
    assert campaign_status(issue42, cid) == "paused"
    reason = _reason(issue42, cid)
    assert "not writable: Permission denied" in reason and str(read_only_outbox) in reason
    assert statuses(issue42, cid) == {"queued": 30}
    assert not list(read_only_outbox.iterdir())

    read_only_outbox.chmod(0o777)
    with issue42.session() as session:
        campaigns.resume_campaign(cid, session=session)
    # Not --until-idle: the batch that hit the error waits out its backoff first.
    env.pop("UNTIL_IDLE")
    worker = spawn(["-m", "tests.worker_proc"], env, wrapper=wrapper)
    wait_for(service.campaign_finished(issue42, cid), timeout=60, what="the resumed campaign")
    worker.send_signal(signal.SIGTERM)
    out, err = worker.communicate(timeout=60)
    assert worker.returncode == 0, (out, err)
    result = audit(issue42, cid, outbox_refs(read_only_outbox))
    assert result.states == {"accepted": 30} and campaign_status(issue42, cid) == "sent"


def test_smtp_reply_that_never_comes_after_data_is_unknown_for_that_recipient_only(
    db: Database,
) -> None:
    """The relay took the message but its 250 never arrived before the client's timeout."""
    clock = FakeClock()
    cid = started_campaign(db, clock, recipients=12, batch_size=12)
    sink, handler = stalling_sink(stall_at=5)
    with sink:
        messenger = SMTPMessenger(sink.host, sink.port, connections=1, timeout=0.5)
        try:
            worker = _drain(db, cid, messenger, clock)
        finally:
            handler.release.set()
            messenger.close()
        received = [rcpt for m in sink.messages for rcpt in m.rcpt_tos]
    result = audit(db, cid, calls_by_email(db, cid, received))
    assert result.states == {"accepted": 11, "unknown": 1}
    assert result.unknown == [ledger_ids_by_email(db, cid)["user4@example.org"]]
    assert len(received) == 12 and worker.stats.unknown == 1  # taken once, never resent
