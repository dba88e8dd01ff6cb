"""Per-IP rate limiting for the public sign-up endpoints.

In-process and approximate on purpose: it throttles one noisy client of one
worker.  The limit that matters for the people being signed up (one
confirmation email per address per hour) lives in the database
(``service.claim_confirmation_slot``) and holds across processes.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from newsletter.errors import NewsletterError


class RateLimitedError(NewsletterError):
    """Too many requests from one client; ``retry_after`` is in seconds."""

    def __init__(self, retry_after: int) -> None:
        super().__init__("too many requests; please wait a few minutes and try again")
        self.retry_after = retry_after


@dataclass(frozen=True, slots=True)
class RateLimits:
    """How many sign-ups one IP may make per window (schools share one IP: be generous)."""

    per_ip: int = 10
    window_seconds: float = 600.0


class SlidingWindowLimiter:
    """At most ``limit`` hits per key in any ``window`` seconds."""

    MAX_KEYS = 10_000  # forget idle clients beyond this many, so memory stays bounded

    def __init__(
        self, limit: int, window: float, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.limit = limit
        self.window = window
        self.clock = clock
        self._hits: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def hit(self, key: str) -> None:
        """Count one request for ``key``, or raise ``RateLimitedError`` if over the limit."""
        now = self.clock()
        with self._lock:
            hits = self._hits.setdefault(key, deque())
            while hits and hits[0] <= now - self.window:
                hits.popleft()
            if len(hits) >= self.limit:
                raise RateLimitedError(retry_after=max(1, int(hits[0] + self.window - now) + 1))
            hits.append(now)
            if len(self._hits) > self.MAX_KEYS:
                self._forget_idle(now)

    def _forget_idle(self, now: float) -> None:
        idle = [k for k, hits in self._hits.items() if not hits or hits[-1] <= now - self.window]
        for key in idle:
            del self._hits[key]
