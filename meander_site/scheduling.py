"""Demo scheduling: when a lead's demo is, the calendar invitations about it, and what the prospect sees.

A move to «Demo avtalt» carries the demo's time (Oslo wall clock), length, place and host. Scheduling,
moving and cancelling it each write one outbox row per recipient (the prospect and the host) in the same
transaction as the change; the worker builds the mail from fresh data when it sends it.

The invitation is an iCalendar object (RFC 5545) sent as iTIP (RFC 5546): one stable UID per lead's demo,
SEQUENCE one higher for every change (a move, a cancellation), times in UTC (staff type Oslo wall-clock
times; business_days.parse_oslo_local turns them into instants), a reminder 15 minutes before. A mail
whose SEQUENCE has been overtaken by a later change is not sent: the later mail says everything.

Knows nothing of HTTP.
"""

import json
import logging
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.utils import parseaddr

import sqlalchemy as sa
from flask import current_app, render_template
from flask_mail import Message
from icalendar import Alarm, Calendar, Event, vCalAddress, vText

from . import business_days, follow_up, leads, notifications, outbox
from .extensions import db
from .leads import LeadValidationError
from .models import Lead, LeadEvent, LeadStatus, OutboxMessage, User, utcnow

log = logging.getLogger(__name__)

INVITATION_KIND = "demo_invitation"
UPDATE_KIND = "demo_update"
CANCELLATION_KIND = "demo_cancellation"
TIME_REQUEST_KIND = "demo_time_request"
CALENDAR_KINDS = (INVITATION_KIND, UPDATE_KIND, CANCELLATION_KIND)

DEFAULT_MINUTES = 30
MINUTES_RANGE = range(15, 241)
MAX_LOCATION_LENGTH = 500
MAX_WISH_LENGTH = 500
REMINDER_BEFORE = timedelta(minutes=15)
UID_DOMAIN = "demo.meander.no"

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


class DemoNotScheduled(Exception):
    """The lead is not in «Demo avtalt», so it has no demo to move."""


class DemoChanged(Exception):
    """Someone else moved or cancelled the demo between our read and our write."""


@dataclass(frozen=True)
class DemoPlan:
    starts_at: datetime  # UTC
    minutes: int
    location: str
    host_id: uuid.UUID


# --- reading what staff typed -----------------------------------------------------------------------------


def validate_demo(
    raw: Mapping[str, object], default_host_id: uuid.UUID | None, now: datetime | None = None
) -> DemoPlan:
    """The demo fields of a move or a reschedule, every problem reported at once in Norwegian."""
    now = now or utcnow()
    errors: dict[str, str] = {}
    starts_at = None
    raw_at = raw.get("demo_at")
    if not isinstance(raw_at, str) or not raw_at.strip():
        errors["demo_at"] = "Velg dato og klokkeslett for demoen."
    else:
        try:
            starts_at = business_days.parse_oslo_local(raw_at)
        except business_days.LocalTimeError as error:
            errors["demo_at"] = error.message
        else:
            if starts_at <= now:
                errors["demo_at"] = "Tidspunktet har allerede vært. Velg et tidspunkt fram i tid."
    minutes = DEFAULT_MINUTES
    raw_minutes = raw.get("demo_minutes")
    if isinstance(raw_minutes, str) and raw_minutes.strip():
        try:
            minutes = int(raw_minutes.strip(), 10)
        except ValueError:
            minutes = -1
        if minutes not in MINUTES_RANGE:
            errors["demo_minutes"] = (
                f"Velg en lengde mellom {MINUTES_RANGE.start} og {MINUTES_RANGE.stop - 1} minutter, for eksempel 30."
            )
    location = " ".join(raw["demo_location"].split()) if isinstance(raw.get("demo_location"), str) else ""
    if not location:
        errors["demo_location"] = "Skriv hvor demoen er: en videolenke eller en adresse."
    elif problem := leads.text_problem("demo_location", location, "Stedet", MAX_LOCATION_LENGTH):
        errors["demo_location"] = problem
    host_id = default_host_id
    raw_host = raw.get("demo_host") or raw.get("host")
    if isinstance(raw_host, str) and raw_host.strip():
        try:
            host_id = uuid.UUID(raw_host.strip())
        except ValueError:
            host_id = None
    host = db.session.get(User, host_id) if host_id else None
    if host is None or not host.is_active:
        errors["demo_host"] = "Velg hvem som holder demoen."
    if errors:
        raise LeadValidationError(errors)
    return DemoPlan(starts_at=starts_at, minutes=minutes, location=location, host_id=host.id)


