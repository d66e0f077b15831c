"""The free start times as pure functions of the rules, the hosts' time and the clock: DST, Norwegian holidays,
absences, buffers, the daily cap and the minimum notice."""

import uuid
from datetime import UTC, date, datetime, time, timedelta

import pytest

from meander_site.business_days import OSLO
from meander_site.slots import availability
from meander_site.slots.availability import HostTime, add_business_hours, free_slots, horizon_days, is_offered
from meander_site.slots.rules import DEFAULT_WEEKLY_HOURS, Rules, format_weekly_hours, parse_weekly_hours

RULES = Rules()
ANNE, BO = uuid.UUID(int=1), uuid.UUID(int=2)


def oslo(year, month, day, hour=0, minute=0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=OSLO).astimezone(UTC)


def host(host_id=ANNE, **kw) -> HostTime:
    return HostTime(host_id=host_id, week=dict(DEFAULT_WEEKLY_HOURS), **kw)


def local_times(slots) -> list[str]:
    return [f"{slot.local:%H:%M}" for slot in slots]


def test_a_default_day_offers_every_half_hour_from_nine_until_the_last_that_ends_by_four():
    now = oslo(2027, 1, 8, 12)  # a Friday
    offer = free_slots(RULES, [host()], now, [date(2027, 1, 11)])
    assert local_times(offer[date(2027, 1, 11)]) == [f"{h:02d}:{m:02d}" for h in range(9, 16) for m in (0, 30)]
    assert offer[date(2027, 1, 11)][-1].value == "2027-01-11T15:30"


def test_slots_keep_their_wall_clock_across_the_change_to_summer_time_and_back():
    # Norway moves its clocks on Sunday 28 March 2027 and Sunday 31 October 2027.
    before = free_slots(RULES, [host()], oslo(2027, 3, 17, 12), [date(2027, 3, 24), date(2027, 3, 30)])
    assert before[date(2027, 3, 24)][0].starts_at == datetime(2027, 3, 24, 8, 0, tzinfo=UTC)  # 09:00 CET
    assert before[date(2027, 3, 30)][0].starts_at == datetime(2027, 3, 30, 7, 0, tzinfo=UTC)  # 09:00 CEST
    assert local_times(before[date(2027, 3, 24)]) == local_times(before[date(2027, 3, 30)])
    after = free_slots(RULES, [host()], oslo(2027, 10, 27, 12), [date(2027, 10, 29), date(2027, 11, 1)])
    assert after[date(2027, 10, 29)][0].starts_at == datetime(2027, 10, 29, 7, 0, tzinfo=UTC)
    assert after[date(2027, 11, 1)][0].starts_at == datetime(2027, 11, 1, 8, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    "holiday",
    [
        date(2027, 5, 17),  # Grunnlovsdag, a Monday
        date(2027, 3, 25),  # Maundy Thursday
        date(2027, 3, 26),  # Good Friday
        date(2027, 3, 29),  # Easter Monday
        date(2026, 12, 25),  # Christmas Day
        date(2026, 12, 28) - timedelta(days=2),  # Boxing Day (a Saturday in 2026, and a holiday anyway)
        date(2027, 1, 1),
    ],
)
def test_norwegian_holidays_offer_no_slots(holiday):
    now = datetime.combine(holiday - timedelta(days=7), time(12), tzinfo=OSLO).astimezone(UTC)
    rules = Rules(horizon_business_days=10)
    offer = free_slots(rules, [host()], now)
    assert holiday not in offer
    assert holiday not in horizon_days(now, rules)
    assert not is_offered(
        datetime.combine(holiday, time(10), tzinfo=OSLO).astimezone(UTC), rules, [DEFAULT_WEEKLY_HOURS], now
    )


def test_easter_week_leaves_only_monday_to_wednesday():
    now = oslo(2027, 3, 19, 17)  # Friday before Palm Sunday
    offer = free_slots(RULES, [host()], now)
    days = sorted(offer)
    assert days[:4] == [date(2027, 3, 22), date(2027, 3, 23), date(2027, 3, 24), date(2027, 3, 30)]


def test_christmas_eve_and_new_years_eve_are_ordinary_business_days_between_the_holidays():
    now = oslo(2026, 12, 21, 17)
    days = sorted(free_slots(RULES, [host()], now))
    assert date(2026, 12, 24) in days and date(2026, 12, 31) in days
    assert date(2026, 12, 25) not in days and date(2027, 1, 1) not in days


def test_weekends_never_offer_slots_even_when_a_host_works_them():
    week = {day: (time(9), time(16)) for day in range(7)}
    offer = free_slots(RULES, [HostTime(ANNE, week)], oslo(2027, 1, 6, 12))
    assert all(day.weekday() < 5 for day in offer)


def test_an_absent_host_offers_nothing_that_day_and_another_host_fills_in():
    day = date(2027, 1, 12)
    away = host(absent_days=frozenset({day}))
    assert day not in free_slots(RULES, [away], oslo(2027, 1, 8, 12), [day])
    offer = free_slots(RULES, [away, host(BO)], oslo(2027, 1, 8, 12), [day])
    assert {slot.host_ids for slot in offer[day]} == {(BO,)}


