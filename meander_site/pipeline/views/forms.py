"""The staff forms: a lead's contact fields, and a lead typed in by hand with where it came from."""

from wtforms import BooleanField, SelectField

from ...booking.forms import ContactForm, optional_choices
from ..staff_leads import STAFF_SOURCES


class LeadEditForm(ContactForm):
    """The contact fields of an existing lead; nothing else is editable."""

    HINTS = {}


class NewLeadForm(ContactForm):
    source = SelectField(
        "Opprinnelse",
        choices=optional_choices("Velg opprinnelse", [(source.value, source.label) for source in STAFF_SOURCES]),
        validate_choice=False,
    )
    send_confirmation = BooleanField("Send bekreftelse på e-post til kontakten")

    REQUIRED = (*ContactForm.REQUIRED, "source")
    HINTS = {}

    def contact_fields(self):
        return [*super().contact_fields(), self.source]
