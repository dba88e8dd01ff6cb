"""Local wall-clock times to UTC instants, with one deterministic rule for DST edges.

Admins think in the organisation's wall clock ("09:00 in New York"); the
database stores UTC.  Twice a year a wall time is ambiguous or does not exist,
and the answer must not depend on luck, so every conversion goes through
``local_to_utc``, which applies PEP 495's ``fold=0``:

* a time that does not exist (the spring-forward gap, e.g. 02:30 on
  2026-03-08 in New York) is shifted forward by the gap: it fires at 03:30 EDT;
* a time that happens twice (the fall-back overlap, e.g. 01:30 on 2026-11-01)
  means the first of the two instants (01:30 EDT, 05:30 UTC), and fires once.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from newsletter.errors import ValidationError


def zone(name: str) -> ZoneInfo:
    """An IANA time zone, or one clear error naming the bad value."""
    try:
        return ZoneInfo(name.strip())
    except (ZoneInfoNotFoundError, ValueError):
        raise ValidationError(
            f"unknown time zone {name!r} (use an IANA name such as America/New_York)"
        ) from None


def local_to_utc(wall: datetime, tz: tzinfo) -> datetime:
    """A naive wall-clock time in ``tz`` as an aware UTC instant (``fold=0``: see module doc)."""
    return wall.replace(tzinfo=tz, fold=0).astimezone(UTC)


def parse_clock(text: str) -> time:
    """``"09:00"`` or ``"9:00"`` as a time of day (minutes precision: nobody schedules seconds)."""
    hours, sep, minutes = text.strip().partition(":")
    if not (sep and hours.isdigit() and minutes.isdigit() and len(minutes) == 2):
        raise ValidationError(f"invalid time of day {text!r} (expected HH:MM, e.g. 09:00)")
    if int(hours) > 23 or int(minutes) > 59:
        raise ValidationError(f"invalid time of day {text!r} (expected HH:MM, e.g. 09:00)")
    return time(int(hours), int(minutes))


def parse_at(text: str, tz_name: str) -> datetime:
    """``--at "2018-04-03 09:00"`` read in ``tz_name`` (or its own UTC offset) as aware UTC."""
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValidationError(
            f"invalid time {text!r} (expected YYYY-MM-DD HH:MM, e.g. 2018-04-03 09:00)"
        ) from None
    if moment.tzinfo is not None:
        return moment.astimezone(UTC)
    return local_to_utc(moment, zone(tz_name))


def parse_date(text: str) -> date:
    """``--at 2027-03-28`` for a local-time send (a time after the date is ignored)."""
    try:
        return date.fromisoformat(text.strip()[:10])
    except ValueError:
        raise ValidationError(
            f"invalid date {text!r} (expected YYYY-MM-DD, e.g. 2027-03-28)"
        ) from None


def describe(moment: datetime, tz: tzinfo) -> str:
    """``2026-03-03 09:00 EST (14:00 UTC)``: what an admin reads in lists and messages."""
    text = wall(moment, tz)
    if moment.astimezone(tz).utcoffset() == timedelta(0):
        return text
    return f"{text} ({moment.astimezone(UTC):%Y-%m-%d %H:%M} UTC)"


def wall(moment: datetime, tz: tzinfo) -> str:
    """``2026-03-03 09:00 EST``: the short form, for tables."""
    local = moment.astimezone(tz)
    return f"{local:%Y-%m-%d %H:%M} {local.tzname()}"


def humanise(delta: timedelta) -> str:
    """``2h 5m`` / ``40s``: lateness and grace in words an admin can compare."""
    seconds = int(abs(delta.total_seconds()))
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    parts = [(days, "d"), (hours, "h"), (minutes, "m")]
    text = " ".join(f"{value}{unit}" for value, unit in parts if value)
    return text or f"{secs}s"
