"""The Norwegian business-day calendar: when «innen én arbeidsdag» ends for a lead, in Oslo time."""

import os
import subprocess
import sys
import tempfile
from datetime import UTC, date, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from meander_site.business_days import (
    OSLO,
    LocalTimeError,
    MalformedLocalTime,
    NonexistentLocalTime,
    add_business_days,
    business_days_between,
    end_of_next_business_day,
    is_business_day,
    next_business_day,
    oslo_today,
    parse_oslo_local,
    to_oslo,
    within_one_business_day,
)


def oslo(*parts: int) -> datetime:
    """An instant given on Oslo's wall clock, as the UTC datetime the database would hold."""
    return datetime(*parts, tzinfo=OSLO).astimezone(UTC)


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)


# Expected due times are written in UTC on purpose: winter is UTC+1 (23:59:59 Oslo = 22:59:59 UTC), summer UTC+2.
WINTER_END_OF_DAY = (22, 59, 59)
SUMMER_END_OF_DAY = (21, 59, 59)


# --- weekends -----------------------------------------------------------------------------------------------------


def test_a_friday_lead_is_due_at_the_end_of_monday():
    friday_afternoon = oslo(2026, 12, 4, 14, 0)
    assert end_of_next_business_day(friday_afternoon) == utc(2026, 12, 7, *WINTER_END_OF_DAY)


@pytest.mark.parametrize("weekend_day", [5, 6], ids=["saturday", "sunday"])
def test_a_weekend_lead_is_due_at_the_end_of_monday(weekend_day):
    assert end_of_next_business_day(oslo(2026, 12, weekend_day, 11, 0)) == utc(2026, 12, 7, *WINTER_END_OF_DAY)


def test_a_thursday_lead_is_due_on_friday():
    assert end_of_next_business_day(oslo(2026, 12, 3, 9, 15)) == utc(2026, 12, 4, *WINTER_END_OF_DAY)


def test_the_due_time_reads_as_the_end_of_the_due_day_in_oslo():
    due = to_oslo(end_of_next_business_day(oslo(2026, 12, 4, 14, 0)))
    assert (due.date(), due.hour, due.minute, due.second, due.microsecond) == (date(2026, 12, 7), 23, 59, 59, 0)


# --- public holidays ----------------------------------------------------------------------------------------------


def test_a_lead_on_16_may_skips_constitution_day():
    # 2028: 16 May is a Tuesday, 17 May a Wednesday.
    assert end_of_next_business_day(oslo(2028, 5, 16, 10, 0)) == utc(2028, 5, 18, *SUMMER_END_OF_DAY)


def test_constitution_day_on_whit_monday_after_a_weekend():
    # 2027: 16 May is Whit Sunday, 17 May both Constitution Day and Whit Monday.
    assert end_of_next_business_day(oslo(2027, 5, 14, 16, 0)) == utc(2027, 5, 18, *SUMMER_END_OF_DAY)
    assert end_of_next_business_day(oslo(2027, 5, 16, 10, 0)) == utc(2027, 5, 18, *SUMMER_END_OF_DAY)


@pytest.mark.parametrize(
    ("arrived", "due_day"),
    [
        (oslo(2026, 3, 31, 10, 0), date(2026, 4, 1)),  # Tuesday before Easter: Wednesday is a working day
        (oslo(2026, 4, 1, 10, 0), date(2026, 4, 7)),  # Wednesday: Maundy Thursday to Easter Monday are off
        (oslo(2026, 4, 2, 10, 0), date(2026, 4, 7)),  # Maundy Thursday
        (oslo(2026, 4, 3, 10, 0), date(2026, 4, 7)),  # Good Friday
        (oslo(2026, 4, 6, 10, 0), date(2026, 4, 7)),  # Easter Monday
    ],
    ids=["tuesday", "wednesday", "maundy-thursday", "good-friday", "easter-monday"],
)
def test_easter_week(arrived, due_day):
    assert end_of_next_business_day(arrived) == utc(due_day.year, due_day.month, due_day.day, *SUMMER_END_OF_DAY)


