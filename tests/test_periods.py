"""Calendar periods: keys, local midnights across DST and leap years, clipping, and strict parsing.

Every expected instant below is written out by hand (local midnight minus the offset then in force), never computed
by the code under test. Offsets used: America/Chicago CST -06:00 / CDT -05:00; America/Santiago -04:00 / -03:00;
America/Havana -05:00 / -04:00; Pacific/Apia -10:00 before and +14:00 after it skipped 2011-12-30.
"""

from __future__ import annotations

import os
import zoneinfo
from datetime import UTC, date, datetime, timedelta, timezone

import pytest

from kfm_gitops.periods import (
    MODES,
    Mode,
    NaiveTimestamp,
    Period,
    PeriodError,
    get_zone,
    is_boundary,
    iso_exact,
    key_of,
    parse_key,
    parse_timestamp,
    period_of_key,
    periods,
)

CHICAGO = get_zone("America/Chicago")
SANTIAGO = get_zone("America/Santiago")
HAVANA = get_zone("America/Havana")


def at(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    """A UTC instant."""
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


def spans(ps: list[Period]) -> list[tuple[str, datetime, datetime]]:
    return [(p.key, p.start, p.end) for p in ps]


HOUR = timedelta(hours=1)


# --- month ends and leap years ---------------------------------------------------------------------------------


def test_monthly_chunks_cross_january_31_into_february() -> None:
    got = periods(at(2023, 1, 1), at(2023, 4, 1), "monthly", get_zone("UTC"))
    assert spans(got) == [
        ("2023-01", at(2023, 1, 1), at(2023, 2, 1)),
        ("2023-02", at(2023, 2, 1), at(2023, 3, 1)),
        ("2023-03", at(2023, 3, 1), at(2023, 4, 1)),
    ]
    assert all(p.mode == "monthly" for p in got)


def test_daily_chunks_cross_january_31() -> None:
    got = periods(at(2023, 1, 30), at(2023, 2, 2), "daily", get_zone("UTC"))
    assert [p.key for p in got] == ["2023-01-30", "2023-01-31", "2023-02-01"]
    assert got[1].start == at(2023, 1, 31)
    assert got[1].end == at(2023, 2, 1)


def test_leap_february_has_29_days() -> None:
    got = periods(at(2024, 2, 28), at(2024, 3, 2), "daily", get_zone("UTC"))
    assert spans(got) == [
        ("2024-02-28", at(2024, 2, 28), at(2024, 2, 29)),
        ("2024-02-29", at(2024, 2, 29), at(2024, 3, 1)),
        ("2024-03-01", at(2024, 3, 1), at(2024, 3, 2)),
    ]
    (feb,) = periods(at(2024, 2, 1), at(2024, 3, 1), "monthly", get_zone("UTC"))
    assert (feb.key, feb.start, feb.end) == ("2024-02", at(2024, 2, 1), at(2024, 3, 1))
    assert feb.end - feb.start == timedelta(days=29)


def test_non_leap_february_has_28_days() -> None:
    got = periods(at(2023, 2, 27), at(2023, 3, 2), "daily", get_zone("UTC"))
    assert [p.key for p in got] == ["2023-02-27", "2023-02-28", "2023-03-01"]
    assert got[1].end == at(2023, 3, 1)
    (feb,) = periods(at(2023, 2, 1), at(2023, 3, 1), "monthly", get_zone("UTC"))
    assert (feb.key, feb.start, feb.end) == ("2023-02", at(2023, 2, 1), at(2023, 3, 1))
    assert feb.end - feb.start == timedelta(days=28)


def test_century_year_1900_is_not_leap_but_2000_is() -> None:
    assert [p.key for p in periods(at(1900, 2, 28), at(1900, 3, 2), "daily", get_zone("UTC"))] == [
        "1900-02-28",
        "1900-03-01",
    ]
    assert [p.key for p in periods(at(2000, 2, 28), at(2000, 3, 1), "daily", get_zone("UTC"))] == [
        "2000-02-28",
        "2000-02-29",
    ]


def test_monthly_chunks_in_chicago_start_at_local_midnight() -> None:
    got = periods(at(2023, 1, 1, 6), at(2023, 3, 1, 6), "monthly", CHICAGO)
    assert spans(got) == [
        ("2023-01", at(2023, 1, 1, 6), at(2023, 2, 1, 6)),
        ("2023-02", at(2023, 2, 1, 6), at(2023, 3, 1, 6)),
    ]


# --- DST in America/Chicago -------------------------------------------------------------------------------------


def test_chicago_spring_forward_day_is_23_hours() -> None:
    got = periods(at(2023, 3, 11, 6), at(2023, 3, 14, 5), "daily", CHICAGO)
    assert spans(got) == [
        ("2023-03-11", at(2023, 3, 11, 6), at(2023, 3, 12, 6)),
        ("2023-03-12", at(2023, 3, 12, 6), at(2023, 3, 13, 5)),
        ("2023-03-13", at(2023, 3, 13, 5), at(2023, 3, 14, 5)),
    ]
    assert [p.end - p.start for p in got] == [24 * HOUR, 23 * HOUR, 24 * HOUR]


def test_chicago_fall_back_day_is_25_hours() -> None:
    got = periods(at(2023, 11, 4, 5), at(2023, 11, 7, 6), "daily", CHICAGO)
    assert spans(got) == [
        ("2023-11-04", at(2023, 11, 4, 5), at(2023, 11, 5, 5)),
        ("2023-11-05", at(2023, 11, 5, 5), at(2023, 11, 6, 6)),
        ("2023-11-06", at(2023, 11, 6, 6), at(2023, 11, 7, 6)),
    ]
    assert [p.end - p.start for p in got] == [24 * HOUR, 25 * HOUR, 24 * HOUR]


def test_chicago_month_holding_spring_forward() -> None:
    expected = ("2023-03", at(2023, 3, 1, 6), at(2023, 4, 1, 5))
    p = period_of_key("2023-03", CHICAGO)
    assert (p.key, p.start, p.end) == expected
    assert spans(periods(at(2023, 3, 1, 6), at(2023, 4, 1, 5), "monthly", CHICAGO)) == [expected]
    # An instant in the middle of the month, unclipped, gives the whole month.
    assert spans(periods(at(2023, 3, 20), at(2023, 3, 21), "monthly", CHICAGO, clip=False)) == [expected]
    assert p.end - p.start == timedelta(days=31) - HOUR


def test_chicago_month_holding_fall_back() -> None:
    p = period_of_key("2023-11", CHICAGO)
    assert (p.start, p.end) == (at(2023, 11, 1, 5), at(2023, 12, 1, 6))
    assert p.end - p.start == timedelta(days=30) + HOUR


def test_chicago_week_year_and_quarter_boundaries() -> None:
    week = period_of_key("2023-W10", CHICAGO)  # Monday 2023-03-06 .. Monday 2023-03-13, DST starts on the Sunday
    assert (week.start, week.end) == (at(2023, 3, 6, 6), at(2023, 3, 13, 5))
    year = period_of_key("2023", CHICAGO)
    assert (year.start, year.end) == (at(2023, 1, 1, 6), at(2024, 1, 1, 6))
    q2 = period_of_key("2023-Q2", CHICAGO)
    assert (q2.start, q2.end) == (at(2023, 4, 1, 5), at(2023, 7, 1, 5))


@pytest.mark.parametrize(
    ("t", "mode", "expected"),
    [
        (at(2023, 3, 12, 6), "daily", True),
        (at(2023, 3, 13, 5), "daily", True),
        (at(2023, 3, 13, 6), "daily", False),  # 01:00 CDT
        (at(2023, 3, 12, 0), "daily", False),  # 18:00 CST the day before
        (at(2023, 3, 1, 6), "monthly", True),
        (at(2023, 4, 1, 5), "monthly", True),
        (at(2023, 4, 1, 6), "monthly", False),
        (at(2023, 3, 6, 6), "weekly", True),
        (at(2023, 3, 7, 6), "weekly", False),
        (at(2023, 1, 1, 6), "yearly", True),
        (at(2023, 1, 1, 0), "yearly", False),
    ],
)
def test_is_boundary_in_chicago(t: datetime, mode: Mode, expected: bool) -> None:
    assert is_boundary(t, mode, CHICAGO) is expected


# --- a DST jump at local midnight ---------------------------------------------------------------------------------


def test_santiago_has_no_midnight_on_2023_09_03() -> None:
    """The zone data itself: at 04:00Z clocks went from 23:59:59.999999 -04:00 to 01:00 -03:00."""
    jump = at(2023, 9, 3, 4)
    before = (jump - timedelta(microseconds=1)).astimezone(SANTIAGO)
    after = jump.astimezone(SANTIAGO)
    assert (before.date(), before.hour, before.minute) == (date(2023, 9, 2), 23, 59)
    assert (after.date(), after.hour, after.minute) == (date(2023, 9, 3), 1, 0)


def test_santiago_day_without_midnight_starts_at_the_jump() -> None:
    got = periods(at(2023, 9, 2, 4), at(2023, 9, 5, 3), "daily", SANTIAGO)
    assert spans(got) == [
        ("2023-09-02", at(2023, 9, 2, 4), at(2023, 9, 3, 4)),
        ("2023-09-03", at(2023, 9, 3, 4), at(2023, 9, 4, 3)),
        ("2023-09-04", at(2023, 9, 4, 3), at(2023, 9, 5, 3)),
    ]
    assert [p.end - p.start for p in got] == [24 * HOUR, 23 * HOUR, 24 * HOUR]
    assert is_boundary(at(2023, 9, 3, 4), "daily", SANTIAGO)
    assert not is_boundary(at(2023, 9, 3, 5), "daily", SANTIAGO)
    sep = period_of_key("2023-09", SANTIAGO)
    assert (sep.start, sep.end) == (at(2023, 9, 1, 4), at(2023, 10, 1, 3))


def test_santiago_fall_back_repeats_23h_so_the_day_before_is_25_hours() -> None:
    # 2023-04-02T03:00Z: 24:00 -03:00 became 23:00 -04:00 on 2023-04-01; midnight of 04-02 is 00:00 -04:00.
    p = period_of_key("2023-04-01", SANTIAGO)
    assert (p.start, p.end) == (at(2023, 4, 1, 3), at(2023, 4, 2, 4))
    assert p.end - p.start == 25 * HOUR


def test_havana_day_without_midnight_starts_at_the_jump() -> None:
    # 2023-03-12T05:00Z: 00:00 -05:00 became 01:00 -04:00.
    jump = at(2023, 3, 12, 5)
    assert (jump - timedelta(microseconds=1)).astimezone(HAVANA).date() == date(2023, 3, 11)
    assert jump.astimezone(HAVANA).hour == 1
    got = periods(at(2023, 3, 11, 5), at(2023, 3, 13, 4), "daily", HAVANA)
    assert spans(got) == [
        ("2023-03-11", at(2023, 3, 11, 5), at(2023, 3, 12, 5)),
        ("2023-03-12", at(2023, 3, 12, 5), at(2023, 3, 13, 4)),
    ]


def test_havana_twice_occurring_midnight_starts_the_day_at_the_first() -> None:
    # 2023-11-05T05:00Z: 01:00 -04:00 became 00:00 -05:00, so local 00:00 happened at 04:00Z and again at 05:00Z.
    p = period_of_key("2023-11-05", HAVANA)
    assert (p.start, p.end) == (at(2023, 11, 5, 4), at(2023, 11, 6, 5))
    assert p.end - p.start == 25 * HOUR
    assert period_of_key("2023-11-04", HAVANA).end == at(2023, 11, 5, 4)
    assert is_boundary(at(2023, 11, 5, 4), "daily", HAVANA)
    assert not is_boundary(at(2023, 11, 5, 5), "daily", HAVANA)


def test_a_skipped_local_day_is_not_a_period() -> None:
    apia = get_zone("Pacific/Apia")
    # 2011-12-29 00:00 -10:00 = 10:00Z; 2011-12-31 00:00 +14:00 = 2011-12-30T10:00Z; 2012-01-01 00:00 +14:00.
    got = periods(at(2011, 12, 29, 10), at(2011, 12, 31, 10), "daily", apia)
    assert spans(got) == [
        ("2011-12-29", at(2011, 12, 29, 10), at(2011, 12, 30, 10)),
        ("2011-12-31", at(2011, 12, 30, 10), at(2011, 12, 31, 10)),
    ]


# --- ISO weeks, quarters, years -----------------------------------------------------------------------------------


def test_weeks_around_2020_2021_use_the_iso_week_year() -> None:
    got = periods(at(2020, 12, 21), at(2021, 1, 11), "weekly", get_zone("UTC"))
    assert spans(got) == [
        ("2020-W52", at(2020, 12, 21), at(2020, 12, 28)),
        ("2020-W53", at(2020, 12, 28), at(2021, 1, 4)),
        ("2021-W01", at(2021, 1, 4), at(2021, 1, 11)),
    ]


def test_2021_01_01_is_in_2020_w53() -> None:
    (p,) = periods(at(2021, 1, 1), at(2021, 1, 2), "weekly", get_zone("UTC"))
    assert (p.key, p.start, p.end) == ("2020-W53", at(2021, 1, 1), at(2021, 1, 2))
    (whole,) = periods(at(2021, 1, 1), at(2021, 1, 2), "weekly", get_zone("UTC"), clip=False)
    assert (whole.key, whole.start, whole.end) == ("2020-W53", at(2020, 12, 28), at(2021, 1, 4))


def test_2024_12_30_is_in_2025_w01() -> None:
    got = periods(at(2024, 12, 23), at(2025, 1, 13), "weekly", get_zone("UTC"))
    assert spans(got) == [
        ("2024-W52", at(2024, 12, 23), at(2024, 12, 30)),
        ("2025-W01", at(2024, 12, 30), at(2025, 1, 6)),
        ("2025-W02", at(2025, 1, 6), at(2025, 1, 13)),
    ]


def test_weeks_start_on_monday_in_chicago() -> None:
    # 2023-01-02 is a Monday: ISO week 2023-W01.
    (p,) = periods(at(2023, 1, 4, 12), at(2023, 1, 5), "weekly", CHICAGO, clip=False)
    assert (p.key, p.start, p.end) == ("2023-W01", at(2023, 1, 2, 6), at(2023, 1, 9, 6))


def test_quarters_of_2023() -> None:
    got = periods(at(2023, 1, 1), at(2024, 1, 1), "quarterly", get_zone("UTC"))
    assert spans(got) == [
        ("2023-Q1", at(2023, 1, 1), at(2023, 4, 1)),
        ("2023-Q2", at(2023, 4, 1), at(2023, 7, 1)),
        ("2023-Q3", at(2023, 7, 1), at(2023, 10, 1)),
        ("2023-Q4", at(2023, 10, 1), at(2024, 1, 1)),
    ]


def test_q4_ends_on_the_next_new_year() -> None:
    (p,) = periods(at(2023, 11, 15), at(2024, 1, 1), "quarterly", get_zone("UTC"), clip=False)
    assert (p.key, p.start, p.end) == ("2023-Q4", at(2023, 10, 1), at(2024, 1, 1))


def test_yearly_periods_clipped_and_unclipped() -> None:
    window = (at(2022, 7, 1), at(2024, 3, 1))
    assert spans(periods(*window, "yearly", get_zone("UTC"))) == [
        ("2022", at(2022, 7, 1), at(2023, 1, 1)),
        ("2023", at(2023, 1, 1), at(2024, 1, 1)),
        ("2024", at(2024, 1, 1), at(2024, 3, 1)),
    ]
    assert spans(periods(*window, "yearly", get_zone("UTC"), clip=False)) == [
        ("2022", at(2022, 1, 1), at(2023, 1, 1)),
        ("2023", at(2023, 1, 1), at(2024, 1, 1)),
        ("2024", at(2024, 1, 1), at(2025, 1, 1)),
    ]


# --- clipping and the window --------------------------------------------------------------------------------------


def test_window_starting_mid_period_clips_the_first_chunk_and_keeps_its_key() -> None:
    got = periods(at(2023, 1, 15, 12), at(2023, 3, 10), "monthly", get_zone("UTC"))
    assert spans(got) == [
        ("2023-01", at(2023, 1, 15, 12), at(2023, 2, 1)),
        ("2023-02", at(2023, 2, 1), at(2023, 3, 1)),
        ("2023-03", at(2023, 3, 1), at(2023, 3, 10)),
    ]
    assert spans(periods(at(2023, 1, 15, 12), at(2023, 3, 10), "monthly", get_zone("UTC"), clip=False)) == [
        ("2023-01", at(2023, 1, 1), at(2023, 2, 1)),
        ("2023-02", at(2023, 2, 1), at(2023, 3, 1)),
        ("2023-03", at(2023, 3, 1), at(2023, 4, 1)),
    ]


def test_window_inside_one_period_gives_that_period_clipped() -> None:
    got = periods(at(2023, 3, 12, 7), at(2023, 3, 12, 9), "daily", CHICAGO)
    assert spans(got) == [("2023-03-12", at(2023, 3, 12, 7), at(2023, 3, 12, 9))]


def test_window_end_on_a_boundary_is_exclusive() -> None:
    got = periods(at(2023, 3, 12, 6), at(2023, 3, 13, 5), "daily", CHICAGO)
    assert [p.key for p in got] == ["2023-03-12"]


def test_window_given_in_another_offset_is_the_same_instants() -> None:
    start = datetime(2023, 3, 12, 1, 0, tzinfo=timezone(timedelta(hours=1)))  # = 2023-03-12T00:00Z
    got = periods(start, at(2023, 3, 12, 6), "daily", get_zone("UTC"))
    assert spans(got) == [("2023-03-12", at(2023, 3, 12, 0), at(2023, 3, 12, 6))]
    assert got[0].start.utcoffset() == timedelta(0)


def test_limit_stops_after_limit_plus_one() -> None:
    got = periods(at(2023, 1, 1), at(2024, 1, 1), "daily", get_zone("UTC"), limit=3)
    assert [p.key for p in got] == ["2023-01-01", "2023-01-02", "2023-01-03", "2023-01-04"]


def test_as_dict_uses_z_suffixed_utc() -> None:
    p = period_of_key("2023-03-12", CHICAGO)
    assert p.as_dict() == {
        "key": "2023-03-12",
        "mode": "daily",
        "start": "2023-03-12T06:00:00Z",
        "end": "2023-03-13T05:00:00Z",
    }


# --- keys ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "mode", "first_day"),
    [
        ("2023", "yearly", date(2023, 1, 1)),
        ("2023-Q1", "quarterly", date(2023, 1, 1)),
        ("2023-Q2", "quarterly", date(2023, 4, 1)),
        ("2023-Q4", "quarterly", date(2023, 10, 1)),
        ("2023-01", "monthly", date(2023, 1, 1)),
        ("2023-12", "monthly", date(2023, 12, 1)),
        ("2023-W01", "weekly", date(2023, 1, 2)),
        ("2023-W05", "weekly", date(2023, 1, 30)),
        ("2023-W52", "weekly", date(2023, 12, 25)),
        ("2020-W53", "weekly", date(2020, 12, 28)),
        ("2025-W01", "weekly", date(2024, 12, 30)),
        ("2023-01-15", "daily", date(2023, 1, 15)),
        ("2024-02-29", "daily", date(2024, 2, 29)),
        ("2023-12-31", "daily", date(2023, 12, 31)),
    ],
)
def test_parse_key_round_trips(key: str, mode: Mode, first_day: date) -> None:
    assert parse_key(key) == (mode, first_day)
    assert key_of(first_day, mode) == key
    p = period_of_key(key, get_zone("UTC"))
    assert (p.key, p.mode) == (key, mode)
    assert p.start == datetime(first_day.year, first_day.month, first_day.day, tzinfo=UTC)


