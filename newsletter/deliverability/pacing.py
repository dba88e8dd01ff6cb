"""Per receiving domain pacing: a rate per domain, and a back-off when a domain says "later".

Big mailbox providers throttle by sending domain and IP: too much too fast
to gmail.com earns 421/451 deferrals and, if ignored, the spam folder.  The
engine asks ``Pacer.admit`` which recipients of a claimed batch may go now:

* a domain with a limit (messages per minute) has a token bucket holding at
  most ``BURST_SECONDS`` of its rate; a recipient whose domain has no token
  left waits;
* a domain that answered a temporary failure (an SMTP 4xx: 421, 450, 451,
  452, greylisting) is backed off, and only that domain: ``backoff`` seconds,
  doubling with each further deferral up to ``MAX_BACKOFF``, reset by the
  next message it accepts.

What waits is not lost and not resent: the engine parks those ledger rows
while the rest of the batch is submitted, then the batch goes back to
pending until the earliest time a waiting domain may go, and later batches
(claimed first: their ``not_before`` is empty) carry the other domains
meanwhile, so one large domain never holds up the rest.  The global rate is
the existing ``rate_limit_per_second`` throttle.  Limits are per worker
process, like that throttle.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from newsletter.config import Settings
from newsletter.sending.types import Addressee
from newsletter.transports.base import BatchResult, Outcome

BURST_SECONDS = 10.0  # a bucket holds this many seconds of its rate
MAX_BACKOFF = 3600.0
_DEFERRAL = re.compile(r"^4\d\d[ -]")  # an SMTP 4xx reply: the receiving domain said later


@dataclass
class _Bucket:
    per_minute: float
    tokens: float
    at: datetime

    @property
    def capacity(self) -> float:
        return max(1.0, self.per_minute * BURST_SECONDS / 60)

    def refill(self, now: datetime) -> None:
        elapsed = max(0.0, (now - self.at).total_seconds())
        self.tokens = min(self.capacity, self.tokens + elapsed * self.per_minute / 60)
        self.at = now

    def next_token(self, now: datetime) -> datetime:
        missing = max(0.0, 1 - self.tokens)
        return now + timedelta(seconds=missing * 60 / self.per_minute)


@dataclass
class _Backoff:
    until: datetime
    seconds: float


@dataclass
class Pacer:
    limits: Mapping[str, float]  # receiving domain -> messages per minute
    backoff: float = 60.0
    _buckets: dict[str, _Bucket] = field(default_factory=dict)
    _backoffs: dict[str, _Backoff] = field(default_factory=dict)

    def admit(
        self, recipients: Sequence[Addressee], now: datetime
    ) -> tuple[list[Addressee], datetime | None]:
        """The recipients that may go now (in order), and when the first of the rest may."""
        if not self.limits and not self._backoffs:
            return list(recipients), None  # nothing to pace: the common case, kept cheap
        admitted: list[Addressee] = []
        waits: list[datetime] = []
        for addressee in recipients:
            wait = self._wait(addressee.domain, now)
            if wait is None:
                admitted.append(addressee)
            else:
                waits.append(wait)
        return admitted, min(waits) if waits else None

    def _wait(self, domain: str, now: datetime) -> datetime | None:
        """None if a message to ``domain`` may go now (and take its token), else when."""
        held = self._backoffs.get(domain)
        if held is not None and held.until > now:
            return held.until
        per_minute = self.limits.get(domain)
        if not per_minute:
            return None
        bucket = self._buckets.get(domain)
        if bucket is None:
            bucket = self._buckets[domain] = _Bucket(per_minute, 0.0, now)
            bucket.tokens = bucket.capacity
        bucket.refill(now)
        if bucket.tokens >= 1:
            bucket.tokens -= 1
            return None
        return bucket.next_token(now)

    def observe(self, recipients: Iterable[Addressee], result: BatchResult, now: datetime) -> None:
        """Back off each domain that deferred a message; release each that accepted one."""
        said_later = any(
            r.outcome is Outcome.TEMPORARY and _DEFERRAL.match(r.detail) for r in result.results
        )
        if not said_later and not self._backoffs:
            return  # nobody backing off, nobody to back off
        domains = {str(a.delivery_id): a.domain for a in recipients}
        deferred: set[str] = set()
        accepted: set[str] = set()
        for item in result.results:
            domain = domains.get(item.ref)
            if domain is None:
                continue
            if item.outcome is Outcome.TEMPORARY and _DEFERRAL.match(item.detail):
                deferred.add(domain)
            elif item.outcome is Outcome.ACCEPTED:
                accepted.add(domain)
        for domain in accepted - deferred:
            self._backoffs.pop(domain, None)
        for domain in deferred:
            previous = self._backoffs.get(domain)
            seconds = min(MAX_BACKOFF, previous.seconds * 2) if previous else self.backoff
            self._backoffs[domain] = _Backoff(now + timedelta(seconds=seconds), seconds)

    def backing_off(self, now: datetime) -> dict[str, datetime]:
        """Domains held back now, and until when (for logs and the admin)."""
        return {d: b.until for d, b in self._backoffs.items() if b.until > now}


def pacer_from(settings: Settings) -> Pacer:
    """Always a pacer: without limits it still backs off a domain that answers 4xx."""
    limits = {domain.lower(): rate for domain, rate in settings.domain_limits.items()}
    return Pacer(limits, backoff=settings.domain_backoff_seconds)
