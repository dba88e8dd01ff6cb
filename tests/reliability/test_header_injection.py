"""Line breaks and NUL where a header is made: refused at every door, never on the wire.

The hostile values are CR, LF, CRLF, NUL and every other character
``str.splitlines`` breaks on (VT, FF, FS, GS, RS, NEL, U+2028, U+2029), each
followed by what an attacker would want as a new header.  They go in through
the sign-up form and API, the settings, an issue's subject and (bypassing all
of that) straight into the database; what comes out is checked as raw bytes
in the outbox, on the SMTP wire and in SendGrid's JSON.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select, update

from newsletter.config import Settings, load_settings
from newsletter.db import Database
from newsletter.errors import ConfigError, ValidationError
from newsletter.issues.source import load_source
from newsletter.message import RenderedEmail, Template
from newsletter.models import ConsentEvent, Issue, Subscriber
from newsletter.sending import campaigns, service
from newsletter.sending.engine import Policy, Worker
from newsletter.sending.sqlstore import SqlStore
from newsletter.sending.types import ClaimedBatch
from newsletter.testing import SAMPLE_SENDER, sample_batch, sample_email, sample_recipient
from newsletter.testing.fake_sendgrid import FakeSendGrid
from newsletter.testing.smtp_sink import SmtpSink
from newsletter.transports import MemoryMessenger, Outcome
from newsletter.transports.base import MessageBatch, Messenger, Recipient, Sender
from newsletter.transports.outbox import OutboxMessenger
from newsletter.transports.sendgrid import SendGridMessenger
from newsletter.transports.smtp import SMTPMessenger
from newsletter.web import create_app
from newsletter.web.limits import RateLimits
from tests.issue_helpers import ISSUE_42
from tests.reliability.helpers import audit, campaign_status, outbox_refs, statuses
from tests.sending_helpers import FakeClock, NoChecks, add_subscribers, make_issue, stub_preparer

BREAKS = {
    "crlf": "\r\n",
    "lf": "\n",
    "cr": "\r",
    "nul": "\x00",
    "vt": "\x0b",
    "ff": "\x0c",
    "fs": "\x1c",
    "gs": "\x1d",
    "rs": "\x1e",
    "nel": "\x85",
    "u2028": "\u2028",
    "u2029": "\u2029",
}
HOSTILE = {key: f"Eve{brk}Bcc: evil@attacker.test" for key, brk in BREAKS.items()}
EXPECTED_HEADERS = {
    "from",
    "to",
    "subject",
    "date",
    "message-id",
    "reply-to",
    "list-unsubscribe",
    "list-unsubscribe-post",
    "list-id",
    "mime-version",
    "content-type",
}
SG_HEADERS = {"List-Unsubscribe", "List-Unsubscribe-Post", "List-Id"}
KEY = "SG.test-key"


def header_names(raw: bytes) -> list[str]:
    """Every header field name in a message's raw header block (continuations folded)."""
    head = raw.split(b"\r\n\r\n", 1)[0]
    names = []
    for line in head.split(b"\r\n"):
        if line[:1] in (b" ", b"\t"):
            continue
        names.append(line.split(b":", 1)[0].decode("ascii").lower())
    return names


def assert_clean(raw: bytes, *, expected: set[str] = EXPECTED_HEADERS) -> None:
    names = header_names(raw)
    assert set(names) <= expected, f"unexpected header(s): {set(names) - expected}"
    assert len(names) == len(set(names)), f"a header appears twice: {names}"
    assert b"attacker" not in raw and b"Bcc" not in raw
    assert b"\r\n\r\n" in raw and b"\n" not in raw.replace(b"\r\n", b"")


# --------------------------------------------------------------------------- the doors


@pytest.mark.parametrize("field", ["name", "email"])
def test_signup_refuses_line_breaks_and_stores_nothing(
    settings: Settings, db: Database, field: str
) -> None:
    messenger = MemoryMessenger()
    app = create_app(settings, db, messenger=messenger, limits=RateLimits(per_ip=1000))
    with TestClient(app, client=("192.0.2.7", 5000)) as client:
        for key, bad in HOSTILE.items():
            body = {"email": "ann@example.org", "name": "Ann"}
            body[field] = bad if field == "name" else f"ann@example.org{BREAKS[key]}Bcc: x@y.z"
            response = client.post("/api/subscribe", json=body)
            assert response.status_code == 422, (key, response.text)
            detail = response.json()["detail"]
            expected = ("line break",) if field == "name" else ("line break", "invalid email")
            assert any(words in detail for words in expected), (key, detail)
            form = client.post("/subscribe", data=body)
            assert form.status_code == 422, key
    with db.session() as session:
        assert session.scalar(select(func.count()).select_from(Subscriber)) == 0
        assert session.scalar(select(func.count()).select_from(ConsentEvent)) == 0
    assert messenger.sent == []


