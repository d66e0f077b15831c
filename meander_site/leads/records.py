"""A lead's record as a whole: finding it, its timeline events, and erasing it (GDPR). Knows nothing of HTTP."""

import logging
import re
import uuid
from datetime import datetime

import sqlalchemy as sa

from ..accounts.models import AuditEvent, User
from ..core.clock import utcnow
from ..extensions import db
from .models import Booking, Lead, LeadEvent, LeadStatusChange
from .statuses import LeadStatus

log = logging.getLogger(__name__)

# Anything but the URL-safe alphabet is no ref of ours (and a NUL would upset PostgreSQL).
MASKED_REF_SHAPE = re.compile(r"[A-Za-z0-9_-]{1,64}")


class LeadNotFound(LookupError):
    pass


def get_lead(lead_id: uuid.UUID) -> Lead:
    lead = db.session.get(Lead, lead_id)
    if lead is None:
        raise LeadNotFound(lead_id)
    return lead


def erase(lead_id: uuid.UUID, by: User) -> set[uuid.UUID]:
    """GDPR erasure: the lead, its bookings and status history go; an audit entry without personal data stays.

    Returns the ids of the bookings erased. A booking racing the erasure is never lost with it: the first
    statement writes the lead row, so its row lock (SQLite: the write lock) makes every booking for this
    lead wait until the erasure commits, and that booking then makes a new lead. Without it, a booking
    committed between our DELETEs would be removed by the lead's ON DELETE CASCADE.
    """
    now = utcnow()
    locked = db.session.execute(
        sa.update(Lead).where(Lead.id == lead_id).values(updated_at=now).execution_options(synchronize_session=False)
    ).rowcount
    if locked != 1:
        db.session.rollback()
        raise LeadNotFound(lead_id)
    db.session.execute(sa.delete(LeadStatusChange).where(LeadStatusChange.lead_id == lead_id))
    erased = set(
        db.session.execute(
            sa.delete(Booking)
            .where(Booking.lead_id == lead_id)
            .returning(Booking.id)
            .execution_options(synchronize_session=False)
        ).scalars()
    )
    db.session.execute(sa.delete(Lead).where(Lead.id == lead_id))
    erased_by = by.id
    db.session.add(AuditEvent(action="lead_erased", subject_id=lead_id, actor_id=erased_by, at=now))
    db.session.commit()
    log.info(
        "lead erased",
        extra={"event": "lead_erased", "lead_id": str(lead_id), "user_id": str(erased_by), "bookings": len(erased)},
    )
    return erased


def erased_at(lead_id: uuid.UUID) -> datetime | None:
    """When this lead was erased, if it was: the audit entry is all that is left of it."""
    return db.session.execute(
        sa.select(sa.func.max(AuditEvent.at)).where(
            AuditEvent.action == "lead_erased", AuditEvent.subject_id == lead_id
        )
    ).scalar_one_or_none()


def latest_booking(lead_id: uuid.UUID) -> Booking | None:
    return db.session.execute(
        sa.select(Booking).where(Booking.lead_id == lead_id).order_by(Booking.created_at.desc()).limit(1)
    ).scalar_one_or_none()


def record_event(lead_id: uuid.UUID, kind: str, by: User, detail: str, at: datetime) -> None:
    """A change staff made, for the lead's timeline (in the caller's transaction). It works the lead."""
    db.session.add(LeadEvent(lead_id=lead_id, kind=kind, actor_id=by.id, actor_name=by.name, at=at, detail=detail))
    mark_worked(lead_id, at)


# --- «worked»: the one rule for what a public rebooking may overwrite ------------------------------------------


def mark_worked(lead_id: uuid.UUID, at: datetime) -> None:
    """Staff did something with this lead: any action (the owner, a note, the next step, a move, the demo, an edit,
    a decision on newer details) comes here, in its own transaction. From then on a public booking's details wait
    for staff («Nye opplysninger») instead of replacing the lead's: someone may already have called that number."""
    db.session.execute(
        sa.update(Lead)
        .where(Lead.id == lead_id)
        .values(staff_edited_at=at)
        .execution_options(synchronize_session=False)
    )


def not_yet_worked(leads: sa.ColumnCollection = Lead.__table__.c) -> sa.ColumnElement[bool]:
    """A lead no one on staff has touched: still «Ny», and never marked by mark_worked (staff typing a lead in mark
    it too). Only such a lead takes a public rebooking's details as its own (leads.upsert)."""
    return sa.and_(leads.status == LeadStatus.NEW.value, leads.staff_edited_at.is_(None))


def find_by_masked_ref(masked_ref: str) -> Lead | None:
    if not MASKED_REF_SHAPE.fullmatch(masked_ref or ""):
        return None
    return db.session.execute(db.select(Lead).where(Lead.masked_ref == masked_ref)).scalar_one_or_none()
