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
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import ParamSpec, Protocol, TypeVar

from newsletter.deliverability.warmup import WarmupPlan
from newsletter.errors import DatabaseError, NewsletterError, ValidationError
from newsletter.sending.store import Store
from newsletter.sending.types import Addressee, ClaimedBatch, Submission
from newsletter.transports.base import BatchResult, MessageBatch, Messenger, Outcome, uniform

log = logging.getLogger(__name__)

Preparer = Callable[[ClaimedBatch], MessageBatch]


class Pacing(Protocol):
    """Per receiving domain pacing (``deliverability.pacing.Pacer``): who may go now."""

    def admit(
        self, recipients: Sequence[Addressee], now: datetime
    ) -> tuple[list[Addressee], datetime | None]: ...

    def observe(
        self, recipients: Iterable[Addressee], result: BatchResult, now: datetime
    ) -> None: ...


Hook = Callable[[str, ClaimedBatch], None]
P = ParamSpec("P")
R = TypeVar("R")


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
    recover_every_seconds: float = 30.0  # while idle, look for batches of dead workers
    # The database went away (restart, failover, killed connections): retry each store
    # call this many times with capped jittered backoff (about 2.5 minutes in all).
    db_retry_attempts: int = 10
    db_retry_base: float = 0.5
    db_retry_cap: float = 30.0

    def db_backoff(self, attempt: int, rng: random.Random) -> float:
        ceiling = min(self.db_retry_cap, self.db_retry_base * 2.0 ** (attempt - 1))
        return ceiling * (0.5 + rng.random() / 2)

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
    deferred: int = 0  # held back by pacing or warm-up (sent later, not counted as attempts)
    db_retries: int = 0
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
    pacer: Pacing | None = None
    warmup: WarmupPlan | None = None

    def __post_init__(self) -> None:
        self.throttle = Throttle(self.policy.rate_per_second, self.clock, self.sleep)

    # --- loop -------------------------------------------------------------------

    def run(self, stop: threading.Event, *, until: Callable[[], bool] | None = None) -> WorkerStats:
        """Work until ``stop`` is set (SIGTERM) or ``until()`` holds; a batch in hand finishes.

        While running, recording a batch also claims the next one in the same
        store call (``claim_next``), unless ``stop`` is set by then; a batch
        claimed that way and not started when the loop ends is handed back.
        """
        self._db(self.store.recover, now=self.clock())
        last_recovery = self.clock()
        self._stop = stop
        try:
            self._loop(stop, until, last_recovery)
        finally:
            self._stop = None
            if self._next is not None:
                batch, self._next = self._next, None
                self._db(self.store.release, batch.id, not_before=None)
        return self.stats

    def _loop(
        self, stop: threading.Event, until: Callable[[], bool] | None, last_recovery: datetime
    ) -> None:
        while not stop.is_set():
            if self.step():
                continue
            now = self.clock()
            if (now - last_recovery).total_seconds() >= self.policy.recover_every_seconds:
                # Another worker may have died, or a commit's answer been lost, since we
                # started: its in-flight batches would otherwise wait for a restart.
                self._db(self.store.recover, now=now)
                last_recovery = now
            self._db(self.store.finish_campaigns, now=now)
            if until is not None and self._db(until):
                break
            self._idle(stop)

    def _idle(self, stop: threading.Event) -> None:
        """Wait before polling again; on the real clock SIGTERM ends the wait at once."""
        if self.sleep is time.sleep:
            stop.wait(self.policy.idle_poll_seconds)
        else:  # an injected sleep (tests' fake clock) keeps control of time
            self.sleep(self.policy.idle_poll_seconds)

    def step(self) -> bool:
        """Claim and process one batch (or the one claimed with the last record); False if none."""
        batch, self._next = self._next, None
        if batch is None:
            batch = self._db(self.store.claim, now=self.clock())
        if batch is None:
            return False
        self._fire("claimed", batch)
        self.stats.skipped += batch.skipped
        try:
            self.process(batch)
        except BaseException:
            # A bug or an interrupt before submission: hand the batch back unsent.
            if not self._submitted:
                self._db(self.store.release, batch.id, not_before=None)
            raise
        return True

    def _db(self, call: Callable[P, R], *args: P.args, **kwargs: P.kwargs) -> R:
        """A store call, retried with backoff while the database is unavailable.

        Every store call is safe to repeat: state changes are conditional UPDATEs
        and outcomes only ever settle rows still queued.  After the last attempt
        the ``DatabaseError`` propagates and the worker stops; a batch it was
        submitting is then recovered as unknown, never resent.
        """
        attempt = 0
        while True:
            attempt += 1
            try:
                return call(*args, **kwargs)
            except DatabaseError as exc:
                if attempt >= self.policy.db_retry_attempts:
                    raise
                delay = self.policy.db_backoff(attempt, self.rng)
                self.stats.db_retries += 1
                log.warning("%s; retrying in %.1fs (attempt %d)", exc, delay, attempt)
                self.sleep(delay)

    # --- one batch --------------------------------------------------------------

    _submitted: bool = False
    _stop: threading.Event | None = None  # set while ``run`` runs: it may claim ahead
    _next: ClaimedBatch | None = None  # claimed by the last record, not started yet

    def process(self, batch: ClaimedBatch) -> None:
        """Prepare, mark submitting, send, record.

        The campaign was sending when the batch was claimed; whether it still
        is gets checked by ``mark_submitting``, the last step before the
        provider call, so a pause during preparing or throttling holds it back.
        """
        self._submitted = False
        if not batch.recipients:
            self._settle(batch, BatchResult(()))
            return
        batch, deferred, later = self._admit(batch)
        if not batch.recipients:
            # Nothing may go yet (pacing, warm-up): hand it back until the first may.
            self.stats.deferred += len(deferred)
            self._db(self.store.release, batch.id, not_before=later)
            return
        try:
            message_batch = self.prepare(batch)
        except NewsletterError as exc:
            self._db(self.store.release, batch.id, not_before=None)
            self._pause(batch.campaign_id, f"cannot prepare batch {batch.id}: {exc}")
            return
        self.throttle.wait(len(batch.recipients))
        if not self._db(self.store.mark_submitting, batch.id, now=self.clock(), deferred=deferred):
            log.info("batch %s not sent: its campaign stopped, or it was taken over", batch.id)
            return
        self._submitted = True
        self.stats.deferred += len(deferred)
        self._fire("submitting", batch)
        result = self._send(message_batch)
        self._fire("sent", batch)
        if self.pacer is not None:
            self.pacer.observe(batch.recipients, result, self.clock())
        self._settle(batch, result, deferred_until=later if deferred else None)

    def _admit(self, batch: ClaimedBatch) -> tuple[ClaimedBatch, list[int], datetime | None]:
        """The part of the batch that may go now, the ledger ids held back, and until when.

        Pacing decides per receiving domain; then the warm-up allowance (shared
        by every worker: one store call) takes the first of those, which the
        freeze ordered most engaged first.  Without either, the batch as it is.
        """
        if self.pacer is None and self.warmup is None:
            return batch, [], None
        now = self.clock()
        admitted, later = (
            self.pacer.admit(batch.recipients, now)
            if self.pacer is not None
            else (list(batch.recipients), None)
        )
        if self.warmup is not None and admitted:
            granted = self._db(
                self.store.reserve, self.warmup.domain, len(admitted), now=now,
                plan=self.warmup, campaign_id=batch.campaign_id,
            )  # fmt: skip
            if granted.granted < len(admitted):
                log.info(
                    "warm-up day %d for %s: %d of %d allowed today; the rest from %s",
                    granted.day_number, self.warmup.domain, granted.sent, granted.allowance,
                    granted.resume_at,
                )  # fmt: skip
                admitted = admitted[: granted.granted]
                resume = granted.resume_at
                later = resume if later is None or resume is None else max(later, resume)
        if len(admitted) == len(batch.recipients):
            return batch, [], None
        kept = {a.delivery_id for a in admitted}
        deferred = [a.delivery_id for a in batch.recipients if a.delivery_id not in kept]
        return replace(batch, recipients=tuple(admitted)), deferred, later

    def _send(self, message_batch: MessageBatch) -> BatchResult:
        """A messenger returns outcomes; if one raises anyway, the batch may have left: unknown.

        Except ``ValidationError``: messengers raise it for a batch-wide value they
        refuse before sending anything, so the batch stays queued (and the campaign
        pauses with the reason).
        """
        try:
            return self.messenger.send(message_batch)
        except ValidationError as exc:
            # A batch-wide value (sender, subject) refused before anything was sent: keep
            # the recipients queued and pause until an admin fixes it.
            detail = f"not sent: {exc}"
            return uniform(message_batch, Outcome.TEMPORARY, detail, error=f"cannot send: {exc}")
        except Exception as exc:
            log.exception("messenger %s raised", self.messenger.name)
            detail = f"{type(exc).__name__}: {exc}"
            return uniform(message_batch, Outcome.UNKNOWN, detail, error=None)

    def _settle(
        self, batch: ClaimedBatch, result: BatchResult, *, deferred_until: datetime | None = None
    ) -> None:
        now = self.clock()
        submission = self.policy.settle(result, _tries(batch, result), now, self.rng)
        if deferred_until is not None:
            submission = replace(submission, deferred_until=deferred_until)
        accepted = sum(1 for r in result.results if r.outcome is Outcome.ACCEPTED)
        failed = bool(result.results) and accepted == 0 and result.retry_after is None
        # Nothing can pause the campaign after this batch, so the store may record it, note
        # the outcome and finish campaigns in one go; otherwise it finishes after the pause.
        quiet = not failed and not result.error
        ahead = quiet and self._stop is not None and not self._stop.is_set()
        recorded = self._db(
            self.store.record,
            batch,
            submission,
            now=now,
            failed=failed,
            finish=quiet,
            claim_next=ahead,
        )
        self._next = recorded.next_batch
        self.stats.batches += 1
        self.stats.accepted += recorded.accepted
        self.stats.failed += recorded.failed
        self.stats.requeued += recorded.requeued
        self.stats.unknown += recorded.unknown
        run = recorded.failure_run
        if result.error:
            self._pause(batch.campaign_id, result.error)
        elif failed and run >= self.policy.max_consecutive_failures:
            last = next((r.detail for r in result.results if r.detail), "no detail")
            self._pause(
                batch.campaign_id,
                f"paused after {run} consecutive failed batches; last error: {last}",
            )
        if not quiet:
            self._db(self.store.finish_campaigns, now=now)

    def _pause(self, campaign_id: int, reason: str) -> None:
        log.error("pausing campaign %s: %s", campaign_id, reason)
        self.stats.paused.append(reason)
        self._db(self.store.pause, campaign_id, reason)

    def _fire(self, stage: str, batch: ClaimedBatch) -> None:
        if self.hook is not None:
            self.hook(stage, batch)


def _tries(batch: ClaimedBatch, result: BatchResult) -> int:
    """This attempt's number for the batch's temporaries: their own count, not the batch's.

    A batch is claimed again for recipients that pacing or warm-up held back, who
    have not been tried; the most-tried temporary recipient decides back-off and
    giving up.
    """
    temporary = {r.ref for r in result.results if r.outcome is Outcome.TEMPORARY}
    tries = [a.attempts + 1 for a in batch.recipients if str(a.delivery_id) in temporary]
    return max(tries, default=batch.attempts)
