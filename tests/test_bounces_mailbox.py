"""``bounces poll`` against a real Dovecot (IMAP and POP3), not a mock of the IMAP library."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import SecretStr
from sqlalchemy import func, select

from newsletter.bounces import mailbox
from newsletter.bounces.apply import BounceProcessor, counts_by_kind
from newsletter.bounces.mailbox import poll_mailbox
from newsletter.bounces.verp import Verp
from newsletter.config import Settings
from newsletter.db import Database
from newsletter.errors import ConfigError, TransportError
from newsletter.models import Delivery, InboundMail
from newsletter.testing.bounce_mail import arf, dsn
from tests.dovecot import Dovecot, running_dovecot
from tests.sending_helpers import sent_campaign


@pytest.fixture(scope="module")
def dovecot(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Dovecot]:
    with running_dovecot(tmp_path_factory.mktemp("dovecot")) as server:
        yield server


@pytest.fixture
def empty(dovecot: Dovecot) -> Dovecot:
    """The shared server's INBOX, emptied before each test."""
    for folder in ("INBOX", "Processed"):
        dovecot.clear(folder)
    return dovecot


def _settings(
    settings: Settings, server: Dovecot, protocol: str = "imap", **extra: object
) -> Settings:
    port = server.imap_port if protocol == "imap" else server.pop3_port
    return settings.model_copy(
        update={
            "bounce_mailbox_protocol": protocol, "bounce_mailbox_host": server.host,
            "bounce_mailbox_port": port, "bounce_mailbox_security": "none",
            "bounce_mailbox_user": server.user, "bounce_mailbox_password": SecretStr(server.password),
            **extra,
        }
    )  # fmt: skip


def _fill(db: Database, settings: Settings, server: Dovecot) -> dict[str, int]:
    sent = sent_campaign(db, recipients=4)
    verp = Verp.from_settings(settings)
    server.append(dsn(verp.address(str(sent["user0@example.org"])), "user0@example.org", nonce="a"))
    server.append(arf("fbl@example.org", "user1@example.org",
                      return_path=verp.address(str(sent["user1@example.org"]))))  # fmt: skip
    server.append(b"From: x@example.net\r\nSubject: hello\r\n\r\nnot a bounce\r\n")
    return sent


@pytest.mark.parametrize("protocol", ["imap", "pop3"])
def test_poll_stores_applies_and_then_deletes(
    db: Database, settings: Settings, empty: Dovecot, protocol: str
) -> None:
    configured = _settings(settings, empty, protocol)
    sent = _fill(db, configured, empty)
    report = poll_mailbox(BounceProcessor(db, configured), configured)
    assert (report.seen, report.stored, report.duplicates) == (3, 3, 0)
    assert report.kinds == {"hard": 1, "complaint": 1, "unparsed": 1}
    assert empty.count() == 0
    with db.session() as session:
        assert session.get(Delivery, sent["user0@example.org"]).status == "bounced"  # type: ignore[union-attr]
        assert counts_by_kind(session)["unparsed"] == 1
    assert poll_mailbox(BounceProcessor(db, configured), configured).seen == 0


def test_a_crash_between_storing_and_deleting_counts_nothing_twice(
    db: Database, settings: Settings, empty: Dovecot, monkeypatch: pytest.MonkeyPatch
) -> None:
    configured = _settings(settings, empty)
    _fill(db, configured, empty)

    def crash(*_args: object) -> None:
        raise OSError("killed before the delete")

    monkeypatch.setattr(mailbox, "_finish_imap", crash)
    with pytest.raises(TransportError):
        poll_mailbox(BounceProcessor(db, configured), configured)
    assert empty.count() == 3  # all still there
    monkeypatch.undo()
    again = poll_mailbox(BounceProcessor(db, configured), configured)
    assert (again.seen, again.stored, again.duplicates) == (3, 0, 3)
    assert empty.count() == 0
    with db.session() as session:
        assert session.scalar(select(func.count()).select_from(InboundMail)) == 3


def test_processed_mail_can_be_moved_instead_of_deleted(
    db: Database, settings: Settings, empty: Dovecot
) -> None:
    empty.create("Processed")
    configured = _settings(settings, empty, bounce_mailbox_done_folder="Processed")
    _fill(db, configured, empty)
    poll_mailbox(BounceProcessor(db, configured), configured)
    assert (empty.count(), empty.count("Processed")) == (0, 3)


@pytest.mark.parametrize("protocol", ["imap", "pop3"])
def test_an_oversized_message_is_left_in_the_mailbox_and_recorded_once(
    db: Database, settings: Settings, empty: Dovecot, protocol: str
) -> None:
    configured = _settings(settings, empty, protocol, bounce_max_message_bytes=64 * 1024)
    empty.append(b"Subject: huge\r\nFrom: a@b.example\r\n\r\n" + b"y" * 998 * 100 + b"\r\n")
    for _ in range(2):
        report = poll_mailbox(BounceProcessor(db, configured), configured)
        assert report.seen == 0
    assert empty.count() == 1
    with db.session() as session:
        row = session.scalars(select(InboundMail)).one()
        assert row.kind == "unparsed" and row.note and "too large" in row.note
        assert row.raw is not None and row.raw.startswith(b"Subject: huge")


def test_bad_login_and_no_server_are_clear_errors(
    settings: Settings, empty: Dovecot, db: Database, tmp_path: Path
) -> None:
    wrong = _settings(settings, empty, bounce_mailbox_password=SecretStr("nope"))
    with pytest.raises(ConfigError, match="refused the login"):
        poll_mailbox(BounceProcessor(db, wrong), wrong)
    nowhere = _settings(settings, empty, bounce_mailbox_port=1)
    with pytest.raises(TransportError, match="cannot reach IMAP"):
        poll_mailbox(BounceProcessor(db, nowhere), nowhere)
    with pytest.raises(ConfigError, match="no bounce mailbox"):
        poll_mailbox(BounceProcessor(db, settings), settings)


def test_the_scheduler_polls_the_mailbox_only_when_one_is_configured(
    db: Database, settings: Settings, empty: Dovecot
) -> None:
    from newsletter.scheduling.runner import BOUNCE_JOB, RunOptions, SchedulerRuntime
    from tests.scheduler_helpers import running, wait_for

    options = RunOptions(sweep_seconds=60.0, retry_seconds=0.1, worker=False)
    plain = SchedulerRuntime(db, settings, options=options)
    with running(plain):
        assert wait_for(plain.leading.is_set, timeout=5)
        assert BOUNCE_JOB not in plain.stored_job_ids()
    configured = _settings(settings, empty, bounce_poll_minutes=0.01)  # every 0.6 s
    _fill(db, configured, empty)
    runtime = SchedulerRuntime(db, configured, options=options)
    with running(runtime):
        assert wait_for(runtime.leading.is_set, timeout=5)
        assert BOUNCE_JOB in runtime.stored_job_ids()
        assert wait_for(lambda: empty.count() == 0, timeout=15)
    with db.session() as session:
        assert session.scalar(select(func.count()).select_from(InboundMail)) == 3