@pytest.mark.parametrize(
    "field", ["from_name", "from_email", "reply_to", "organisation", "list_id"]
)
def test_settings_that_become_headers_refuse_line_breaks(make_settings: object, field: str) -> None:
    for key, bad in HOSTILE.items():
        value = bad if "name" in field or field == "organisation" else f"a@b.org{BREAKS[key]}x"
        with pytest.raises(ConfigError, match=field):
            load_settings(**{field: value})


def test_an_issue_file_with_a_line_break_in_its_subject_is_refused_at_import(
    tmp_path: Path,
) -> None:
    text = ISSUE_42.read_text(encoding="utf-8")
    for key, bad in HOSTILE.items():
        quoted = json.dumps(bad)  # a YAML double-quoted string is a JSON string
        lines = [
            f"subject: {quoted}" if line.startswith("subject:") else line
            for line in text.splitlines()
        ]
        path = tmp_path / f"issue-{key}.yaml"
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        with pytest.raises(ValidationError, match=r"issue-.*\.yaml:\d+: subject contains"):
            load_source(path)


def test_a_hostile_subject_already_in_the_database_never_reaches_a_send(
    issue42: Database, settings: Settings, tmp_path: Path
) -> None:
    folder = tmp_path / "outbox"
    settings = settings.model_copy(update={"outbox_dir": folder})
    with issue42.session() as session:
        add_subscribers(session, 3)
        session.execute(update(Issue).values(subject=HOSTILE["crlf"]))
        cid = campaigns.create_campaign(42, session=session).id
    with pytest.raises(ValidationError, match="subject contains a line break"):
        service.start(issue42, settings, cid)
    assert campaign_status(issue42, cid) == "draft" and statuses(issue42, cid) == {}
    assert not folder.exists()


@pytest.mark.parametrize("key", sorted(BREAKS))
def test_templates_refuse_line_breaks_in_subject_and_header_values(key: str) -> None:
    with pytest.raises(ValidationError):
        Template.compile(RenderedEmail(subject=HOSTILE[key], html="<p>x</p>", text="x"))
    with pytest.raises(ValidationError):
        Template.compile(sample_email(extra_headers={"X-Campaign": HOSTILE[key]}))
    with pytest.raises(ValidationError):
        Template.compile(sample_email(extra_headers={HOSTILE[key]: "1"}))


# --------------------------------------------------------------------------- the wire


def _hostile_batch(key: str) -> MessageBatch:
    """Three good recipients, one with a hostile name, one with a hostile header value."""
    good = [sample_recipient(i) for i in range(3)]
    bad_name = sample_recipient(3, name=HOSTILE[key])
    bad_url = sample_recipient(4)
    bad_url = Recipient(
        ref=bad_url.ref,
        email=bad_url.email,
        values={**bad_url.values, "unsubscribe_url": f"https://x.test/u/1{HOSTILE[key]}"},
    )
    return sample_batch(0, recipients=[*good, bad_name, bad_url])


def _send_everywhere(
    batch: MessageBatch, folder: Path
) -> dict[str, tuple[list[Outcome], list[bytes]]]:
    """The batch through the outbox, SMTP and SendGrid: outcomes and raw bytes of what left."""
    seen: dict[str, tuple[list[Outcome], list[bytes]]] = {}
    outbox = OutboxMessenger(folder)
    result = outbox.send(batch)
    seen["outbox"] = (
        [r.outcome for r in result.results],
        [p.read_bytes() for p in folder.glob("*.eml")],
    )
    with SmtpSink() as sink:
        smtp = SMTPMessenger(sink.host, sink.port, connections=1, timeout=10)
        try:
            result = smtp.send(batch)
        finally:
            smtp.close()
        seen["smtp"] = ([r.outcome for r in result.results], [m.data for m in sink.messages])
    with FakeSendGrid(KEY) as server:
        result = SendGridMessenger(KEY, host=server.url, timeout=10).send(batch)
        bodies = [json.dumps(r.body).encode() for r in server.requests]
        seen["sendgrid"] = ([r.outcome for r in result.results], bodies)
        for request in server.requests:
            for item in request.personalizations:
                assert set(item.get("headers", {})) <= SG_HEADERS
    return seen