@pytest.mark.parametrize("mode", MODES)
def test_every_generated_key_parses_back_to_its_period(mode: Mode) -> None:
    for p in periods(at(2019, 12, 1), at(2026, 2, 1), mode, CHICAGO, clip=False):
        assert period_of_key(p.key, CHICAGO) == p


@pytest.mark.parametrize(
    "key",
    [
        "2023-13",
        "2023-00",
        "2023-W54",
        "2023-W53",  # 2023 has 52 ISO weeks
        "2023-W00",
        "2023-Q5",
        "2023-Q0",
        "2023-02-30",
        "2023-02-29",
        "2023-04-31",
        "23-01",
        "0000",
        "",
        "2023-1",
        "2023-01-1",
        "2023-w05",
        "2023-q1",
        "2023-W5",
        " 2023",
        "2023\n",
        "20230115",
        "2023/01/15",
        "2023-01-15T00:00",
    ],
)
def test_parse_key_rejects_malformed_keys(key: str) -> None:
    with pytest.raises(PeriodError):
        parse_key(key)


@pytest.mark.parametrize("key", ["\uff12\uff10\uff12\uff13", "\uff12\uff10\uff12\uff13-01", "2023-0\u0663"])
def test_parse_key_rejects_non_ascii_digits(key: str) -> None:
    with pytest.raises(PeriodError):
        parse_key(key)


