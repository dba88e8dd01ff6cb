"""Subscribers, their topics, the consent trail and the suppression list.

The consent trail (``consent_events``) is append-only evidence of what each
person agreed to, when, from where and with which words; it outlives an
erasure in anonymised form.  The suppression list (``suppressions``) holds only
address hashes, so it can keep honouring an unsubscribe or an erasure after the
address itself is gone.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    ForeignKey,
    Integer,
    String,
    Text,
    UniqueConstraint,
    true,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from newsletter.models.base import Base, UTCDateTime, utcnow


class SubscriberStatus(StrEnum):
    PENDING = "pending"  # signed up, not yet confirmed: only the confirmation email may go
    CONFIRMED = "confirmed"  # double opt-in done: receives issues
    UNSUBSCRIBED = "unsubscribed"
    BOUNCED = "bounced"  # hard bounce
    COMPLAINED = "complained"  # marked as spam


class ConsentKind(StrEnum):
    SUBSCRIBE = "subscribe"
    CONFIRM = "confirm"
    WITHDRAW = "withdraw"
    IMPORT = "import"
    ADMIN = "admin"
    PREFERENCES = "preferences"
    ERASE = "erase"


class SuppressionReason(StrEnum):
    UNSUBSCRIBED = "unsubscribed"
    HARD_BOUNCE = "hard_bounce"
    COMPLAINT = "complaint"
    ERASED = "erased"
    MANUAL = "manual"


def _in(column: str, enum: type[StrEnum]) -> str:
    """A CHECK expression listing an enum's values (kept in step with the migration)."""
    values = ", ".join(f"'{member.value}'" for member in enum)
    return f"{column} IN ({values})"


class Subscriber(Base):
    __tablename__ = "subscribers"
    # AUTOINCREMENT on SQLite: an erased subscriber's id is never reused, so old
    # tokens (bound to id + address hash) can never match a new row.
    __table_args__ = (
        CheckConstraint(_in("status", SubscriberStatus), name="status"),
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    email: Mapped[str] = mapped_column(String(320), unique=True)
    email_hash: Mapped[str] = mapped_column(String(64), index=True)
    name: Mapped[str | None] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(20), default=SubscriberStatus.PENDING, index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    confirmed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, index=True)  # sequences
    unsubscribed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    paused_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_confirmation_sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    soft_bounces: Mapped[int] = mapped_column(Integer, default=0)
    # The reader's choice on the preferences page: False sends untracked links, no pixel.
    tracking: Mapped[bool] = mapped_column(Boolean, default=True, server_default=true())
    # when the soft bounces since the last delivery happened (ISO 8601, oldest first,
    # at most soft_bounce_limit kept): the window of the soft-bounce rule
    soft_bounce_log: Mapped[list[str] | None] = mapped_column(JSON(none_as_null=True))
    # Sunset: no open or click in the last N campaigns; left out of sends by default
    # (deliverability.sunset).  Cleared by their next open or click.
    inactive_since: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # IANA zone from the sign-up page's browser or an import; NULL: the 'timezone' setting.
    time_zone: Mapped[str | None] = mapped_column(String(64))

    topic_rows: Mapped[list[SubscriberTopic]] = relationship(
        back_populates="subscriber",
        cascade="all, delete-orphan",
        order_by="SubscriberTopic.topic",
        lazy="selectin",
    )

    @property
    def topics(self) -> list[str]:
        """Topic names, sorted (also before a reload, unlike the relationship's order_by)."""
        return sorted(row.topic for row in self.topic_rows)

    def set_topics(self, topics: list[str]) -> None:
        """Replace the topics, dropping blanks and repeats; unchanged rows are kept."""
        wanted = list(dict.fromkeys(t.strip() for t in topics if t.strip()))
        keep = [row for row in self.topic_rows if row.topic in wanted]
        have = {row.topic for row in keep}
        self.topic_rows = keep + [SubscriberTopic(topic=t) for t in wanted if t not in have]


class SubscriberTopic(Base):
    __tablename__ = "subscriber_topics"
    __table_args__ = (UniqueConstraint("subscriber_id", "topic"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    # (subscriber_id, topic) is unique, so that index also serves look-ups by subscriber
    subscriber_id: Mapped[int] = mapped_column(ForeignKey("subscribers.id", ondelete="CASCADE"))
    topic: Mapped[str] = mapped_column(String(100), index=True)
    # When they joined the topic (a sequence trigger); NULL for rows older than 0014.
    created_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=utcnow)

    subscriber: Mapped[Subscriber] = relationship(back_populates="topic_rows")


class ConsentEvent(Base):
    """One thing a person (or an admin, or an import) did about their consent."""

    __tablename__ = "consent_events"
    __table_args__ = (CheckConstraint(_in("kind", ConsentKind), name="kind"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    subscriber_id: Mapped[int | None] = mapped_column(
        ForeignKey("subscribers.id", ondelete="SET NULL"), index=True
    )
    # NULL once anonymised by an erasure (the suppression list keeps the hash)
    email_hash: Mapped[str | None] = mapped_column(String(64), index=True)
    kind: Mapped[str] = mapped_column(String(20))
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    ip: Mapped[str | None] = mapped_column(String(45))
    user_agent: Mapped[str | None] = mapped_column(String(500))
    source: Mapped[str] = mapped_column(String(300))
    consent_text: Mapped[str | None] = mapped_column(Text)
    # what changed (topics chosen, pause, suppression reason); never the address itself
    detail: Mapped[dict[str, Any] | None] = mapped_column(JSON)


class Suppression(Base):
    """An address hash nothing may be sent to (and no import may re-add)."""

    __tablename__ = "suppressions"
    __table_args__ = (CheckConstraint(_in("reason", SuppressionReason), name="reason"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    email_hash: Mapped[str] = mapped_column(String(64), unique=True)
    reason: Mapped[str] = mapped_column(String(20))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    note: Mapped[str | None] = mapped_column(Text)
