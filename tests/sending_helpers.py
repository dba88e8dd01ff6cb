"""Builders for sending tests: issues, many subscribers, a fake clock, a stub preparer."""

from __future__ import annotations

import hashlib
import threading
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from newsletter.db import Database
from newsletter.message import RenderedEmail, Template, placeholder
from newsletter.models import Issue, Subscriber, SubscriberTopic
from newsletter.sending.types import ClaimedBatch
from newsletter.transports.base import MessageBatch, Recipient, Sender

SENDER = Sender(email="news@example.org", name="News")


@dataclass
class FakeClock:
    """Time that only moves when the code under test sleeps (or the test says so)."""

    now: datetime = field(default_factory=lambda: datetime(2026, 4, 3, 13, 0, tzinfo=UTC))
    slept: float = 0.0

    def __call__(self) -> datetime:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept += max(seconds, 0)
        self.now += timedelta(seconds=max(seconds, 0.001))


def make_issue(session: Session, number: int = 42) -> Issue:
    issue = Issue(
        number=number,
        slug=f"issue-{number}",
        title=f"Issue {number}: April 2018",
        issue_date=date(2018, 4, 1),
        subject=f"Issue {number}",
        preheader="",
        intro_md="",
        status="ready",
    )
    session.add(issue)
    session.flush()
    return issue


def add_subscribers(
    session: Session,
    count: int,
    *,
    status: str = "confirmed",
    topics: tuple[str, ...] = (),
    prefix: str = "user",
    domain: str = "example.org",
) -> list[int]:
    """Bulk-insert subscribers (and their topics) quickly; returns their ids."""
    now = datetime.now(UTC)
    rows: list[dict[str, Any]] = []
    for i in range(count):
        email = f"{prefix}{i}@{domain}"
        rows.append(
            {
                "email": email,
                "email_hash": hashlib.sha256(email.encode()).hexdigest(),
                "name": f"User {i}",
                "status": status,
                "created_at": now,
                "soft_bounces": 0,
            }
        )
    session.execute(insert(Subscriber), rows)
    ids = list(
        session.scalars(
            select(Subscriber.id)
            .where(Subscriber.email.like(f"{prefix}%@{domain}"))
            .order_by(Subscriber.id)
        )
    )
    if topics:
        session.execute(
            insert(SubscriberTopic), [{"subscriber_id": i, "topic": t} for i in ids for t in topics]
        )
    return ids


TEMPLATE = Template.compile(
    RenderedEmail(
        subject="Issue 42",
        html=f'<p>Hi {placeholder("name", html=True)}</p><a href="{placeholder("unsubscribe_url", html=True)}">unsubscribe</a>',
        text=f"Hi {placeholder('name')}\nUnsubscribe: {placeholder('unsubscribe_url')}",
        headers={
            "List-Unsubscribe": f"<{placeholder('unsubscribe_url')}>",
            "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
        },
    )
)


def stub_preparer(batch: ClaimedBatch) -> MessageBatch:
    """Addresses a batch with a fixed template: tests of the engine, not of rendering."""
    return MessageBatch(
        template=TEMPLATE,
        sender=SENDER,
        recipients=[
            Recipient(
                ref=str(a.delivery_id),
                email=a.email,
                values={
                    "name": a.name or "",
                    "unsubscribe_url": f"https://x.test/u/{a.subscriber_id}",
                },
            )
            for a in batch.recipients
        ],
        custom_args={"campaign_id": str(batch.campaign_id)},
    )


class NoChecks:
    """IssueChecks for engine tests: no preflight, topics given by the test."""

    def __init__(self, topics: list[str] | None = None) -> None:
        self.topics = topics or []

    def topic_universe(self, issue_id: int) -> list[str]:
        return self.topics

    def preflight(self, issue_id: int) -> None:
        return None


def started_campaign(
    db: Database, clock: FakeClock, *, recipients: int, batch_size: int = 1000
) -> int:
    """Issue 42 (a stub), ``recipients`` confirmed subscribers, a campaign started for them."""
    from newsletter.sending import campaigns

    with db.session() as session:
        make_issue(session)
        add_subscribers(session, recipients)
        cid = campaigns.create_campaign(42, session=session).id
    with db.session() as session:
        campaigns.start_campaign(
            cid, session=session, checks=NoChecks(), batch_size=batch_size, now=clock()
        )
    return cid


def sent_campaign(db: Database, *, recipients: int = 5) -> dict[str, int]:
    """A campaign sent through the engine to the memory messenger: ledger id by address."""
    from newsletter.models import Delivery
    from newsletter.sending.engine import Policy, Worker
    from newsletter.sending.sqlstore import SqlStore
    from newsletter.transports import MemoryMessenger

    clock = FakeClock()
    started_campaign(db, clock, recipients=recipients)
    store = SqlStore(db, worker_id="sent-campaign")
    try:
        worker = Worker(
            store=store, messenger=MemoryMessenger(), prepare=stub_preparer, policy=Policy(),
            clock=clock, sleep=clock.sleep,
        )  # fmt: skip
        worker.run(threading.Event(), until=lambda: True)
    finally:
        store.close()
    with db.session() as session:
        rows = session.execute(
            select(Subscriber.email, Delivery.id).join(
                Delivery, Delivery.subscriber_id == Subscriber.id
            )
        ).all()
    return {str(email): int(did) for email, did in rows}