@pytest.mark.parametrize(
    ("arrived", "due_day"),
    [
        (oslo(2026, 12, 23, 12, 0), date(2026, 12, 24)),  # Christmas Eve is a business day in law
        (oslo(2026, 12, 24, 12, 0), date(2026, 12, 28)),  # Christmas Day, Boxing Day (a Saturday), Sunday
        (oslo(2026, 12, 31, 12, 0), date(2027, 1, 4)),  # New Year's Day is a Friday
        (oslo(2027, 12, 24, 12, 0), date(2027, 12, 27)),  # 2027: Christmas on the weekend, Monday works
    ],
    ids=["23-december", "christmas-eve", "new-years-eve", "christmas-on-a-weekend"],
)
def test_christmas_and_new_year(arrived, due_day):
    assert end_of_next_business_day(arrived) == utc(due_day.year, due_day.month, due_day.day, *WINTER_END_OF_DAY)


def test_ascension_day_and_whit_monday():
    # 2026: Ascension Thursday 14 May, Whit Monday 25 May.
    assert end_of_next_business_day(oslo(2026, 5, 13, 15, 0)) == utc(2026, 5, 15, *SUMMER_END_OF_DAY)
    assert end_of_next_business_day(oslo(2026, 5, 22, 15, 0)) == utc(2026, 5, 26, *SUMMER_END_OF_DAY)


def test_labour_day():
    # 2026: 1 May is a Friday.
    assert end_of_next_business_day(oslo(2026, 4, 30, 15, 0)) == utc(2026, 5, 4, *SUMMER_END_OF_DAY)


@pytest.mark.parametrize(
    "holiday",
    [
        date(2026, 1, 1),
        date(2026, 4, 2),
        date(2026, 4, 3),
        date(2026, 4, 6),
        date(2026, 5, 1),
        date(2026, 5, 14),
        date(2026, 5, 25),
        date(2028, 5, 17),
        date(2026, 12, 25),
        date(2028, 12, 26),  # Boxing Day on a Tuesday
    ],
)
def test_public_holidays_are_not_business_days(holiday):
    assert not is_business_day(holiday)


def test_ordinary_weekdays_are_business_days_and_weekends_are_not():
    assert [is_business_day(date(2026, 12, day)) for day in range(7, 14)] == [True] * 5 + [False] * 2


# --- daylight saving time -----------------------------------------------------------------------------------------


def test_a_saturday_night_lead_before_summer_time_is_due_monday_in_summer_time():
    # Clocks go forward on Sunday 29 March 2026: arrival at UTC+1, due at UTC+2.
    arrived = oslo(2026, 3, 28, 23, 30)
    assert arrived == utc(2026, 3, 28, 22, 30)
    assert end_of_next_business_day(arrived) == utc(2026, 3, 30, *SUMMER_END_OF_DAY)


def test_a_saturday_night_lead_before_winter_time_is_due_monday_in_winter_time():
    # Clocks go back on Sunday 25 October 2026: arrival at UTC+2, due at UTC+1.
    arrived = oslo(2026, 10, 24, 23, 30)
    assert arrived == utc(2026, 10, 24, 21, 30)
    assert end_of_next_business_day(arrived) == utc(2026, 10, 26, *WINTER_END_OF_DAY)


def test_summer_time_starting_on_easter_sunday():
    # 28 March 2027 is both the last Sunday of March and Easter Sunday; Easter Monday follows.
    assert end_of_next_business_day(oslo(2027, 3, 27, 23, 30)) == utc(2027, 3, 30, *SUMMER_END_OF_DAY)


def test_a_lead_in_the_repeated_hour_counts_on_that_sunday():
    first_0230 = utc(2026, 10, 25, 0, 30)
    second_0230 = utc(2026, 10, 25, 1, 30)
    assert to_oslo(first_0230).strftime("%H:%M") == to_oslo(second_0230).strftime("%H:%M") == "02:30"
    assert end_of_next_business_day(first_0230) == end_of_next_business_day(second_0230)
    assert end_of_next_business_day(second_0230) == utc(2026, 10, 26, *WINTER_END_OF_DAY)


# --- midnight and the UTC date ------------------------------------------------------------------------------------


def test_a_lead_at_local_midnight_belongs_to_the_day_that_starts():
    tuesday_midnight = oslo(2026, 12, 8, 0, 0)
    assert tuesday_midnight == utc(2026, 12, 7, 23, 0)
    assert end_of_next_business_day(tuesday_midnight) == utc(2026, 12, 9, *WINTER_END_OF_DAY)
    just_before = tuesday_midnight - timedelta(microseconds=1)
    assert end_of_next_business_day(just_before) == utc(2026, 12, 8, *WINTER_END_OF_DAY)