@pytest.mark.parametrize("key", sorted(BREAKS))
def test_hostile_recipient_values_are_refused_per_recipient_and_never_emitted(
    tmp_path: Path, key: str
) -> None:
    seen = _send_everywhere(_hostile_batch(key), tmp_path / "outbox")
    for transport, (outcomes, raws) in seen.items():
        expected = [Outcome.ACCEPTED] * 3 + [Outcome.PERMANENT] * 2
        assert outcomes == expected, (transport, outcomes)
        for raw in raws:
            if transport == "sendgrid":
                assert b"attacker" not in raw and len(json.loads(raw)["personalizations"]) == 3
            else:
                assert_clean(raw)
        assert len(raws) == (1 if transport == "sendgrid" else 3), transport


@pytest.mark.parametrize("key", sorted(BREAKS))
def test_hostile_sender_name_refuses_the_whole_batch_before_anything_leaves(
    tmp_path: Path, key: str
) -> None:
    sender = Sender(email=SAMPLE_SENDER.email, name=HOSTILE[key], reply_to=None)
    batch = sample_batch(3, sender=sender)
    folder = tmp_path / "outbox"
    with pytest.raises(ValidationError):
        OutboxMessenger(folder).send(batch)
    assert not folder.exists() or not any(folder.iterdir())
    with SmtpSink() as sink:
        smtp = SMTPMessenger(sink.host, sink.port, connections=1, timeout=10)
        with pytest.raises(ValidationError):
            smtp.send(batch)
        smtp.close()
        assert sink.messages == []
    with FakeSendGrid(KEY) as server:
        with pytest.raises(ValidationError):
            SendGridMessenger(KEY, host=server.url, timeout=10).send(batch)
        assert server.requests == []


# --------------------------------------------------------------------------- through a campaign


def _campaign(db: Database, clock: FakeClock) -> int:
    with db.session() as session:
        make_issue(session)
        add_subscribers(session, 6)
        # Straight into the database: an old row, a bad migration, a hand edit.
        for index, key in ((1, "crlf"), (4, "u2028")):
            session.execute(
                update(Subscriber)
                .where(Subscriber.email == f"user{index}@example.org")
                .values(name=HOSTILE[key])
            )
        cid = campaigns.create_campaign(42, session=session).id
    with db.session() as session:
        campaigns.start_campaign(
            cid, session=session, checks=NoChecks(), batch_size=10, now=clock()
        )
    return cid


def _worker(db: Database, messenger: Messenger, clock: FakeClock, prepare: object) -> Worker:
    return Worker(
        store=SqlStore(db, worker_id="inject"),
        messenger=messenger,
        prepare=prepare,  # type: ignore[arg-type]
        policy=Policy(),
        clock=clock,
        sleep=clock.sleep,
    )


def _run(worker: Worker, db: Database, cid: int) -> None:
    try:
        worker.run(threading.Event(), until=service.campaign_finished(db, cid))
    finally:
        worker.store.close()


def test_hostile_names_in_the_database_fail_alone_and_the_batch_goes(
    db: Database, tmp_path: Path
) -> None:
    clock = FakeClock()
    cid = _campaign(db, clock)
    folder = tmp_path / "outbox"
    _run(_worker(db, OutboxMessenger(folder), clock, stub_preparer), db, cid)
    result = audit(db, cid, outbox_refs(folder))
    assert result.states == {"accepted": 4, "failed": 2}
    for path in folder.glob("*.eml"):
        assert_clean(path.read_bytes(), expected=EXPECTED_HEADERS - {"reply-to", "list-id"})
    with db.session() as session:
        report = campaigns.campaign_report(cid, session=session)
    details = [r["detail"] for r in report.recipients if r["status"] == "failed"]
    assert all("line break" in (d or "") for d in details), details


def test_hostile_sender_pauses_the_campaign_and_records_nothing_as_sent(
    db: Database, tmp_path: Path
) -> None:
    clock = FakeClock()
    cid = _campaign(db, clock)
    with db.session() as session:
        session.execute(update(Subscriber).values(name="Ann"))
    folder = tmp_path / "outbox"
    evil = Sender(email="news@example.org", name=HOSTILE["lf"])

    def prepare(batch: ClaimedBatch) -> MessageBatch:
        made = stub_preparer(batch)
        return MessageBatch(made.template, evil, made.recipients, made.custom_args)

    worker = _worker(db, OutboxMessenger(folder), clock, prepare)
    _run(worker, db, cid)
    assert campaign_status(db, cid) == "paused"
    with db.session() as session:
        reason = campaigns.get_campaign(cid, session=session).status_reason or ""
    assert "sender name contains a line break" in reason
    assert statuses(db, cid) == {"queued": 6}, "nothing left, so nothing may be recorded sent"
    assert not folder.exists() or not any(folder.glob("*.eml"))
    with db.session() as session:
        campaigns.resume_campaign(cid, session=session)
    _run(_worker(db, OutboxMessenger(folder), clock, stub_preparer), db, cid)
    assert audit(db, cid, outbox_refs(folder)).states == {"accepted": 6}
