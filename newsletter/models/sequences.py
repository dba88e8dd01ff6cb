"""Welcome and drip sequences: a trigger, ordered steps, and who is enrolled where.

Each step owns a hidden campaign (``campaigns.sequence_id`` set): its ledger
rows are ordinary ``deliveries`` rows, so the unique (campaign, subscriber)
constraint is the "subscriber + step, exactly once" rule, and sending,
crash-safety, tracking and suppressions are the campaigns' own.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from newsletter.models.base import Base, UTCDateTime, utcnow


class SequenceStatus(StrEnum):
    ACTIVE = "active"
    PAUSED = "paused"


class EnrolmentStatus(StrEnum):
    ACTIVE = "active"  # steps still to come
    STOPPED = "stopped"  # unsubscribed, suppressed or gone: nothing more is sent
    DONE = "done"  # every step has its ledger row


class Sequence(Base):
    __tablename__ = "sequences"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    # "confirmed", "topic" (trigger_value: the topic) or "date" (trigger_value: the field)
    trigger: Mapped[str] = mapped_column(String(20))
    trigger_value: Mapped[str | None] = mapped_column(String(100))
    status: Mapped[str] = mapped_column(String(20), default=SequenceStatus.ACTIVE)
    # Only triggers at or after this instant enrol (not the whole existing list).
    starts_from: Mapped[datetime] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    ticked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class SequenceStep(Base):
    __tablename__ = "sequence_steps"
    __table_args__ = (UniqueConstraint("sequence_id", "position"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    sequence_id: Mapped[int] = mapped_column(ForeignKey("sequences.id", ondelete="CASCADE"))
    position: Mapped[int] = mapped_column(Integer)  # 1, 2, ...
    issue_id: Mapped[int] = mapped_column(ForeignKey("issues.id", ondelete="RESTRICT"))
    # after the previous step (the first: after the trigger)
    delay_minutes: Mapped[int] = mapped_column(Integer, default=0)
    campaign_id: Mapped[int] = mapped_column(Integer, unique=True)  # this step's ledger


class SequenceEnrolment(Base):
    __tablename__ = "sequence_enrolments"
    __table_args__ = (UniqueConstraint("sequence_id", "subscriber_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    sequence_id: Mapped[int] = mapped_column(ForeignKey("sequences.id", ondelete="CASCADE"))
    subscriber_id: Mapped[int] = mapped_column(
        ForeignKey("subscribers.id", ondelete="CASCADE"), index=True
    )
    triggered_at: Mapped[datetime] = mapped_column(UTCDateTime)
    enrolled_at: Mapped[datetime] = mapped_column(UTCDateTime)
    status: Mapped[str] = mapped_column(String(20), default=EnrolmentStatus.ACTIVE)
    stopped_reason: Mapped[str | None] = mapped_column(Text)
