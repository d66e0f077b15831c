"""Reading and saving what a host and an administrator set on «Demoer»: whether one takes demos and when, and the
rules for everyone. Every problem is reported at once, in Norwegian."""

import re
import uuid
from collections.abc import Mapping
from datetime import time

from ..core.clock import utcnow
from ..extensions import db
from ..scheduling.labels import WEEKDAYS
from . import rules
from .models import DemoHost
from .rules import LIMITS, Rules, WeeklyHours, format_weekly_hours

_CLOCK = re.compile(r"([0-2][0-9])[:.]([0-5][0-9])", re.ASCII)

RULE_LABELS = {
    "demo_minutes": "Lengde på demoen (minutter)",
    "buffer_minutes": "Pause før og etter (minutter)",
    "notice_business_hours": "Minste varsel (arbeidstimer)",
    "horizon_business_days": "Hvor langt fram kunden kan booke (arbeidsdager)",
    "max_per_host_per_day": "Høyst antall demoer per person per dag",
    "step_minutes": "Nytt starttidspunkt hvert (minutter)",
    "change_cutoff_hours": "Siste endring før demoen (timer)",
    "max_moves": "Høyst antall flyttinger per demo",
}


class SettingsError(ValueError):
    def __init__(self, errors: dict[str, str]):
        super().__init__(errors)
        self.errors = errors


def _clock(raw: object) -> time | None:
    match = _CLOCK.fullmatch(raw.strip()) if isinstance(raw, str) else None
    if match is None or int(match.group(1)) > 23:
        return None
    return time(int(match.group(1)), int(match.group(2)))


def parse_week(form: Mapping[str, object]) -> WeeklyHours:
    """The weekly hours from the form: `day<n>` (on), `from<n>`, `to<n>` for each weekday (Monday 0)."""
    week: WeeklyHours = {}
    errors = {}
    for day in range(7):
        if form.get(f"day{day}") != "on":
            continue
        start, end = _clock(form.get(f"from{day}")), _clock(form.get(f"to{day}"))
        if start is None or end is None:
            errors[f"from{day}"] = f"Skriv klokkeslett for {WEEKDAYS[day]} som 09:00 og 16:00."
        elif start >= end:
            errors[f"from{day}"] = f"På {WEEKDAYS[day]} må sluttiden være etter starttiden."
        else:
            week[day] = (start, end)
    if errors:
        raise SettingsError(errors)
    return week


def save_host(user_id: uuid.UUID, takes_demos: bool, week: WeeklyHours) -> None:
    """Commits."""
    row = db.session.get(DemoHost, user_id)
    if row is None:
        row = DemoHost(user_id=user_id)
        db.session.add(row)
    row.takes_demos = takes_demos
    row.weekly_hours = format_weekly_hours(week)
    row.updated_at = utcnow()
    db.session.commit()


def parse_rules(form: Mapping[str, object]) -> Rules:
    values, errors = {}, {}
    for name, (low, high) in LIMITS.items():
        raw = form.get(name)
        try:
            value = int(raw.strip(), 10) if isinstance(raw, str) else None
        except ValueError:
            value = None
        if value is None or not low <= value <= high:
            errors[name] = f"{RULE_LABELS[name]}: velg et helt tall mellom {low} og {high}."
        else:
            values[name] = value
    location = " ".join(form.get("location").split()) if isinstance(form.get("location"), str) else ""
    if not location or len(location) > 500:
        errors["location"] = "Skriv hvor demoene holdes, for eksempel «Teams – lenken står i invitasjonen»."
    if errors:
        raise SettingsError(errors)
    return Rules(**values, location=location)


def save_rules(new_rules: Rules, by_id: uuid.UUID) -> None:
    try:
        rules.save(new_rules, by_id)
    except rules.RulesError as error:
        raise SettingsError(error.errors) from None
