"""Deliverability state: how much each sending domain has sent per day of its warm-up."""

from __future__ import annotations

from datetime import date

from sqlalchemy import Date, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from newsletter.models.base import Base


class WarmupDay(Base):
    """Messages handed to the transport from one sending domain on one (local) day.

    Counted when a batch is about to go (``SqlStore.reserve``), so every worker
    draws on one allowance; the first row of a domain is the first day of its plan.
    """

    __tablename__ = "warmup_days"

    domain: Mapped[str] = mapped_column(String(255), primary_key=True)
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    sent: Mapped[int] = mapped_column(Integer, default=0)
