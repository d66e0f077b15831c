"""The free start times as the form shows them: grouped by Oslo day, a few days at a time («Flere tider»).

The form is the site's busiest page, so the computed offer is kept per process, keyed by what it depends on: the
slot data's version (hosts.data_version: one statement of index probes) and the minute. Any demo booked, moved or
cancelled, any absence, settings change or calendar fetch changes the version (a booking without a time does not);
within a minute the offer is computed for the minute's end, so it never offers a time the next second's notice would
refuse.
"""

import threading
from collections import OrderedDict
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from ..accounts import team_settings
from ..core.clock import utcnow
from ..scheduling.labels import MONTHS, WEEKDAYS
from . import availability, hosts, rules

DAYS_PER_PAGE = 3
_KEPT_OFFERS = 16


@dataclass(frozen=True)
class SlotView:
    """One free start time as the picker renders it."""

    value: str  # YYYY-MM-DDTHH:MM, Oslo wall clock: the radio's value
    id: str
    iso: str  # for <time datetime>
    label: str  # «09.30»
    host_ids: tuple


def _view(slot: availability.Slot) -> SlotView:
    local = slot.local
    return SlotView(
        value=slot.value,
        id="slot-" + slot.value.replace(":", ""),
        iso=slot.starts_at.strftime("%Y-%m-%dT%H:%M:%SZ"),
        label=local.strftime("%H.%M"),
        host_ids=slot.host_ids,
    )


@dataclass(frozen=True)
class OfferDay:
    day: date
    slots: list[SlotView]

    @property
    def label(self) -> str:
        return f"{WEEKDAYS[self.day.weekday()].capitalize()} {self.day.day}. {MONTHS[self.day.month - 1]}"


@dataclass(frozen=True)
class Offer:
    days: list[OfferDay]
    next_from: date | None  # where «Flere tider» continues; None: the horizon ends here
    demo_minutes: int = rules.Rules.demo_minutes

    @property
    def is_empty(self) -> bool:
        return not self.days


_offers: OrderedDict[tuple, Offer] = OrderedDict()
_offers_lock = threading.Lock()


def _compute(now: datetime, from_day: date | None, day_count: int, prefer) -> Offer:
    """The first `day_count` days with free times from `from_day`, and the next such day (for «Flere tider»),
    reading the hosts' time a few days at a time: a page costs the days it shows, not the whole horizon."""
    slot_rules = rules.current()
    business = team_settings.current().business_hours
    horizon = [day for day in availability.horizon_days(now, slot_rules) if from_day is None or day >= from_day]
    found: dict[date, list[SlotView]] = {}
    start, chunk = 0, day_count + 1
    while start < len(horizon) and len(found) <= day_count:
        window = horizon[start : start + chunk]
        times = hosts.load_host_times(window[0], window[-1])
        for day, slots in availability.free_slots(slot_rules, times, now, window, business).items():
            views = [_view(slot) for slot in slots if prefer is None or prefer in slot.host_ids]
            if views:
                found[day] = views
        start += chunk
    days = sorted(found)
    return Offer(
        [OfferDay(day, found[day]) for day in days[:day_count]],
        days[day_count] if len(days) > day_count else None,
        slot_rules.demo_minutes,
    )


def free_offer(
    from_day: date | None = None, day_count: int = DAYS_PER_PAGE, now: datetime | None = None, prefer=None
) -> Offer:
    """Up to `day_count` days with free times, from `from_day` (default: the first in the horizon). `prefer`: a
    host whose free times are offered alone while they have any (moving a demo: the same host first)."""
    minute = (now or utcnow()).replace(second=0, microsecond=0)
    key = (hosts.data_version(), minute, from_day, day_count, prefer)
    with _offers_lock:
        kept = _offers.get(key)
        if kept is not None:
            _offers.move_to_end(key)
            return kept
    offer = _compute(minute + timedelta(minutes=1), from_day, day_count, prefer)
    if prefer is not None and offer.is_empty:
        offer = _compute(minute + timedelta(minutes=1), from_day, day_count, None)  # none of theirs: anyone's
    with _offers_lock:
        _offers[key] = offer
        while len(_offers) > _KEPT_OFFERS:
            _offers.popitem(last=False)
    return offer


def parse_from_day(raw: object) -> date | None:
    try:
        return date.fromisoformat(raw) if isinstance(raw, str) and len(raw) == 10 else None
    except ValueError:
        return None
