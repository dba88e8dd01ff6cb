"""Sunset: stop mailing people who stopped reading, then ask once, then stop for good.

Mailing people who never open hurts every other recipient's delivery (mailbox
providers count it against the sender).  ``run`` does three things, each
idempotent, in one transaction:

1. **mark inactive**: confirmed subscribers who received each of the last
   ``sunset_after_campaigns`` campaigns (6) without one open or click
   (``engagement.engaged``) get ``inactive_since``; campaigns leave them out
   by default (``audience = "active"``);
2. **reactivate**: an inactive subscriber who opened or clicked anything sent
   after they were marked is active again;
3. **suppress**: a re-engagement campaign (``campaign create N --audience
   inactive``) finished ``sunset_grace_days`` ago (14): whoever got it and is
   still inactive is suppressed, the reason written in the suppression note.

It runs before every campaign start (``service.start``, unless ``sunset =
false``) and on demand (``newsletter subscribers sunset``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, select, text
from sqlalchemy.orm import Session

from newsletter.config import Settings
from newsletter.deliverability.engagement import engaged
from newsletter.models.base import UTCDateTime
from newsletter.models.sending import Campaign, CampaignStatus
from newsletter.models.subscribers import Subscriber
from newsletter.subscribers.suppression import suppress_hash

_NEVER_ENGAGED = f"""
    SELECT d.subscriber_id FROM deliveries d
    WHERE d.campaign_id IN ({{recent}}) AND d.status IN ('accepted', 'delivered')
      AND d.subscriber_id IS NOT NULL
    GROUP BY d.subscriber_id
    HAVING count(*) = :n AND sum(CASE WHEN {engaged("d")} THEN 1 ELSE 0 END) = 0
"""
_ENGAGED_SINCE = f"""
    SELECT d.subscriber_id FROM deliveries d JOIN campaigns c ON c.id = d.campaign_id
    JOIN subscribers s ON s.id = d.subscriber_id
    WHERE s.inactive_since IS NOT NULL AND c.frozen_at >= s.inactive_since AND {engaged("d")}
"""


@dataclass
class SunsetReport:
    marked: int = 0
    reactivated: int = 0
    suppressed: int = 0
    campaigns: list[int] = field(default_factory=list)  # re-engagement campaigns concluded

    def as_dict(self) -> dict[str, Any]:
        return {"marked": self.marked, "reactivated": self.reactivated,
                "suppressed": self.suppressed, "campaigns": self.campaigns}  # fmt: skip


def _recent(session: Session, count: int) -> list[int]:
    """The last ``count`` regular campaigns that were sent (re-engagement ones do not count)."""
    return list(
        session.scalars(
            select(Campaign.id)
            .where(Campaign.status == CampaignStatus.SENT, Campaign.audience != "inactive")
            .order_by(Campaign.frozen_at.desc(), Campaign.id.desc())
            .limit(count)
        )
    )


def run(session: Session, settings: Settings, *, now: datetime) -> SunsetReport:
    report = SunsetReport()
    report.reactivated = _reactivate(session)
    recent = _recent(session, settings.sunset_after_campaigns)
    if len(recent) == settings.sunset_after_campaigns:
        report.marked = _mark(session, recent, now)
    _conclude(session, settings, now, report)
    return report


def _mark(session: Session, recent: list[int], now: datetime) -> int:
    ids = ", ".join(str(int(i)) for i in recent)
    statement = text(
        "UPDATE subscribers SET inactive_since = :now WHERE status = 'confirmed'"
        f" AND inactive_since IS NULL AND id IN ({_NEVER_ENGAGED.format(recent=ids)})"
    ).bindparams(bindparam("now", type_=UTCDateTime))
    result: Any = session.execute(statement, {"now": now, "n": len(recent)})
    return int(result.rowcount or 0)


def _reactivate(session: Session) -> int:
    result: Any = session.execute(
        text(f"UPDATE subscribers SET inactive_since = NULL WHERE id IN ({_ENGAGED_SINCE})")
    )
    return int(result.rowcount or 0)


def _conclude(session: Session, settings: Settings, now: datetime, report: SunsetReport) -> None:
    """Suppress who ignored a re-engagement campaign once its grace period is over."""
    cutoff = now - timedelta(days=settings.sunset_grace_days)
    done = session.scalars(
        select(Campaign).where(
            Campaign.audience == "inactive",
            Campaign.status == CampaignStatus.SENT,
            Campaign.finished_at <= cutoff,
        )
    ).all()
    for campaign in done:
        rows = session.execute(
            text(
                "SELECT s.email_hash FROM deliveries d JOIN subscribers s ON s.id = d.subscriber_id"
                " WHERE d.campaign_id = :cid AND d.status IN ('accepted', 'delivered')"
                " AND s.inactive_since IS NOT NULL AND NOT EXISTS (SELECT 1 FROM suppressions x"
                " WHERE x.email_hash = s.email_hash)"
            ),
            {"cid": campaign.id},
        ).all()
        note = (
            f"sunset: no open or click in the last {settings.sunset_after_campaigns} campaigns "
            f"nor in re-engagement campaign #{campaign.id} ({campaign.name})"
        )
        for (email_hash,) in rows:
            suppress_hash(email_hash, "manual", session=session, note=note, now=now)
        report.suppressed += len(rows)
        report.campaigns.append(campaign.id)


def counts(session: Session) -> dict[str, int]:
    """Inactive subscribers now, and addresses the sunset has suppressed (for the admin)."""
    from sqlalchemy import func

    from newsletter.models.subscribers import Suppression

    inactive = session.scalar(
        select(func.count()).select_from(Subscriber).where(Subscriber.inactive_since.is_not(None),
                                                            Subscriber.status == "confirmed")
    )  # fmt: skip
    suppressed = session.scalar(
        select(func.count()).select_from(Suppression).where(Suppression.note.like("sunset:%"))
    )
    return {"inactive": int(inactive or 0), "suppressed": int(suppressed or 0)}
