"""Business time: the hours of the business days (business_days.py) in Europe/Oslo, and clocks that run only then.

A first-contact target of two business hours, counted from a lead's arrival (or from the next opening when it
arrives outside the hours), ends at `add_business_time(arrived, target, hours)`. How much of it is left, or how
long a first contact took, is `business_time_between`. The opening and closing times are wall-clock times in Oslo;
Norway changes its clocks at night, so a business day always has the hours it says, whatever the season.

Instants go in and out as timezone-aware UTC datetimes. Knows nothing of Flask or the database: pure arithmetic.
"""

from bisect import bisect_right
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache

from .business_days import OSLO, is_business_day, to_oslo

DEFAULT_OPENS = time(8, 0)
DEFAULT_CLOSES = time(16, 0)
DEFAULT_TARGET = timedelta(hours=2)
# A clock that would need more than this many calendar days is a misconfiguration, not a deadline.
_MAX_DAYS = 400


@dataclass(frozen=True)
class BusinessHours:
    opens: time = DEFAULT_OPENS
    closes: time = DEFAULT_CLOSES

    def __post_init__(self) -> None:
        if not self.opens < self.closes:
            raise ValueError("business hours must open before they close")

    @property
    def length(self) -> timedelta:
        return datetime.combine(date.min, self.closes) - datetime.combine(date.min, self.opens)

    def window(self, day: date) -> tuple[datetime, datetime] | None:
        """The business hours of an Oslo day, in UTC; None on a weekend or holiday."""
        if not is_business_day(day):
            return None
        opens = datetime.combine(day, self.opens, tzinfo=OSLO).astimezone(UTC)
        closes = datetime.combine(day, self.closes, tzinfo=OSLO).astimezone(UTC)
        return opens, closes


DEFAULT_HOURS = BusinessHours()


def _windows_from(instant: datetime, hours: BusinessHours) -> Iterator[tuple[datetime, datetime]]:
    day = to_oslo(instant).date()
    for offset in range(_MAX_DAYS):
        window = hours.window(day + timedelta(days=offset))
        if window is not None:
            yield window
    raise AssertionError(f"no business hours within {_MAX_DAYS} days")


def clock_start(instant: datetime, hours: BusinessHours = DEFAULT_HOURS) -> datetime:
    """When a clock started at `instant` begins to run: the instant itself within business hours, otherwise the
    next opening (a lead at 16:00 sharp, or on a Saturday, starts at the next business day's opening)."""
    for opens, closes in _windows_from(instant, hours):
        if instant < closes:
            return max(instant, opens)
    raise AssertionError("unreachable")


def add_business_time(start: datetime, duration: timedelta, hours: BusinessHours = DEFAULT_HOURS) -> datetime:
    """The instant when `duration` of business time has passed since `start` (UTC)."""
    if duration < timedelta(0):
        raise ValueError("duration must not be negative")
    remaining = duration
    for opens, closes in _windows_from(start, hours):
        if start >= closes:
            continue
        cursor = max(start, opens)
        available = closes - cursor
        if remaining <= available:
            return cursor + remaining
        remaining -= available
    raise AssertionError("unreachable")


def business_time_between(start: datetime, end: datetime, hours: BusinessHours = DEFAULT_HOURS) -> timedelta:
    """Business time from `start` to `end`; negative when `end` is earlier (time past a deadline).

    Read off each Oslo year's calendar (kept per year and hours), so a span of months costs what a span of minutes
    does: a «Ny» card whose deadline passed in March is drawn as fast as today's. Readings are seconds in a double,
    exact to far under a microsecond, and the result is rounded to the microsecond that timedelta holds.
    """
    if end < start:
        return -business_time_between(end, start, hours)
    seconds = sum(
        _year_calendar(year, hours).seconds(end) - _year_calendar(year, hours).seconds(start)
        for year in range(to_oslo(start).year, to_oslo(end).year + 1)
    )
    return timedelta(microseconds=round(seconds * 1_000_000))


@dataclass(frozen=True)
class BusinessCalendar:
    """The business hours of a run of Oslo days as one running clock: `seconds(t)` is the business time from the
    first day's midnight to `t`, so for instants within the days business_time_between(a, b) is
    seconds(b) - seconds(a) (the windows are disjoint: the time between two instants is what they enclose).

    That is what lets a database sum business time (reporting/speed.py): the windows as arrays turn an instant into
    its clock reading by one binary search and a few additions, written here as the SQL writes them. Instants after
    the last day read as the clock at its end.
    """

    origin: datetime  # the first day's Oslo midnight, in UTC
    opens: tuple[float, ...]  # each window's opening, in seconds after the origin, ascending
    closes: tuple[float, ...]  # its closing
    offsets: tuple[float, ...]  # the business seconds before it, less its opening: the reading is time + offset

    @classmethod
    def of_days(cls, first: date, last: date, hours: BusinessHours = DEFAULT_HOURS) -> "BusinessCalendar":
        origin = datetime.combine(first, time(0), tzinfo=OSLO).astimezone(UTC)
        opens, closes, offsets, total = [], [], [], 0.0
        for offset in range((last - first).days + 1):
            window = hours.window(first + timedelta(days=offset))
            if window is None:
                continue
            opens.append((window[0] - origin).total_seconds())
            closes.append((window[1] - origin).total_seconds())
            offsets.append(total - opens[-1])
            total += closes[-1] - opens[-1]
        return cls(origin, tuple(opens), tuple(closes), tuple(offsets))

    def seconds(self, instant: datetime) -> float:
        since = (instant - self.origin).total_seconds()
        # The last window opened by then; before the first, the first, whose reading is then below 0.
        index = max(bisect_right(self.opens, since) - 1, 0)
        return max(min(since, self.closes[index]) + self.offsets[index], 0.0)


@lru_cache(maxsize=32)
def _year_calendar(year: int, hours: BusinessHours) -> BusinessCalendar:
    return BusinessCalendar.of_days(date(year, 1, 1), date(year, 12, 31), hours)


def first_contact_due(
    arrived: datetime, target: timedelta = DEFAULT_TARGET, hours: BusinessHours = DEFAULT_HOURS
) -> datetime:
    """When a lead that arrived at `arrived` must have had its first contact."""
    return add_business_time(arrived, target, hours)


def halfway(arrived: datetime, target: timedelta = DEFAULT_TARGET, hours: BusinessHours = DEFAULT_HOURS) -> datetime:
    """Half the first-contact target after arrival, in business time: when the owner is reminded."""
    return add_business_time(arrived, target / 2, hours)


def format_duration(duration: timedelta) -> str:
    """«1 t 20 min», «45 min», «3 t», «26 t»: business time left or taken, in whole minutes (rounded up while
    running); from 10 hours on, whole hours (the minutes are noise there, and a card has one line for it)."""
    minutes = max(0, -(-int(duration.total_seconds()) // 60))
    hours_part, minutes_part = divmod(minutes, 60)
    if hours_part and minutes_part and hours_part < 10:
        return f"{hours_part} t {minutes_part} min"
    if hours_part:
        return f"{hours_part} t"
    return f"{minutes_part} min"


def format_minutes(minutes: int) -> str:
    """format_duration for a whole number of minutes (a setting): «2 t», «30 min»."""
    return format_duration(timedelta(minutes=minutes))