# --- timestamps ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "instant", "offset"),
    [
        ("2023-01-01T00:00:00Z", at(2023, 1, 1), timedelta(0)),
        ("2023-01-01t00:00:00z", at(2023, 1, 1), timedelta(0)),
        ("2023-01-01T00:00Z", at(2023, 1, 1), timedelta(0)),
        ("2023-03-12T01:30:00-06:00", at(2023, 3, 12, 7, 30), timedelta(hours=-6)),
        ("2023-01-01T05:30:00+05:30", at(2023, 1, 1), timedelta(hours=5, minutes=30)),
        ("2023-01-01 00:00:00+00:00", at(2023, 1, 1), timedelta(0)),
        ("2022-12-31T23:00:00-01:00", at(2023, 1, 1), timedelta(hours=-1)),
    ],
)
def test_parse_timestamp_accepts_explicit_offsets(text: str, instant: datetime, offset: timedelta) -> None:
    t = parse_timestamp(text)
    assert t == instant
    assert t.utcoffset() == offset


def test_parse_timestamp_keeps_fractional_seconds() -> None:
    assert parse_timestamp("2023-01-01T00:00:00.250Z") == at(2023, 1, 1) + timedelta(milliseconds=250)


@pytest.mark.parametrize("text", ["2023-01-01T00:00:00", "2023-01-01 12:00", "2023-01-01T00:00:00.5"])
def test_parse_timestamp_rejects_naive(text: str) -> None:
    with pytest.raises(NaiveTimestamp):
        parse_timestamp(text)


