from wtforms import BooleanField, SelectField

from ..contact_form import ContactForm, optional_choices
from ..sales import STAFF_SOURCES


class LeadEditForm(ContactForm):
    """The contact fields of an existing lead; nothing else is editable."""

    HINTS = {}


class NewLeadForm(ContactForm):
    source = SelectField(
        "Kilde",
        choices=optional_choices("Velg kilde", [(source.value, source.label) for source in STAFF_SOURCES]),
        validate_choice=False,
    )
    send_confirmation = BooleanField("Send bekreftelse på e-post til kontakten")

    REQUIRED = (*ContactForm.REQUIRED, "source")
    HINTS = {}

    def contact_fields(self):
        return [*super().contact_fields(), self.source]
