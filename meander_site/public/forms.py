from wtforms import StringField

from ..contact_form import ContactForm

# Bots fill every field; people never see this one (hidden by CSS, out of the tab order).
HONEYPOT_FIELD = "website_url"


class DemoBookingForm(ContactForm):
    website_url = StringField("La dette feltet stå tomt", render_kw={"autocomplete": "off", "tabindex": "-1"})