def test_parse_timestamp_rejects_a_bare_date() -> None:
    with pytest.raises(PeriodError):
        parse_timestamp("2023-01-01")


@pytest.mark.parametrize(
    "text",
    [
        "garbage",
        "",
        "yesterday",
        "1672531200",
        "2023-01-01T00:00:00+0100",
        "2023-01-01T00:00:00 UTC",
        "2023-01-01T00:00:00Z\n",
        " 2023-01-01T00:00:00Z",
        "2023-13-01T00:00:00Z",
        "2023-02-30T00:00:00Z",
        "2023-01-01T24:00:00Z",
        "2023-01-01T00:60:00Z",
        "2023-01-01T00:00:00+24:00",
        "2023-1-1T00:00:00Z",
    ],
)
def test_parse_timestamp_rejects_garbage(text: str) -> None:
    with pytest.raises(PeriodError) as info:
        parse_timestamp(text)
    assert not isinstance(info.value, NaiveTimestamp)


# --- zones --------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["UTC", "Etc/UTC", "America/Chicago", "America/Santiago", "Europe/Berlin"])
def test_get_zone_accepts_iana_names(name: str) -> None:
    z = get_zone(name)
    assert datetime(2023, 7, 1, tzinfo=z).utcoffset() is not None


def test_utc_is_the_same_zone_whatever_its_spelling() -> None:
    assert get_zone("UTC") is get_zone("Etc/UTC") is UTC


