"""Issue 42 end to end: real render, real tokens, real MIME bytes in the outbox."""

from __future__ import annotations

import email
import email.policy
from pathlib import Path

import pytest
from sqlalchemy import select

from newsletter.config import Settings
from newsletter.db import Database
from newsletter.errors import PreflightError
from newsletter.models import Delivery, Subscriber, SubscriberTopic
from newsletter.sending import campaigns, service
from newsletter.subscribers.tokens import Purpose, tokens_for
from newsletter.transports import MemoryMessenger
from tests.sending_helpers import add_subscribers


def _campaign(db: Database, settings: Settings, **kwargs: object) -> int:
    with db.session() as session:
        cid = campaigns.create_campaign(42, session=session, **kwargs).id  # type: ignore[arg-type]
    assert service.start(db, settings, cid)
    return cid


def test_issue_42_reaches_every_subscriber_as_valid_mime(
    issue42: Database, settings: Settings, tmp_path: Path
) -> None:
    with issue42.session() as session:
        add_subscribers(session, 30)
    cid = _campaign(issue42, settings)
    stats = service.drain(issue42, settings, cid)
    assert stats.accepted == 30
    files = sorted(settings.outbox_path.glob("*.eml"))
    assert len(files) == 30
    raw = files[0].read_bytes()
    assert b"\r\n" in raw and b"\n" not in raw.replace(b"\r\n", b"")
    assert all(len(line) <= 998 for line in raw.split(b"\r\n"))
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    unsubscribe = str(msg["List-Unsubscribe"])
    assert unsubscribe.startswith(f"<{settings.base_url}/u/") and unsubscribe.endswith(">")
    assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert msg["List-Id"] and msg["Message-ID"]
    html = msg.get_body(("html",)).get_content()  # type: ignore[union-attr]
    text = msg.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert unsubscribe.strip("<>") in html and unsubscribe.strip("<>") in text
    assert "%%" not in html and "%%" not in text
    assert "Cover of Personalized Learning and the Every Student Succeeds Act Report" in html
    token = unsubscribe.strip("<>").rsplit("/", 1)[1]
    claims = tokens_for(settings).load(Purpose.UNSUBSCRIBE, token)
    with issue42.session() as session:
        subscriber = session.get(Subscriber, claims.subscriber_id)
        assert subscriber is not None and subscriber.email == str(msg["To"]).split("<")[-1].strip(
            ">"
        )
        ledger = session.scalar(select(Delivery).where(Delivery.subscriber_id == subscriber.id))
        assert ledger is not None and ledger.status == "accepted"
        assert ledger.provider_id == msg["Message-ID"]


def test_segments_render_once_each_and_topic_campaigns_filter(
    issue42: Database, settings: Settings
) -> None:
    with issue42.session() as session:
        add_subscribers(session, 6, prefix="all")
        add_subscribers(session, 4, topics=("English Language Learners",), prefix="equity")
        add_subscribers(session, 3, topics=("Assessment",), prefix="assess")
    messenger = MemoryMessenger()
    cid = _campaign(issue42, settings)
    with service.open_worker(issue42, settings, messenger=messenger) as worker:
        import threading

        worker.run(threading.Event(), until=service.campaign_finished(issue42, cid))
        renders = worker.prepare.renderer.stats.compilations  # type: ignore[attr-defined]
    assert len(messenger.sent) == 13
    assert (
        renders <= 3
    )  # whole issue, Equity's sections, Assessment's (which may be the whole issue)
    equity = messenger.to("equity0@example.org")[0].email_message.html
    everyone = messenger.to("all0@example.org")[0].email_message.html
    assert len(equity) < len(everyone)

    topic_messenger = MemoryMessenger()
    with issue42.session() as session:
        cid2 = campaigns.create_campaign(
            42, session=session, topics=["English Language Learners"], resend=True
        ).id
    assert service.start(issue42, settings, cid2)
    service.drain(issue42, settings, cid2, messenger=topic_messenger)
    assert sorted(m.email for m in topic_messenger.sent) == [
        f"equity{i}@example.org" for i in range(4)
    ]


def test_preflight_failure_refuses_to_start(
    issue42: Database, settings: Settings, make_settings: object
) -> None:
    with issue42.session() as session:
        add_subscribers(session, 2)
        cid = campaigns.create_campaign(42, session=session).id
    broken = settings.model_copy(update={"postal_address": ""})
    with pytest.raises(PreflightError, match="postal address"):
        service.start(issue42, broken, cid)
    with issue42.session() as session:
        assert campaigns.get_campaign(cid, session=session).status == "draft"
        assert session.scalar(select(Delivery.id)) is None


def test_send_test_goes_to_one_address_outside_the_ledger(
    issue42: Database, settings: Settings
) -> None:
    messenger = MemoryMessenger()
    result = service.send_test(issue42, settings, 42, " Editor@Example.ORG ", messenger=messenger)
    assert result.results[0].outcome == "accepted"
    [sent] = messenger.sent
    assert sent.email == "editor@example.org"
    assert sent.email_message.subject.startswith("[TEST] ")
    with issue42.session() as session:
        assert session.scalar(select(Delivery.id)) is None


def test_unknown_topic_for_campaign_is_rejected(settings: Settings) -> None:
    from newsletter.errors import ValidationError

    with pytest.raises(ValidationError, match="Knitting"):
        campaigns.check_topics(["Knitting"], [t.name for t in settings.topics])
    assert SubscriberTopic  # the model is registered
