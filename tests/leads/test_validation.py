"""The seed's validation rules, in the domain layer and as a prospect meets them through the form (422)."""

import re
from html.parser import HTMLParser

import pytest
import sqlalchemy as sa
from helpers.booking import VALID_BOOKING, book, only_lead, stored_counts

from meander_site.extensions import db
from meander_site.leads.models import Lead
from meander_site.leads.statuses import LeadStatus, UnknownStatusError, parse_status
from meander_site.leads.validation import LeadValidationError, validate_contact_details

# --- helpers -----------------------------------------------------------------------------------------


def submission(**fields) -> dict:
    data = {**VALID_BOOKING, **fields}
    return {key: value for key, value in data.items() if value is not None}


def errors_for(**fields) -> dict[str, str]:
    with pytest.raises(LeadValidationError) as caught:
        validate_contact_details(submission(**fields))
    return caught.value.errors


class FormPage(HTMLParser):
    """The form controls of a page as a browser sees them: attributes unescaped, textarea text as typed."""

    def __init__(self, html: str):
        super().__init__(convert_charrefs=True)
        self.elements: dict[str, dict] = {}
        self.textareas: dict[str, str] = {}
        self.selected: dict[str, str] = {}
        self.error_texts: dict[str, str] = {}
        self._textarea: str | None = None
        self._error: str | None = None
        self._select: str | None = None
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        attributes = dict(attrs)
        if tag in ("input", "select", "textarea") and "id" in attributes:
            self.elements[attributes["id"]] = {"tag": tag, **attributes}
        if tag == "textarea":
            self._textarea = attributes.get("name")
            self.textareas[self._textarea] = ""
        if tag == "select":
            self._select = attributes.get("name")
        if tag == "option" and self._select and "selected" in attributes:
            self.selected[self._select] = attributes.get("value")
        if tag == "p" and attributes.get("class") == "error":
            self._error = attributes["id"].removesuffix("-error")
            self.error_texts[self._error] = ""

    def handle_endtag(self, tag):
        if tag == "textarea":
            self._textarea = None
        if tag == "select":
            self._select = None
        if tag == "p":
            self._error = None

    def handle_data(self, data):
        if self._textarea:
            self.textareas[self._textarea] += data
        if self._error:
            self.error_texts[self._error] += data

    def value_of(self, name: str) -> str | None:
        if name in self.textareas:
            # HTML drops the newline right after <textarea>; WTForms writes one.
            return re.sub(r"^\r?\n", "", self.textareas[name])
        if name in self.selected:
            return self.selected[name]
        element = self.elements.get(name)
        return element.get("value") if element else None


# --- email_format ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "email", ["kari", "kari@", "@lhl.no", "kari nordmann@lhl.no", "kari@@lhl.no", "kari@lhl", "kari@lhl..no"]
)
def test_malformed_email_is_rejected_at_the_email_field(email):
    errors = errors_for(email=email)
    assert set(errors) == {"email"}
    assert "gyldig e-postadresse" in errors["email"]


def test_malformed_email_through_the_form_gives_422_with_norwegian_message_and_stores_nothing(app, client):
    response = book(client, email="kari.nordmann@@lhl.no")

    assert response.status_code == 422
    page = FormPage(response.get_data(as_text=True))
    assert "gyldig e-postadresse" in page.error_texts["email"]
    assert page.value_of("email") == "kari.nordmann@@lhl.no"
    assert stored_counts(app) == (0, 0)


def test_email_domain_is_not_looked_up_in_dns(app, client):
    # Syntactically fine, but no such domain exists: accepted, because deliverability is not checked.
    response = book(client, email="kari@ingen-slik-organisasjon-q7z3x.no")

    assert response.status_code == 303
    assert only_lead(app).email == "kari@ingen-slik-organisasjon-q7z3x.no"


def test_email_is_stored_trimmed_and_lower_cased(app, client):
    assert book(client, email="  Kari.Nordmann@LHL.NO ").status_code == 303

    assert only_lead(app).email == "kari.nordmann@lhl.no"


@pytest.mark.parametrize(
    ("typed", "stored"), [("KARI@BLÅBÆR.NO", "kari@blåbær.no"), ("Kari@ØRSTA-VOLDA.NO", "kari@ørsta-volda.no")]
)
def test_email_is_lower_cased_unicode_aware(typed, stored):
    assert validate_contact_details(submission(email=typed)).email == stored


def test_email_with_letters_no_mailer_can_address_before_the_at_sign_is_refused_with_an_explanation(app, client):
    # A confirmation to such a mailbox could never be delivered (no SMTPUTF8): say so instead of accepting it.
    response = book(client, email="ÅSE@EKSEMPEL.NO")

    assert response.status_code == 422
    page = FormPage(response.get_data(as_text=True))
    assert "æ, ø, å" in page.error_texts["email"]
    assert page.value_of("email") == "ÅSE@EKSEMPEL.NO"
    assert stored_counts(app) == (0, 0)


