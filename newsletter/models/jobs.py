"""Background jobs: long work started from the admin (imports) and watched through a progress bar.

A row is the job's whole public state: the admin page polls it, the runner
writes it, and a job whose runner died is recognised by a heartbeat
(``updated_at``) that stopped, so it is marked failed instead of "running"
forever.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, CheckConstraint, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from newsletter.models.base import Base, UTCDateTime, utcnow


class JobState(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"


class Job(Base):
    __tablename__ = "jobs"
    __table_args__ = (
        CheckConstraint("state IN ('queued', 'running', 'done', 'failed')", name="state"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(40))  # "import:resources", "import:subscribers"
    state: Mapped[str] = mapped_column(String(20), default=JobState.QUEUED, index=True)
    owner: Mapped[str] = mapped_column(String(320))  # who started it (the admin's address)
    label: Mapped[str] = mapped_column(String(300), default="")  # the uploaded file names
    total: Mapped[int | None] = mapped_column(Integer)  # None until known (still parsing)
    done: Mapped[int] = mapped_column(Integer, default=0)
    report: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