def require_plan(target: LeadStatus, plan: DemoPlan | None) -> None:
    """A move to «Demo avtalt» carries its demo; the board keeps the card where it was otherwise."""
    if target == LeadStatus.DEMO_SCHEDULED and plan is None:
        raise LeadValidationError({"demo_at": "Velg dato og klokkeslett for demoen."})


# --- how a demo reads ------------------------------------------------------------------------------------


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


def demo_uid(lead_id: uuid.UUID) -> str:
    """One UID for a lead's demo, whatever happens to it: calendars then treat every mail as the same event."""
    return f"demo-{lead_id}@{UID_DOMAIN}"


def demo_ends_at(lead: Lead) -> datetime | None:
    if lead.demo_at is None:
        return None
    return lead.demo_at + timedelta(minutes=lead.demo_minutes or DEFAULT_MINUTES)


def has_upcoming_demo(lead: Lead, now: datetime | None = None) -> bool:
    return (
        lead.status == LeadStatus.DEMO_SCHEDULED.value
        and lead.demo_at is not None
        and lead.demo_cancelled_at is None
        and (demo_ends_at(lead) > (now or utcnow()))
    )


def public_state(lead: Lead, now: datetime | None = None) -> str:
    """Where the booking stands for the prospect: "received", "scheduled", "held" (a thank-you) or "none"
    (cancelled or lost: no demo is scheduled; the page never says why)."""
    now = now or utcnow()
    if lead.status == LeadStatus.LOST.value or lead.demo_cancelled_at is not None:
        return "none"
    if lead.demo_at is not None and lead.status in (LeadStatus.DEMO_SCHEDULED.value, LeadStatus.CONVERTED.value):
        return "scheduled" if demo_ends_at(lead) > now else "held"
    if lead.status == LeadStatus.CONVERTED.value:
        return "held"
    return "received"


def host_of(lead: Lead) -> User | None:
    return db.session.get(User, lead.demo_host_id) if lead.demo_host_id else None


# --- changing the demo ---------------------------------------------------------------------------------------


def _plan_values(plan: DemoPlan) -> dict:
    return {
        "demo_at": plan.starts_at,
        "demo_minutes": plan.minutes,
        "demo_location": plan.location,
        "demo_host_id": plan.host_id,
        "demo_cancelled_at": None,
        "demo_change_requested_at": None,
        "demo_change_request": None,
    }


def _write_mails(lead: Lead, kind_name: str, sequence: int, host_id: uuid.UUID | None, now: datetime):
    """One row for the prospect and one for the host, in the caller's transaction."""
    payload = {"sequence": sequence}
    rows = [outbox.add(kind_name, lead.email, lead_id=lead.id, payload=payload, now=now)]
    host = db.session.get(User, host_id) if host_id else None
    if host is not None:
        rows.append(outbox.add(kind_name, host.email, lead_id=lead.id, user_id=host.id, payload=payload, now=now))
    return rows


def apply_move(
    lead: Lead, from_status: str, target: LeadStatus, plan: DemoPlan | None, by: User, now: datetime
) -> list[OutboxMessage]:
    """In the move's transaction (sales.move), after the status changed: schedule the demo, or cancel one that
    has not happened yet when the lead goes on to «Kunde» or «Tapt». Returns the mails to dispatch."""
    if target == LeadStatus.DEMO_SCHEDULED and plan is not None:
        db.session.execute(
            sa.update(Lead)
            .where(Lead.id == lead.id)
            .values(**_plan_values(plan), demo_sequence=0)
            .execution_options(synchronize_session=False)
        )
        follow_up.record_event(lead.id, "demo_scheduled", by, f"Demo avtalt: {demo_label(plan.starts_at)}", now)
        return _write_mails(lead, INVITATION_KIND, 0, plan.host_id, now)
    if from_status != LeadStatus.DEMO_SCHEDULED.value or target not in leads.FINAL_STATUSES:
        return []
    # Read and bumped in one statement, after the move's own UPDATE locked the row: a reschedule that
    # committed just before us is seen, and the cancellation's SEQUENCE is always above the last update's.
    cancelled = db.session.execute(
        sa.update(Lead)
        .where(
            Lead.id == lead.id,
            Lead.demo_at.is_not(None),
            Lead.demo_at > now,
            Lead.demo_cancelled_at.is_(None),
        )
        .values(demo_sequence=Lead.demo_sequence + 1, demo_cancelled_at=now, demo_change_requested_at=None)
        .returning(Lead.demo_sequence, Lead.demo_at, Lead.demo_host_id)
        .execution_options(synchronize_session=False)
    ).first()
    if cancelled is None:
        return []  # no demo, or it has already happened: nothing to take back
    sequence, demo_at, host_id = cancelled
    follow_up.record_event(lead.id, "demo_cancelled", by, f"Demo avlyst: {demo_label(demo_at)}", now)
    return _write_mails(lead, CANCELLATION_KIND, sequence, host_id, now)


