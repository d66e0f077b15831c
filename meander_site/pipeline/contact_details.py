"""Staff correcting a lead's contact details, and deciding on the details a later booking brought: taking them
over («Bruk disse opplysningene») or keeping the lead's («Behold nåværende»), each recorded on the booking."""

import logging
import uuid
from collections.abc import Mapping

import sqlalchemy as sa

from ..accounts.models import User
from ..core.clock import utcnow
from ..extensions import db
from ..leads import validation
from ..leads.models import CONTACT_FIELDS, Booking, Lead
from ..leads.records import LeadNotFound, get_lead, mark_worked
from ..leads.validation import LeadValidationError

log = logging.getLogger(__name__)


EMAIL_TAKEN = "En annen lead har allerede denne e-postadressen. Søk den opp i stedet."


def update_contact(lead_id: uuid.UUID, raw: Mapping[str, object]) -> Lead:
    """Staff edit the contact fields; the same rules as the public form. Nothing else is editable here."""
    lead = get_lead(lead_id)
    details = validation.validate_contact_details(raw, for_staff=True)
    if _email_taken(details.email, lead_id):
        raise LeadValidationError({"email": EMAIL_TAKEN})
    for name, value in details.as_dict().items():
        setattr(lead, name, value)
    lead.newer_details_booking_id = None
    try:
        # From now on the lead's details are staff's: a public rebooking only offers its own.
        mark_worked(lead_id, utcnow())
        db.session.commit()
    except sa.exc.IntegrityError:
        # Another edit or booking took the address between our check and our commit: the unique index
        # decided, and the salesperson gets the same answer as when the check catches it.
        db.session.rollback()
        if _email_taken(details.email, lead_id):
            raise LeadValidationError({"email": EMAIL_TAKEN}) from None
        raise
    return lead


def _email_taken(email: str, lead_id: uuid.UUID) -> bool:
    return db.session.execute(sa.select(Lead.id).where(Lead.email == email, Lead.id != lead_id)).first() is not None


def newer_details(lead: Lead) -> tuple[Booking, dict[str, tuple[str | None, str | None]]] | None:
    """The booking waiting for staff's decision and how its details differ: field -> (lead's, booking's)."""
    if lead.newer_details_booking_id is None:
        return None
    booking = db.session.get(Booking, lead.newer_details_booking_id)
    if booking is None or booking.lead_id != lead.id:
        return None
    differences = {
        name: (getattr(lead, name), getattr(booking, name))
        for name in CONTACT_FIELDS
        if getattr(lead, name) != getattr(booking, name)
    }
    return booking, differences


def _booking_of(lead: Lead, booking_id: uuid.UUID) -> Booking:
    booking = db.session.get(Booking, booking_id)
    if booking is None or booking.lead_id != lead.id:
        raise LeadNotFound(booking_id)
    return booking


def apply_booking_details(lead_id: uuid.UUID, booking_id: uuid.UUID, by: User) -> Lead:
    """«Bruk disse opplysningene»: the booking's details become the lead's, recorded on the booking."""
    lead = get_lead(lead_id)
    booking = _booking_of(lead, booking_id)
    if booking.email != lead.email:
        taken = db.session.execute(sa.select(Lead.id).where(Lead.email == booking.email, Lead.id != lead_id)).first()
        if taken:
            raise LeadValidationError(
                {"email": "En annen lead har allerede e-postadressen fra denne bookingen. Søk den opp i stedet."}
            )
    now = utcnow()
    for name in CONTACT_FIELDS:
        setattr(lead, name, getattr(booking, name))
    booking.details_applied_at = now
    booking.details_applied_by_name = by.name
    return _decided(lead, booking, by, now, "booking_details_applied")


def keep_current_details(lead_id: uuid.UUID, booking_id: uuid.UUID, by: User) -> Lead:
    """«Behold nåværende»: the lead keeps its details, and the booking records that staff chose so."""
    lead = get_lead(lead_id)
    booking = _booking_of(lead, booking_id)
    now = utcnow()
    booking.details_rejected_at = now
    booking.details_rejected_by_name = by.name
    return _decided(lead, booking, by, now, "booking_details_kept")


def _decided(lead: Lead, booking: Booking, by: User, now, event: str) -> Lead:
    """Staff's decision on a booking's details is made: the flag goes, the lead counts as worked."""
    if lead.newer_details_booking_id == booking.id:
        lead.newer_details_booking_id = None
    mark_worked(lead.id, now)
    fields = {"event": event, "lead_id": str(lead.id), "booking_id": str(booking.id), "user_id": str(by.id)}
    db.session.commit()
    log.info(event.replace("_", " "), extra=fields)
    return lead
