"""First-party reader feedback: each issue's links, and every click and open on them.

``issue_links`` holds an issue's links once (the redirect looks a token's
position up here); ``engagement_events`` is the raw log of each request to a
tracked link or the open pixel, kept ``tracking_retention_days``;
``link_clicks`` sums it per link and recipient (unique clickers per link),
kept with the campaign's history; ``resource_clicks`` the same per library
resource and recipient (a resource's title and call to action are two links
and one choice).  Both carry the recipient's frozen segment, so the issue
results (``newsletter.insights.results``) read them without the ledger.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from newsletter.models.base import Base, UTCDateTime, utcnow


class IssueLink(Base):
    __tablename__ = "issue_links"
    __table_args__ = (UniqueConstraint("issue_id", "position"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    issue_id: Mapped[int] = mapped_column(ForeignKey("issues.id", ondelete="CASCADE"))
    position: Mapped[int] = mapped_column(Integer)  # 1-based, in the whole issue's email
    section: Mapped[int | None] = mapped_column(Integer)  # index of the issue's section
    section_heading: Mapped[str | None] = mapped_column(String(300))
    url: Mapped[str] = mapped_column(Text)
    occurrence: Mapped[int] = mapped_column(Integer, default=0)  # nth link to url in section
    resource_id: Mapped[int | None] = mapped_column(
        ForeignKey("resources.id", ondelete="SET NULL"), index=True
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class EngagementEvent(Base):
    """One request to a tracked link (kind 'click') or the pixel ('open'), stored once."""

    __tablename__ = "engagement_events"
    __table_args__ = (
        Index("ix_engagement_events_campaign", "campaign_id", "kind"),
        Index("ix_engagement_events_occurred", "occurred_at"),
    )

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    event_id: Mapped[str] = mapped_column(String(40), unique=True)  # the spool record's id
    kind: Mapped[str] = mapped_column(String(10))
    delivery_id: Mapped[int] = mapped_column(BigInteger, index=True)
    campaign_id: Mapped[int] = mapped_column(Integer)
    link_id: Mapped[int | None] = mapped_column(Integer)
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime)
    machine: Mapped[bool] = mapped_column(Boolean, default=False)
    reason: Mapped[str | None] = mapped_column(String(40))  # why it counts as machine
    user_agent: Mapped[str | None] = mapped_column(String(300))
    network: Mapped[str | None] = mapped_column(String(32))  # keyed hash of the /24 or /48
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class LinkClick(Base):
    """Clicks of one recipient on one link: unique clickers per link without the raw log."""

    __tablename__ = "link_clicks"
    __table_args__ = (Index("ix_link_clicks_campaign", "campaign_id"),)

    link_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    delivery_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    campaign_id: Mapped[int] = mapped_column(Integer)
    human: Mapped[int] = mapped_column(Integer, default=0)
    machine: Mapped[int] = mapped_column(Integer, default=0)
    first_at: Mapped[datetime] = mapped_column(UTCDateTime)
    segment: Mapped[str | None] = mapped_column(String(1000))  # the ledger row's (0016)


class ResourceClick(Base):
    """Clicks of one recipient on any link to one library resource (migration 0020_insights)."""

    __tablename__ = "resource_clicks"
    __table_args__ = (Index("ix_resource_clicks_campaign", "campaign_id"),)

    resource_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    delivery_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    campaign_id: Mapped[int] = mapped_column(Integer)
    segment: Mapped[str | None] = mapped_column(String(1000))
    human: Mapped[int] = mapped_column(Integer, default=0)
    machine: Mapped[int] = mapped_column(Integer, default=0)
    first_at: Mapped[datetime] = mapped_column(UTCDateTime)
