"""What a prospect or a salesperson may type about a contact: the seed's rules, one Norwegian message per
field. Knows nothing of HTTP."""

from collections.abc import Mapping
from dataclasses import asdict, dataclass

import phonenumbers
from email_validator import EmailNotValidError

from ..core.email_address import canonical_address, normalize_email
from ..core.text import text_problem
from .models import CONTACT_FIELDS, OrganizationSize

DEFAULT_PHONE_REGION = "NO"

FIELD_LABELS = {
    "first_name": "Fornavn",
    "last_name": "Etternavn",
    "email": "E-post",
    "phone": "Telefon",
    "organization_name": "Organisasjon",
    "role_title": "Rolle",
    "organization_size": "Antall likepersoner og ansatte",
    "current_solution": "Hva bruker dere i dag?",
    "preferred_demo_timing": "Når passer en demo?",
    "notes": "Noe mer vi bør vite?",
}
REQUIRED_FIELDS = ("first_name", "last_name", "email", "organization_name", "role_title")
MAX_LENGTHS = {
    "first_name": 100,
    "last_name": 100,
    "email": 254,
    "phone": 32,
    "organization_name": 200,
    "role_title": 100,
    "current_solution": 500,
    "preferred_demo_timing": 500,
    "notes": 2000,
}
MULTILINE_FIELDS = {"notes", "current_solution", "preferred_demo_timing"}

REQUIRED_MESSAGES = {
    "first_name": "Skriv inn fornavnet ditt.",
    "last_name": "Skriv inn etternavnet ditt.",
    "email": "Skriv inn e-postadressen din, så vi kan bekrefte demoen.",
    "organization_name": "Skriv inn navnet på organisasjonen din.",
    "role_title": "Skriv inn rollen din, for eksempel «Koordinator».",
}
# The same rules, said to a salesperson typing in someone else's details.
STAFF_REQUIRED_MESSAGES = {
    "first_name": "Skriv inn kontaktens fornavn.",
    "last_name": "Skriv inn kontaktens etternavn.",
    "email": "Skriv inn kontaktens e-postadresse.",
    "organization_name": "Skriv inn navnet på organisasjonen.",
    "role_title": "Skriv inn kontaktens rolle, for eksempel «Koordinator».",
}


class LeadValidationError(ValueError):
    """Carries one Norwegian message per bad field, ready to show beside that field."""

    def __init__(self, errors: dict[str, str]):
        super().__init__("; ".join(f"{field}: {message}" for field, message in errors.items()))
        self.errors = errors


@dataclass(frozen=True)
class ContactDetails:
    first_name: str
    last_name: str
    email: str
    organization_name: str
    role_title: str
    phone: str | None = None
    organization_size: str | None = None
    current_solution: str | None = None
    preferred_demo_timing: str | None = None
    notes: str | None = None

    def as_dict(self) -> dict:
        return asdict(self)


def normalize_phone(raw: str) -> str:
    """E.164, Norwegian numbers by default: '912 34 567' -> '+4791234567'. Raises ValueError."""
    try:
        number = phonenumbers.parse(raw, DEFAULT_PHONE_REGION)
    except phonenumbers.NumberParseException as error:
        raise ValueError(str(error)) from error
    if not phonenumbers.is_valid_number(number):
        raise ValueError("not a valid phone number")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def _email_problem(email: str) -> str | None:
    local_part = email.rpartition("@")[0]
    if not local_part.isascii():
        # Flask-Mail cannot address such a mailbox (no SMTPUTF8), and few Norwegian providers offer one:
        # better to say so now than to accept a booking whose confirmation can never arrive.
        return (
            "E-postadressen kan ikke ha æ, ø, å eller andre spesialtegn foran @. "
            "Bruk adressen du vanligvis får e-post på."
        )
    try:
        # DNS is not asked: a prospect's typo should not wait on a lookup, and the mail tells us anyway.
        canonical_address(email)
    except EmailNotValidError:
        return "Skriv inn en gyldig e-postadresse, for eksempel navn@organisasjon.no."
    return None


def validate_contact_details(raw: Mapping[str, object], for_staff: bool = False) -> ContactDetails:
    """The seed's validation rules, in one place for the public form, staff edits and the CLI.

    `for_staff`: the messages speak to a salesperson about the contact, not to the prospect.
    """
    required_messages = STAFF_REQUIRED_MESSAGES if for_staff else REQUIRED_MESSAGES
    values: dict[str, str | None] = {}
    errors: dict[str, str] = {}

    for field in CONTACT_FIELDS:
        value = raw.get(field)
        text = value.strip() if isinstance(value, str) else ""
        values[field] = text or None

        if not text:
            if field in REQUIRED_FIELDS:
                errors[field] = required_messages[field]
            continue
        problem = text_problem(text, FIELD_LABELS[field], MAX_LENGTHS.get(field, len(text)), field in MULTILINE_FIELDS)
        if problem:
            errors[field] = problem

    email = values["email"]
    if email and "email" not in errors:
        errors_for_email = _email_problem(email)
        if errors_for_email:
            errors["email"] = errors_for_email
        else:
            values["email"] = normalize_email(email)

    phone = values["phone"]
    if phone and "phone" not in errors:
        try:
            values["phone"] = normalize_phone(phone)
        except ValueError:
            errors["phone"] = (
                "Skriv inn et gyldig telefonnummer, for eksempel 912 34 567 eller +46 70 123 45 67, "
                "eller la feltet stå tomt."
            )

    size = values["organization_size"]
    if size and size not in OrganizationSize.values():
        errors["organization_size"] = "Velg en av størrelsene i listen, eller la feltet stå tomt."

    if errors:
        raise LeadValidationError(errors)
    return ContactDetails(**values)
