"""Several relays: weighted shares, failover without sending anything twice, health, the report.

The campaign tests run the real engine and store (SQLite and PostgreSQL)
against two real aiosmtpd relays (``SmtpSink``) and count what each received.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from sqlalchemy import select

from newsletter.config import RelaySetting, Settings
from newsletter.db import Database
from newsletter.deliverability.relays import ALL_REFUSED, Relay, RelayMessenger, build_relays
from newsletter.models import SendBatch
from newsletter.sending import campaigns
from newsletter.sending.engine import Policy, Worker
from newsletter.sending.sqlstore import SqlStore
from newsletter.testing import sample_batch
from newsletter.testing.smtp_sink import SmtpSink
from newsletter.transports import build_messenger
from newsletter.transports.base import BatchResult, MessageBatch, Outcome, RecipientResult
from newsletter.transports.smtp import SMTPMessenger
from tests.sending_helpers import FakeClock, started_campaign, stub_preparer
from tests.test_cli import _assert_one_line_error
from tests.test_cli import run_here as run


@dataclass
class Scripted:
    """A messenger whose answer for each recipient a test scripts (relay logic, not the wire)."""

    name: str
    answer: Callable[[int, str], tuple[Outcome, str]]
    max_batch: int = 1000
    down: str | None = None
    error: str | None = None
    got: list[str] = field(default_factory=list)

    def send(self, batch: MessageBatch) -> BatchResult:
        results = []
        for index, rcpt in enumerate(batch.recipients):
            self.got.append(rcpt.ref)
            outcome, detail = self.answer(index, rcpt.ref)
            results.append(RecipientResult(rcpt.ref, outcome, detail=detail))
        return BatchResult(tuple(results), down=self.down, error=self.error)

    def close(self) -> None:
        pass


def _ok(index: int, ref: str) -> tuple[Outcome, str]:
    return Outcome.ACCEPTED, "250 ok"


class Ticker:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_weights_share_batches_evenly_interleaved() -> None:
    a, b = Scripted("a", _ok), Scripted("b", _ok)
    relays = RelayMessenger([Relay("a", 3, a), Relay("b", 1, b)])
    order = [relays.send(sample_batch(1)).relay for _ in range(8)]
    assert order == ["a", "a", "b", "a", "a", "a", "b", "a"]


def test_a_relay_that_drops_mid_batch_hands_over_only_what_it_never_took() -> None:
    """Accepted and unknown stay with relay a; only what a certainly did not take moves to b."""

    def dying(index: int, ref: str) -> tuple[Outcome, str]:
        if index < 3:
            return Outcome.ACCEPTED, "250 ok"
        if index == 3:
            return Outcome.UNKNOWN, "connection lost after the message was sent"
        if index == 4:
            return Outcome.PERMANENT, "550 no such user"
        return Outcome.TEMPORARY, "cannot connect"

    a = Scripted("a", dying, down="cannot connect to a")
    b = Scripted("b", _ok)
    clock = Ticker()
    relays = RelayMessenger([Relay("a", 1, a), Relay("b", 1, b)], down_seconds=60, clock=clock)
    batch = sample_batch(10)
    result = relays.send(batch)
    refs = [r.ref for r in batch.recipients]
    assert a.got == refs
    assert b.got == refs[4:]  # the 550 is retried elsewhere too: a refusal is not a delivery
    assert [r.outcome for r in result.results] == [Outcome.ACCEPTED] * 3 + [Outcome.UNKNOWN] + [
        Outcome.ACCEPTED
    ] * 6
    assert result.relay == "a → b"
    assert (
        result.results[0].detail == "250 ok (via a)"
        and result.results[9].detail == "250 ok (via b)"
    )
    # a rests; b carries everything until a's time is up
    assert relays.send(sample_batch(2)).relay == "b"
    assert relays.send(sample_batch(2)).relay == "b"
    clock.now += 61
    a.down, a.answer = None, _ok
    assert {relays.send(sample_batch(2)).relay for _ in range(2)} == {"a", "b"}


def test_5xx_to_every_message_marks_a_relay_down() -> None:
    refusing = Scripted("a", lambda i, r: (Outcome.PERMANENT, "554 5.7.1 relay access denied"))
    b = Scripted("b", _ok)
    relays = RelayMessenger([Relay("a", 1, refusing), Relay("b", 1, b)])
    result = relays.send(sample_batch(ALL_REFUSED))
    assert {r.outcome for r in result.results} == {Outcome.ACCEPTED} and result.relay == "a → b"
    # A few genuine refusals in a small batch are the addresses' fault: recorded as they are.
    small = RelayMessenger([Relay("a", 1, Scripted("a", refusing.answer))])
    assert {r.outcome for r in small.send(sample_batch(2)).results} == {Outcome.PERMANENT}


def test_a_4xx_per_recipient_is_not_a_relay_failure() -> None:
    greylisted = Scripted("a", lambda i, r: (Outcome.TEMPORARY, "451 4.7.1 greylisted"))
    b = Scripted("b", _ok)
    relays = RelayMessenger([Relay("a", 1, greylisted), Relay("b", 0, b)])
    result = relays.send(sample_batch(20))
    assert {r.outcome for r in result.results} == {Outcome.TEMPORARY} and b.got == []


def test_every_relay_down() -> None:
    clock = Ticker()
    dead = [Scripted(n, lambda i, r: (Outcome.TEMPORARY, "no"), down=f"{n} refused") for n in "ab"]
    relays = RelayMessenger([Relay(s.name, 1, s) for s in dead], down_seconds=30, clock=clock)
    result = relays.send(sample_batch(3))
    assert {r.outcome for r in result.results} == {Outcome.TEMPORARY}
    assert result.retry_after == 30 and result.error is None
    assert "no relay available (a: a refused; b: b refused)" in result.results[0].detail
    # Wrong credentials everywhere do not fix themselves: the campaign must pause.
    clock.now += 31
    refused = [
        Scripted(n, lambda i, r: (Outcome.TEMPORARY, "535"), error=f"{n}: login refused")
        for n in "ab"
    ]
    relays = RelayMessenger([Relay(s.name, 1, s) for s in refused], clock=clock)
    result = relays.send(sample_batch(3))
    assert result.error == "every relay is down: a: a: login refused; b: b: login refused"


# --- real relays ------------------------------------------------------------------


@pytest.fixture
def two_sinks() -> Iterator[tuple[SmtpSink, SmtpSink]]:
    """Two relays; the first may be stopped by the test (``stop(a)``)."""
    a = SmtpSink().__enter__()
    try:
        with SmtpSink() as b:
            yield a, b
    finally:
        stop(a)


def stop(sink: SmtpSink) -> None:
    if not getattr(sink, "_stopped", False):
        sink._stopped = True  # type: ignore[attr-defined]
        sink.__exit__(None, None, None)


def _relay_settings(
    make_settings: Callable[..., Settings], *sinks: SmtpSink, **extra: Any
) -> Settings:
    relays = [
        RelaySetting(name=f"relay-{i}", host=s.host, port=s.port, **extra.pop(f"r{i}", {}))
        for i, s in enumerate(sinks)
    ]
    return make_settings(transport="relays", relays=relays, smtp_timeout_seconds=5, **extra)


def _run_campaign(db: Database, messenger: Any, clock: FakeClock, hook: Any = None) -> None:
    store = SqlStore(db, worker_id="relays")
    try:
        worker = Worker(store=store, messenger=messenger, prepare=stub_preparer, policy=Policy(),
                        clock=clock, sleep=clock.sleep, hook=hook)  # fmt: skip
        worker.run(threading.Event(), until=lambda: True)
    finally:
        store.close()
        messenger.close()


def test_one_relay_fails_mid_campaign_and_everyone_gets_exactly_one_message(
    db: Database, make_settings: Callable[..., Settings], two_sinks: tuple[SmtpSink, SmtpSink]
) -> None:
    a, b = two_sinks
    clock = FakeClock()
    cid = started_campaign(db, clock, recipients=40, batch_size=5)
    messenger = build_messenger(_relay_settings(make_settings, a, b))
    claimed = Counter[str]()

    def hook(stage: str, batch: Any) -> None:
        claimed[stage] += 1
        if stage == "submitting" and claimed[stage] == 4:
            stop(a)  # relay-0 goes away between batches 3 and 4

    _run_campaign(db, messenger, clock, hook)
    received = Counter(to for sink in (a, b) for m in sink.messages for to in m.rcpt_tos)
    assert len(received) == 40 and set(received.values()) == {1}
    assert 0 < len(a.messages) < 20 < len(b.messages)
    with db.session() as session:
        report = campaigns.campaign_report(cid, session=session)
        relays = {
            r.relay for r in session.scalars(select(SendBatch).where(SendBatch.campaign_id == cid))
        }
    assert report.counts["accepted"] == 40 and report.status == "sent"
    assert relays == {"relay-0", "relay-1", "relay-0 → relay-1"}
    assert {r["relay"] for r in report.relays} == relays
    assert sum(r["recipients"] for r in report.relays) == 40
    assert all(b["relay"] for b in report.batches) and len(report.batches) == 8


def test_wrong_credentials_on_one_relay_the_other_takes_over(
    db: Database, make_settings: Callable[..., Settings]
) -> None:
    clock = FakeClock()
    with SmtpSink(auth=("mailer", "s3cret")) as locked, SmtpSink() as open_relay:
        settings = _relay_settings(
            make_settings, locked, open_relay,
            r0={"username": "mailer", "password": "wrong"},
        )  # fmt: skip
        cid = started_campaign(db, clock, recipients=12, batch_size=4)
        _run_campaign(db, build_messenger(settings), clock)
        assert len(open_relay.messages) == 12 and locked.messages == []
    with db.session() as session:
        report = campaigns.campaign_report(cid, session=session)
    assert report.counts["accepted"] == 12 and report.status == "sent"


def test_every_relay_with_wrong_credentials_pauses_with_the_reason(
    db: Database, make_settings: Callable[..., Settings]
) -> None:
    clock = FakeClock()
    with SmtpSink(auth=("mailer", "s3cret")) as locked:
        settings = _relay_settings(
            make_settings, locked, r0={"username": "mailer", "password": "wrong"}
        )
        cid = started_campaign(db, clock, recipients=3)
        _run_campaign(db, build_messenger(settings), clock)
    with db.session() as session:
        report = campaigns.campaign_report(cid, session=session)
    assert report.status == "paused" and report.counts["queued"] == 3
    assert "every relay is down: relay-0:" in (report.status_reason or "")
    assert "refused the login for 'mailer'" in (report.status_reason or "")
    assert "wrong" not in (report.status_reason or "")  # the password is never shown


def test_health_check_per_relay(make_settings: Callable[..., Settings]) -> None:
    with SmtpSink() as fine, SmtpSink(auth=("mailer", "s3cret")) as locked:
        settings = _relay_settings(
            make_settings, fine, locked, r1={"username": "mailer", "password": "nope"}
        )
        relays = build_relays(settings, None)
        try:
            statuses = relays.check()
        finally:
            relays.close()
    assert [s.name for s in statuses] == ["relay-0", "relay-1"]
    assert statuses[0].problem is None and statuses[0].where == f"{fine.host}:{fine.port}"
    assert "refused the login for 'mailer'" in (statuses[1].problem or "")


def test_relays_cli(tmp_path: Any) -> None:
    with SmtpSink() as fine:
        toml = tmp_path / "newsletter.toml"
        toml.write_text(
            'transport = "relays"\n'
            f'[[relays]]\nname = "main"\nhost = "{fine.host}"\nport = {fine.port}\n'
            '[[relays]]\nname = "dead"\nhost = "127.0.0.1"\nport = 1\nweight = 0\n'
        )
        result = run("relays", "check", cwd=tmp_path)
    assert result.returncode == 1
    lines = result.stdout.strip().splitlines()
    assert lines[0].startswith(f"ok      main (smtp, weight 1) {fine.host}:{fine.port}")
    assert lines[1].startswith("PROBLEM dead (smtp, weight 0) 127.0.0.1:1: cannot connect")
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "newsletter.toml").write_text(
        'transport = "relays"\n[[relays]]\nname = "x"\nweight = 0\n'
    )
    _assert_one_line_error(run("relays", "check", cwd=bad), "at least one relay needs a weight")


def test_single_smtp_records_its_relay(db: Database) -> None:
    clock = FakeClock()
    with SmtpSink() as sink:
        cid = started_campaign(db, clock, recipients=2)
        _run_campaign(db, SMTPMessenger(sink.host, sink.port, timeout=5), clock)
    with db.session() as session:
        report = campaigns.campaign_report(cid, session=session)
    assert report.relays == [{"relay": f"{sink.host}:{sink.port}", "batches": 1, "recipients": 2}]


def test_admin_shows_each_relay_and_checks_on_request(db: Database, settings: Settings) -> None:
    from tests.admin_helpers import signed_in_client

    with SmtpSink() as fine:
        relays = [RelaySetting(name="main", host=fine.host, port=fine.port, weight=3),
                  RelaySetting(name="spare", host="127.0.0.1", port=1, weight=0)]  # fmt: skip
        configured = settings.model_copy(update={"transport": "relays", "relays": relays,
                                                 "dns_resolver": "127.0.0.1:1",
                                                 "dns_timeout_seconds": 0.2})  # fmt: skip
        client = signed_in_client(db, configured, "admin")
        plain = client.get("/admin/settings/deliverability").text
        assert "main" in plain and "spare" in plain and "not checked" in plain
        checked = client.get("/admin/settings/deliverability?relays=check").text
    assert "answered in" in checked and "cannot connect to SMTP server 127.0.0.1:1" in checked