def test_sunday_late_evening_in_utc_is_already_monday_in_oslo():
    sunday_2330_utc = utc(2026, 12, 6, 23, 30)
    assert to_oslo(sunday_2330_utc).date() == date(2026, 12, 7)
    assert end_of_next_business_day(sunday_2330_utc) == utc(2026, 12, 8, *WINTER_END_OF_DAY)
    # An hour earlier it is still Sunday in Oslo, so Monday is the due day.
    assert end_of_next_business_day(utc(2026, 12, 6, 22, 30)) == utc(2026, 12, 7, *WINTER_END_OF_DAY)


def test_oslo_today_follows_oslo_not_utc():
    assert oslo_today(utc(2026, 12, 6, 23, 30)) == date(2026, 12, 7)
    assert oslo_today(utc(2026, 6, 30, 21, 59)) == date(2026, 6, 30)
    assert oslo_today(utc(2026, 6, 30, 22, 0)) == date(2026, 7, 1)


def test_a_naive_datetime_is_refused_rather_than_guessed():
    with pytest.raises(ValueError, match="naive"):
        end_of_next_business_day(datetime(2026, 12, 4, 14, 0))


# --- speed to lead ------------------------------------------------------------------------------------------------


def test_an_answer_on_monday_to_a_friday_lead_is_within_one_business_day():
    friday = oslo(2026, 12, 4, 16, 45)
    assert within_one_business_day(friday, oslo(2026, 12, 4, 17, 0))
    assert within_one_business_day(friday, oslo(2026, 12, 7, 8, 0))
    assert within_one_business_day(friday, oslo(2026, 12, 7, 23, 59, 59, 999_999))


def test_an_answer_on_tuesday_to_a_friday_lead_is_late():
    assert not within_one_business_day(oslo(2026, 12, 4, 16, 45), oslo(2026, 12, 8, 0, 0))


def test_speed_to_lead_counts_oslo_dates_across_a_holiday():
    # Lead Wednesday before Easter 2026, answered Easter Tuesday morning: in time.
    assert within_one_business_day(oslo(2026, 4, 1, 9, 0), oslo(2026, 4, 7, 9, 0))
    assert not within_one_business_day(oslo(2026, 4, 1, 9, 0), oslo(2026, 4, 8, 9, 0))


def test_speed_to_lead_uses_the_oslo_date_of_the_answer():
    # Monday 23:30 UTC is Tuesday 00:30 in Oslo: too late for a Friday lead.
    assert not within_one_business_day(oslo(2026, 12, 4, 12, 0), utc(2026, 12, 7, 23, 30))
    assert within_one_business_day(oslo(2026, 12, 4, 12, 0), utc(2026, 12, 7, 22, 30))


# --- counting business days ---------------------------------------------------------------------------------------


def test_next_business_day_is_strictly_after():
    assert next_business_day(date(2026, 12, 7)) == date(2026, 12, 8)
    assert next_business_day(date(2026, 12, 4)) == date(2026, 12, 7)


def test_add_business_days_skips_weekends_and_holidays():
    assert add_business_days(date(2026, 12, 3), 2) == date(2026, 12, 7)
    assert add_business_days(date(2026, 3, 31), 3) == date(2026, 4, 8)  # Wednesday, then Easter Tuesday, Wednesday
    with pytest.raises(ValueError):
        add_business_days(date(2026, 12, 3), 0)


def test_business_days_between():
    assert business_days_between(date(2026, 12, 4), date(2026, 12, 7)) == 1
    assert business_days_between(date(2026, 12, 7), date(2026, 12, 14)) == 5
    assert business_days_between(date(2026, 3, 31), date(2026, 4, 7)) == 2
    assert business_days_between(date(2026, 12, 7), date(2026, 12, 7)) == 0
    assert business_days_between(date(2026, 12, 7), date(2026, 12, 1)) == 0


@given(st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2100, 12, 31), timezones=st.just(UTC)))
def test_the_due_day_is_the_first_business_day_after_the_arrival_day(arrived):
    due = end_of_next_business_day(arrived)
    arrival_day, due_day = to_oslo(arrived).date(), to_oslo(due).date()
    assert due > arrived
    assert to_oslo(due).time().isoformat() == "23:59:59"
    assert is_business_day(due_day)
    assert not any(is_business_day(arrival_day + timedelta(days=n)) for n in range(1, (due_day - arrival_day).days))
    assert within_one_business_day(arrived, due)
    assert not within_one_business_day(arrived, due + timedelta(seconds=1))


