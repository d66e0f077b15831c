"""Changing a lead's demo: reading what staff typed, scheduling it with a move, moving it, cancelling it, and the
prospect's wish for another time.

A move to «Demo avtalt» carries the demo's time (Oslo wall clock), length, place and host. Scheduling,
moving and cancelling it each write one outbox row per recipient (the prospect and the host) in the same
transaction as the change; the worker builds the mail from fresh data when it sends it.

The invitation is an iCalendar object (RFC 5545) sent as iTIP (RFC 5546): one stable UID per lead's demo,
SEQUENCE one higher for every change (a move, a cancellation), times in UTC (staff type Oslo wall-clock
times; business_days.parse_oslo_local turns them into instants), a reminder 15 minutes before. A mail
whose SEQUENCE has been overtaken by a later change is not sent: the later mail says everything. The prospect's
reminders by mail (reminders.py) are written with each new time, and follow the SEQUENCE the same way.

Knows nothing of HTTP.
"""

import logging
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa

from .. import business_days
from ..accounts import users
from ..accounts.models import User
from ..core import text
from ..core.clock import utcnow
from ..extensions import db
from ..leads import records, statuses
from ..leads.models import Lead, LeadEvent
from ..leads.records import LeadNotFound
from ..leads.statuses import LeadStatus
from ..leads.validation import LeadValidationError
from ..mail import dispatch, outbox
from ..mail.models import OutboxMessage
from . import mails, reminders
from .demo_state import DEFAULT_MINUTES, demo_ends_at, has_upcoming_demo, host_of
from .labels import demo_label

log = logging.getLogger(__name__)


MINUTES_RANGE = range(15, 241)
MAX_LOCATION_LENGTH = 500
MAX_WISH_LENGTH = 500


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
    elif problem := text.text_problem(location, "Stedet", MAX_LOCATION_LENGTH):
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


def apply_move(
    lead: Lead, from_status: str, target: LeadStatus, plan: DemoPlan | None, by: User, now: datetime
) -> list[OutboxMessage]:
    """In the move's transaction (pipeline.moves.move), after the status changed: schedule the demo, or cancel one that
    has not happened yet when the lead goes on to «Kunde» or «Tapt». Returns the mails to dispatch."""
    if target == LeadStatus.DEMO_SCHEDULED and plan is not None:
        db.session.execute(
            sa.update(Lead)
            .where(Lead.id == lead.id)
            .values(**_plan_values(plan), demo_sequence=0)
            .execution_options(synchronize_session=False)
        )
        records.record_event(lead.id, "demo_scheduled", by, f"Demo avtalt: {demo_label(plan.starts_at)}", now)
        outbox.write(reminders.reminder_drafts(lead.id, lead.email, plan.starts_at, 0, now), now=now)
        return mails.write_mails(lead, mails.INVITATION, 0, plan.host_id, now)
    if from_status != LeadStatus.DEMO_SCHEDULED.value or target not in statuses.FINAL_STATUSES:
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
    records.record_event(lead.id, "demo_cancelled", by, f"Demo avlyst: {demo_label(demo_at)}", now)
    return mails.write_mails(lead, mails.CANCELLATION, sequence, host_id, now)


def host_clash_note(lead: Lead) -> str:
    """A sentence for staff when the lead's demo overlaps another upcoming demo of the same host, else "". Staff may
    book it all the same (they know whether someone else can take it); a prospect's own booking never overlaps."""
    if lead.demo_at is None or lead.demo_host_id is None or not has_upcoming_demo(lead):
        return ""
    ends_at = demo_ends_at(lead)
    nearby = db.session.execute(
        sa.select(Lead)
        .where(
            Lead.demo_host_id == lead.demo_host_id,
            Lead.id != lead.id,
            Lead.status == LeadStatus.DEMO_SCHEDULED.value,
            Lead.demo_cancelled_at.is_(None),
            Lead.demo_at < ends_at,
            Lead.demo_at > lead.demo_at - timedelta(minutes=MINUTES_RANGE.stop),
        )
        .order_by(Lead.demo_at)
    ).scalars()
    clash = next((other for other in nearby if demo_ends_at(other) > lead.demo_at), None)
    if clash is None:
        return ""
    host = host_of(lead)
    who = host.name if host is not None else "Verten"
    return f"Merk: {who} har en annen demo som overlapper, {demo_label(clash.demo_at)} med «{clash.organization_name}»."


def seen_sequence(raw: object) -> int | None:
    """The demo's SEQUENCE as the page that posted showed it (a hidden field), or None when the post has none."""
    try:
        return int(raw.strip(), 10) if isinstance(raw, str) and raw.strip() else None
    except ValueError:
        return -1  # matches no demo: the post is refused as one that saw another demo


