"""``bounces serve``: the real aiosmtpd receiver fed DSNs, ARF reports and bad input by smtplib."""

from __future__ import annotations

import smtplib
from collections.abc import Callable, Iterator

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import sessionmaker

from newsletter.bounces.apply import BounceProcessor
from newsletter.bounces.receiver import BounceServer
from newsletter.bounces.verp import Verp
from newsletter.config import Settings
from newsletter.db import Database, make_engine
from newsletter.models import Delivery, InboundMail, Subscriber, Suppression
from newsletter.testing.bounce_mail import arf, dsn
from tests.sending_helpers import sent_campaign

DOMAIN = "bounces.example.org"


@pytest.fixture
def bounce_settings(settings: Settings) -> Settings:
    return settings.model_copy(
        update={"bounce_domain": DOMAIN, "bounce_max_message_bytes": 1024 * 1024}
    )


@pytest.fixture
def server(db: Database, bounce_settings: Settings) -> Iterator[BounceServer]:
    receiver = BounceServer(BounceProcessor(db, bounce_settings), host="127.0.0.1", port=0)
    receiver.start()
    try:
        yield receiver
    finally:
        receiver.stop()


def _client(server: BounceServer) -> smtplib.SMTP:
    client = smtplib.SMTP("127.0.0.1", server.port, timeout=30)
    client.ehlo("mx.example.net")
    return client


def _send(server: BounceServer, rcpt: str, data: bytes) -> tuple[int, bytes]:
    with _client(server) as client:
        assert client.mail("")[0] == 250
        code, reply = client.rcpt(rcpt)
        if code != 250:
            return code, reply
        return client.data(data)


def _stored(db: Database) -> int:
    with db.session() as session:
        return int(session.scalar(select(func.count()).select_from(InboundMail)) or 0)


def test_a_dsn_over_smtp_bounces_the_ledger_row(
    db: Database, bounce_settings: Settings, server: BounceServer
) -> None:
    sent = sent_campaign(db, recipients=3)
    a = "user1@example.org"
    token = Verp.from_settings(bounce_settings).address(str(sent[a]))
    mail = dsn(token, a)  # built once: its Date changes with the clock
    code, reply = _send(server, token, mail)
    assert (code, reply) == (250, b"2.0.0 OK: stored as hard")
    with db.session() as session:
        assert session.get(Delivery, sent[a]).status == "bounced"  # type: ignore[union-attr]
        assert session.scalar(select(Subscriber.status).where(Subscriber.email == a)) == "bounced"
    code, reply = _send(server, token, mail)  # the same bytes again
    assert (code, reply) == (250, b"2.0.0 OK: already stored") and _stored(db) == 1


def test_an_arf_report_to_the_fbl_address_is_a_complaint(
    db: Database, bounce_settings: Settings, server: BounceServer
) -> None:
    sent = sent_campaign(db, recipients=3)
    b = "user2@example.org"
    token = Verp.from_settings(bounce_settings).address(str(sent[b]))
    code, reply = _send(server, f"fbl@{DOMAIN}", arf(f"fbl@{DOMAIN}", b, return_path=token))
    assert (code, reply) == (250, b"2.0.0 OK: stored as complaint")
    with db.session() as session:
        assert (
            session.scalar(select(Subscriber.status).where(Subscriber.email == b)) == "complained"
        )
        assert session.scalar(select(Suppression.reason)) == "complaint"


@pytest.mark.parametrize(
    ("rcpt", "answer"),
    [
        ("victim@elsewhere.example", (550, b"5.7.1 relaying denied")),
        ("root@" + DOMAIN, (550, b"5.1.1 no such user here")),
        ("bounces+1-x@example.org", (550, b"5.7.1 relaying denied")),
    ],
)
def test_relaying_and_unknown_users_are_refused_at_rcpt(
    db: Database, server: BounceServer, rcpt: str, answer: tuple[int, bytes]
) -> None:
    with _client(server) as client:
        client.mail("spammer@example.com")
        assert client.rcpt(rcpt) == answer
        assert client.rcpt("postmaster")[0] == 250  # RFC 5321: always accepted
    assert _stored(db) == 0


def test_a_50_mb_mail_is_refused_and_nothing_is_stored(db: Database, server: BounceServer) -> None:
    with _client(server) as client:
        assert "size" in client.esmtp_features
        code, _ = client.mail("", options=[f"SIZE={50 * 1024 * 1024}"])
        assert code == 552  # refused before a byte of it is sent
    big = b"Subject: big\r\n\r\n" + (b"x" * 998 + b"\r\n") * (50 * 1024 * 1024 // 1000)
    with _client(server) as client:  # a client that does not declare the size
        client.mail("")
        client.rcpt(f"bounces@{DOMAIN}")
        code, reply = client.data(big)
        assert code == 552, reply
        assert client.noop()[0] == 250  # the session goes on
    assert _stored(db) == 0
    assert _send(server, f"bounces@{DOMAIN}", b"Subject: small\r\n\r\nhi\r\n")[0] == 250


def test_tampered_tokens_and_broken_mime_are_stored_and_change_nothing(
    db: Database, bounce_settings: Settings, server: BounceServer
) -> None:
    sent = sent_campaign(db, recipients=2)
    a = "user1@example.org"
    token = Verp.from_settings(bounce_settings).address(str(sent[a]))
    tampered = (
        token[: -len(DOMAIN) - 2] + ("a" if token[-len(DOMAIN) - 2] != "a" else "b") + "@" + DOMAIN
    )
    assert _send(server, tampered, dsn(tampered, a))[0] == 250
    broken = b'Content-Type: multipart/report; boundary="x"\r\n\r\n--x\r\n\x00\xff\r\n'
    assert _send(server, token, broken) == (250, b"2.0.0 OK: stored as unparsed")
    with db.session() as session:
        rows = session.scalars(select(InboundMail).order_by(InboundMail.id)).all()
        assert [r.kind for r in rows] == ["hard", "unparsed"]
        assert rows[0].note and "forged" in rows[0].note and rows[1].raw == broken
        assert session.get(Delivery, sent[a]).status == "accepted"  # type: ignore[union-attr]
        assert session.scalar(select(func.count()).select_from(Suppression)) == 0


def test_a_database_outage_answers_451_so_the_sender_retries(
    make_settings: Callable[..., Settings],
) -> None:
    down = make_settings(
        bounce_domain=DOMAIN, database_url="postgresql+psycopg://x@127.0.0.1:1/none"
    )
    engine = make_engine(down.database_url)  # what connect() builds, minus its start-up check
    receiver = BounceServer(BounceProcessor(Database(engine, sessionmaker(engine)), down),
                            host="127.0.0.1", port=0)  # fmt: skip
    receiver.start()
    try:
        code, reply = _send(receiver, f"bounces@{DOMAIN}", dsn(f"bounces@{DOMAIN}", "a@b.example"))
        assert (code, reply) == (451, b"4.3.0 cannot store the message now; try again later")
    finally:
        receiver.stop()
        engine.dispose()
