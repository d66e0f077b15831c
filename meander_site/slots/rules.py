"""The administrator's rules for self-booked demos and a host's weekly hours, as values the pure availability
code reads. Defaults: 30 minutes, 15 minutes' buffer, 2 business hours' notice, 10 business days ahead, 4 demos
per host a day, a start every 30 minutes; changes up to 2 hours before, at most 3 moves."""

import functools
import re
import uuid
from dataclasses import dataclass, fields
from datetime import time

import sqlalchemy as sa

from ..core.clock import utcnow
from ..core.database import forget_per_transaction, per_transaction
from ..extensions import db
from .models import SlotRules

ROW_ID = 1
DEFAULT_LOCATION = "Videomøte: lenken står i invitasjonen"


@dataclass(frozen=True)
class Rules:
    demo_minutes: int = 30
    buffer_minutes: int = 15
    notice_business_hours: int = 2
    horizon_business_days: int = 10
    max_per_host_per_day: int = 4
    step_minutes: int = 30
    change_cutoff_hours: int = 2
    max_moves: int = 3
    location: str = DEFAULT_LOCATION


# What an administrator may choose for each number: the form renders these as min/max, the setter checks them.
LIMITS = {
    "demo_minutes": (15, 120),
    "buffer_minutes": (0, 60),
    "notice_business_hours": (0, 40),
    "horizon_business_days": (1, 30),
    "max_per_host_per_day": (1, 12),
    "step_minutes": (15, 60),
    "change_cutoff_hours": (0, 48),
    "max_moves": (0, 10),
}


# Read once per transaction (core.database.per_transaction).
_KEPT = "slot_rules"


@functools.cache
def _select_rules():
    columns = SlotRules.__table__.c  # built once, from the table: a Core statement's cache key is kept
    return sa.select(*(columns[field.name] for field in fields(Rules))).where(columns.id == ROW_ID)


def _read() -> Rules:
    row = db.session.execute(_select_rules()).first()
    if row is None:
        return Rules()
    return Rules(**row._asdict())


def current() -> Rules:
    """The rules, read once per transaction (a booking with a slot checks the offer, then books it)."""
    return per_transaction(db.session, _KEPT, _read)


# For a statement that reads the rules beside something else (rules_columns), each labelled with this prefix.
COLUMN_PREFIX = "rule_"


def rules_columns() -> list:
    """One scalar subquery per rule (NULL without the row), labelled COLUMN_PREFIX + its name."""
    columns = SlotRules.__table__.c
    return [
        sa.select(columns[field.name]).where(columns.id == ROW_ID).scalar_subquery().label(COLUMN_PREFIX + field.name)
        for field in fields(Rules)
    ]


def keep_from_columns(row) -> Rules:
    """The rules a statement read beside something else (rules_columns), kept for the rest of the transaction."""
    values = {field.name: getattr(row, COLUMN_PREFIX + field.name) for field in fields(Rules)}
    rules = Rules(**values) if all(value is not None for value in values.values()) else Rules()
    return per_transaction(db.session, _KEPT, lambda: rules)


class RulesError(ValueError):
    def __init__(self, errors: dict[str, str]):
        super().__init__(errors)
        self.errors = errors


def save(rules: Rules, by_id: uuid.UUID | None) -> None:
    """Store the rules (one row), checking each number against LIMITS. Commits."""
    errors = {}
    for name, (low, high) in LIMITS.items():
        value = getattr(rules, name)
        if not isinstance(value, int) or not low <= value <= high:
            errors[name] = f"Velg et tall mellom {low} og {high}."
    if errors:
        raise RulesError(errors)
    forget_per_transaction(db.session, _KEPT)
    row = db.session.get(SlotRules, ROW_ID)
    if row is None:
        row = SlotRules(id=ROW_ID)
        db.session.add(row)
    for field in fields(Rules):
        setattr(row, field.name, getattr(rules, field.name))
    row.updated_at, row.updated_by_id = utcnow(), by_id
    db.session.commit()


# --- weekly hours -------------------------------------------------------------------------------------------

WeeklyHours = dict[int, tuple[time, time]]  # weekday (Monday 0) → Oslo wall clock from, to
DEFAULT_WEEKLY_HOURS: WeeklyHours = {day: (time(9), time(16)) for day in range(5)}
_DAY = re.compile(r"([0-6])=([0-2][0-9]):([0-5][0-9])-([0-2][0-9]):([0-5][0-9])", re.ASCII)


def parse_weekly_hours(stored: str | None) -> WeeklyHours:
    """The stored form ("0=09:00-16:00;…") read back; None or nothing readable: the default week."""
    if not stored:
        return dict(DEFAULT_WEEKLY_HOURS)
    week: WeeklyHours = {}
    for part in stored.split(";"):
        match = _DAY.fullmatch(part.strip())
        if match is None:
            continue
        day, from_h, from_m, to_h, to_m = (int(group) for group in match.groups())
        if from_h > 23 or to_h > 23:
            continue
        start, end = time(from_h, from_m), time(to_h, to_m)
        if start < end:
            week[day] = (start, end)
    return week


def format_weekly_hours(week: WeeklyHours) -> str:
    return ";".join(f"{day}={start:%H:%M}-{end:%H:%M}" for day, (start, end) in sorted(week.items()))