@pytest.mark.parametrize(
    "name",
    [
        "Mars/Olympus",
        "../etc/passwd",
        "/etc/passwd",
        "America/../../etc/passwd",
        "America",
        "America/",
        "America//Chicago",
        "",
        "America/Chicago\n",
        "zone.tab",
        "utc ",
    ],
)
def test_get_zone_rejects_unknown_or_path_like_names(name: str) -> None:
    with pytest.raises(PeriodError):
        get_zone(name)


_HOST_LOCALTIME = any(os.path.exists(os.path.join(d, "localtime")) for d in zoneinfo.TZPATH)


def test_get_zone_rejects_the_host_local_zone() -> None:
    with pytest.raises(PeriodError):
        get_zone("localtime")


# --- the edges of what a timestamp can be -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("9999-12-31T23:00:00-05:00", "'9999-12-31T23:00:00-05:00' is out of the supported range "
                                      "(0002-01-01T00:00:00Z..9998-12-31T00:00:00Z)"),
        ("0001-01-01T00:00:00+05:00", "'0001-01-01T00:00:00+05:00' is out of the supported range "
                                      "(0002-01-01T00:00:00Z..9998-12-31T00:00:00Z)"),
        ("9999-12-31T23:59:59.999999Z", "'9999-12-31T23:59:59.999999Z' is out of the supported range "
                                        "(0002-01-01T00:00:00Z..9998-12-31T00:00:00Z)"),
        ("0001-12-31T23:59:59Z", "'0001-12-31T23:59:59Z' is out of the supported range "
                                 "(0002-01-01T00:00:00Z..9998-12-31T00:00:00Z)"),
        ("9998-12-31T00:00:00.000001Z", "'9998-12-31T00:00:00.000001Z' is out of the supported range "
                                        "(0002-01-01T00:00:00Z..9998-12-31T00:00:00Z)"),
        ("2023-01-01T00:00:00+25:00", "'2023-01-01T00:00:00+25:00': offset +25:00 is out of range (-23:59..+23:59)"),
        ("2023-01-01T00:00:00-24:00", "'2023-01-01T00:00:00-24:00': offset -24:00 is out of range (-23:59..+23:59)"),
        ("2023-01-01T00:00:00+05:60", "'2023-01-01T00:00:00+05:60': offset +05:60 is out of range (-23:59..+23:59)"),
        ("2023-01-01T00:00:00.000000001Z", "'2023-01-01T00:00:00.000000001Z' is more precise than a microsecond "
                                           "(at most 6 fractional digits)"),
        ("2023-03-31T23:59:59.9999995Z", "'2023-03-31T23:59:59.9999995Z' is more precise than a microsecond "
                                         "(at most 6 fractional digits)"),
    ],
)
def test_parse_timestamp_refuses_what_it_cannot_hold_exactly(text: str, message: str) -> None:
    with pytest.raises(PeriodError) as info:
        parse_timestamp(text)
    assert str(info.value) == message
    assert "timedelta" not in str(info.value)


