"""The booking form's fields: names match Lead attributes; the rules themselves live in leads.py."""

from flask_wtf import FlaskForm
from wtforms import SelectField, StringField, TextAreaField
from wtforms.fields.choices import SelectChoice

from ..leads import FIELD_LABELS, MAX_LENGTHS
from ..models import OrganizationSize

# Bots fill every field; people never see this one (hidden by CSS, out of the tab order).
HONEYPOT_FIELD = "website_url"


def _text(field: str, **render_kw) -> StringField:
    return StringField(FIELD_LABELS[field], render_kw={"maxlength": MAX_LENGTHS[field], **render_kw})


class DemoBookingForm(FlaskForm):
    first_name = _text("first_name", autocomplete="given-name", required=True)
    last_name = _text("last_name", autocomplete="family-name", required=True)
    email = _text("email", type="email", autocomplete="email", inputmode="email", required=True)
    phone = _text("phone", type="tel", autocomplete="tel", inputmode="tel")
    organization_name = _text("organization_name", autocomplete="organization", required=True)
    role_title = _text("role_title", autocomplete="organization-title", required=True)
    organization_size = SelectField(
        FIELD_LABELS["organization_size"],
        choices=[SelectChoice("", "Velg (valgfritt)")]
        + [SelectChoice(value, label) for value, label in OrganizationSize.choices()],
        validate_choice=False,
    )
    current_solution = TextAreaField(
        FIELD_LABELS["current_solution"], render_kw={"maxlength": MAX_LENGTHS["current_solution"], "rows": 2}
    )
    preferred_demo_timing = TextAreaField(
        FIELD_LABELS["preferred_demo_timing"],
        render_kw={"maxlength": MAX_LENGTHS["preferred_demo_timing"], "rows": 2},
    )
    notes = TextAreaField(FIELD_LABELS["notes"], render_kw={"maxlength": MAX_LENGTHS["notes"], "rows": 4})
    website_url = StringField(
        "La dette feltet stå tomt", render_kw={"autocomplete": "off", "tabindex": "-1"}
    )

    REQUIRED = ("first_name", "last_name", "email", "organization_name", "role_title")
    HINTS = {
        "email": "Vi sender bekreftelsen hit.",
        "phone": "Norske numre uten landkode, andre med + foran.",
        "preferred_demo_timing": "For eksempel «tirsdager etter kl. 12» eller «uke 3».",
    }

    def contact_fields(self):
        return [self[name] for name in FIELD_LABELS]
