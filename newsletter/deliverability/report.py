"""Deliverability in reports: which relay carried each batch, where the warm-up stands."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from newsletter.deliverability.warmup import WarmupPlan
from newsletter.models.deliverability import WarmupDay
from newsletter.models.sending import SendBatch


def batch_rows(session: Session, campaign_id: int) -> list[dict[str, Any]]:
    """Every batch of the campaign in order, with its state, size and relay."""
    rows = session.execute(
        select(
            SendBatch.seq, SendBatch.status, SendBatch.size, SendBatch.attempts,
            SendBatch.relay, SendBatch.error,
        )
        .where(SendBatch.campaign_id == campaign_id)
        .order_by(SendBatch.seq)
    ).all()  # fmt: skip
    return [
        {"seq": seq, "status": status, "size": size, "attempts": attempts, "relay": relay,
         "error": error}
        for seq, status, size, attempts, relay, error in rows
    ]  # fmt: skip


def relay_totals(session: Session, campaign_id: int) -> list[dict[str, Any]]:
    """Batches and recipients per relay (a failed-over batch counts under "a → b")."""
    rows = session.execute(
        select(SendBatch.relay, func.count(), func.coalesce(func.sum(SendBatch.size), 0))
        .where(SendBatch.campaign_id == campaign_id, SendBatch.relay.is_not(None))
        .group_by(SendBatch.relay)
        .order_by(SendBatch.relay)
    ).all()
    return [{"relay": relay, "batches": int(n), "recipients": int(size)} for relay, n, size in rows]


@dataclass(frozen=True)
class WarmupState:
    domain: str
    day_number: int
    allowance: int
    sent_today: int
    days: list[tuple[date, int, int | None]]  # (day, allowance, sent; None for days ahead)


def warmup_state(session: Session, plan: WarmupPlan, now: datetime, ahead: int = 5) -> WarmupState:
    """The plan's days so far with what each sent, today's standing, and the days ahead."""
    rows = session.execute(
        select(WarmupDay.day, WarmupDay.sent).where(WarmupDay.domain == plan.domain)
    ).all()
    sent: dict[date, int] = {day: count for day, count in rows}
    today = plan.local_day(now)
    first = min(sent) if sent else None
    number = plan.day_number(today, first)
    days = [
        (day, allowance, sent.get(day, 0) if day <= today else None)
        for day, allowance in plan.schedule(first, today, days=number + ahead)
    ]
    return WarmupState(plan.domain, number, plan.allowance(number), sent.get(today, 0), days)
