"""Subject-line tests: a campaign's 2 or 3 subjects, its sample, its window and its winner.

One row per A/B campaign.  The sample (``share_percent`` of the audience for each
subject) is drawn when the campaign starts; the rest of the audience waits in
``held`` batches until the winner is picked (``decided_at``), then goes out
through the normal ledger with the winning subject.  Each ledger row records the
subject it got (``deliveries.variant``) and whether it was in the sample.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from newsletter.models.base import Base, UTCDateTime, utcnow


class SubjectTest(Base):
    __tablename__ = "subject_tests"

    campaign_id: Mapped[int] = mapped_column(
        ForeignKey("campaigns.id", ondelete="CASCADE"), primary_key=True
    )
    subjects: Mapped[list[str]] = mapped_column(JSON)  # variant n is subjects[n - 1]
    share_percent: Mapped[int] = mapped_column(Integer)  # of the audience, for each subject
    window_seconds: Mapped[int] = mapped_column(Integer)
    metric: Mapped[str] = mapped_column(String(10))  # "clicks" or "opens" (unique, human)
    sample_size: Mapped[int] = mapped_column(Integer, default=0)  # per subject, at the start
    decide_at: Mapped[datetime | None] = mapped_column(UTCDateTime, index=True)
    winner: Mapped[int | None] = mapped_column(Integer)  # 1-based variant
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    note: Mapped[str | None] = mapped_column(Text)  # why this winner, in plain words
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
