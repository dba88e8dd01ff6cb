"""Integration: outgoing webhooks (endpoints, the event outbox, deliveries, attempts), API tokens.

The outbox (``webhook_events``) is written in the same transaction as the
change an event reports, with one ``webhook_deliveries`` row per endpoint
that wanted it; a background dispatcher moves deliveries forward and logs
every HTTP attempt (``webhook_attempts``).  Nothing here is read on the send
path: emitting is an INSERT, delivering happens elsewhere.

``api_tokens`` keeps only the SHA-256 of each token: the token itself is
shown once, when it is created.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    true,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from newsletter.models.base import Base, UTCDateTime, utcnow

BIGINT = BigInteger().with_variant(Integer, "sqlite")  # SQLite: INTEGER PRIMARY KEY is the rowid


class WebhookState(StrEnum):
    PENDING = "pending"  # due at next_attempt_at
    SENDING = "sending"  # claimed by a dispatcher until lease_until
    DELIVERED = "delivered"  # the endpoint answered 2xx
    FAILED = "failed"  # retried for the whole window without a 2xx (an admin may replay)


class WebhookEndpoint(Base):
    """A URL an admin registered, the events it wants, and how its deliveries are going."""

    __tablename__ = "webhook_endpoints"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    url: Mapped[str] = mapped_column(String(2000))
    description: Mapped[str] = mapped_column(String(300), default="")
    # The signing key (whsec_...): it has to be kept to sign, so it is stored, and
    # shown to the admin once, when the endpoint is created.
    secret: Mapped[str] = mapped_column(String(100))
    enabled: Mapped[bool] = mapped_column(Boolean, default=True, server_default=true())
    disabled_reason: Mapped[str | None] = mapped_column(Text)
    failing_since: Mapped[datetime | None] = mapped_column(UTCDateTime)  # first failure since a 2xx
    last_success_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_failure_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_by: Mapped[str] = mapped_column(String(320), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    subscriptions: Mapped[list[WebhookSubscription]] = relationship(
        back_populates="endpoint",
        cascade="all, delete-orphan",
        order_by="WebhookSubscription.event",
        lazy="selectin",
    )

    @property
    def events(self) -> list[str]:
        return sorted(row.event for row in self.subscriptions)

    @property
    def state(self) -> str:
        """What the admin sees: "disabled", "failing" (no 2xx since a failure) or "active"."""
        if not self.enabled:
            return "disabled"
        return "failing" if self.failing_since is not None else "active"


class WebhookSubscription(Base):
    """One event type an endpoint wants (a row per type, so emitting is one indexed join)."""

    __tablename__ = "webhook_subscriptions"

    endpoint_id: Mapped[int] = mapped_column(
        ForeignKey("webhook_endpoints.id", ondelete="CASCADE"), primary_key=True
    )
    event: Mapped[str] = mapped_column(String(40), primary_key=True, index=True)

    endpoint: Mapped[WebhookEndpoint] = relationship(back_populates="subscriptions")


class WebhookEvent(Base):
    """One event in the outbox: its id, type and the exact JSON body every attempt sends."""

    __tablename__ = "webhook_events"

    id: Mapped[int] = mapped_column(BIGINT, primary_key=True)
    public_id: Mapped[str] = mapped_column(String(40), unique=True)  # "evt_...", for receivers
    type: Mapped[str] = mapped_column(String(40), index=True)
    body: Mapped[str] = mapped_column(Text)
    # One event per fact that can only happen once ("campaign.sent:42"): a second
    # emission of it (two workers finishing the same campaign) inserts nothing.
    dedupe_key: Mapped[str | None] = mapped_column(String(200), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)


class WebhookDelivery(Base):
    """One event on its way to one endpoint: the retry state and the last answer."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        CheckConstraint("status IN ('pending', 'sending', 'delivered', 'failed')", name="status"),
        Index("ix_webhook_deliveries_due", "status", "next_attempt_at"),
        Index("ix_webhook_deliveries_endpoint", "endpoint_id", "id"),
    )

    id: Mapped[int] = mapped_column(BIGINT, primary_key=True)
    event_id: Mapped[int] = mapped_column(
        BIGINT, ForeignKey("webhook_events.id", ondelete="CASCADE"), index=True
    )
    endpoint_id: Mapped[int] = mapped_column(ForeignKey("webhook_endpoints.id", ondelete="CASCADE"))
    status: Mapped[str] = mapped_column(String(20), default=WebhookState.PENDING)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    claimed_by: Mapped[str | None] = mapped_column(String(100))
    last_status: Mapped[int | None] = mapped_column(Integer)  # the last HTTP status code
    last_error: Mapped[str | None] = mapped_column(Text)
    response_excerpt: Mapped[str | None] = mapped_column(String(500))
    replay_of: Mapped[int | None] = mapped_column(BigInteger)  # the delivery an admin replayed
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class WebhookAttempt(Base):
    """The log: one row per HTTP attempt, with the status code and the start of the answer."""

    __tablename__ = "webhook_attempts"

    id: Mapped[int] = mapped_column(BIGINT, primary_key=True)
    delivery_id: Mapped[int] = mapped_column(
        BIGINT, ForeignKey("webhook_deliveries.id", ondelete="CASCADE"), index=True
    )
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    status_code: Mapped[int | None] = mapped_column(Integer)  # None: no HTTP answer at all
    error: Mapped[str | None] = mapped_column(Text)
    excerpt: Mapped[str | None] = mapped_column(String(500))
    duration_ms: Mapped[int] = mapped_column(Integer, default=0)


class ApiToken(Base):
    """A scoped API token; only its SHA-256 is kept (the token is shown once)."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    prefix: Mapped[str] = mapped_column(String(20))  # the first characters, to recognise it
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    scopes: Mapped[list[str]] = mapped_column(JSON, default=list)
    created_by: Mapped[str] = mapped_column(String(320), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)  # None: never
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    def state(self, now: datetime) -> str:
        if self.revoked_at is not None:
            return "revoked"
        if self.expires_at is not None and self.expires_at <= now:
            return "expired"
        return "active"
