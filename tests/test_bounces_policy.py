"""Applying bounces and complaints: the ledger, suppression, the soft-bounce window, exactly once."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from newsletter.bounces.apply import BounceProcessor, counts_by_kind
from newsletter.bounces.verp import Verp
from newsletter.config import Settings
from newsletter.db import Database
from newsletter.models import (
    Delivery,
    InboundMail,
    Subscriber,
    Suppression,
    TrackingEvent,
)
from newsletter.sending.campaigns import campaign_report
from newsletter.testing.bounce_mail import arf, dsn
from tests.sending_helpers import sent_campaign


@pytest.fixture
def sent(db: Database) -> dict[str, int]:
    return sent_campaign(db, recipients=5)


@pytest.fixture
def processor(db: Database, settings: Settings) -> BounceProcessor:
    return BounceProcessor(db, settings)


def _verp(settings: Settings, ledger_id: int) -> str:
    return Verp.from_settings(settings).address(str(ledger_id))


def _row(db: Database, ledger_id: int) -> tuple[str, str | None]:
    with db.session() as session:
        delivery = session.get(Delivery, ledger_id)
        assert delivery is not None
        status = session.scalar(
            select(Subscriber.status).where(Subscriber.id == delivery.subscriber_id)
        )
        return delivery.status, status


def _count(db: Database, model: type) -> int:
    with db.session() as session:
        return int(session.scalar(select(func.count()).select_from(model)) or 0)


def test_hard_bounce_by_verp_marks_the_row_and_suppresses_once(
    db: Database, settings: Settings, sent: dict[str, int], processor: BounceProcessor
) -> None:
    a = "user1@example.org"
    raw = dsn(_verp(settings, sent[a]), "someone-else@forwarded.example")  # VERP beats the report
    first = processor.process(raw, source="smtp")
    assert (first.kind.value, first.duplicate, first.applied) == ("hard", False, 1)
    assert first.targets[0].matched_by == "verp" and first.suppressed == 1
    assert _row(db, sent[a]) == ("bounced", "bounced")
    again = processor.process(raw, source="smtp")  # a retry after a lost 250, a re-poll
    assert again.duplicate and again.applied == 0
    assert _count(db, InboundMail) == 1 and _count(db, Suppression) == 1
    with db.session() as session:
        event = session.scalars(select(TrackingEvent)).one()
        assert (event.provider, event.event, event.delivery_id) == ("bounces", "bounce", sent[a])
        assert event.detail and event.detail.startswith("5.1.1 ")
        stored = session.scalars(select(InboundMail)).one()
        assert stored.raw is None and stored.delivery_id == sent[a]  # applied: only the facts


def test_complaint_unsubscribes_suppresses_and_is_reported(
    db: Database, settings: Settings, sent: dict[str, int], processor: BounceProcessor
) -> None:
    b = "user2@example.org"
    outcome = processor.process(
        arf("fbl@example.org", b, return_path=_verp(settings, sent[b])), source="smtp"
    )
    assert outcome.kind.value == "complaint" and outcome.suppressed == 1
    assert _row(db, sent[b]) == ("accepted", "complained")  # the message did arrive
    with db.session() as session:
        report = campaign_report(1, session=session)
        assert session.scalar(select(Suppression.reason)) == "complaint"
    assert report.complained == 1 and report.rates["complaint_rate"] == 0.2


def test_message_id_is_trusted_only_when_it_equals_the_recorded_one(
    db: Database, settings: Settings, sent: dict[str, int], processor: BounceProcessor
) -> None:
    c = "user3@example.org"
    with db.session() as session:
        real = session.scalar(select(Delivery.provider_id).where(Delivery.id == sent[c]))
    assert real is not None
    guessed = real.replace(real[-20:-15], "00000")
    forged = processor.process(
        dsn("bounces@example.org", "x@y.example", original_id=guessed, nonce="f"), source="file"
    )
    assert forged.applied == 0 and forged.note == "no known recipient: nothing applied"
    good = processor.process(
        dsn("bounces@example.org", "x@y.example", original_id=real, nonce="g"), source="file"
    )
    assert good.targets[0].matched_by == "message-id" and _row(db, sent[c])[0] == "bounced"


def test_unknown_address_tampered_token_and_test_send_are_kept_and_change_nothing(
    db: Database, settings: Settings, sent: dict[str, int], processor: BounceProcessor
) -> None:
    a = "user1@example.org"
    token = _verp(settings, sent[a])
    tampered = token.replace(
        token[len("bounces+") + 3], "0" if token[len("bounces+") + 3] != "0" else "1", 1
    )
    cases = {
        "no known recipient": dsn("bounces@example.org", "stranger@nowhere.example", nonce="1"),
        "forged or damaged VERP token": dsn(tampered, a, nonce="2"),
        "test send": dsn("bounces+test@example.org", a, nonce="3"),
        "names ledger row #999999": dsn(
            Verp.from_settings(settings).address("999999"), a, nonce="4"
        ),
    }
    for note, raw in cases.items():
        outcome = processor.process(raw, source="smtp")
        assert outcome.applied == 0 and outcome.note and note in outcome.note
    assert _count(db, Suppression) == 0 and _count(db, TrackingEvent) == 0
    assert _row(db, sent[a]) == ("accepted", "confirmed")
    with db.session() as session:
        kept = session.scalars(select(InboundMail)).all()
        assert len(kept) == 4 and all(row.raw is not None for row in kept)
        assert counts_by_kind(session)["hard"] == 4


def test_unparsed_mail_is_kept_and_counted(db: Database, processor: BounceProcessor) -> None:
    raw = b"From: someone@example.net\r\nSubject: hello\r\n\r\nJust saying hi.\r\n"
    outcome = processor.process(raw, source="imap")
    assert outcome.kind.value == "unparsed" and not outcome.duplicate
    with db.session() as session:
        row = session.scalars(select(InboundMail)).one()
        assert row.raw == raw and row.note and "no delivery report" in row.note
        assert counts_by_kind(session)["unparsed"] == 1


def test_three_soft_bounces_within_the_window_suppress(
    db: Database, settings: Settings, sent: dict[str, int], processor: BounceProcessor
) -> None:
    d = "user4@example.org"
    start = datetime(2026, 4, 1, tzinfo=UTC)
    for n, days in enumerate((0, 6, 13)):
        date = (start + timedelta(days=days)).strftime("%a, %d %b %Y %H:%M:%S +0000")
        raw = dsn(_verp(settings, sent[d]), d, status="4.2.2", action="delayed",
                  diagnostic="452 4.2.2 mailbox full", date=date, nonce=f"s{n}")  # fmt: skip
        assert processor.process(raw, source="file").kind.value == "soft"
        if n < 2:
            assert _row(db, sent[d]) == ("accepted", "confirmed")
    assert _row(db, sent[d]) == ("accepted", "bounced")  # soft bounces never move the ledger row


def test_soft_bounces_spread_wider_than_the_window_do_not(
    db: Database, settings: Settings, sent: dict[str, int], processor: BounceProcessor
) -> None:
    e = "user0@example.org"
    start = datetime(2026, 3, 1, tzinfo=UTC)
    for n, days in enumerate((0, 10, 20, 30)):  # never three within 14 days
        date = (start + timedelta(days=days)).strftime("%a, %d %b %Y %H:%M:%S +0000")
        processor.process(
            dsn(_verp(settings, sent[e]), e, status="5.2.2", date=date, nonce=f"w{n}"),
            source="file",
        )
    assert _row(db, sent[e]) == ("accepted", "confirmed")
    with db.session() as session:
        log = session.scalar(select(Subscriber.soft_bounce_log).where(Subscriber.email == e))
    assert log is not None and len(log) == 2  # the last two, 10 days apart


def test_a_delivery_between_soft_bounces_starts_the_count_again(
    db: Database, settings: Settings, sent: dict[str, int], processor: BounceProcessor
) -> None:
    from newsletter.tracking.events import Event, ingest

    f = "user3@example.org"
    for n in range(2):
        processor.process(
            dsn(_verp(settings, sent[f]), f, status="4.4.1", action="delayed", nonce=f"d{n}"),
            source="smtp",
        )
    with db.session() as session:  # a provider's "delivered" for the same address
        delivered = Event("sg-1", "delivered", f, sent[f], 1, datetime.now(UTC), None, None)
        ingest([delivered], session=session, now=datetime.now(UTC))
    processor.process(
        dsn(_verp(settings, sent[f]), f, status="4.4.1", action="delayed", nonce="d3"),
        source="smtp",
    )
    assert _row(db, sent[f])[1] == "confirmed"
    with db.session() as session:
        assert session.scalar(select(Subscriber.soft_bounces).where(Subscriber.email == f)) == 1