# --- required_fields_present -------------------------------------------------------------------------

REQUIRED_WORDS = {
    "first_name": "fornavn",
    "last_name": "etternavn",
    "email": "e-post",
    "organization_name": "organisasjon",
    "role_title": "rolle",
}


@pytest.mark.parametrize("field", sorted(REQUIRED_WORDS))
def test_missing_required_field_gives_422_with_message_at_that_field(app, client, field):
    response = book(client, **{field: None})

    assert response.status_code == 422
    page = FormPage(response.get_data(as_text=True))
    assert set(page.error_texts) == {field}
    assert REQUIRED_WORDS[field] in page.error_texts[field].lower()
    assert page.elements[field].get("aria-invalid") == "true"
    assert stored_counts(app) == (0, 0)


@pytest.mark.parametrize("field", sorted(REQUIRED_WORDS))
def test_required_field_with_only_spaces_counts_as_missing(field):
    errors = errors_for(**{field: "   \t "})

    assert set(errors) == {field}
    assert REQUIRED_WORDS[field] in errors[field].lower()


def test_optional_fields_may_be_left_out():
    optional = ("phone", "organization_size", "current_solution", "preferred_demo_timing", "notes")
    details = validate_contact_details(submission(**{field: None for field in optional}))

    assert all(getattr(details, field) is None for field in optional)


# --- length limits -----------------------------------------------------------------------------------


def email_of_length(length: int) -> str:
    local = "a" * 64
    domain_room = length - len(local) - 1 - len(".no")
    labels = []
    while domain_room > 0:
        label = min(63, domain_room)
        labels.append("b" * label)
        domain_room -= label + 1
    domain = ".".join(labels)
    email = f"{local}@{domain}.no"
    assert len(email) == length, len(email)
    return email


def test_email_longer_than_254_characters_is_rejected():
    errors = errors_for(email=email_of_length(255))

    assert set(errors) == {"email"}
    assert "254" in errors["email"]


@pytest.mark.parametrize(
    ("field", "limit"),
    [("first_name", 100), ("last_name", 100), ("role_title", 100), ("organization_name", 200), ("notes", 2000)],
)
def test_text_one_character_over_its_limit_is_rejected_with_the_limit_named(field, limit):
    errors = errors_for(**{field: "x" * (limit + 1)})

    assert set(errors) == {field}
    assert f"høyst {limit} tegn" in errors[field]


def test_values_exactly_at_every_limit_are_accepted_and_stored_whole(app, client):
    at_limit = {
        "email": email_of_length(254),
        "first_name": "F" * 100,
        "last_name": "L" * 100,
        "organization_name": "O" * 200,
        "role_title": "R" * 100,
        "notes": "N" * 2000,
    }
    response = book(client, **at_limit)

    assert response.status_code == 303
    lead = only_lead(app)
    for field, value in at_limit.items():
        assert getattr(lead, field) == value


# --- phone_format_if_provided ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("typed", "stored"),
    [
        ("912 34 567", "+4791234567"),
        ("+47 912 34 567", "+4791234567"),
        ("0047 912 34 567", "+4791234567"),
        ("+46 70 123 45 67", "+46701234567"),
        ("", None),
    ],
)
def test_phone_is_stored_in_e164_with_norway_as_default_region(typed, stored):
    assert validate_contact_details(submission(phone=typed)).phone == stored


@pytest.mark.parametrize("phone", ["+47 123", "12345", "ring meg", "+46 70", "912 34 567 890 12"])
def test_phone_that_is_not_a_valid_number_is_rejected(phone):
    errors = errors_for(phone=phone)

    assert set(errors) == {"phone"}
    assert "gyldig telefonnummer" in errors["phone"]


def test_swedish_phone_number_is_stored_as_swedish(app, client):
    assert book(client, phone="+46 70 123 45 67").status_code == 303

    assert only_lead(app).phone == "+46701234567"


# --- organization_size -------------------------------------------------------------------------------


def test_unknown_organization_size_is_rejected():
    errors = errors_for(organization_size="enormous")

    assert set(errors) == {"organization_size"}


# --- status_enum_constraint (and source) -------------------------------------------------------------


def test_unknown_status_is_refused_by_the_domain():
    with pytest.raises(UnknownStatusError) as caught:
        parse_status("bogus")

    assert "Ukjent status" in str(caught.value)
    assert parse_status("contacted") is LeadStatus.CONTACTED


@pytest.mark.parametrize(("column", "good", "bad"), [("status", "lost", "bogus"), ("source", "referral", "spam")])
def test_database_refuses_a_value_outside_the_enum_even_with_raw_sql(app, client, column, good, bad):
    assert book(client).status_code == 303
    update = sa.text(f"UPDATE leads SET {column} = :value WHERE email = :email")  # noqa: S608 (fixed column names)

    with app.app_context():
        with pytest.raises(sa.exc.IntegrityError):
            db.session.execute(update, {"value": bad, "email": VALID_BOOKING["email"]})
            db.session.commit()
        db.session.rollback()
        db.session.execute(update, {"value": good, "email": VALID_BOOKING["email"]})
        db.session.commit()
        assert getattr(db.session.execute(db.select(Lead)).scalar_one(), column) == good


