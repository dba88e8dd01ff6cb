"""Recurring rules and local times: parsing, next occurrences, and the DST edges (no database)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from newsletter.errors import ValidationError
from newsletter.scheduling.rules import latest_at_or_before, next_after, parse_rule
from newsletter.scheduling.times import describe, local_to_utc, parse_at, zone

NY = zone("America/New_York")


def utc(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0
) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


def occurrences(
    text: str, after: datetime, count: int, tz: str = "America/New_York"
) -> list[datetime]:
    rule, found = parse_rule(text), []
    for _ in range(count):
        moment = next_after(rule, zone(tz), after)
        assert moment is not None
        found.append(moment)
        after = moment
    return found


@pytest.mark.parametrize(
    ("text", "stored"),
    [
        (
            "first tuesday 09:00",
            {"kind": "monthly_weekday", "weekday": "tue", "nth": 1, "time": "09:00"},
        ),
        (
            "First Tuesday of every month at 9:00",
            {"kind": "monthly_weekday", "weekday": "tue", "nth": 1, "time": "09:00"},
        ),
        (
            "last fri 17:30",
            {"kind": "monthly_weekday", "weekday": "fri", "nth": -1, "time": "17:30"},
        ),
        (
            "2nd wednesday at 08:15",
            {"kind": "monthly_weekday", "weekday": "wed", "nth": 2, "time": "08:15"},
        ),
        ("every monday 08:00", {"kind": "weekly", "weekday": "mon", "time": "08:00"}),
        ("0 9 * * 1", {"kind": "cron", "expr": "0 9 * * 1"}),
        ("cron: 0 9 1-7 * tue", {"kind": "cron", "expr": "0 9 1-7 * tue"}),
        (
            '{"kind": "weekly", "weekday": "sun", "time": "02:30"}',
            {"kind": "weekly", "weekday": "sun", "time": "02:30"},
        ),
    ],
)
def test_rules_parse_to_their_stored_form(text: str, stored: dict[str, object]) -> None:
    assert parse_rule(text).as_dict() == stored


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("fifth tuesday 09:00", "cannot read rule"),
        ("first tuesday 25:00", "invalid time of day"),
        ("first funday 09:00", "unknown weekday"),
        ("61 9 * * *", "invalid cron minute"),
        ("0 9 * *", "cannot read rule"),
        ("cron: 0 9 * *", "5 fields"),
        ('{"kind": "yearly"}', "unknown rule kind"),
        ('{"kind": "weekly", "weekday": "mon"}', "needs 'time'"),
    ],
)
def test_bad_rules_fail_with_one_clear_message(text: str, needle: str) -> None:
    with pytest.raises(ValidationError, match=needle):
        parse_rule(text)


def test_first_tuesday_9am_new_york_stays_9am_across_both_dst_changes() -> None:
    spring = occurrences("first tuesday 09:00", utc(2026, 2, 15), 2)
    autumn = occurrences("first tuesday 09:00", utc(2026, 9, 15), 2)
    # March 3 is still EST (DST starts March 8); April 7 is EDT.
    assert spring == [utc(2026, 3, 3, 14, 0), utc(2026, 4, 7, 13, 0)]
    # October 6 is EDT; November 3 is EST again (DST ended November 1).
    assert autumn == [utc(2026, 10, 6, 13, 0), utc(2026, 11, 3, 14, 0)]
    for moment in spring + autumn:
        local = moment.astimezone(NY)
        assert (local.hour, local.minute, local.weekday(), local.day <= 7) == (9, 0, 1, True)


def test_last_friday_and_cron_rules() -> None:
    assert occurrences("last friday 17:30", utc(2026, 1, 1), 3) == [
        utc(2026, 1, 30, 22, 30), utc(2026, 2, 27, 22, 30), utc(2026, 3, 27, 21, 30),
    ]  # fmt: skip
    assert occurrences("0 9 * * mon", utc(2026, 3, 1), 2) == [
        utc(2026, 3, 2, 14, 0), utc(2026, 3, 9, 13, 0),
    ]  # fmt: skip
    # Vixie semantics: day-of-month and day-of-week both restricted means either.
    assert occurrences("0 9 15 * fri", utc(2026, 5, 11), 3, tz="UTC") == [
        utc(2026, 5, 15, 9), utc(2026, 5, 22, 9), utc(2026, 5, 29, 9),
    ]  # fmt: skip


def test_a_nonexistent_local_time_moves_forward_by_the_gap() -> None:
    # 02:30 on 2026-03-08 does not exist in New York: it fires at 03:30 EDT, not never.
    weekly = occurrences("every sunday 02:30", utc(2026, 3, 2), 2)
    daily = occurrences("30 2 * * *", utc(2026, 3, 7, 12), 2)
    assert weekly == [utc(2026, 3, 8, 7, 30), utc(2026, 3, 15, 6, 30)]
    assert daily == [utc(2026, 3, 8, 7, 30), utc(2026, 3, 9, 6, 30)]
    assert f"{weekly[0].astimezone(NY):%H:%M %Z}" == "03:30 EDT"


def test_an_ambiguous_local_time_fires_once_at_the_first_instant() -> None:
    # 01:30 on 2026-11-01 happens twice in New York: the EDT one (05:30 UTC), once.
    daily = occurrences("30 1 * * *", utc(2026, 10, 31, 12), 3)
    assert daily == [utc(2026, 11, 1, 5, 30), utc(2026, 11, 2, 6, 30), utc(2026, 11, 3, 6, 30)]


def test_latest_at_or_before_finds_the_occurrence_to_catch_up() -> None:
    rule = parse_rule("first tuesday 09:00")
    assert latest_at_or_before(rule, NY, utc(2026, 6, 20)) == utc(2026, 6, 2, 13, 0)
    assert latest_at_or_before(rule, NY, utc(2026, 6, 2, 13, 0)) == utc(2026, 6, 2, 13, 0)
    assert latest_at_or_before(rule, NY, utc(2026, 6, 2, 12, 59)) == utc(2026, 5, 5, 13, 0)


def test_a_rule_that_never_fires_gives_none() -> None:
    assert next_after(parse_rule("0 9 31 2 *"), NY, utc(2026, 1, 1)) is None


@settings(max_examples=200, deadline=None)
@given(
    after=st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2060, 1, 1)),
    zone_name=st.sampled_from(["America/New_York", "Europe/London", "Australia/Sydney", "UTC"]),
)
def test_monthly_occurrences_are_strictly_later_and_keep_the_wall_clock(
    after: datetime, zone_name: str
) -> None:
    tz = zone(zone_name)
    moment = next_after(parse_rule("first tuesday 09:00"), tz, after.replace(tzinfo=UTC))
    assert moment is not None and moment > after.replace(tzinfo=UTC)
    assert moment - after.replace(tzinfo=UTC) <= timedelta(days=36)
    local = moment.astimezone(tz)
    assert (local.hour, local.minute, local.weekday()) == (9, 0, 1) and local.day <= 7


def test_parse_at_reads_the_wall_clock_in_the_given_zone() -> None:
    assert parse_at("2018-04-03 09:00", "America/New_York") == utc(2018, 4, 3, 13, 0)
    assert parse_at("2018-01-03T09:00", "America/New_York") == utc(2018, 1, 3, 14, 0)
    assert parse_at("2018-04-03 09:00+02:00", "America/New_York") == utc(2018, 4, 3, 7, 0)
    assert parse_at("2026-03-08 02:30", "America/New_York") == utc(2026, 3, 8, 7, 30)
    assert local_to_utc(datetime(2026, 11, 1, 1, 30), NY) == utc(2026, 11, 1, 5, 30)
    assert describe(utc(2026, 3, 3, 14), NY) == "2026-03-03 09:00 EST (2026-03-03 14:00 UTC)"
    with pytest.raises(ValidationError, match="unknown time zone"):
        parse_at("2018-04-03 09:00", "Mars/Olympus")
    with pytest.raises(ValidationError, match="invalid time"):
        parse_at("next tuesday", "UTC")
