"""Follow-up: who owns a lead, what happens next and when, and the notes staff keep. Knows nothing of HTTP.

Every open lead has a next step with a due time; final statuses have none. Each change is a LeadEvent,
so the lead page can show who reassigned what, and when.
"""

import logging
import uuid
from dataclasses import dataclass
from datetime import date, datetime

import sqlalchemy as sa

from .. import business_days
from ..accounts.models import User
from ..core import formatting
from ..core.clock import utcnow
from ..core.text import text_problem
from ..extensions import db
from ..leads import passes
from ..leads.models import MAX_NOTE_LENGTH, Booking, Lead, LeadEvent, LeadNote, LeadStatusChange
from ..leads.next_step import NextStep
from ..leads.records import get_lead, mark_worked, record_event
from ..leads.statuses import FINAL_STATUSES, LOST_REASONS, parse_status
from ..leads.validation import LeadValidationError

log = logging.getLogger(__name__)

MAX_NEXT_STEP_LENGTH = 200
UNASSIGNED = "Ufordelt"


def owner_of(lead: Lead) -> User | None:
    return db.session.get(User, lead.owner_id) if lead.owner_id else None


def _lead_for_update(lead_id: uuid.UUID) -> Lead:

    return get_lead(lead_id)


def assign_owner(lead_id: uuid.UUID, owner_id: uuid.UUID | None, by: User) -> Lead:
    """Give the lead to a staff member, or to nobody («Ufordelt»); the history records the change."""
    lead = _lead_for_update(lead_id)
    new_owner = None
    if owner_id is not None:
        new_owner = db.session.get(User, owner_id)
        if new_owner is None or not new_owner.is_active:
            raise LeadValidationError({"owner": "Velg en aktiv kollega, eller «Ufordelt»."})
    if lead.owner_id == owner_id:
        return lead
    previous = db.session.get(User, lead.owner_id) if lead.owner_id else None
    now = utcnow()
    lead.owner_id = owner_id
    lead.updated_at = now
    before = previous.name if previous else UNASSIGNED
    after = new_owner.name if new_owner else UNASSIGNED
    record_event(lead_id, "owner_changed", by, f"Eier: {before} → {after}", now)
    actor = str(by.id)
    db.session.commit()
    log.info("lead assigned", extra={"event": "lead_assigned", "lead_id": str(lead_id), "user_id": actor})
    return lead


def validate_next_step(raw_text: object, raw_due: object) -> NextStep:
    """A short, single-line text and a due date (`YYYY-MM-DD`, an Oslo calendar day)."""
    text = " ".join(raw_text.split()) if isinstance(raw_text, str) else ""
    errors = {}
    if not text:
        errors["next_step"] = "Skriv hva som skal skje, for eksempel «Ring for å avtale demo»."
    elif problem := text_problem(text, "Neste steg", MAX_NEXT_STEP_LENGTH):
        errors["next_step"] = problem
    due_date = None
    try:
        due_date = date.fromisoformat(raw_due.strip()) if isinstance(raw_due, str) and raw_due.strip() else None
    except ValueError:
        pass
    if due_date is None:
        errors["next_step_due"] = "Velg en frist, for eksempel i morgen."
    elif not date(2000, 1, 1) <= due_date <= date(2100, 12, 31):
        errors["next_step_due"] = "Velg en frist mellom år 2000 og 2100."
    if errors:
        raise LeadValidationError(errors)
    return NextStep(text=text, due_at=business_days.end_of_day(due_date))


def set_next_step(lead_id: uuid.UUID, step: NextStep, by: User) -> Lead:
    lead = _lead_for_update(lead_id)
    if parse_status(lead.status) in FINAL_STATUSES:
        raise LeadValidationError({"next_step": f"«{lead.status_label}» er en sluttstatus og har ikke neste steg."})
    now = utcnow()
    lead.next_step, lead.next_step_due_at = step.text, step.due_at
    lead.updated_at = now
    record_event(
        lead_id,
        "next_step_set",
        by,
        f"Neste steg: {step.text} (frist {business_days.to_oslo(step.due_at):%d.%m.%Y})",
        now,
    )
    db.session.commit()
    log.info("next step set", extra={"event": "next_step_set", "lead_id": str(lead_id)})
    return lead


def validate_note(raw: object) -> str:
    body = raw.strip() if isinstance(raw, str) else ""
    if not body:
        raise LeadValidationError({"body": "Skriv notatet før du lagrer det."})
    if problem := text_problem(body, "Notatet", MAX_NOTE_LENGTH, multiline=True):
        raise LeadValidationError({"body": problem})
    return body


def add_note(lead_id: uuid.UUID, body: str, by: User) -> LeadNote:
    _lead_for_update(lead_id)
    now = utcnow()
    note = LeadNote(lead_id=lead_id, author_id=by.id, author_name=by.name, body=body, created_at=now)
    db.session.add(note)
    mark_worked(lead_id, now)
    db.session.commit()
    log.info("note added", extra={"event": "lead_note_added", "lead_id": str(lead_id)})
    return note


@dataclass(frozen=True)
class TimelineEntry:
    at: datetime
    kind: str  # "note", "status", "event"
    who: str | None
    text: str
    detail: str | None = None


def timeline(lead_id: uuid.UUID) -> list[TimelineEntry]:
    """Notes, moves and other changes, newest first: what happened to this lead, and who did it."""

    entries = [
        TimelineEntry(at=note.created_at, kind="note", who=note.author_name, text=note.body)
        for note in db.session.execute(sa.select(LeadNote).where(LeadNote.lead_id == lead_id)).scalars()
    ]
    for change in db.session.execute(sa.select(LeadStatusChange).where(LeadStatusChange.lead_id == lead_id)).scalars():
        origin, target = parse_status(change.from_status), parse_status(change.to_status)
        text = f"Flyttet fra «{origin.label}» til «{target.label}»"
        if change.reason == passes.REOPEN_REASON:
            text = f"Gjenåpnet: runde {change.pass_number} startet i «{target.label}»"
            if change.changed_by_name is None:
                text += f" ({passes.REOPENED_BY_BOOKING.lower()})"
        elif change.pass_number > 1:
            text = f"Runde {change.pass_number}: {text[0].lower()}{text[1:]}"
        detail = " – ".join(filter(None, [LOST_REASONS.get(change.reason or ""), change.note]))
        entries.append(
            TimelineEntry(
                at=change.changed_at, kind="status", who=change.changed_by_name, text=text, detail=detail or None
            )
        )
    for event in db.session.execute(sa.select(LeadEvent).where(LeadEvent.lead_id == lead_id)).scalars():
        entries.append(TimelineEntry(at=event.at, kind="event", who=event.actor_name, text=event.detail or event.kind))
    # Staff's decisions on a booking's details, recorded on the booking: taken over or declined.
    decisions = (
        (Booking.details_applied_at, "details_applied_by_name", "Tok i bruk opplysningene fra bookingen"),
        (Booking.details_rejected_at, "details_rejected_by_name", "Beholdt opplysningene, ikke dem fra bookingen"),
    )
    for decided_at, decided_by, text in decisions:
        for booking in db.session.execute(
            sa.select(Booking).where(Booking.lead_id == lead_id, decided_at.is_not(None))
        ).scalars():
            entries.append(
                TimelineEntry(
                    at=getattr(booking, decided_at.key),
                    kind="event",
                    who=getattr(booking, decided_by),
                    text=f"{text} {formatting.local_datetime(booking.created_at)}",
                )
            )
    entries.sort(key=lambda entry: entry.at, reverse=True)
    return entries
