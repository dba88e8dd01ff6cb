"""Campaigns, their batches, the per-recipient ledger, and provider events.

The ledger (``deliveries``) has exactly one row per campaign and subscriber,
written once when the audience is frozen.  Batches are the unit workers claim;
a batch's state machine carries the crash-safety rule: ``submitting`` is
committed *before* the provider call, so a batch found ``submitting`` after a
crash was maybe sent and is never resent automatically.
"""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Date,
    ForeignKey,
    Index,
    Integer,
    SmallInteger,
    String,
    Text,
    UniqueConstraint,
    false,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from newsletter.models.base import Base, UTCDateTime, utcnow


class CampaignStatus(StrEnum):
    DRAFT = "draft"
    SCHEDULED = "scheduled"
    SENDING = "sending"
    PAUSED = "paused"
    SENT = "sent"
    CANCELLED = "cancelled"
    FAILED = "failed"
    MISSED = "missed"


class BatchStatus(StrEnum):
    PENDING = "pending"  # waiting to be claimed (maybe after not_before)
    CLAIMED = "claimed"  # a worker holds it; the provider has not been called
    SUBMITTING = "submitting"  # committed before the provider call
    DONE = "done"  # results recorded
    HELD = "held"  # an A/B campaign's rest of the audience, until its winner is picked
    UNKNOWN = "unknown"  # was submitting when its worker died: maybe sent
    CANCELLED = "cancelled"


class DeliveryStatus(StrEnum):
    QUEUED = "queued"  # not final: waiting for its batch
    ACCEPTED = "accepted"
    DELIVERED = "delivered"
    BOUNCED = "bounced"
    DROPPED = "dropped"
    FAILED = "failed"
    SKIPPED = "skipped"
    UNKNOWN = "unknown"


FINAL_STATES = frozenset(DeliveryStatus) - {DeliveryStatus.QUEUED}


