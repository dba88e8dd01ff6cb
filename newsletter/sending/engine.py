"""The send loop: claim a batch, prepare it, submit it, record what happened.

It touches neither SQL nor HTTP: a ``Store`` owns persistence, a ``Messenger``
owns the wire, a ``Preparer`` turns a claimed batch into a ``MessageBatch``.
Time, sleep and randomness are injected so tests drive backoff and rate limits
with a fake clock instead of real waiting.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from newsletter.errors import NewsletterError
from newsletter.models.sending import CampaignStatus
from newsletter.sending.store import Store
from newsletter.sending.types import ClaimedBatch, Submission
from newsletter.transports.base import BatchResult, MessageBatch, Messenger, Outcome, uniform

log = logging.getLogger(__name__)

Preparer = Callable[[ClaimedBatch], MessageBatch]
Hook = Callable[[str, ClaimedBatch], None]


def system_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class Policy:
    """Retry, backoff, throttling and pausing rules."""

    max_attempts: int = 8
    backoff_base: float = 2.0
    backoff_cap: float = 900.0
    max_consecutive_failures: int = 5
    rate_per_second: float | None = None
    idle_poll_seconds: float = 1.0

    def settle(
        self, result: BatchResult, attempts: int, now: datetime, rng: random.Random
    ) -> Submission:
        """When to retry temporaries: the provider's reset time, else capped jittered backoff."""
        if not result.by_outcome(Outcome.TEMPORARY):
            return Submission(result, retry_at=None, give_up=False)
        if result.retry_after is not None:
            return Submission(result, now + timedelta(seconds=result.retry_after), give_up=False)
        if attempts >= self.max_attempts:
            return Submission(result, retry_at=None, give_up=True)
        ceiling = min(self.backoff_cap, self.backoff_base * 2 ** (attempts - 1))
        delay = ceiling * (0.5 + rng.random() / 2)
        return Submission(result, now + timedelta(seconds=delay), give_up=False)


@dataclass
class Throttle:
    """A token bucket: at most ``rate`` messages per second, bursts of one batch."""

    rate: float | None
    clock: Callable[[], datetime]
    sleep: Callable[[float], None]
    _available_at: datetime | None = None

    def wait(self, messages: int) -> None:
        if not self.rate or messages <= 0:
            return
        now = self.clock()
        if self._available_at and self._available_at > now:
            self.sleep((self._available_at - now).total_seconds())
            now = self._available_at
        self._available_at = now + timedelta(seconds=messages / self.rate)


@dataclass
class WorkerStats:
    batches: int = 0
    accepted: int = 0
    failed: int = 0
    requeued: int = 0
    unknown: int = 0
    skipped: int = 0
    paused: list[str] = field(default_factory=list)


@dataclass
class Worker:
    store: Store
    messenger: Messenger
    prepare: Preparer
    policy: Policy = field(default_factory=Policy)
    clock: Callable[[], datetime] = system_now
    sleep: Callable[[float], None] = time.sleep
    rng: random.Random = field(default_factory=random.Random)
    hook: Hook | None = None
    stats: WorkerStats = field(default_factory=WorkerStats)

    def __post_init__(self) -> None:
        self.throttle = Throttle(self.policy.rate_per_second, self.clock, self.sleep)

    # --- loop -------------------------------------------------------------------

    def run(self, stop: threading.Event, *, until: Callable[[], bool] | None = None) -> WorkerStats:
        """Work until ``stop`` is set (SIGTERM) or ``until()`` holds; a batch in hand finishes."""
        self.store.recover(now=self.clock())
        while not stop.is_set():
            if self.step():
                continue
            self.store.finish_campaigns(now=self.clock())
            if until is not None and until():
                break
            self.sleep(self.policy.idle_poll_seconds)
        return self.stats

    def step(self) -> bool:
        """Claim and process one batch; False if nothing was due."""
        batch = self.store.claim(now=self.clock())
        if batch is None:
            return False
        self._fire("claimed", batch)
        self.stats.skipped += batch.skipped
        try:
            self.process(batch)
        except BaseException:
            # A bug or an interrupt before submission: hand the batch back unsent.
            if not self._submitted:
                self.store.release(batch.id, not_before=None)
            raise
        return True

    # --- one batch --------------------------------------------------------------

    _submitted: bool = False

    def process(self, batch: ClaimedBatch) -> None:
        self._submitted = False
        status = self.store.campaign_status(batch.campaign_id)
        if status != CampaignStatus.SENDING:
            self.store.release(batch.id, not_before=None)
            return
        if not batch.recipients:
            self._settle(batch, BatchResult(()))
            return
        try:
            message_batch = self.prepare(batch)
        except NewsletterError as exc:
            self.store.release(batch.id, not_before=None)
            self._pause(batch.campaign_id, f"cannot prepare batch {batch.id}: {exc}")
            return
        self.throttle.wait(len(batch.recipients))
        if not self.store.mark_submitting(batch.id, now=self.clock()):
            log.warning("batch %s was taken from this worker; not sending it", batch.id)
            return
        self._submitted = True
        self._fire("submitting", batch)
        result = self._send(message_batch)
        self._fire("sent", batch)
        self._settle(batch, result)

    def _send(self, message_batch: MessageBatch) -> BatchResult:
        """A messenger returns outcomes; if one raises anyway, the batch may have left: unknown."""
        try:
            return self.messenger.send(message_batch)
        except Exception as exc:
            log.exception("messenger %s raised", self.messenger.name)
            detail = f"{type(exc).__name__}: {exc}"
            return uniform(message_batch, Outcome.UNKNOWN, detail, error=None)

    def _settle(self, batch: ClaimedBatch, result: BatchResult) -> None:
        now = self.clock()
        submission = self.policy.settle(result, batch.attempts, now, self.rng)
        recorded = self.store.record(batch, submission, now=now)
        self.stats.batches += 1
        self.stats.accepted += recorded.accepted
        self.stats.failed += recorded.failed
        self.stats.requeued += recorded.requeued
        self.stats.unknown += recorded.unknown
        failed = bool(result.results) and recorded.accepted == 0 and result.retry_after is None
        run = self.store.note_outcome(batch.campaign_id, failed=failed)
        if result.error:
            self._pause(batch.campaign_id, result.error)
        elif failed and run >= self.policy.max_consecutive_failures:
            last = next((r.detail for r in result.results if r.detail), "no detail")
            self._pause(
                batch.campaign_id,
                f"paused after {run} consecutive failed batches; last error: {last}",
            )
        self.store.finish_campaigns(now=now)

    def _pause(self, campaign_id: int, reason: str) -> None:
        log.error("pausing campaign %s: %s", campaign_id, reason)
        self.stats.paused.append(reason)
        self.store.pause(campaign_id, reason)

    def _fire(self, stage: str, batch: ClaimedBatch) -> None:
        if self.hook is not None:
            self.hook(stage, batch)
