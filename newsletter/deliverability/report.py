"""Deliverability in a campaign's report: which relay carried each batch."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

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
