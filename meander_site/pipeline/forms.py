from wtforms import BooleanField, SelectField

from ..contact_form import ContactForm, optional_choices
from ..models import LeadSource

# Staff type in leads from every channel but the website form.
STAFF_SOURCES = [(source.value, source.label) for source in LeadSource if source != LeadSource.WEBSITE]


class LeadEditForm(ContactForm):
    """The contact fields of an existing lead; nothing else is editable."""

    HINTS = {}


class NewLeadForm(ContactForm):
    source = SelectField("Kilde", choices=optional_choices("Velg kilde", STAFF_SOURCES), validate_choice=False)
    send_confirmation = BooleanField("Send bekreftelse på e-post til kontakten")

    REQUIRED = (*ContactForm.REQUIRED, "source")
    HINTS = {}

    def contact_fields(self):
        return [*super().contact_fields(), self.source]
