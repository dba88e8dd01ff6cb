"""One person's sending history, by address hash: for GDPR access requests and the admin.

The ledger keeps only the address hash (the subscriber link is dropped on
erasure), so this also answers "what did we send to an erased address?" from
the hash alone without holding the address.  Rows of a subscriber who still
exists are found through ``subscriber_id``; only erased rows need the hash,
and only they are in its (partial) index.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session

from newsletter.models.sending import Campaign, Delivery, TrackingEvent
from newsletter.models.subscribers import Subscriber
from newsletter.models.tracking import EngagementEvent, IssueLink


def _iso(value: Any) -> str | None:
    return value.isoformat() if value is not None else None


def _engagement(session: Session, ids: list[int]) -> dict[int, list[dict[str, Any]]]:
    """First-party clicks and opens per ledger row: what we recorded, as we recorded it."""
    found: dict[int, list[dict[str, Any]]] = {}
    if not ids:
        return found
    rows = session.execute(
        select(EngagementEvent, IssueLink.url)
        .outerjoin(IssueLink, IssueLink.id == EngagementEvent.link_id)
        .where(EngagementEvent.delivery_id.in_(ids))
        .order_by(EngagementEvent.occurred_at)
    )
    for event, url in rows:
        found.setdefault(event.delivery_id, []).append({
            "kind": event.kind, "at": _iso(event.occurred_at), "link": url,
            "machine": event.machine, "reason": event.reason, "user_agent": event.user_agent,
            "network": event.network,
        })  # fmt: skip
    return found


def sends_for(email_hash: str, *, session: Session) -> list[dict[str, Any]]:
    """Every ledger row for this address with its campaign and provider events, oldest first."""
    rows = session.execute(
        select(Delivery, Campaign.name)
        .join(Campaign, Campaign.id == Delivery.campaign_id)
        .where(
            or_(
                Delivery.subscriber_id.in_(
                    select(Subscriber.id).where(Subscriber.email_hash == email_hash)
                ),
                and_(Delivery.subscriber_id.is_(None), Delivery.email_hash == email_hash),
            )
        )
        .order_by(Delivery.id)
    ).all()
    ids = [delivery.id for delivery, _ in rows]
    events: dict[int, list[dict[str, Any]]] = {}
    engagement = _engagement(session, ids)
    if ids:
        for event in session.scalars(
            select(TrackingEvent)
            .where(TrackingEvent.delivery_id.in_(ids))
            .order_by(TrackingEvent.occurred_at)
        ):
            assert event.delivery_id is not None
            events.setdefault(event.delivery_id, []).append(
                {"event": event.event, "at": _iso(event.occurred_at), "detail": event.detail}
            )
    return [
        {
            "campaign_id": delivery.campaign_id,
            "campaign": name,
            "ledger_id": delivery.id,
            "status": delivery.status,
            "detail": delivery.detail,
            "updated_at": _iso(delivery.updated_at),
            "delivered_at": _iso(delivery.delivered_at),
            "opens": delivery.opens,
            "clicks": delivery.clicks,
            "machine_opens": delivery.machine_opens,
            "machine_clicks": delivery.machine_clicks,
            "events": events.get(delivery.id, []),
            "engagement": engagement.get(delivery.id, []),
        }
        for delivery, name in rows
    ]