# --- no CR/LF in single-line fields; control characters ----------------------------------------------


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("email", "a@b.no\r\nBcc: x@y.no"),
        ("email", "a@b.no\nBcc: x@y.no"),
        ("first_name", "Kari\nBcc: x@y.no"),
        ("last_name", "Nord\rmann"),
        ("organization_name", "LHL\r\nX-Injected: 1"),
        ("role_title", "Koordinator\nBcc: x@y.no"),
        ("phone", "912 34 567\r\nBcc: x@y.no"),
        ("first_name", "Kari\u2028Nordmann"),  # line separator
        ("organization_name", "LHL\u2029Hjerneslag"),  # paragraph separator
        ("email", "a@b.no\u2028Bcc: x@y.no"),
    ],
)
def test_line_break_inside_a_single_line_field_is_rejected(field, value):
    errors = errors_for(**{field: value})

    assert set(errors) == {field}
    assert "linje" in errors[field]


def test_header_injection_attempt_through_the_form_stores_and_sends_nothing(app, client, smtp_server):
    response = book(client, email="kari@lhl.no\r\nBcc: victim@example.no")

    assert response.status_code == 422
    assert stored_counts(app) == (0, 0)
    assert smtp_server.messages() == []


def test_line_breaks_are_kept_in_notes(app, client):
    response = book(client, notes="Første linje\r\nAndre linje\nTredje linje\u2028Fjerde linje")

    assert response.status_code == 303
    notes = only_lead(app).notes
    assert notes.splitlines() == ["Første linje", "Andre linje", "Tredje linje", "Fjerde linje"]


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("first_name", "Kari\x00"),
        ("organization_name", "LHL\x1b[31m"),
        ("notes", "hei\x00der"),
        ("email", "kari\x00@lhl.no"),
    ],
)
def test_control_characters_are_rejected_with_422_not_a_server_error(app, client, field, value):
    response = book(client, **{field: value})

    assert response.status_code == 422
    page = FormPage(response.get_data(as_text=True))
    assert field in page.error_texts
    assert stored_counts(app) == (0, 0)


# --- the 422 answer: everything typed comes back, escaped, nothing stored ----------------------------

TYPED = {
    "first_name": 'Kari "K" <b>',
    "last_name": "Nordmann & Sønn",
    "email": "kari.nordmann@@lhl.no",
    "phone": "+47 123",
    "organization_name": "Ørsta & Volda <Likepersoner>",
    "role_title": "Koordinator",
    "organization_size": "11-50",
    "current_solution": "Excel 'og' e-post",
    "preferred_demo_timing": "Tirsdager > kl. 12",
    "notes": "<script>alert('x')</script>\r\nAndre linje",
}


def test_invalid_submission_comes_back_with_every_typed_value_and_messages_at_the_bad_fields(app, client):
    response = book(client, **TYPED)

    assert response.status_code == 422
    html = response.get_data(as_text=True)
    assert "<html" in html
    page = FormPage(html)
    for field, typed in TYPED.items():
        assert page.value_of(field) == typed.replace("\r\n", "\n") or page.value_of(field) == typed, field
    assert set(page.error_texts) == {"email", "phone"}
    assert "gyldig e-postadresse" in page.error_texts["email"]
    assert "gyldig telefonnummer" in page.error_texts["phone"]
    for bad in ("email", "phone"):
        assert page.elements[bad].get("aria-invalid") == "true"
        assert f"{bad}-error" in page.elements[bad].get("aria-describedby", "")
    assert "aria-invalid" not in page.elements["first_name"]
    assert stored_counts(app) == (0, 0)


def test_typed_markup_is_escaped_in_the_422_form(client):
    response = book(client, **TYPED)

    html = response.get_data(as_text=True)
    assert "<script>alert" not in html
    assert "&lt;script&gt;alert" in html
    assert "<Likepersoner>" not in html and "<b>" not in html


def test_htmx_invalid_submission_gets_only_the_form_fragment_with_the_values(app, client):
    response = book(client, headers={"HX-Request": "true"}, **TYPED)

    assert response.status_code == 422
    html = response.get_data(as_text=True)
    assert "<html" not in html and "<body" not in html
    assert html.lstrip().startswith("<form")
    page = FormPage(html)
    assert page.value_of("first_name") == TYPED["first_name"]
    assert page.value_of("organization_name") == TYPED["organization_name"]
    assert page.value_of("organization_size") == "11-50"
    assert "gyldig e-postadresse" in page.error_texts["email"]
    assert "<script>alert" not in html
    assert stored_counts(app) == (0, 0)
