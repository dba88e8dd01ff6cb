"""The reputation guard: a sending campaign past its complaint or hard-bounce line pauses itself."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import select, update

from newsletter.bounces.apply import BounceProcessor
from newsletter.bounces.verp import Verp
from newsletter.config import Settings
from newsletter.db import Database
from newsletter.models import Campaign, Delivery, GuardBaseline, Subscriber
from newsletter.sending import campaigns
from newsletter.testing.bounce_mail import arf, dsn
from newsletter.tracking.events import BouncePolicy, Event, ingest
from tests.sending_helpers import FakeClock, started_campaign


def _sending(db: Database, recipients: int) -> tuple[int, list[tuple[int, str]]]:
    """A campaign still sending, whose ``recipients`` messages were all accepted."""
    cid = started_campaign(db, FakeClock(), recipients=recipients)
    with db.session() as session:
        session.execute(update(Delivery).values(status="accepted"))
        rows = session.execute(
            select(Delivery.id, Subscriber.email)
            .join(Subscriber, Subscriber.id == Delivery.subscriber_id)
            .order_by(Delivery.id)
        ).all()
    return cid, [(int(i), str(e)) for i, e in rows]


def _campaign(db: Database, cid: int) -> tuple[str, str | None]:
    with db.session() as session:
        campaign = session.get(Campaign, cid)
        assert campaign is not None
        return campaign.status, campaign.status_reason


def _complain(processor: BounceProcessor, settings: Settings, ledger_id: int, email: str) -> None:
    token = Verp.from_settings(settings).address(str(ledger_id))
    processor.process(
        arf("fbl@example.org", email, return_path=token, nonce=str(ledger_id)), source="smtp"
    )


def test_complaints_past_the_line_pause_and_resume_starts_the_count_again(
    db: Database, settings: Settings
) -> None:
    cid, rows = _sending(db, 600)
    processor = BounceProcessor(db, settings)
    _complain(processor, settings, *rows[0])  # 1 of 600: 0.17 %
    assert _campaign(db, cid) == ("sending", None)
    _complain(processor, settings, *rows[1])  # 2 of 600: 0.33 % > 0.3 %
    status, reason = _campaign(db, cid)
    assert status == "paused" and reason is not None
    assert reason.startswith("reputation guard: complaint rate 0.33% (2 of 600 sent) passed 0.30%")
    with db.session() as session:
        report = campaigns.campaign_report(cid, session=session, with_recipients=False)
        assert (report.status_reason, report.complained) == (reason, 2)
        campaigns.resume_campaign(cid, session=session, now=datetime.now(UTC))
    with db.session() as session:
        base = session.get(GuardBaseline, cid)
        assert base is not None and (base.sent, base.complaints) == (600, 2)
    _complain(processor, settings, *rows[2])  # counted, but nothing new was sent yet
    assert _campaign(db, cid) == ("sending", None)


def test_hard_bounces_past_five_percent_pause(db: Database, settings: Settings) -> None:
    cid, rows = _sending(db, 500)
    processor = BounceProcessor(db, settings)
    verp = Verp.from_settings(settings)
    for ledger_id, email in rows[:25]:  # 25 of 500 is exactly 5 %: not past it
        processor.process(
            dsn(verp.address(str(ledger_id)), email, nonce=str(ledger_id)), source="smtp"
        )
    assert _campaign(db, cid)[0] == "sending"
    ledger_id, email = rows[25]
    processor.process(dsn(verp.address(str(ledger_id)), email, nonce="last"), source="smtp")
    status, reason = _campaign(db, cid)
    assert status == "paused" and reason and "hard-bounce rate 5.20% (26 of 500 sent)" in reason


def test_nothing_is_judged_before_min_sent(db: Database, settings: Settings) -> None:
    cid, rows = _sending(db, 100)
    processor = BounceProcessor(db, settings)
    for row in rows[:20]:  # 20 % complaints, but only 100 sent
        _complain(processor, settings, *row)
    assert _campaign(db, cid) == ("sending", None)


def test_the_sendgrid_path_is_guarded_the_same_way(db: Database, settings: Settings) -> None:
    cid, rows = _sending(db, 600)
    now = datetime.now(UTC)
    events = [
        Event(f"sg-{i}", "spamreport", email, lid, cid, now, None, None)
        for i, (lid, email) in enumerate(rows[:3])
    ]
    with db.session() as session:
        report = ingest(
            events, session=session, now=now, policy=BouncePolicy.from_settings(settings)
        )
    assert report.paused == [cid] and _campaign(db, cid)[0] == "paused"


def test_thresholds_come_from_settings(db: Database, settings: Settings) -> None:
    lenient = settings.model_copy(update={"guard_complaint_rate": 0.01})
    cid, rows = _sending(db, 600)
    processor = BounceProcessor(db, lenient)
    for row in rows[:5]:  # 0.83 %: past 0.3 % but not past 1 %
        _complain(processor, lenient, *row)
    assert _campaign(db, cid) == ("sending", None)
