"""How times read to Norwegian salespeople."""

from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

from flask import Flask

from .clock import utcnow
from .htmx import is_htmx_request
from .money import kroner

OSLO = ZoneInfo("Europe/Oslo")


def local_datetime(value: datetime | None) -> str:
    if value is None:
        return ""
    return value.astimezone(OSLO).strftime("%d.%m.%Y kl. %H:%M")


def oslo_clock(value: datetime) -> str:
    """Oslo's wall clock to the minute: «09:14»."""
    return value.astimezone(OSLO).strftime("%H:%M")


def html_datetime(value: datetime | None) -> str:
    """A valid HTML global date-time for <time datetime>: UTC, whole seconds, "Z".

    isoformat() would add microseconds (HTML allows at most milliseconds) and "+00:00".
    """
    if value is None:
        return ""
    if value.tzinfo is None:  # the models store only UTC; a naive value can only mean UTC
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def time_since(value: datetime, now: datetime | None = None) -> str:
    """'3 dager', '5 timer', 'under en time': coarse on purpose, a card is glanced at."""
    seconds = max(0, int(((now or utcnow()) - value).total_seconds()))
    hours, days = seconds // 3600, seconds // 86400
    if hours < 1:
        return "under en time"
    if days < 1:
        return "1 time" if hours == 1 else f"{hours} timer"
    if days < 14:
        return "1 dag" if days == 1 else f"{days} dager"
    if days < 60:
        return f"{days // 7} uker"
    return f"{days // 30} måneder"


WEEKDAYS = ("man.", "tir.", "ons.", "tor.", "fre.", "lør.", "søn.")
MONTHS = ("jan.", "feb.", "mars", "apr.", "mai", "juni", "juli", "aug.", "sep.", "okt.", "nov.", "des.")


def due_label(value: datetime, now: datetime | None = None) -> str:
    """When a next step is due, as a salesperson says it: 'i dag', 'i morgen', 'fre. 4. des.', 'i går'."""
    today = (now or utcnow()).astimezone(OSLO).date()
    day = value.astimezone(OSLO).date()
    days = (day - today).days
    if days == 0:
        return "i dag"
    if days == 1:
        return "i morgen"
    if days == -1:
        return "i går"
    if days < -1:
        return f"for {-days} dager siden"
    label = f"{WEEKDAYS[day.weekday()]} {day.day}. {MONTHS[day.month - 1]}"
    return label if day.year == today.year else f"{label} {day.year}"


def oslo_date_value(value: datetime | None) -> str:
    """The value of an <input type="date"> for an instant: its Oslo calendar day."""
    return value.astimezone(OSLO).date().isoformat() if value else ""


def oslo_local_value(value: datetime | None) -> str:
    """The value of an <input type="datetime-local"> for an instant: Oslo's wall clock, to the minute."""
    return value.astimezone(OSLO).strftime("%Y-%m-%dT%H:%M") if value else ""


def local_date(value: date) -> str:
    """A calendar day as Norwegians write it: 07.12.2026."""
    return f"{value:%d.%m.%Y}"


def register(app: Flask) -> None:
    app.add_template_filter(local_date)
    app.add_template_filter(oslo_local_value)
    app.add_template_filter(kroner)
    app.add_template_filter(due_label)
    app.add_template_filter(oslo_date_value)
    app.add_template_filter(local_datetime)
    app.add_template_filter(oslo_clock)
    app.add_template_filter(html_datetime)
    app.add_template_filter(time_since)
    app.jinja_env.globals["is_htmx_request"] = is_htmx_request
