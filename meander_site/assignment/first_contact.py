"""The first-contact clock: how much business time a new lead's owner has left («Svar innen 1 t 20 min»), and the
contact attempts that stop it («Logg kontaktforsøk»: Ringte / Sendte e-post / Fikk svar, with a note).

First contact is the first of: a logged attempt, a move out of «Ny» (the status trigger of migration 0008 sets
`first_contact_at` then), or a demo the prospect booked themselves. Its time is kept on the lead
(`first_contact_at`, set once); every attempt is a line in the lead's timeline.
"""

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa

from ..accounts.models import User
from ..business_hours import DEFAULT_HOURS, BusinessHours, business_time_between, format_duration
from ..core.clock import utcnow
from ..core.text import has_control_characters
from ..extensions import db
from ..leads.models import Lead
from ..leads.records import record_event
from ..leads.statuses import LeadStatus
from ..leads.validation import LeadValidationError

CONTACT_ATTEMPT = "contact_attempt"
ATTEMPT_KINDS = {"called": "Ringte", "emailed": "Sendte e-post", "reached": "Fikk svar"}
MAX_ATTEMPT_NOTE_LENGTH = 250


@dataclass(frozen=True)
class Clock:
    """A running first-contact clock: business time left until `due_at` (negative once it has passed)."""

    due_at: datetime
    left: timedelta

    @property
    def passed(self) -> bool:
        return self.left <= timedelta(0)

    @property
    def label(self) -> str:
        if self.passed:
            return f"Svarfristen gikk ut for {format_duration(-self.left)} siden" if self.left else "Svarfristen er nå"
        return f"Svar innen {format_duration(self.left)}"


def is_waiting_for_first_contact(lead: Lead) -> bool:
    return (
        lead.status == LeadStatus.NEW.value and lead.first_contact_at is None and lead.first_contact_due_at is not None
    )


def clock_of(lead: Lead, now: datetime | None = None, hours: BusinessHours = DEFAULT_HOURS) -> Clock | None:
    """The lead's clock while it waits in «Ny» for its first contact; None once contacted (or never timed)."""
    if not is_waiting_for_first_contact(lead):
        return None
    return clock_at(lead.first_contact_due_at, now or utcnow(), hours)


def clock_at(due_at: datetime, now: datetime, hours: BusinessHours = DEFAULT_HOURS) -> Clock:
    return Clock(due_at, business_time_between(now, due_at, hours))


def waiting_condition() -> sa.ColumnElement[bool]:
    """is_waiting_for_first_contact as SQL."""
    return sa.and_(
        Lead.status == LeadStatus.NEW.value, Lead.first_contact_at.is_(None), Lead.first_contact_due_at.is_not(None)
    )


def past_due_condition(now: datetime) -> sa.ColumnElement[bool]:
    """Waiting for its first contact past the due time: the «Ny» column's count, the red cards, the escalation."""
    return sa.and_(waiting_condition(), Lead.first_contact_due_at < now)


@dataclass(frozen=True)
class Attempt:
    kind: str
    note: str | None

    @property
    def timeline_text(self) -> str:
        text = f"Kontaktforsøk: {ATTEMPT_KINDS[self.kind]}"
        return f"{text} – {self.note}" if self.note else text


def validate_attempt(kind: str | None, note: str | None) -> Attempt:
    errors = {}
    if kind not in ATTEMPT_KINDS:
        errors["attempt_kind"] = "Velg hva du gjorde: Ringte, Sendte e-post eller Fikk svar."
    note = " ".join((note or "").split()) or None
    if note and len(note) > MAX_ATTEMPT_NOTE_LENGTH:
        errors["attempt_note"] = f"Notatet kan ha høyst {MAX_ATTEMPT_NOTE_LENGTH} tegn. Du har skrevet {len(note)}."
    elif note and has_control_characters(note):
        errors["attempt_note"] = "Notatet inneholder et usynlig kontrolltegn. Skriv det inn på nytt."
    if errors:
        raise LeadValidationError(errors)
    return Attempt(kind, note)


def log_attempt(lead_id: uuid.UUID, attempt: Attempt, by: User, now: datetime | None = None) -> bool:
    """Record the attempt in the timeline, and as the first contact if it is the first; commits. True when it was."""
    now = now or utcnow()
    first = db.session.execute(
        sa.update(Lead)
        .where(Lead.id == lead_id, Lead.first_contact_at.is_(None))
        .values(first_contact_at=now, updated_at=now)
        .returning(Lead.id)
        .execution_options(synchronize_session=False)
    ).first()
    record_event(lead_id, CONTACT_ATTEMPT, by, attempt.timeline_text, now)
    db.session.commit()
    return first is not None
