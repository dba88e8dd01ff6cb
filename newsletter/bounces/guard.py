"""The reputation guard: a campaign whose complaints or hard bounces pass a line pauses itself.

Gmail and Yahoo reject bulk senders whose complaint rate passes 0.3 %, and a
hard-bounce rate above a few percent means a stale list that will get the
sender blocked.  The guard runs where bounce and complaint events are applied
(``tracking.events.ingest``: the SendGrid webhook and ``newsletter bounces``),
not in the sending engine, so it reacts to the evidence as it arrives and the
engine stays ignorant of it.  Rates are over the messages handed to the
provider or relay so far, and only once ``min_sent`` of them went, so five
early complaints in a campaign of a million do not stop it.

Resuming: the admin who resumes a paused campaign has seen the reason and
decided to go on, so the guard must not pause it again at once on the same
evidence.  ``resume_campaign`` therefore records a baseline (``guard_baselines``)
and from then on the guard judges only what happened after it: the messages
sent since the resume, their complaints and hard bounces, again only after
``min_sent`` more.  A new burst of complaints pauses it again; the old ones
never do.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from newsletter.models.bounces import GuardBaseline
from newsletter.models.sending import Campaign, CampaignStatus, Delivery, DeliveryStatus
from newsletter.models.sending import TrackingEvent as Events
from newsletter.tracking.events import GuardLimits

REASON_PREFIX = "reputation guard"
SENT_STATES = (
    DeliveryStatus.ACCEPTED,
    DeliveryStatus.DELIVERED,
    DeliveryStatus.BOUNCED,
    DeliveryStatus.DROPPED,
)
_CHUNK = 900


@dataclass(frozen=True, slots=True)
class Reputation:
    """What a campaign has sent and what came back, from the ledger and the events."""

    sent: int
    complaints: int
    hard_bounces: int

    def since(self, base: GuardBaseline | None) -> Reputation:
        if base is None:
            return self
        return Reputation(
            max(self.sent - base.sent, 0),
            max(self.complaints - base.complaints, 0),
            max(self.hard_bounces - base.hard_bounces, 0),
        )


def complaint_count(session: Session, campaign_id: int) -> int:
    """Recipients of the campaign who reported it as spam (each counted once)."""
    return int(
        session.scalar(
            select(func.count(func.distinct(Events.delivery_id))).where(
                Events.campaign_id == campaign_id, Events.event == "spamreport"
            )
        )
        or 0
    )


def reputation(session: Session, campaign_id: int) -> Reputation:
    sent, hard = session.execute(
        select(
            func.count(),
            func.count().filter(Delivery.status == DeliveryStatus.BOUNCED),
        ).where(Delivery.campaign_id == campaign_id, Delivery.status.in_(SENT_STATES))
    ).one()
    return Reputation(int(sent), complaint_count(session, campaign_id), int(hard))


def verdict(seen: Reputation, limits: GuardLimits) -> str | None:
    """The pause reason if a line is passed, else None (never before ``min_sent``)."""
    if seen.sent < limits.min_sent:
        return None
    for what, count, line in (
        ("complaint", seen.complaints, limits.complaint_rate),
        ("hard-bounce", seen.hard_bounces, limits.hard_bounce_rate),
    ):
        if count / seen.sent > line:
            return (
                f"{REASON_PREFIX}: {what} rate {count / seen.sent:.2%} ({count} of {seen.sent}"
                f" sent) passed {line:.2%}; check the list, then resume explicitly"
            )
    return None


def check_campaigns(session: Session, ledger_ids: Iterable[int], limits: GuardLimits) -> list[int]:
    """Pause every sending campaign among these ledger rows' whose rates passed a line."""
    from newsletter.sending.campaigns import pause_campaign

    ids = sorted(set(ledger_ids))
    sending: set[int] = set()
    for start in range(0, len(ids), _CHUNK):
        sending.update(
            session.scalars(
                select(Campaign.id)
                .join(Delivery, Delivery.campaign_id == Campaign.id)
                .where(
                    Delivery.id.in_(ids[start : start + _CHUNK]),
                    Campaign.status == CampaignStatus.SENDING,
                )
                .distinct()
            )
        )
    paused: list[int] = []
    for campaign_id in sorted(sending):
        base = session.get(GuardBaseline, campaign_id)
        reason = verdict(reputation(session, campaign_id).since(base), limits)
        if reason is not None:
            pause_campaign(campaign_id, session=session, reason=reason)
            paused.append(campaign_id)
    return paused


def record_baseline(session: Session, campaign_id: int, *, now: datetime) -> None:
    """Start the guard's count afresh from here (called when an admin resumes)."""
    seen = reputation(session, campaign_id)
    values = {
        "campaign_id": campaign_id,
        "sent": seen.sent,
        "complaints": seen.complaints,
        "hard_bounces": seen.hard_bounces,
        "resumed_at": now,
    }
    insert = postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert
    statement = insert(GuardBaseline).values(**values)
    session.execute(
        statement.on_conflict_do_update(
            index_elements=["campaign_id"],
            set_={k: statement.excluded[k] for k in values if k != "campaign_id"},
        )
    )
