"""Warm-up: a new sending domain's daily allowance, growing by a factor each day.

Receivers judge a domain by its history; a domain with none that sends
5,000 messages on its first day looks like a spammer.  The plan allows
``first_day`` messages on day 1 and ``factor`` times more each day after
(200, 400, 800, ... by default).  Days are the organisation's local days.
The count lives in the database (``warmup_days``, through ``Store.reserve``)
so every worker draws on one allowance, and the first day with a row is the
plan's day 1 unless ``warmup_start`` says otherwise.  What does not fit today
waits for tomorrow's start in its batch, most engaged subscribers first
(the freeze orders a warming campaign by ``engagement``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from newsletter.config import Settings

MAX_ALLOWANCE = 10**9


@dataclass(frozen=True)
class WarmupPlan:
    domain: str
    first_day: int = 200
    factor: float = 2.0
    timezone: str = "UTC"
    start: date | None = None  # day 1; None: the first day the domain sends

    def local_day(self, now: datetime) -> date:
        return now.astimezone(ZoneInfo(self.timezone)).date()

    def day_number(self, today: date, first: date | None) -> int:
        start = self.start or first or today
        return max(1, (today - start).days + 1)

    def allowance(self, day_number: int) -> int:
        value = self.first_day * self.factor ** (day_number - 1)
        return int(min(value, MAX_ALLOWANCE))

    def next_day(self, now: datetime) -> datetime:
        """The start of tomorrow (local), in UTC: when what did not fit today may go."""
        zone = ZoneInfo(self.timezone)
        tomorrow = self.local_day(now) + timedelta(days=1)
        return datetime.combine(tomorrow, time(0, 0), tzinfo=zone).astimezone(UTC)

    def schedule(self, first: date | None, today: date, days: int = 10) -> list[tuple[date, int]]:
        """(day, allowance) from day 1 for ``days`` days: what the admin page shows."""
        start = self.start or first or today
        return [(start + timedelta(days=n), self.allowance(n + 1)) for n in range(days)]


def plan_from(settings: Settings) -> WarmupPlan | None:
    if not settings.warmup:
        return None
    return WarmupPlan(
        domain=settings.from_domain,
        first_day=settings.warmup_first_day,
        factor=settings.warmup_factor,
        timezone=settings.timezone,
        start=settings.warmup_start,
    )
