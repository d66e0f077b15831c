"""The demo as an iCalendar object (RFC 5545, sent as iTIP, RFC 5546): one stable UID per lead's demo, SEQUENCE one
higher for every change, times in UTC."""

import uuid
from datetime import datetime, timedelta
from email.utils import parseaddr

from flask import current_app
from icalendar import Alarm, Calendar, Event, vCalAddress, vText

from ..accounts.models import User
from ..core.clock import utcnow
from ..core.links import external_url
from ..leads.models import Lead
from .demo_state import demo_ends_at, host_of

REMINDER_BEFORE = timedelta(minutes=15)


UID_DOMAIN = "demo.meander.no"


def demo_uid(lead_id: uuid.UUID) -> str:
    """One UID for a lead's demo, whatever happens to it: calendars then treat every mail as the same event."""
    return f"demo-{lead_id}@{UID_DOMAIN}"


def _address(email: str, name: str | None, **params) -> vCalAddress:
    address = vCalAddress(f"mailto:{email}")
    if name:
        address.params["CN"] = vText(name)
    for key, value in params.items():
        address.params[key] = vText(value)
    return address


def organizer_address() -> tuple[str, str]:
    """Who organizes a demo whose host is gone: the site's sender."""
    name, email = parseaddr(current_app.config["MAIL_DEFAULT_SENDER"])
    return email, name or "Meander"


def calendar_for(
    lead: Lead,
    method: str,
    sequence: int,
    with_attendee: bool = True,
    now: datetime | None = None,
    organizer: User | None = None,
):
    """The demo as an iCalendar object: REQUEST (an invitation or an update), CANCEL, or PUBLISH (the download
    from the confirmation page, which carries no attendee address: the link may be forwarded). `organizer`:
    who organized the copy this cancels (a former host's), when not the host."""
    host = organizer or host_of(lead)
    calendar = Calendar()
    calendar.add("prodid", "-//Meander//Demo//NB")
    calendar.add("version", "2.0")
    calendar.add("method", method)
    event = Event()
    event.add("uid", demo_uid(lead.id))
    event.add("dtstamp", (now or utcnow()).replace(microsecond=0))
    # In UTC: one reading in every client. A TZID needs a VTIMEZONE, and the one icalendar derives from the tz
    # database (RDATE lists, no RRULE) is read by dateutil-based parsers as standard time all year round.
    event.add("dtstart", lead.demo_at)
    event.add("dtend", demo_ends_at(lead))
    event.add("sequence", sequence)
    event.add("summary", f"Demo av Meander for {lead.organization_name}")
    event.add("location", lead.demo_location or "")
    event.add("description", f"Se demoen og hva som er avtalt: {confirm_url(lead)}")
    event.add("url", confirm_url(lead))
    if host is not None:
        event.add("organizer", _address(host.email, host.name))
    else:
        email, name = organizer_address()
        event.add("organizer", _address(email, name))
    if with_attendee:
        event.add(
            "attendee",
            _address(
                lead.email,
                f"{lead.first_name} {lead.last_name}",
                ROLE="REQ-PARTICIPANT",
                PARTSTAT="NEEDS-ACTION",
                RSVP="TRUE",
            ),
        )
    if method == "CANCEL":
        event.add("status", "CANCELLED")
    else:
        event.add("status", "CONFIRMED")
        alarm = Alarm()
        alarm.add("action", "DISPLAY")
        alarm.add("description", "Demo av Meander om 15 minutter")
        alarm.add("trigger", -REMINDER_BEFORE)
        event.add_component(alarm)
    calendar.add_component(event)
    return calendar


def ics_bytes(
    lead: Lead, method: str, sequence: int, with_attendee: bool = True, organizer: User | None = None
) -> bytes:
    return calendar_for(lead, method, sequence, with_attendee=with_attendee, organizer=organizer).to_ical()


def confirm_url(lead: Lead) -> str:
    return external_url("booking.confirmation", masked_ref=lead.masked_ref)
