"""The Norwegian business-day calendar, in Europe/Oslo: when a first contact is due, and whether it came in time.

A business day is a weekday that is not a Norwegian public holiday (the `holidays` package: Easter week from
Maundy Thursday to Easter Monday, 1 and 17 May, Ascension, Whit Monday, Christmas and New Year's Day).
Christmas Eve and New Year's Eve are ordinary business days, as in the law.

Instants go in and out as timezone-aware UTC datetimes (what the database stores); calendar questions are asked
of the Oslo date. A deadline "by the end of a day" is 23:59:59 Oslo time on that day: the instant's Oslo date is
then the due day itself (what a card shows), and it is a whole second, fit for `<time datetime>`. An answer within
that last second is still on time: `within_one_business_day` compares Oslo dates, not instants.

Knows nothing of Flask, so the worker, the report and the CLI use it as they are.
"""

import functools
import re
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import holidays

# tzdata (a dependency) supplies the zone where the system has no tz database.
OSLO = ZoneInfo("Europe/Oslo")
END_OF_DAY = time(23, 59, 59)
# Generous: even a long holiday stretch (Easter week with its weekends) has fewer than 10 days off in a row.
_MAX_DAYS_OFF_IN_A_ROW = 10


@functools.cache
def public_holidays(year: int) -> frozenset[date]:
    """Norway's public holidays in one year (Sundays count as weekend, not here)."""
    # One immutable set per year: shared by every thread, never filled in lazily during a lookup.
    return frozenset(holidays.country_holidays("NO", years=year).keys())


def is_business_day(day: date) -> bool:
    return day.weekday() < 5 and day not in public_holidays(day.year)


def add_business_days(day: date, count: int) -> date:
    """The count-th business day after `day` (count >= 1); `day` itself need not be a business day."""
    if count < 1:
        raise ValueError(f"count must be at least 1, got {count}")
    for _ in range(count):
        day = _following_business_day(day)
    return day


def next_business_day(day: date) -> date:
    """The first business day strictly after `day`: a Friday gives the Monday, 16 May 2026 gives 18 May."""
    return _following_business_day(day)


def _following_business_day(day: date) -> date:
    for offset in range(1, _MAX_DAYS_OFF_IN_A_ROW + 1):
        candidate = day + timedelta(days=offset)
        if is_business_day(candidate):
            return candidate
    raise AssertionError(f"no business day within {_MAX_DAYS_OFF_IN_A_ROW} days after {day}")


def business_days_between(start: date, end: date) -> int:
    """Business days after `start` up to and including `end` (0 when end <= start): Friday → Monday is 1."""
    count, day = 0, start
    while day < end:
        day += timedelta(days=1)
        count += is_business_day(day)
    return count


def to_oslo(instant: datetime) -> datetime:
    """The same instant on Oslo's wall clock. A naive datetime is refused: its meaning would be a guess."""
    if instant.tzinfo is None:
        raise ValueError("naive datetimes have no place here; use an aware UTC datetime (models.utcnow())")
    return instant.astimezone(OSLO)


def oslo_today(now: datetime | None = None) -> date:
    return to_oslo(now or datetime.now(UTC)).date()


def end_of_day(day: date) -> datetime:
    """23:59:59 Oslo time on `day`, in UTC. Oslo never changes its clocks near midnight, so this always exists."""
    return datetime.combine(day, END_OF_DAY, tzinfo=OSLO).astimezone(UTC)


def end_of_business_days_after(instant: datetime, count: int) -> datetime:
    """The end (23:59:59 Oslo) of the count-th business day after the Oslo date of `instant`, in UTC."""
    return end_of_day(add_business_days(to_oslo(instant).date(), count))


def end_of_next_business_day(instant: datetime) -> datetime:
    """When a lead that arrived at `instant` must have had its first contact: the promise «innen én arbeidsdag».

    The arrival's Oslo date counts, not its UTC date: 23:30 UTC on a Sunday is Monday in Oslo, due Tuesday.
    """
    return end_of_business_days_after(instant, 1)


def within_one_business_day(arrived: datetime, answered: datetime) -> bool:
    """Was `answered` no later than the end of the next business day after `arrived` (the speed-to-lead measure)?"""
    deadline = next_business_day(to_oslo(arrived).date())
    return to_oslo(answered).date() <= deadline


# --- <input type="datetime-local"> in Oslo time ---------------------------------------------------------------

# The browser sends "YYYY-MM-DDTHH:MM", with ":SS" only when the field's step asks for seconds. ASCII digits only.
_LOCAL_DATETIME = re.compile(r"([0-9]{4})-([0-9]{2})-([0-9]{2})T([0-9]{2}):([0-9]{2})(?::([0-9]{2}))?", re.ASCII)
# A typo like year 9999 is no appointment, and days computed after it would leave the calendar (OverflowError).
ACCEPTED_YEARS = range(1900, 3000)


class LocalTimeError(ValueError):
    """A date and time a salesperson typed that names no instant; the message is Norwegian and says what to do."""

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


class MalformedLocalTime(LocalTimeError):
    def __init__(self):
        super().__init__("Velg dato og klokkeslett, for eksempel 12.01.2027 kl. 13.00.")


class NonexistentLocalTime(LocalTimeError):
    """A wall-clock time skipped when Norway moves to summer time (02:00–03:00 on the last Sunday of March)."""

    def __init__(self, local: datetime):
        super().__init__(
            f"Klokken {local:%H.%M} finnes ikke {local:%d.%m.%Y}: klokken stilles da fram fra 02.00 til 03.00. "
            "Velg et annet klokkeslett."
        )
        self.local = local


def parse_oslo_local(value: str) -> datetime:
    """An `<input type="datetime-local">` value read as Oslo time, returned in UTC.

    A time that occurs twice (02:00–03:00 on the last Sunday of October) means its first occurrence, still in
    summer time; a time that never occurs raises NonexistentLocalTime; anything else unreadable MalformedLocalTime.
    """
    match = _LOCAL_DATETIME.fullmatch(value.strip()) if isinstance(value, str) else None
    if match is None:
        raise MalformedLocalTime()
    year, month, day, hour, minute, second = (int(part or 0) for part in match.groups())
    if year not in ACCEPTED_YEARS:
        raise MalformedLocalTime()
    try:
        # fold=0: of two identical wall-clock times, the earlier.
        local = datetime(year, month, day, hour, minute, second, tzinfo=OSLO, fold=0)
        instant = local.astimezone(UTC)
    except ValueError:
        # 2027-02-30, 25:00, 12:60.
        raise MalformedLocalTime() from None
    if instant.astimezone(OSLO).replace(tzinfo=None) != local.replace(tzinfo=None):
        raise NonexistentLocalTime(local)
    return instant
