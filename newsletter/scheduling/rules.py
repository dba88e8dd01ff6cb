"""Recurring rules: parse what an admin types, store it as JSON, find the next occurrence.

Stored forms (``schedules.rule``)::

    {"kind": "monthly_weekday", "weekday": "tue", "nth": 1, "time": "09:00"}   # nth -1 = last
    {"kind": "weekly", "weekday": "mon", "time": "08:00"}
    {"kind": "cron", "expr": "0 9 * * 1"}   # minute hour day-of-month month day-of-week

Occurrences are computed here rather than by APScheduler's ``CronTrigger``
because the wall clock must win across DST (a 09:00 rule stays 09:00 local)
and the DST edges must resolve one documented way (``times.local_to_utc``);
``CronTrigger`` 3.x skips nonexistent times and can step backwards inside the
fall-back hour.  The walk is day by day in the rule's zone: each day the rule
names yields wall times, each wall time becomes one UTC instant.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any, Protocol
from zoneinfo import ZoneInfo

from newsletter.errors import ValidationError
from newsletter.scheduling.times import local_to_utc, parse_clock

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
DAY_NAMES = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
ORDINALS = {"first": 1, "1st": 1, "second": 2, "2nd": 2, "third": 3, "3rd": 3}
ORDINALS |= {"fourth": 4, "4th": 4, "last": -1}
ORDINAL_WORDS = {1: "first", 2: "second", 3: "third", 4: "fourth", -1: "last"}
FILLER = {"of", "the", "at", "on", "each", "month", "monthly", "in", "every"}
HORIZON_DAYS = 366 * 8  # long enough for "0 9 29 2 *" (Feb 29) to come round
CRON_TOKEN = re.compile(r"^[0-9a-z*,/-]+$")
MONTHS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
CRON_DAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")


class Rule(Protocol):
    """What the walk needs from a rule: the wall times (sorted) it names on a local date."""

    def times_on(self, day: date) -> tuple[time, ...]: ...

    def as_dict(self) -> dict[str, Any]: ...

    def describe(self) -> str: ...


@dataclass(frozen=True)
class MonthlyWeekday:
    """The nth (or last) given weekday of every month at a wall time."""

    weekday: int  # Monday = 0
    nth: int  # 1..4, or -1 for the last
    at: time

    def times_on(self, day: date) -> tuple[time, ...]:
        if day.weekday() != self.weekday:
            return ()
        if self.nth == -1:
            hit = (day + timedelta(days=7)).month != day.month
        else:
            hit = (day.day - 1) // 7 + 1 == self.nth
        return (self.at,) if hit else ()

    def as_dict(self) -> dict[str, Any]:
        return {
            "kind": "monthly_weekday",
            "weekday": WEEKDAYS[self.weekday],
            "nth": self.nth,
            "time": f"{self.at:%H:%M}",
        }

    def describe(self) -> str:
        ordinal = ORDINAL_WORDS[self.nth]
        return f"{ordinal} {DAY_NAMES[self.weekday]} of every month at {self.at:%H:%M}"


@dataclass(frozen=True)
class Weekly:
    """Every given weekday at a wall time."""

    weekday: int
    at: time

    def times_on(self, day: date) -> tuple[time, ...]:
        return (self.at,) if day.weekday() == self.weekday else ()

    def as_dict(self) -> dict[str, Any]:
        return {"kind": "weekly", "weekday": WEEKDAYS[self.weekday], "time": f"{self.at:%H:%M}"}

    def describe(self) -> str:
        return f"every {DAY_NAMES[self.weekday]} at {self.at:%H:%M}"


@dataclass(frozen=True)
class Cron:
    """A five-field crontab line (Vixie semantics: restricted day-of-month OR day-of-week)."""

    expr: str
    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]  # Sunday = 0, as in cron
    any_day: bool  # day-of-month field is "*"
    any_weekday: bool

    def _day_matches(self, day: date) -> bool:
        if day.month not in self.months:
            return False
        dom = day.day in self.days
        dow = (day.weekday() + 1) % 7 in self.weekdays
        return dom and dow if self.any_day or self.any_weekday else dom or dow

    def times_on(self, day: date) -> tuple[time, ...]:
        if not self._day_matches(day):
            return ()
        return tuple(time(h, m) for h in sorted(self.hours) for m in sorted(self.minutes))

    def as_dict(self) -> dict[str, Any]:
        return {"kind": "cron", "expr": self.expr}

    def describe(self) -> str:
        return f"cron '{self.expr}'"


# --- occurrences -------------------------------------------------------------------


def _walk(rule: Rule, tz: ZoneInfo, start: date, step: int) -> Iterator[datetime]:
    """Instants the rule names, day by day from ``start`` forwards (+1) or backwards (-1)."""
    for offset in range(HORIZON_DAYS):
        day = start + timedelta(days=offset * step)
        times = rule.times_on(day)
        for at in times if step > 0 else reversed(times):
            yield local_to_utc(datetime.combine(day, at), tz)


def next_after(rule: Rule, tz: ZoneInfo, after: datetime) -> datetime | None:
    """The first occurrence strictly after ``after`` (None if the rule never fires)."""
    start = after.astimezone(tz).date() - timedelta(days=1)
    return next((t for t in _walk(rule, tz, start, 1) if t > after), None)


def latest_at_or_before(rule: Rule, tz: ZoneInfo, moment: datetime) -> datetime | None:
    """The last occurrence at or before ``moment``: what catching up after downtime sends."""
    start = moment.astimezone(tz).date() + timedelta(days=1)
    return next((t for t in _walk(rule, tz, start, -1) if t <= moment), None)


# --- parsing -----------------------------------------------------------------------


def load_rule(data: dict[str, Any]) -> Rule:
    """A stored (or typed-in JSON) rule, validated."""
    kind = data.get("kind")
    try:
        if kind == "monthly_weekday":
            nth = int(data.get("nth", 1))
            if nth not in ORDINAL_WORDS:
                raise ValidationError(f"nth must be 1-4 or -1 (last), not {nth}")
            return MonthlyWeekday(_weekday(str(data["weekday"])), nth, parse_clock(data["time"]))
        if kind == "weekly":
            return Weekly(_weekday(str(data["weekday"])), parse_clock(data["time"]))
        if kind == "cron":
            return parse_cron(str(data["expr"]))
    except KeyError as exc:
        raise ValidationError(f"rule {kind!r} needs {exc.args[0]!r}") from None
    raise ValidationError(f"unknown rule kind {kind!r} (monthly_weekday, weekly or cron)")


def parse_rule(text: str) -> Rule:
    """``first tuesday 09:00``, ``last friday of every month at 17:30``, ``every monday 08:00``,
    a crontab line (``0 9 * * 1``, optionally prefixed ``cron:``) or a JSON rule."""
    raw = text.strip()
    if raw.startswith("{"):
        try:
            data = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise ValidationError(f"invalid JSON rule: {exc.msg}") from None
        if not isinstance(data, dict):
            raise ValidationError("a JSON rule must be an object")
        return load_rule(data)
    if raw.lower().startswith("cron:"):
        return parse_cron(raw[5:])
    fields = raw.lower().split()
    if len(fields) == 5 and all(CRON_TOKEN.match(f) for f in fields) and fields[0] not in ORDINALS:
        return parse_cron(raw)
    return _parse_words(raw)


def _parse_words(raw: str) -> Rule:
    words = re.findall(r"[a-z0-9:]+", raw.lower())
    weekly = "every" in words and not any(w in ORDINALS for w in words)
    words = [w for w in words if w not in FILLER]
    usage = (
        f"cannot read rule {raw!r}: try 'first tuesday 09:00', 'last friday 17:30', "
        "'every monday 08:00' or a crontab line such as '0 9 * * 1'"
    )
    if weekly and len(words) == 2:
        return Weekly(_weekday(words[0]), parse_clock(words[1]))
    if len(words) == 3 and words[0] in ORDINALS:
        return MonthlyWeekday(_weekday(words[1]), ORDINALS[words[0]], parse_clock(words[2]))
    raise ValidationError(usage)


def _weekday(word: str) -> int:
    key = word.strip().lower()
    for index, short in enumerate(WEEKDAYS):
        if len(key) >= 3 and DAY_NAMES[index].lower().startswith(key):
            return index
        if key == short:
            return index
    raise ValidationError(f"unknown weekday {word!r}")


def parse_cron(expr: str) -> Cron:
    """Five crontab fields: numbers, ``*``, ranges ``a-b``, steps ``/n``, lists, names."""
    fields = expr.lower().split()
    if len(fields) != 5:
        raise ValidationError(
            f"a cron rule has 5 fields (minute hour day month weekday), got {expr!r}"
        )
    minute, hour, dom, month, dow = fields
    return Cron(
        expr=" ".join(fields),
        minutes=_cron_field(minute, 0, 59, (), "minute"),
        hours=_cron_field(hour, 0, 23, (), "hour"),
        days=_cron_field(dom, 1, 31, (), "day of month"),
        months=_cron_field(month, 1, 12, MONTHS, "month"),
        weekdays=frozenset(d % 7 for d in _cron_field(dow, 0, 7, CRON_DAYS, "day of week")),
        any_day=dom.startswith("*"),
        any_weekday=dow.startswith("*"),
    )


def _cron_field(text: str, lo: int, hi: int, names: tuple[str, ...], what: str) -> frozenset[int]:
    values: set[int] = set()
    for part in text.split(","):
        base, slash, step_text = part.partition("/")
        step = _cron_number(step_text, 1, hi or 1, (), what) if slash else 1
        if base == "*":
            first, last = lo, hi
        elif "-" in base:
            a, _, b = base.partition("-")
            first, last = _cron_number(a, lo, hi, names, what), _cron_number(b, lo, hi, names, what)
        else:
            first = _cron_number(base, lo, hi, names, what)
            last = hi if slash else first
        if first > last:
            raise ValidationError(f"cron {what} range {base!r} runs backwards")
        values.update(range(first, last + 1, step))
    return frozenset(values)


def _cron_number(text: str, lo: int, hi: int, names: tuple[str, ...], what: str) -> int:
    if text in names:
        return names.index(text) + (1 if names is MONTHS else 0)
    if not text.isdigit() or not lo <= int(text) <= hi:
        raise ValidationError(f"invalid cron {what} {text!r} (allowed {lo}-{hi})")
    return int(text)
