"""Builders for sequence tests: a sign-up confirmed at a given time, a worker on a fake clock."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from sqlalchemy import select

from newsletter.config import Settings
from newsletter.db import Database
from newsletter.models import Delivery, Subscriber
from newsletter.sending import service
from newsletter.subscribers import service as subscribers
from newsletter.subscribers.service import SignupRequest
from newsletter.subscribers.store import Actor
from newsletter.transports.memory import MemoryMessenger

WEB = Actor(source="test:signup")


def confirmed(db: Database, email: str, at: datetime, *, topics: tuple[str, ...] = ()) -> int:
    """Sign up and confirm through the real double opt-in, at ``at``; the subscriber id."""
    with db.session() as session:
        outcome = subscribers.subscribe(
            SignupRequest(email=email, name=None, topics=list(topics), actor=WEB,
                          consent_text="Yes please"),
            session=session, allowed_topics=list(topics), now=at,
        )  # fmt: skip
        assert outcome.subscriber is not None
        subscribers.confirm(outcome.subscriber, session=session, actor=WEB, now=at)
        return outcome.subscriber.id


def send_due(
    db: Database, settings: Settings, messenger: MemoryMessenger, clock: Callable[[], datetime]
) -> int:
    """Run a worker in this process until nothing is claimable at ``clock()``; batches sent."""
    sent = 0
    with service.open_worker(db, settings, messenger=messenger, clock=clock) as worker:
        while worker.step():
            sent += 1
    return sent


def ledger(db: Database, campaign_id: int) -> dict[str, str]:
    """Address -> ledger status for one (step) campaign."""
    with db.session() as session:
        rows = session.execute(
            select(Subscriber.email, Delivery.status)
            .join(Subscriber, Subscriber.id == Delivery.subscriber_id)
            .where(Delivery.campaign_id == campaign_id)
        ).all()
    return {str(e): str(s) for e, s in rows}
