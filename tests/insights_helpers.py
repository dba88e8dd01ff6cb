"""Issue 42 sent to six readers through the memory transport, and their clicks stored by the
real recorder (``engagement.store_hits``): what the insights tests read."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import select

from newsletter.config import Settings
from newsletter.db import Database
from newsletter.models import Campaign, Delivery, IssueLink, Subscriber, utcnow
from newsletter.sending import campaigns, service
from newsletter.tracking.engagement import store_hits
from newsletter.transports import MemoryMessenger
from tests.sending_helpers import add_subscribers

BROWSER = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 Chrome/124.0 Safari/537.36"


@dataclass
class Sent:
    db: Database
    settings: Settings
    campaign_id: int
    issue_id: int
    ledger: dict[str, int]  # address -> delivery id
    links: dict[int, IssueLink]  # position -> link

    def click(self, email: str, position: int, *, times: int = 1, head: bool = False) -> None:
        """``times`` clicks two hours after the send (a reader's), or a scanner's HEAD."""
        late = (utcnow() + timedelta(hours=2)).timestamp()
        hits = [
            {"id": f"{email}-{position}-{n}-{head}", "k": "c", "d": self.ledger[email],
             "i": self.issue_id, "p": position, "t": late + n * 30, "ua": BROWSER,
             **({"h": 1} if head else {})}
            for n in range(times)
        ]  # fmt: skip
        with self.db.session() as session:
            store_hits(hits, session=session, now=utcnow(), window=timedelta(seconds=10))


def send_issue42(db: Database, settings: Settings) -> Sent:
    """Issue 42 to six readers: two chose Equity, two Policy & ESSA, two no topic."""
    with db.session() as session:
        add_subscribers(session, 2, prefix="eq", topics=("Equity",))
        add_subscribers(session, 2, prefix="pol", topics=("Policy & ESSA",))
        add_subscribers(session, 2, prefix="all")
        cid = campaigns.create_campaign(42, session=session).id
    assert service.start(db, settings, cid)
    service.drain(db, settings, cid, messenger=MemoryMessenger())
    with db.session() as session:
        issue_id = session.scalars(select(Campaign.issue_id).where(Campaign.id == cid)).one()
        ledger = dict(session.execute(
            select(Subscriber.email, Delivery.id)
            .join(Delivery, Delivery.subscriber_id == Subscriber.id)
        ).tuples().all())  # fmt: skip
        links = {link.position: link for link in session.scalars(select(IssueLink))}
        session.expunge_all()
    return Sent(db, settings, cid, issue_id, ledger, links)