@pytest.mark.subprocess
def test_the_calendar_works_without_a_system_time_zone_database():
    # tzdata is a dependency so Europe/Oslo resolves on a machine (or container) without /usr/share/zoneinfo.
    with tempfile.TemporaryDirectory() as empty_tz_dir:
        script = (
            "from datetime import UTC, datetime;"
            "from meander_site.business_days import end_of_next_business_day;"
            "print(end_of_next_business_day(datetime(2026, 3, 28, 22, 30, tzinfo=UTC)).isoformat())"
        )
        result = subprocess.run(
            [sys.executable, "-c", script],
            env={**os.environ, "PYTHONTZPATH": empty_tz_dir},
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "2026-03-30T21:59:59+00:00"


# --- <input type="datetime-local"> values ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2027-01-12T13:00", utc(2027, 1, 12, 12, 0)),
        ("2027-06-15T13:00", utc(2027, 6, 15, 11, 0)),
        ("2027-06-15T13:00:30", utc(2027, 6, 15, 11, 0, 30)),  # a field with a step in seconds
        (" 2027-06-15T13:00 ", utc(2027, 6, 15, 11, 0)),
        ("2027-03-28T01:59", utc(2027, 3, 28, 0, 59)),  # the last minute of winter time
        ("2027-03-28T03:00", utc(2027, 3, 28, 1, 0)),  # the first minute of summer time
        ("2026-10-25T03:00", utc(2026, 10, 25, 2, 0)),  # after the repeated hour
    ],
)
def test_parse_oslo_local_reads_the_oslo_wall_clock(value, expected):
    parsed = parse_oslo_local(value)
    assert parsed == expected
    assert parsed.utcoffset() == timedelta(0)


def test_an_ambiguous_autumn_time_means_its_first_occurrence_in_summer_time():
    assert parse_oslo_local("2026-10-25T02:30") == utc(2026, 10, 25, 0, 30)
    assert parse_oslo_local("2026-10-25T02:00") == utc(2026, 10, 25, 0, 0)


@pytest.mark.parametrize("value", ["2027-03-28T02:30", "2027-03-28T02:00", "2026-03-29T02:59"])
def test_a_time_in_the_spring_gap_is_refused_with_a_norwegian_message(value):
    with pytest.raises(NonexistentLocalTime) as refused:
        parse_oslo_local(value)
    assert isinstance(refused.value, ValueError)
    message = str(refused.value)
    assert "finnes ikke" in message
    assert "Velg et annet klokkeslett" in message
    assert value[11:13] + "." + value[14:16] in message  # names the time that was asked for


@pytest.mark.parametrize(
    "value",
    [
        "",
        "   ",
        "2027-01-12",
        "13:00",
        "12.01.2027 13:00",
        "2027-01-12 13:00",
        "2027-1-12T13:00",
        "2027-02-30T10:00",
        "2027-01-12T24:00",
        "2027-01-12T13:60",
        "2027-01-12T13:00Z",
        "2027-01-12T13:00+01:00",
        "2027-01-12T13:00:00.000",
        "٢٠٢٧-01-12T13:00",  # Arabic-Indic digits: int() would take them, a browser never sends them
        "2027-01-12T13:00\x00",
        "2027-01-12T13:00\n2027-01-13T13:00",
        "0001-01-01T00:30",  # would overflow on the way to UTC
        "9999-12-31T23:59",  # the day after would leave the calendar
        "20277-01-12T13:00",
    ],
)
def test_a_malformed_value_is_refused_with_a_norwegian_message(value):
    with pytest.raises(MalformedLocalTime) as refused:
        parse_oslo_local(value)
    assert isinstance(refused.value, ValueError)
    assert "Velg dato og klokkeslett" in refused.value.message


@given(st.text(max_size=40))
def test_any_text_either_parses_to_utc_or_gets_a_message(value):
    try:
        parsed = parse_oslo_local(value)
    except LocalTimeError as refused:
        assert refused.message
    else:
        assert parsed.utcoffset() == timedelta(0)


@given(st.datetimes(min_value=datetime(1990, 1, 1), max_value=datetime(2100, 12, 31)))
def test_every_wall_clock_time_is_read_back_or_refused_as_nonexistent(wall_clock):
    wall_clock = wall_clock.replace(microsecond=0)
    try:
        parsed = parse_oslo_local(wall_clock.isoformat())
    except NonexistentLocalTime:
        assert wall_clock.month == 3 and wall_clock.hour == 2 and wall_clock.weekday() == 6
    else:
        assert parsed.astimezone(OSLO).replace(tzinfo=None) == wall_clock