def reschedule(lead_id: uuid.UUID, plan: DemoPlan, by: User, seen: int | None = None) -> Lead:
    """Move the demo to another time (or set it, for a lead in «Demo avtalt» without one): an update with the
    same UID and SEQUENCE one higher. A compare-and-set on the SEQUENCE the staff member saw (`seen`, from the
    form; a post without it is compared with what this request read): of two people moving it from the same
    page, one wins and the other gets DemoChanged, never two updates to the prospect. A host who is replaced
    gets a cancellation of the same UID."""
    lead = db.session.get(Lead, lead_id)
    if lead is None:
        raise LeadNotFound(lead_id)
    if lead.status != LeadStatus.DEMO_SCHEDULED.value:
        raise DemoNotScheduled(lead_id)
    now = utcnow()
    seen = lead.demo_sequence if seen is None else seen
    before, former_host_id = lead.demo_at, lead.demo_host_id
    is_update = before is not None
    sequence = seen + 1 if is_update else seen
    changed = db.session.execute(
        sa.update(Lead)
        .where(
            Lead.id == lead_id,
            Lead.status == LeadStatus.DEMO_SCHEDULED.value,
            Lead.demo_sequence == seen,
            Lead.demo_at.is_not(None) if is_update else Lead.demo_at.is_(None),
        )
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
    records.record_event(lead_id, "demo_moved" if is_update else "demo_scheduled", by, detail, now)
    written = mails.write_mails(lead, mails.UPDATE if is_update else mails.INVITATION, sequence, plan.host_id, now)
    outbox.write(reminders.reminder_drafts(lead_id, lead.email, plan.starts_at, sequence, now), now=now)
    if is_update and former_host_id is not None and former_host_id != plan.host_id:
        written += mails.write_former_host_cancellation(lead, former_host_id, sequence, before, now)
    actor = str(by.id)
    db.session.commit()
    dispatch.dispatch_all(written)
    log.info("demo moved", extra={"event": "demo_moved", "lead_id": str(lead_id), "user_id": actor})
    db.session.refresh(lead)
    return lead


def validate_wish(raw_wish: object) -> str:
    """What the prospect wrote in «Når passer det bedre?», or the reason it cannot be sent."""
    wish = raw_wish.strip() if isinstance(raw_wish, str) else ""
    if not wish:
        raise LeadValidationError({"wish": "Skriv når det passer bedre, for eksempel «torsdag formiddag»."})
    if problem := text.forbidden_character_message(wish, multiline=True):
        raise LeadValidationError({"wish": problem})
    if len(wish) > MAX_WISH_LENGTH:
        raise LeadValidationError({"wish": f"Skriv høyst {MAX_WISH_LENGTH} tegn. Du har skrevet {len(wish)}."})
    return wish


def request_other_time(lead: Lead, raw_wish: object, now: datetime | None = None) -> OutboxMessage:
    """«Be om et annet tidspunkt»: the card says «Ønsker ny tid», and the owner (or, for a lead nobody owns,
    everyone with notifications on) gets a mail.

    Anyone who holds the link can post here, so a demo has one wish at a time (a later one replaces it) and the
    lead mails at most once an hour (mails.ONE_TIME_REQUEST_AN_HOUR): the mail reads the wish when it is
    sent, so it quotes the latest; a wish within the hour after a mail went is on the lead page and the card.
    """
    now = now or utcnow()
    wish = validate_wish(raw_wish)
    if not has_upcoming_demo(lead, now):
        raise DemoNotScheduled(lead.id)
    first_wish = lead.demo_change_requested_at is None
    lead.demo_change_requested_at = now
    lead.demo_change_request = wish
    lead.updated_at = now
    # The UPDATE takes the lead's row lock before the mail is written: wishes for one lead queue here, and
    # the hourly check in the next statement sees every mail a wish before this one committed.
    db.session.flush()
    if first_wish:
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
    owner = db.session.get(User, lead.owner_id) if lead.owner_id else None
    if owner is not None and owner.is_active:
        recipient, user_id = owner.email, owner.id
    else:
        recipient, user_id = users.TEAM_RECIPIENT, None
    draft = outbox.Draft(
        mails.TIME_REQUEST, recipient, lead_id=lead.id, user_id=user_id, close_when=mails.ONE_TIME_REQUEST_AN_HOUR
    )
    [message] = outbox.write([draft], now)
    lead_id = str(lead.id)
    db.session.commit()
    dispatch.dispatch(message)
    log.info(
        "other demo time requested",
        extra={"event": "demo_time_requested", "lead_id": lead_id, "mailed": message.closed_at is None},
    )
    return message