def reschedule(lead_id: uuid.UUID, plan: DemoPlan, by: User) -> Lead:
    """Move the demo to another time (or set it, for a lead in «Demo avtalt» without one): an update with the
    same UID and SEQUENCE one higher. A compare-and-set on SEQUENCE: two people moving it never both win."""
    lead = db.session.get(Lead, lead_id)
    if lead is None:
        from .sales import LeadNotFound  # sales imports this module

        raise LeadNotFound(lead_id)
    if lead.status != LeadStatus.DEMO_SCHEDULED.value:
        raise DemoNotScheduled(lead_id)
    now = utcnow()
    seen, before = lead.demo_sequence, lead.demo_at
    is_update = before is not None
    sequence = seen + 1 if is_update else seen
    changed = db.session.execute(
        sa.update(Lead)
        .where(Lead.id == lead_id, Lead.status == LeadStatus.DEMO_SCHEDULED.value, Lead.demo_sequence == seen)
        .values(**_plan_values(plan), demo_sequence=sequence, updated_at=now)
        .execution_options(synchronize_session=False)
    ).rowcount
    if changed != 1:
        db.session.rollback()
        raise DemoChanged(lead_id)
    detail = (
        f"Demo flyttet: {demo_label(before)} → {demo_label(plan.starts_at)}"
        if is_update
        else (f"Demo avtalt: {demo_label(plan.starts_at)}")
    )
    follow_up.record_event(lead_id, "demo_moved" if is_update else "demo_scheduled", by, detail, now)
    mails = _write_mails(lead, UPDATE_KIND if is_update else INVITATION_KIND, sequence, plan.host_id, now)
    actor = str(by.id)
    db.session.commit()
    dispatch(mails)
    log.info("demo moved", extra={"event": "demo_moved", "lead_id": str(lead_id), "user_id": actor})
    db.session.refresh(lead)
    return lead


def request_other_time(lead: Lead, raw_wish: object, now: datetime | None = None) -> OutboxMessage:
    """«Be om et annet tidspunkt»: the card says «Ønsker ny tid», and the owner (or, for a lead nobody owns,
    everyone with notifications on) gets a mail."""
    now = now or utcnow()
    wish = raw_wish.strip() if isinstance(raw_wish, str) else ""
    if not wish:
        raise LeadValidationError({"wish": "Skriv når det passer bedre, for eksempel «torsdag formiddag»."})
    if problem := leads.forbidden_character_message("notes", wish):
        raise LeadValidationError({"wish": problem})
    if len(wish) > MAX_WISH_LENGTH:
        raise LeadValidationError({"wish": f"Skriv høyst {MAX_WISH_LENGTH} tegn. Du har skrevet {len(wish)}."})
    if not has_upcoming_demo(lead, now):
        raise DemoNotScheduled(lead.id)
    owner = db.session.get(User, lead.owner_id) if lead.owner_id else None
    lead.demo_change_requested_at = now
    lead.demo_change_request = wish
    lead.updated_at = now
    # The history says it happened; what they wrote stays on the lead, shown in the demo section.
    db.session.add(
        LeadEvent(
            lead_id=lead.id,
            kind="demo_time_requested",
            actor_name="Kontakten",
            at=now,
            detail="Ba om et annet tidspunkt for demoen",
        )
    )
    if owner is not None and owner.is_active:
        message = outbox.add(TIME_REQUEST_KIND, owner.email, lead_id=lead.id, user_id=owner.id, now=now)
    else:
        message = outbox.add(TIME_REQUEST_KIND, notifications.TEAM_RECIPIENT, lead_id=lead.id, now=now)
    lead_id = str(lead.id)
    db.session.commit()
    dispatch([message])
    log.info("other demo time requested", extra={"event": "demo_time_requested", "lead_id": lead_id})
    return message


def dispatch(messages: list[OutboxMessage]) -> None:
    for message in messages:
        outbox.dispatch(message)


# --- the iCalendar object --------------------------------------------------------------------------------------


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


def calendar_for(lead: Lead, method: str, sequence: int, with_attendee: bool = True, now: datetime | None = None):
    """The demo as an iCalendar object: REQUEST (an invitation or an update), CANCEL, or PUBLISH (the download
    from the confirmation page, which carries no attendee address: the link may be forwarded)."""
    host = host_of(lead)
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