class Campaign(Base):
    __tablename__ = "campaigns"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    issue_id: Mapped[int] = mapped_column(ForeignKey("issues.id", ondelete="RESTRICT"), index=True)
    name: Mapped[str] = mapped_column(String(300))
    status: Mapped[str] = mapped_column(String(20), default=CampaignStatus.DRAFT, index=True)
    topics: Mapped[list[str]] = mapped_column(JSON, default=list)
    segment_topics: Mapped[list[str]] = mapped_column(JSON, default=list)
    transport: Mapped[str | None] = mapped_column(String(20))
    scheduled_at: Mapped[datetime | None] = mapped_column(UTCDateTime, index=True)
    schedule_id: Mapped[int | None] = mapped_column(Integer)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    frozen_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    status_reason: Mapped[str | None] = mapped_column(Text)
    consecutive_failures: Mapped[int] = mapped_column(Integer, default=0)
    # The admin chose to send this issue again to an audience that already had it.
    allow_resend: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    total_recipients: Mapped[int] = mapped_column(Integer, default=0)
    # Who it goes to: "active" (inactive subscribers left out: sunset), "inactive" (a
    # re-engagement campaign) or "all".
    audience: Mapped[str] = mapped_column(String(20), default="active", server_default="active")
    # Set on a sequence step's campaign (newsletter.automation.sequences): hidden from the
    # campaign lists, never "finished", fed ledger rows by the sequence tick.
    sequence_id: Mapped[int | None] = mapped_column(Integer, index=True)
    # Local-time sending: each zone's share is released at local_time on local_date in
    # that subscriber's zone (newsletter.sending.localtime).
    local_date: Mapped[date | None] = mapped_column(Date)
    local_time: Mapped[str | None] = mapped_column(String(5))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class SendBatch(Base):
    __tablename__ = "send_batches"
    __table_args__ = (
        UniqueConstraint("campaign_id", "seq"),
        Index("ix_send_batches_claim", "status", "not_before"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id", ondelete="CASCADE"))
    seq: Mapped[int] = mapped_column(Integer)
    segment: Mapped[str] = mapped_column(String(1000), default="")
    chunk: Mapped[int] = mapped_column(Integer, default=0)
    status: Mapped[str] = mapped_column(String(20), default=BatchStatus.PENDING)
    size: Mapped[int] = mapped_column(Integer, default=0)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    not_before: Mapped[datetime | None] = mapped_column(UTCDateTime)
    claimed_by: Mapped[str | None] = mapped_column(String(100))
    claimed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    submitted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    provider_id: Mapped[str | None] = mapped_column(String(200))
    error: Mapped[str | None] = mapped_column(Text)
    relay: Mapped[str | None] = mapped_column(String(200))  # which relay(s) carried it
    # A/B campaigns: the subject variant every recipient of this batch gets (1-based).
    variant: Mapped[int | None] = mapped_column(SmallInteger)


class Delivery(Base):
    """One recipient of one campaign: the ledger row."""

    __tablename__ = "deliveries"
    __table_args__ = (
        UniqueConstraint("campaign_id", "subscriber_id"),
        Index("ix_deliveries_batch", "batch_id"),
        # "What did we send to this address?" after erasure; see migration 0007.
        Index(
            "ix_deliveries_erased_hash",
            "email_hash",
            postgresql_where=text("subscriber_id IS NULL"),
            sqlite_where=text("subscriber_id IS NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    # No foreign keys: the freeze writes these from rows it reads or inserts in the same
    # statement, and a per-row check cost seconds per million (migration 0007).  Erasure
    # sets subscriber_id to NULL itself (subscribers.service.erase).
    campaign_id: Mapped[int] = mapped_column(Integer)
    subscriber_id: Mapped[int | None] = mapped_column(Integer, index=True)
    batch_id: Mapped[int | None] = mapped_column(Integer)
    email_hash: Mapped[str] = mapped_column(String(64))
    segment: Mapped[str] = mapped_column(String(1000), default="")
    status: Mapped[str] = mapped_column(String(20), default=DeliveryStatus.QUEUED)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    provider_id: Mapped[str | None] = mapped_column(String(200))
    detail: Mapped[str | None] = mapped_column(Text)
    updated_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    opened_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    clicked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    opens: Mapped[int] = mapped_column(Integer, default=0)  # human opens (any transport)
    clicks: Mapped[int] = mapped_column(Integer, default=0)  # human clicks
    # Prefetches, proxies, scanners and bots (newsletter.tracking.machine), kept apart.
    machine_opens: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    machine_clicks: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # A/B campaigns (newsletter.sending.abtest): which subject this recipient got, and
    # whether they were in the test sample (the rest get the winner's).
    variant: Mapped[int | None] = mapped_column(SmallInteger)
    in_sample: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())


class TestSend(Base):
    """One test send of an issue: shown in the review step before a campaign starts."""

    __tablename__ = "test_sends"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    issue_id: Mapped[int] = mapped_column(ForeignKey("issues.id", ondelete="CASCADE"), index=True)
    email: Mapped[str] = mapped_column(String(320))
    outcome: Mapped[str] = mapped_column(String(20))
    detail: Mapped[str | None] = mapped_column(Text)
    sent_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class TrackingEvent(Base):
    """A provider event, stored once (unique on the provider's event id)."""

    __tablename__ = "tracking_events"
    # The reputation guard and the reports count a campaign's complaints (migration 0010).
    __table_args__ = (Index("ix_tracking_events_campaign_event", "campaign_id", "event"),)

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    provider: Mapped[str] = mapped_column(String(20), default="sendgrid")
    event_id: Mapped[str] = mapped_column(String(200), unique=True)
    event: Mapped[str] = mapped_column(String(30), index=True)
    delivery_id: Mapped[int | None] = mapped_column(BigInteger, index=True)
    campaign_id: Mapped[int | None] = mapped_column(Integer, index=True)
    email_hash: Mapped[str | None] = mapped_column(String(64))
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    detail: Mapped[str | None] = mapped_column(Text)