@pytest.mark.parametrize(
    ("text", "instant"),
    [
        ("0002-01-01T00:00:00Z", datetime(2, 1, 1, tzinfo=UTC)),
        ("0002-01-01T05:00:00+05:00", datetime(2, 1, 1, tzinfo=UTC)),
        ("9998-12-31T00:00:00Z", datetime(9998, 12, 31, tzinfo=UTC)),
        ("9998-12-30T19:00:00-05:00", datetime(9998, 12, 31, tzinfo=UTC)),
        ("2023-01-01T00:00:00+23:59", at(2022, 12, 31, 0, 1)),
        ("2023-01-01T00:00:00.123456000Z", at(2023, 1, 1) + timedelta(microseconds=123456)),  # nothing is lost
    ],
)
def test_parse_timestamp_accepts_the_edges_of_the_range(text: str, instant: datetime) -> None:
    assert parse_timestamp(text) == instant


# Fixed offsets at the extremes (a real zone's rules in year 2 are its local mean time, not today's offset).
ZONES_AT_THE_EXTREMES = ["UTC", "Etc/GMT-14", "Etc/GMT+12", "Asia/Tokyo", "America/Chicago"]


@pytest.mark.parametrize("zone", ZONES_AT_THE_EXTREMES)
@pytest.mark.parametrize("mode", MODES)
def test_periods_at_the_edges_of_the_range_do_not_overflow(zone: str, mode: Mode) -> None:
    z = get_zone(zone)
    first, last = datetime(2, 1, 1, tzinfo=UTC), datetime(9998, 12, 31, tzinfo=UTC)
    for start, end in ((first, first + timedelta(days=1)), (last - timedelta(days=1), last)):
        ps = periods(start, end, mode, z)
        assert ps and ps[0].start == start and ps[-1].end == end
        for t in (start, end):
            is_boundary(t, mode, z)
        unclipped = periods(start, end, mode, z, clip=False)
        assert unclipped[0].start <= start and unclipped[-1].end >= end


