"""The events an endpoint can ask for, and the JSON each one carries.

Every body is an envelope with stable field names (README "Event payloads"):

    {"id": "evt_...", "type": "subscriber.confirmed", "created_at": "2025-03-01T09:00:00Z",
     "data": {...}}

``id`` is unique per event and the same on every retry and replay, so a
receiver that stores the ids it has processed handles each event once even
though delivery is at-least-once.  Times are UTC, ISO 8601, to the second.
The builders below are the one definition of each ``data``; the PostgreSQL
send path builds ``campaign.sent`` in SQL (``emit.CAMPAIGN_SENT_SQL``) with the
same fields, and a test holds the two together.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from newsletter.models.issues import Issue
from newsletter.models.sending import Campaign, Delivery
from newsletter.models.subscribers import Subscriber

SUBSCRIBER_CONFIRMED = "subscriber.confirmed"
SUBSCRIBER_UNSUBSCRIBED = "subscriber.unsubscribed"
SUBSCRIBER_SUPPRESSED = "subscriber.suppressed"
CAMPAIGN_SENT = "campaign.sent"
MESSAGE_BOUNCED = "message.bounced"
MESSAGE_COMPLAINED = "message.complained"
MESSAGE_CLICKED = "message.clicked"
TEST = "webhook.test"  # "send test event": only ever to the endpoint it was sent from

EVENTS: dict[str, str] = {
    SUBSCRIBER_CONFIRMED: "a subscriber confirmed their address (double opt-in done)",
    SUBSCRIBER_UNSUBSCRIBED: "a subscriber unsubscribed (link, one-click, preferences, API)",
    SUBSCRIBER_SUPPRESSED: "an address went on the suppression list (any reason)",
    CAMPAIGN_SENT: "a campaign finished sending (every batch settled)",
    MESSAGE_BOUNCED: "a message bounced (hard or soft)",
    MESSAGE_COMPLAINED: "a recipient reported a message as spam",
    MESSAGE_CLICKED: "a reader clicked a link (machine clicks are left out)",
}

Data = dict[str, Any]
LazyData = Data | Callable[[], Data]


def iso(value: datetime | None) -> str | None:
    """UTC, to the second, with a Z: the one time format of every payload."""
    if value is None:
        return None
    return f"{value.astimezone(UTC):%Y-%m-%dT%H:%M:%SZ}"


def new_event_id() -> str:
    return "evt_" + uuid.uuid4().hex


def envelope(event_id: str, event: str, created_at: datetime, data: Data) -> str:
    """The exact body every attempt of this event sends (stored, so retries are identical)."""
    body = {"id": event_id, "type": event, "created_at": iso(created_at), "data": data}
    return json.dumps(body, ensure_ascii=False, separators=(",", ":"))


# --- subscribers ---------------------------------------------------------------------------


def subscriber_confirmed(subscriber: Subscriber, source: str) -> Data:
    return {
        "subscriber_id": subscriber.id,
        "email": subscriber.email,
        "name": subscriber.name,
        "topics": subscriber.topics,
        "confirmed_at": iso(subscriber.confirmed_at),
        "source": source,
    }


def subscriber_unsubscribed(subscriber: Subscriber, source: str, at: datetime) -> Data:
    return {
        "subscriber_id": subscriber.id,
        "email": subscriber.email,
        "unsubscribed_at": iso(at),
        "source": source,
    }


def subscriber_suppressed(
    session: Session, email_hash: str, reason: str, note: str | None, at: datetime
) -> Data:
    """The address and subscriber if known; an erasure says only the hash (it is forgotten)."""
    row = session.scalars(select(Subscriber).where(Subscriber.email_hash == email_hash)).first()
    known = row is not None and reason != "erased"
    return {
        "subscriber_id": row.id if row is not None else None,
        "email": row.email if known and row is not None else None,
        "email_hash": email_hash,
        "reason": reason,
        "note": note,
        "suppressed_at": iso(at),
    }


# --- campaigns -----------------------------------------------------------------------------


def campaign_sent(session: Session, campaign_ids: list[int]) -> dict[int, Data]:
    """``campaign.sent`` for campaigns that just finished, by id (one query)."""
    rows = session.execute(
        select(Campaign, Issue.number, Issue.title)
        .join(Issue, Issue.id == Campaign.issue_id)
        .where(Campaign.id.in_(campaign_ids))
    ).all()
    return {
        campaign.id: {
            "campaign_id": campaign.id,
            "name": campaign.name,
            "issue_id": campaign.issue_id,
            "issue_number": number,
            "issue_title": title,
            "recipients": campaign.total_recipients,
            "started_at": iso(campaign.started_at),
            "finished_at": iso(campaign.finished_at),
        }
        for campaign, number, title in rows
    }


# --- messages ------------------------------------------------------------------------------


def message_context(session: Session, delivery_ids: set[int]) -> dict[int, Data]:
    """Per ledger row: campaign, issue, subscriber and address (one query for a whole batch)."""
    if not delivery_ids:
        return {}
    rows = session.execute(
        select(
            Delivery.id, Delivery.campaign_id, Campaign.issue_id, Subscriber.id, Subscriber.email
        )
        .join(Campaign, Campaign.id == Delivery.campaign_id)
        .outerjoin(Subscriber, Subscriber.id == Delivery.subscriber_id)
        .where(Delivery.id.in_(sorted(delivery_ids)))
    ).all()
    return {
        int(did): {
            "delivery_id": int(did),
            "campaign_id": cid,
            "issue_id": iid,
            "subscriber_id": sid,
            "email": email,
        }
        for did, cid, iid, sid, email in rows
    }


def unknown_message(delivery_id: int | None, campaign_id: int | None, email: str | None) -> Data:
    """A bounce or complaint whose ledger row is gone (or never was: a foreign message)."""
    return {
        "delivery_id": delivery_id,
        "campaign_id": campaign_id,
        "issue_id": None,
        "subscriber_id": None,
        "email": email,
    }
