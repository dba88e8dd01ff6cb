"""Plain data the engine and the store exchange (no ORM objects cross the seam)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime

from newsletter.transports.base import BatchResult


@dataclass(frozen=True, slots=True)
class Addressee:
    """One ledger row with what is needed to address it."""

    delivery_id: int
    subscriber_id: int
    email: str
    name: str | None
    email_hash: str
    attempts: int = 0  # provider attempts this ledger row has had (give up per recipient)

    @property
    def domain(self) -> str:
        return self.email.rpartition("@")[2].lower()


@dataclass(frozen=True, slots=True)
class ClaimedBatch:
    id: int
    campaign_id: int
    issue_id: int
    segment: frozenset[str]
    attempts: int
    recipients: tuple[Addressee, ...]
    skipped: int = 0


@dataclass(frozen=True, slots=True)
class Recorded:
    """What ``Store.record`` did, so the engine can decide on pausing."""

    accepted: int
    failed: int
    requeued: int
    unknown: int
    batch_done: bool
    failure_run: int = 0  # consecutive failed batches of the campaign, when asked to note it
    next_batch: ClaimedBatch | None = None  # claimed in the same go, when asked to


@dataclass(frozen=True, slots=True)
class Recovery:
    unknown_batches: list[int] = field(default_factory=list)
    released_batches: list[int] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Submission:
    """A batch's provider answer, with the retry time the policy chose for temporaries."""

    result: BatchResult
    retry_at: datetime | None
    give_up: bool  # temporaries have used every attempt: mark them failed
    # Recipients held back by pacing or warm-up (not in ``result``): the batch stays
    # pending until then, and they keep their attempts.
    deferred_until: datetime | None = None


@dataclass(frozen=True, slots=True)
class Reservation:
    """What ``Store.reserve`` granted of a sending domain's warm-up allowance today."""

    granted: int
    day: date  # the plan's local day
    day_number: int  # 1 = the plan's first day
    allowance: int
    sent: int  # today's count including this grant
    resume_at: datetime | None  # when more may go (tomorrow's start), if not all was granted