def ics_bytes(lead: Lead, method: str, sequence: int, with_attendee: bool = True) -> bytes:
    return calendar_for(lead, method, sequence, with_attendee=with_attendee).to_ical()


def confirm_url(lead: Lead) -> str:
    return f"{current_app.config['SITE_URL']}/confirm/{lead.masked_ref}"


# --- the mails ----------------------------------------------------------------------------------------------


class CalendarMessage(Message):
    """A mail carrying an iTIP method: `text/calendar; method=…` beside the text and HTML (what calendar
    clients act on) and the same object as an .ics attachment (for those that only look at attachments)."""

    def __init__(self, *args, calendar_method: str, ics: bytes, **kwargs):
        super().__init__(*args, **kwargs)
        self.alts["calendar"] = ics.decode("utf-8")
        self.alt_parameters = {"calendar": {"method": calendar_method}}  # see mailer.message_bytes
        self.attach("invitation.ics", "application/ics", ics)


SUBJECTS = {
    INVITATION_KIND: "Demoen er avtalt: {when}",
    UPDATE_KIND: "Demoen er flyttet: {when}",
    CANCELLATION_KIND: "Demoen er avlyst: {when}",
}


def _superseded(message: sa.Row, lead: Lead) -> bool:
    sequence = json.loads(message.payload or "{}").get("sequence")
    return sequence != lead.demo_sequence


def _earlier_invitation_sent(message: sa.Row) -> bool:
    return (
        db.session.execute(
            sa.select(OutboxMessage.id).where(
                OutboxMessage.lead_id == message.lead_id,
                OutboxMessage.recipient == message.recipient,
                OutboxMessage.kind.in_((INVITATION_KIND, UPDATE_KIND)),
                OutboxMessage.sent_at.is_not(None),
            )
        ).first()
        is not None
    )


def build_demo_mail(messages: list[sa.Row]) -> Message | None:
    message = messages[0]
    lead = db.session.get(Lead, message.lead_id) if message.lead_id else None
    if lead is None or lead.demo_at is None or _superseded(message, lead):
        return None  # erased, or a later change says everything this one would
    if message.kind == CANCELLATION_KIND and not _earlier_invitation_sent(message):
        return None  # they never heard of it: no need to take it back
    host = host_of(lead)
    if message.user_id is not None:
        if host is None or host.id != message.user_id:
            return None  # the host changed: the new host got their own invitation
        recipient = host.email
    else:
        recipient = lead.email
    method = "CANCEL" if message.kind == CANCELLATION_KIND else "REQUEST"
    context = {
        "lead": lead,
        "kind": message.kind,
        "when": demo_label(lead.demo_at),
        "minutes": lead.demo_minutes or DEFAULT_MINUTES,
        "host_name": host.name if host else "Meander",
        "for_host": message.user_id is not None,
        "confirm_url": confirm_url(lead),
        "lead_url": notifications.lead_url(lead.id),
    }
    subject = SUBJECTS[message.kind].format(when=context["when"])
    if context["for_host"]:
        subject = f"{subject} ({lead.organization_name})"
    mail = CalendarMessage(
        subject=subject,
        recipients=[recipient],
        body=render_template("mail/demo.txt", **context),
        html=render_template("mail/demo.html", **context),
        calendar_method=method,
        ics=ics_bytes(lead, method, lead.demo_sequence),
    )
    if not context["for_host"] and host is not None:
        mail.reply_to = host.email  # a reply reaches the person who holds the demo
    return mail


for _kind in CALENDAR_KINDS:
    outbox.kind(_kind)(build_demo_mail)


@outbox.kind(TIME_REQUEST_KIND)
def build_time_request(messages: list[sa.Row]) -> Message | None:
    message = messages[0]
    lead = db.session.get(Lead, message.lead_id) if message.lead_id else None
    if lead is None or lead.demo_change_requested_at is None:
        return None  # erased, or the demo has been moved since: nothing left to ask
    if message.user_id is not None:
        owner = db.session.get(User, message.user_id)
        recipients = [owner.email] if owner is not None and owner.is_active else []
    else:
        recipients = [user.email for user in notifications.notified_staff()]
    if not recipients:
        return None
    context = {
        "lead": lead,
        "when": demo_label(lead.demo_at) if lead.demo_at else None,
        "lead_url": notifications.lead_url(lead.id),
    }
    mail = Message(
        subject=f"Ønsker ny tid for demoen: {lead.organization_name}",
        recipients=recipients,
        body=render_template("mail/demo_time_request.txt", **context),
        html=render_template("mail/demo_time_request.html", **context),
    )
    mail.reply_to = lead.email
    return mail
