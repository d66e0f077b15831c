"""Business time: a first-contact clock that runs 08:00–16:00 Oslo time on Norwegian business days."""

from datetime import UTC, datetime, time, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from meander_site.business_days import OSLO
from meander_site.business_hours import (
    BusinessCalendar,
    BusinessHours,
    add_business_time,
    business_time_between,
    clock_start,
    first_contact_due,
    format_duration,
    halfway,
)

TWO_HOURS = timedelta(hours=2)


def oslo(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=OSLO).astimezone(UTC)


def test_a_lead_at_half_past_three_on_a_friday_is_due_on_monday_morning():
    # 15:30–16:00 on Friday, then 08:00–09:30 on Monday.
    assert first_contact_due(oslo(2026, 12, 4, 15, 30)) == oslo(2026, 12, 7, 9, 30)


def test_a_lead_on_the_evening_before_17_may_waits_for_the_day_after():
    # 16 May 2028 is a Tuesday; 17 May (Constitution Day) is a holiday; the clock starts on Thursday 18 May.
    arrived = oslo(2028, 5, 16, 20, 15)
    assert clock_start(arrived) == oslo(2028, 5, 18, 8, 0)
    assert first_contact_due(arrived) == oslo(2028, 5, 18, 10, 0)


def test_maundy_thursday_to_easter_monday_are_skipped():
    # Easter 2027 is 28 March: Thursday 25 to Monday 29 March are holidays.
    arrived = oslo(2027, 3, 24, 15, 0)
    assert first_contact_due(arrived) == oslo(2027, 3, 30, 9, 0)
    assert business_time_between(arrived, oslo(2027, 3, 30, 9, 0)) == TWO_HOURS


def test_the_night_clocks_go_forward_does_not_shorten_the_clock():
    # Summer time starts at 02:00 on Sunday 29 March 2026: Friday is UTC+1, Monday UTC+2.
    arrived = oslo(2026, 3, 27, 15, 0)
    due = first_contact_due(arrived)
    assert due == oslo(2026, 3, 30, 9, 0)
    assert due == datetime(2026, 3, 30, 7, 0, tzinfo=UTC)
    assert business_time_between(arrived, due) == TWO_HOURS


def test_the_night_clocks_go_back_does_not_lengthen_the_clock():
    # Winter time starts at 03:00 on Sunday 25 October 2026: a lead in the repeated hour starts on Monday at 08:00.
    arrived = datetime(2026, 10, 25, 0, 30, tzinfo=UTC)  # 02:30 summer time, the first of the two
    assert first_contact_due(arrived) == oslo(2026, 10, 26, 10, 0)
    assert first_contact_due(arrived) == datetime(2026, 10, 26, 9, 0, tzinfo=UTC)


def test_a_lead_at_exactly_four_starts_the_next_business_morning():
    arrived = oslo(2026, 12, 8, 16, 0)
    assert clock_start(arrived) == oslo(2026, 12, 9, 8, 0)
    assert first_contact_due(arrived) == oslo(2026, 12, 9, 10, 0)


def test_a_lead_at_one_minute_to_four_gets_one_minute_that_day():
    assert first_contact_due(oslo(2026, 12, 8, 15, 59)) == oslo(2026, 12, 9, 9, 59)


def test_a_lead_within_the_hours_is_due_two_hours_later_and_reminded_after_one():
    arrived = oslo(2026, 12, 8, 9, 10)
    assert first_contact_due(arrived) == oslo(2026, 12, 8, 11, 10)
    assert halfway(arrived) == oslo(2026, 12, 8, 10, 10)


def test_time_past_the_deadline_is_negative_business_time():
    due = oslo(2026, 12, 8, 11, 0)
    assert business_time_between(oslo(2026, 12, 8, 10, 0), due) == timedelta(hours=1)
    assert business_time_between(oslo(2026, 12, 8, 11, 30), due) == -timedelta(minutes=30)
    # Evening and night do not count.
    assert business_time_between(due, oslo(2026, 12, 9, 8, 30)) == timedelta(hours=5, minutes=30)


def test_other_business_hours_are_honoured():
    hours = BusinessHours(opens=time(9, 0), closes=time(15, 0))
    assert first_contact_due(oslo(2026, 12, 4, 14, 30), TWO_HOURS, hours) == oslo(2026, 12, 7, 10, 30)
    with pytest.raises(ValueError):
        BusinessHours(opens=time(16, 0), closes=time(8, 0))


def test_durations_read_as_the_board_shows_them():
    assert format_duration(timedelta(hours=1, minutes=20)) == "1 t 20 min"
    assert format_duration(timedelta(minutes=45)) == "45 min"
    assert format_duration(timedelta(hours=3)) == "3 t"
    assert format_duration(timedelta(hours=1226, minutes=53)) == "1226 t"
    assert format_duration(timedelta(seconds=61)) == "2 min"


instants = st.datetimes(min_value=datetime(2025, 1, 1), max_value=datetime(2030, 12, 31), timezones=st.just(UTC))


@given(instants, st.integers(min_value=0, max_value=60 * 40))
def test_adding_business_time_and_measuring_it_agree(start, minutes):
    duration = timedelta(minutes=minutes)
    end = add_business_time(start, duration)
    assert end >= start
    assert business_time_between(start, end) == duration


def business_time_by_windows(start: datetime, end: datetime, hours: BusinessHours) -> float:
    """The definition, day by day: the parts of each day's business hours between the two instants."""
    total, day = 0.0, start.astimezone(OSLO).date() - timedelta(days=1)
    while day <= end.astimezone(OSLO).date():
        window = hours.window(day)
        if window is not None:
            total += max((min(window[1], end) - max(window[0], start)).total_seconds(), 0.0)
        day += timedelta(days=1)
    return total


@given(
    instants,
    st.integers(min_value=0, max_value=60 * 24 * 500),
    st.sampled_from([BusinessHours(), BusinessHours(time(6, 30), time(19, 45))]),
)
def test_business_time_is_what_the_business_days_hold_between_two_instants_even_across_years(start, minutes, hours):
    end = start + timedelta(minutes=minutes, seconds=17, microseconds=3)
    expected = business_time_by_windows(start, end, hours)
    assert business_time_between(start, end, hours) == timedelta(seconds=expected)
    assert business_time_between(end, start, hours) == -timedelta(seconds=expected)


@given(
    instants,
    st.integers(min_value=-60 * 24 * 3, max_value=60 * 24 * 30),
    st.sampled_from([BusinessHours(), BusinessHours(time(6, 30), time(19, 45))]),
)
def test_the_calendars_clock_readings_differ_by_the_business_time_between_them(start, minutes, hours):
    """What lets the report sum business time in SQL (reporting/speed.py): two readings of one running clock."""
    end = start + timedelta(minutes=minutes, seconds=17)
    first_day = min(start, end).astimezone(OSLO).date()
    calendar = BusinessCalendar.of_days(first_day, first_day + timedelta(days=40), hours)
    measured = calendar.seconds(end) - calendar.seconds(start)
    expected = business_time_by_windows(min(start, end), max(start, end), hours) * (1 if end >= start else -1)
    # Readings are seconds in a double, as the database's are: exact to well under a microsecond.
    assert measured == pytest.approx(expected, abs=1e-6)