@pytest.mark.parametrize(("key", "zone"), [("0001", "Asia/Tokyo"), ("0001-01-01", "Asia/Kolkata"),
                                           ("9999", "UTC"), ("9999-12", "UTC"), ("9999-Q4", "Etc/GMT+12"),
                                           ("9999-W52", "UTC"), ("9999-12-31", "Asia/Tokyo")])
def test_period_of_a_key_out_of_range_is_a_period_error(key: str, zone: str) -> None:
    with pytest.raises(PeriodError, match="out of the supported range"):
        period_of_key(key, get_zone(zone))


def test_a_period_shows_its_fraction_of_a_second() -> None:
    end = at(2023, 3, 31, 23, 59) + timedelta(seconds=59, microseconds=999999)
    (p,) = periods(at(2023, 3, 1), end, "monthly", UTC)
    assert p.as_dict() == {"key": "2023-03", "mode": "monthly", "start": "2023-03-01T00:00:00Z",
                           "end": "2023-03-31T23:59:59.999999Z"}
    assert iso_exact(at(2023, 1, 1) + timedelta(milliseconds=250)) == "2023-01-01T00:00:00.25Z"
    assert iso_exact(at(2023, 1, 1)) == "2023-01-01T00:00:00Z"
    assert iso_exact(datetime(2, 1, 1, tzinfo=UTC)) == "0002-01-01T00:00:00Z"  # the year padded to 4 digits
