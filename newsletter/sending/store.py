"""The narrow storage interface the engine depends on (listmonk's ``Store``)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Protocol

from newsletter.deliverability.warmup import WarmupPlan
from newsletter.sending.types import ClaimedBatch, Recorded, Recovery, Reservation, Submission


class Store(Protocol):
    def recover(self, *, now: datetime) -> Recovery:
        """Batches of dead workers: ``submitting`` -> unknown, ``claimed`` -> pending."""
        ...

    def claim(self, *, now: datetime) -> ClaimedBatch | None:
        """The next due batch of a sending campaign, exclusively; skips unsubscribed recipients."""
        ...

    def mark_submitting(
        self, batch_id: int, *, now: datetime, deferred: Sequence[int] = ()
    ) -> bool:
        """Commit 'maybe sent from here on' before the provider call, if it may still go.

        False if the batch is not this worker's any more (recovered after a
        lost connection), or if its campaign stopped sending (paused,
        cancelled): then the batch is handed back unsent in the same step.
        ``deferred`` ledger rows (held back by pacing or warm-up) are parked
        in the same step: not in flight, so a crash can never make them unknown;
        ``record`` brings them back into the batch.
        """
        ...

    def record(
        self,
        batch: ClaimedBatch,
        submission: Submission,
        *,
        now: datetime,
        failed: bool | None = None,
        finish: bool = False,
        claim_next: bool = False,
    ) -> Recorded:
        """Apply per-recipient outcomes to the ledger and settle the batch.

        With ``failed`` it also does ``note_outcome`` (the run length comes back
        in ``Recorded.failure_run``) and with ``finish`` also ``finish_campaigns``,
        in the same transaction: one round trip per batch instead of three.  With
        ``claim_next`` it then claims the next batch as ``claim`` would (in the
        same statement where it can) and returns it in ``Recorded.next_batch``.
        """
        ...

    def release(self, batch_id: int, *, not_before: datetime | None) -> None:
        """Hand a claimed batch back unsent (shutdown, paused campaign)."""
        ...

    def reserve(
        self, domain: str, wanted: int, *, now: datetime, plan: WarmupPlan, campaign_id: int
    ) -> Reservation:
        """Take up to ``wanted`` of the sending domain's warm-up allowance for today.

        Shared by every worker; a campaign held back until tomorrow says so in its
        status reason, so a half-sent campaign is never silently waiting.
        """
        ...

    def note_outcome(self, campaign_id: int, *, failed: bool) -> int:
        """Track consecutive failed batches; returns the current run length."""
        ...

    def pause(self, campaign_id: int, reason: str) -> None: ...

    def finish_campaigns(self, *, now: datetime) -> list[int]:
        """Mark campaigns with no batch left in flight as sent; returns their ids."""
        ...

    def close(self) -> None: ...
