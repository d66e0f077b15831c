"""How a demo's time reads in Norwegian, on Oslo's wall clock: «tirsdag 12. januar kl. 13.00», «i morgen 09.30»."""

from datetime import datetime

from .. import business_days

WEEKDAYS = ("mandag", "tirsdag", "onsdag", "torsdag", "fredag", "lørdag", "søndag")


MONTHS = (
    "januar",
    "februar",
    "mars",
    "april",
    "mai",
    "juni",
    "juli",
    "august",
    "september",
    "oktober",
    "november",
    "desember",
)


def demo_label(instant: datetime) -> str:
    """«tirsdag 12. januar kl. 13.00», on Oslo's wall clock."""
    local = business_days.to_oslo(instant)
    return f"{WEEKDAYS[local.weekday()]} {local.day}. {MONTHS[local.month - 1]} kl. {local:%H.%M}"


def short_demo_label(instant: datetime, now: datetime | None = None) -> str:
    """What a card shows: «i dag 13.00», «i morgen 09.30», «tir. 12.01 13.00»."""
    local = business_days.to_oslo(instant)
    days = (local.date() - business_days.oslo_today(now)).days
    if days == 0:
        day = "i dag"
    elif days == 1:
        day = "i morgen"
    else:
        day = f"{WEEKDAYS[local.weekday()][:3]}. {local:%d.%m}"
    return f"{day} {local:%H.%M}"


def is_today(instant: datetime | None, now: datetime | None = None) -> bool:
    return instant is not None and business_days.to_oslo(instant).date() == business_days.oslo_today(now)