def test_a_booked_demo_blocks_its_time_and_a_buffer_on_each_side():
    day = date(2027, 1, 12)
    demo = (oslo(2027, 1, 12, 11), oslo(2027, 1, 12, 11, 30))
    offer = free_slots(RULES, [host(busy=(demo,))], oslo(2027, 1, 8, 12), [day])
    times = local_times(offer[day])
    # 10:30 would end at 11:00 with no buffer; 11:30 would start right after; 12:00 leaves 30 minutes.
    assert "10:00" in times and "10:30" not in times and "11:00" not in times and "11:30" not in times
    assert "12:00" in times


def test_the_buffer_is_the_administrators():
    day = date(2027, 1, 12)
    demo = (oslo(2027, 1, 12, 11), oslo(2027, 1, 12, 11, 30))
    offer = free_slots(Rules(buffer_minutes=0), [host(busy=(demo,))], oslo(2027, 1, 8, 12), [day])
    assert {"10:30", "11:30"} <= set(local_times(offer[day]))


def test_a_host_at_the_daily_cap_offers_nothing_more_that_day():
    day = date(2027, 1, 12)
    full = host(demos_per_day={day: 4})
    assert day not in free_slots(RULES, [full], oslo(2027, 1, 8, 12), [day])
    assert day in free_slots(RULES, [host(demos_per_day={day: 3})], oslo(2027, 1, 8, 12), [day])
    assert availability.free_hosts(oslo(2027, 1, 12, 10), RULES, [full, host(BO)]) == [BO]


def test_minimum_notice_counts_business_hours():
    # Tuesday 10:15: two business hours later is 12:15, so the first slot is 12:30.
    now = oslo(2027, 1, 12, 10, 15)
    offer = free_slots(RULES, [host()], now, [date(2027, 1, 12)])
    assert local_times(offer[date(2027, 1, 12)])[0] == "12:30"
    # Friday 15:00: one hour left that day, one on Monday from 08:00: the first slot is Monday 09:00.
    friday = oslo(2027, 1, 15, 15)
    assert add_business_hours(friday, 2) == oslo(2027, 1, 18, 9)
    offer = free_slots(RULES, [host()], friday)
    assert date(2027, 1, 15) not in offer
    assert local_times(offer[date(2027, 1, 18)])[0] == "09:00"
    # Before 17 May (a Monday in 2027): the notice skips the holiday.
    assert add_business_hours(oslo(2027, 5, 14, 15, 30), 2) == oslo(2027, 5, 18, 9, 30)


def test_the_horizon_is_ten_business_days():
    now = oslo(2027, 1, 11, 12)  # Monday
    days = horizon_days(now, RULES)
    assert days[0] == date(2027, 1, 11) and days[-1] == date(2027, 1, 25) and len(days) == 11
    assert not is_offered(oslo(2027, 1, 26, 10), RULES, [DEFAULT_WEEKLY_HOURS], now)


def test_a_posted_value_is_offered_only_on_the_grid_inside_working_hours():
    now = oslo(2027, 1, 8, 12)
    weeks = [DEFAULT_WEEKLY_HOURS]
    assert is_offered(availability.parse_slot_value("2027-01-12T10:30"), RULES, weeks, now)
    assert not is_offered(availability.parse_slot_value("2027-01-12T10:15"), RULES, weeks, now)
    assert not is_offered(availability.parse_slot_value("2027-01-12T15:45"), RULES, weeks, now)
    assert not is_offered(availability.parse_slot_value("2027-01-12T08:30"), RULES, weeks, now)
    assert not is_offered(availability.parse_slot_value("2027-01-07T10:00"), RULES, weeks, now)  # past


@pytest.mark.parametrize(
    "value",
    ["", "2027-01-12", "2027-01-12T10:30:00", "2027-02-30T10:00", "2027-03-28T02:30", "９９９９-01-12T10:30", None, 12],
)
def test_a_malformed_or_nonexistent_value_reads_as_none(value):
    assert availability.parse_slot_value(value) is None


def test_weekly_hours_round_trip_and_fall_back_to_the_default():
    week = {0: (time(8), time(12)), 2: (time(12, 30), time(17))}
    assert parse_weekly_hours(format_weekly_hours(week)) == week
    assert parse_weekly_hours(None) == DEFAULT_WEEKLY_HOURS
    assert parse_weekly_hours("0=16:00-09:00;x") == {}


def test_a_host_with_shorter_hours_offers_only_inside_them():
    early = HostTime(ANNE, {1: (time(8), time(10))})
    offer = free_slots(RULES, [early], oslo(2027, 1, 8, 12), [date(2027, 1, 12)])
    assert local_times(offer[date(2027, 1, 12)]) == ["08:00", "08:30", "09:00", "09:30"]
