"""The contact fields as a form, shared by the public booking form and staff's lead forms, and the public form.

Field names match Lead attributes; the rules themselves live in leads/validation.py, so the form only renders.
"""

from flask_wtf import FlaskForm
from wtforms import SelectField, StringField, TextAreaField
from wtforms.fields.choices import SelectChoice

from ..leads.models import OrganizationSize
from ..leads.validation import FIELD_LABELS, MAX_LENGTHS, REQUIRED_FIELDS


def _text(field: str, **render_kw) -> StringField:
    return StringField(FIELD_LABELS[field], render_kw={"maxlength": MAX_LENGTHS[field], **render_kw})


def _textarea(field: str, rows: int) -> TextAreaField:
    return TextAreaField(FIELD_LABELS[field], render_kw={"maxlength": MAX_LENGTHS[field], "rows": rows})


def optional_choices(placeholder: str, choices: list[tuple[str, str]]) -> list[SelectChoice]:
    return [SelectChoice("", placeholder)] + [SelectChoice(value, label) for value, label in choices]


class ContactForm(FlaskForm):
    first_name = _text("first_name", autocomplete="given-name", required=True)
    last_name = _text("last_name", autocomplete="family-name", required=True)
    email = _text("email", type="email", autocomplete="email", inputmode="email", required=True)
    phone = _text("phone", type="tel", autocomplete="tel", inputmode="tel")
    organization_name = _text("organization_name", autocomplete="organization", required=True)
    role_title = _text("role_title", autocomplete="organization-title", required=True)
    organization_size = SelectField(
        FIELD_LABELS["organization_size"],
        choices=optional_choices("Velg (valgfritt)", OrganizationSize.choices()),
        validate_choice=False,
    )
    current_solution = _textarea("current_solution", rows=2)
    preferred_demo_timing = _textarea("preferred_demo_timing", rows=2)
    notes = _textarea("notes", rows=4)

    REQUIRED = REQUIRED_FIELDS
    HINTS = {
        "email": "Vi sender bekreftelsen hit.",
        "phone": "Norske numre uten landkode, andre med + foran.",
        "preferred_demo_timing": "For eksempel «tirsdager etter kl. 12» eller «uke 3».",
    }

    def contact_fields(self):
        return [self[name] for name in FIELD_LABELS]


# Bots fill every field; people never see this one (hidden by CSS, out of the tab order).
HONEYPOT_FIELD = "website_url"


class DemoBookingForm(ContactForm):
    website_url = StringField("La dette feltet stå tomt", render_kw={"autocomplete": "off", "tabindex": "-1"})
