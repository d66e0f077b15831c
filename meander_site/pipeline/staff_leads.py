"""Leads staff type in themselves (the phone, an event, a referral): the same upsert as the public form, no
rate limit."""

from collections.abc import Mapping

from ..booking.book_demo import BookingResult, book_demo
from ..leads import validation
from ..leads.models import LeadSource
from ..leads.validation import ContactDetails, LeadValidationError

# Staff type in leads from every channel but the website form, which only the public booking creates.
STAFF_SOURCES = tuple(source for source in LeadSource if source != LeadSource.WEBSITE)


def staff_source(value: object) -> LeadSource:
    """The channel of a lead staff type in: any of STAFF_SOURCES, never the website form's."""
    try:
        source = LeadSource(value)
    except ValueError:
        source = None
    if source not in STAFF_SOURCES:
        raise LeadValidationError({"source": "Velg hvor leaden kom fra."})
    return source


def validate_staff_lead(raw: Mapping[str, object]) -> tuple[ContactDetails, LeadSource]:
    """The new-lead form's fields, every problem reported at once."""
    errors, details, source = {}, None, None
    try:
        details = validation.validate_contact_details(raw, for_staff=True)
    except LeadValidationError as error:
        errors.update(error.errors)
    try:
        source = staff_source(raw.get("source"))
    except LeadValidationError as error:
        errors.update(error.errors)
    if errors:
        raise LeadValidationError(errors)
    return details, source


def create_by_staff(details: ContactDetails, source: object, send_confirmation: bool) -> BookingResult:
    """A lead from the phone, an event or a referral: the same upsert as the public form, no rate limit."""
    channel = staff_source(source)
    return book_demo(details, ip_address=None, source=channel, with_confirmation=send_confirmation, by_staff=True)
