"""Which start times are free, as pure functions of the rules, the hosts' time and the clock: no database, no
Flask, so every rule is testable with plain values.

A start time is *offered* when it is on the grid (every `step_minutes` from midnight, Oslo wall clock), on a
Norwegian business day within the horizon, after the minimum notice, and inside some host's weekly hours for the
whole demo. It is *free* when at least one such host is also not absent that day, below the daily cap, and has
nothing busy within the demo plus a buffer on each side. The form offers free times; a posted time that was never
offered is refused, one that is offered but no longer free was «nettopp tatt».
"""

import uuid
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta

from .. import business_days
from ..business_days import OSLO
from ..business_hours import DEFAULT_HOURS, BusinessHours, add_business_time
from .rules import Rules, WeeklyHours

SLOT_VALUE_FORMAT = "%Y-%m-%dT%H:%M"

Interval = tuple[datetime, datetime]  # UTC, half-open


@dataclass(frozen=True)
class HostTime:
    """What availability needs to know of one host."""

    host_id: uuid.UUID
    week: WeeklyHours
    absent_days: frozenset[date] = frozenset()
    busy: tuple[Interval, ...] = ()
    demos_per_day: Mapping[date, int] = field(default_factory=dict)


@dataclass(frozen=True)
class Slot:
    starts_at: datetime  # UTC
    host_ids: tuple[uuid.UUID, ...]

    @property
    def local(self) -> datetime:
        return self.starts_at.astimezone(OSLO)

    @property
    def value(self) -> str:
        return self.local.strftime(SLOT_VALUE_FORMAT)

    @property
    def day(self) -> date:
        return self.local.date()


# --- the calendar ---------------------------------------------------------------------------------------------


def add_business_hours(now: datetime, hours: float, business: BusinessHours = DEFAULT_HOURS) -> datetime:
    """`hours` of business time after `now` (UTC in, UTC out), on the team's business hours (business_hours.py):
    with 08:00–16:00, Friday 15:00 + 2 h is Monday 09:00."""
    return add_business_time(now, timedelta(hours=hours), business)


def horizon_days(now: datetime, rules: Rules) -> list[date]:
    """The business days slots may fall on: today's Oslo date (if a business day) up to the horizon-th after it."""
    today = business_days.oslo_today(now)
    last = business_days.add_business_days(today, rules.horizon_business_days)
    days, day = [], today
    while day <= last:
        if business_days.is_business_day(day):
            days.append(day)
        day += timedelta(days=1)
    return days


def _starts_on(day: date, week: WeeklyHours, rules: Rules) -> list[datetime]:
    """The grid's start times on `day` that leave the whole demo inside this week's hours (Oslo wall clock)."""
    hours = week.get(day.weekday())
    if hours is None:
        return []
    opens, closes = hours
    first = opens.hour * 60 + opens.minute
    first += -first % rules.step_minutes
    last = closes.hour * 60 + closes.minute - rules.demo_minutes
    return [
        datetime.combine(day, time(minute // 60, minute % 60), tzinfo=OSLO)
        for minute in range(first, last + 1, rules.step_minutes)
    ]


def _to_utc(local: datetime) -> datetime:
    return local.astimezone(UTC)


def parse_slot_value(value: object) -> datetime | None:
    """A posted `YYYY-MM-DDTHH:MM` (Oslo wall clock) as a UTC instant; None when malformed or not a real time."""
    if not isinstance(value, str) or len(value) != 16:
        return None
    try:
        local = datetime.strptime(value, SLOT_VALUE_FORMAT)
    except ValueError:
        return None
    if not 1900 <= local.year < 3000:
        return None
    aware = local.replace(tzinfo=OSLO)
    instant = aware.astimezone(UTC)
    if instant.astimezone(OSLO).replace(tzinfo=None) != local:
        return None  # skipped by the move to summer time
    return instant


# --- offered and free -----------------------------------------------------------------------------------------


def is_offered(
    starts_at: datetime,
    rules: Rules,
    weeks: Iterable[WeeklyHours],
    now: datetime,
    business: BusinessHours = DEFAULT_HOURS,
) -> bool:
    """Would this start time ever be offered now, whoever is busy: grid, business day, horizon, notice, hours?
    The notice counts in the team's business hours (`business`)."""
    local = starts_at.astimezone(OSLO)
    if starts_at < add_business_hours(now, rules.notice_business_hours, business):
        return False
    if local.date() not in horizon_days(now, rules):
        return False
    return any(local in _starts_on(local.date(), week, rules) for week in weeks)


def _busy_by_day(host: HostTime) -> dict[date, list[Interval]]:
    by_day: dict[date, list[Interval]] = defaultdict(list)
    for start, end in host.busy:
        day, last = start.astimezone(OSLO).date(), end.astimezone(OSLO).date()
        while day <= last:
            by_day[day].append((start, end))
            day += timedelta(days=1)
    return by_day


def _is_free(host: HostTime, busy_that_day: list[Interval], starts_at: datetime, rules: Rules) -> bool:
    buffer = timedelta(minutes=rules.buffer_minutes)
    wanted_from = starts_at - buffer
    wanted_until = starts_at + timedelta(minutes=rules.demo_minutes) + buffer
    return not any(start < wanted_until and wanted_from < end for start, end in busy_that_day)


def free_hosts(starts_at: datetime, rules: Rules, hosts: Iterable[HostTime]) -> list[uuid.UUID]:
    """The hosts who could hold a demo starting then (the offer rules are is_offered's)."""
    local = starts_at.astimezone(OSLO)
    day = local.date()
    free = []
    for host in hosts:
        if day in host.absent_days or host.demos_per_day.get(day, 0) >= rules.max_per_host_per_day:
            continue
        if local not in _starts_on(day, host.week, rules):
            continue
        if _is_free(host, _busy_by_day(host).get(day, []), starts_at, rules):
            free.append(host.host_id)
    return free


def free_slots(
    rules: Rules,
    hosts: Iterable[HostTime],
    now: datetime,
    days: Iterable[date] | None = None,
    business: BusinessHours = DEFAULT_HOURS,
) -> dict[date, list[Slot]]:
    """The free start times of each day (default: the horizon), in order; a day with none is left out. The
    minimum notice counts in the team's business hours (`business`)."""
    hosts = list(hosts)
    earliest = add_business_hours(now, rules.notice_business_hours, business)
    wanted_days = horizon_days(now, rules) if days is None else [day for day in days]
    allowed = set(horizon_days(now, rules))
    busy = {host.host_id: _busy_by_day(host) for host in hosts}
    offer: dict[date, list[Slot]] = {}
    starts: dict[tuple, list[datetime]] = {}  # hosts mostly share their hours: the grid once per day and week
    for day in wanted_days:
        if day not in allowed:
            continue
        hosts_by_start: dict[datetime, list[uuid.UUID]] = defaultdict(list)
        for host in hosts:
            if day in host.absent_days or host.demos_per_day.get(day, 0) >= rules.max_per_host_per_day:
                continue
            hours = host.week.get(day.weekday())
            if (day, hours) not in starts:
                starts[(day, hours)] = [
                    start for start in map(_to_utc, _starts_on(day, host.week, rules)) if start >= earliest
                ]
            busy_that_day = busy[host.host_id].get(day, [])
            for starts_at in starts[(day, hours)]:
                if not busy_that_day or _is_free(host, busy_that_day, starts_at, rules):
                    hosts_by_start[starts_at].append(host.host_id)
        slots = [Slot(start, tuple(ids)) for start, ids in sorted(hosts_by_start.items())]
        if slots:
            offer[day] = slots
    return offer
