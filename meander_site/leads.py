"""Lead rules: validation, the email upsert, and the status pipeline. Knows nothing of HTTP."""

import functools
import logging
import re
import unicodedata
import uuid
from collections.abc import Mapping
from dataclasses import asdict, dataclass

import phonenumbers
import sqlalchemy as sa
from email_validator import EmailNotValidError, validate_email
from sqlalchemy.dialects import postgresql, sqlite

from . import attribution, confirmations, next_steps, notifications, outbox
from .extensions import db
from .models import (
    CONTACT_FIELDS,
    Booking,
    Lead,
    LeadSource,
    LeadStatus,
    OrganizationSize,
    new_masked_ref,
    utcnow,
)

log = logging.getLogger(__name__)

DEFAULT_PHONE_REGION = "NO"
MASKED_REF_SHAPE = re.compile(r"[A-Za-z0-9_-]{1,64}")

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
ALLOWED_MULTILINE_CONTROLS = {"\n", "\r", "\t"}
# U+2028 and U+2029 (line and paragraph separator) break lines too, in mail headers and in JavaScript.
LINE_BREAKS = {"\r", "\n", "\u2028", "\u2029"}

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


@dataclass(frozen=True)
class BookingResult:
    lead_id: uuid.UUID
    booking_id: uuid.UUID
    masked_ref: str
    booking_count: int
    mail_due: bool = False

    @property
    def is_rebooking(self) -> bool:
        return self.booking_count > 1


def _canonical_address(email: str) -> str:
    """email-validator's normalized form (domain through NFKC and IDNA, as Unicode), local part lower-cased.

    The domain stays in Unicode (`bær.no`, not `xn--br-1ia.no`): it is what staff recognise on the lead
    page and search for; the mailer encodes it for DNS when it sends. Raises EmailNotValidError.
    """
    normalized = validate_email(email, check_deliverability=False, allow_smtputf8=False).normalized
    local_part, _, domain = normalized.rpartition("@")
    return f"{local_part.lower()}@{domain}"


def normalize_email(email: str) -> str:
    """One mailbox, one spelling: `kari@ＬＨＬ.no`, `Kari@lhl.no` and `kari@lhl.no` are the same lead.

    Anything that is no valid address (a login attempt, say) is only trimmed and lower-cased.
    """
    address = email.strip()
    try:
        return _canonical_address(address)
    except EmailNotValidError:
        return address.lower()


def normalize_phone(raw: str) -> str:
    """E.164, Norwegian numbers by default: '912 34 567' -> '+4791234567'. Raises ValueError."""
    try:
        number = phonenumbers.parse(raw, DEFAULT_PHONE_REGION)
    except phonenumbers.NumberParseException as error:
        raise ValueError(str(error)) from error
    if not phonenumbers.is_valid_number(number):
        raise ValueError("not a valid phone number")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def has_control_characters(value: str) -> bool:
    return any(unicodedata.category(character) in ("Cc", "Cs") for character in value)


def forbidden_character_message(field: str, value: str) -> str | None:
    allowed = ALLOWED_MULTILINE_CONTROLS | LINE_BREAKS if field in MULTILINE_FIELDS else set()
    for character in value:
        if character in allowed:
            continue
        if character in LINE_BREAKS:
            return "Feltet kan bare ha én linje. Fjern linjeskiftet."
        if unicodedata.category(character) in ("Cc", "Cs"):
            return "Feltet inneholder et usynlig kontrolltegn. Skriv teksten inn på nytt."
    return None


def text_problem(field: str, text: str, label: str, limit: int) -> str | None:
    """What is wrong with a typed text, said for its field: a forbidden character, or more than `limit` characters."""
    problem = forbidden_character_message(field, text)
    if problem:
        return problem
    if len(text) > limit:
        return f"{label} kan være høyst {limit} tegn. Du har skrevet {len(text)}."
    return None


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
        _canonical_address(email)
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
        problem = text_problem(field, text, FIELD_LABELS[field], MAX_LENGTHS.get(field, len(text)))
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


# The lead columns a booking writes from its parameters (same names); the rest are fixed in the statement.
LEAD_PARAMETERS = (
    "id",
    "masked_ref",
    "source",
    "ip_address",
    "created_at",
    "updated_at",
    "status_changed_at",
    "next_step_due_at",
    "first_contact_due_at",
    "staff_edited_at",
    *(f"{touch}_{name}" for touch in ("first", "latest") for name in attribution.TOUCH_FIELDS),
    *CONTACT_FIELDS,
)
BOOKING_PARAMETERS = ("ip_address", "created_at", *CONTACT_FIELDS, *attribution.TOUCH_FIELDS)


def _parameter(table: sa.Table, name: str) -> sa.BindParameter:
    # Typed: psycopg binds with a cast, so a NULL inside a CTE or SELECT still has its column's type.
    return sa.bindparam(name, type_=table.c[name].type)


def _upsert_statement(dialect: str, by_staff: bool = False):
    """INSERT … ON CONFLICT (email) DO UPDATE: one atomic statement, so concurrent bookings never race.

    A public rebooking overwrites the lead's details only while the lead is new and untouched by staff;
    otherwise the lead keeps them and points at the booking (:booking_id) whose details differ, for staff
    to decide. Staff typing a lead in always write their details. Every CASE reads the row as it stood
    under the conflict's row lock, so the choice is made inside the same statement.
    """
    insert = {"postgresql": postgresql.insert, "sqlite": sqlite.insert}[dialect]
    table = Lead.__table__
    leads = table.c
    statement = insert(Lead).values(
        {
            **{name: _parameter(table, name) for name in LEAD_PARAMETERS},
            "status": LeadStatus.NEW.value,
            "booking_count": 1,
            # A new lead's first step: the confirmation promises a call within one business day.
            "next_step": next_steps.FIRST_CONTACT,
            "newer_details_booking_id": None,
        }
    )
    excluded = statement.excluded
    if by_staff:
        on_rebooking = {field: excluded[field] for field in CONTACT_FIELDS}
        on_rebooking.update(
            ip_address=excluded.ip_address, staff_edited_at=excluded.staff_edited_at, newer_details_booking_id=None
        )
    else:
        may_overwrite = sa.and_(leads.status == LeadStatus.NEW.value, leads.staff_edited_at.is_(None))
        on_rebooking = {
            field: sa.case((may_overwrite, excluded[field]), else_=leads[field])
            for field in (*CONTACT_FIELDS, "ip_address")
        }
        details_differ = sa.or_(*(leads[field].is_distinct_from(excluded[field]) for field in CONTACT_FIELDS))
        on_rebooking["newer_details_booking_id"] = sa.case(
            (may_overwrite, sa.null()),
            (details_differ, sa.bindparam("booking_id", type_=sa.Uuid)),
            else_=sa.null(),
        )
    # First touch stays as the first booking left it; a booking that came with a touch becomes the latest.
    came_with_touch = sa.or_(*(excluded[f"latest_{name}"].is_not(None) for name in attribution.TOUCH_FIELDS))
    on_rebooking.update(
        {
            f"latest_{name}": sa.case((came_with_touch, excluded[f"latest_{name}"]), else_=leads[f"latest_{name}"])
            for name in attribution.TOUCH_FIELDS
        }
    )
    on_rebooking.update(
        updated_at=excluded.updated_at,
        booking_count=leads.booking_count + 1,
        # The new booking's confirmation has not gone out yet.
        confirmation_sent_at=None,
    )
    return statement.on_conflict_do_update(index_elements=[leads.email], set_=on_rebooking).returning(
        leads.id, leads.masked_ref, leads.booking_count
    )


def _booking_insert(lead_id: sa.ColumnElement):
    """INSERT INTO bookings … SELECT: the booking as submitted, for the lead `lead_id` names."""
    table = Booking.__table__
    columns = ["id", "lead_id", *BOOKING_PARAMETERS]
    values = [sa.bindparam("booking_id", type_=sa.Uuid), lead_id]
    return sa.insert(table).from_select(
        columns, sa.select(*values, *(_parameter(table, name) for name in BOOKING_PARAMETERS))
    )


@functools.cache
def booking_statements(dialect: str, by_staff: bool = False) -> tuple:
    """The statements that store a booking, built once per dialect: constructing them per request cost
    more CPU than running them. The first returns (lead id, masked_ref, booking_count).

    PostgreSQL: one statement, the upsert and the booking insert in one CTE. SQLite has no INSERT in a
    WITH, so there the booking insert follows with the lead's id (:lead_id) in the same transaction.
    """
    upsert = _upsert_statement(dialect, by_staff)
    if dialect != "postgresql":
        return upsert, _booking_insert(sa.bindparam("lead_id", type_=sa.Uuid))
    lead = upsert.cte("lead")
    booking = _booking_insert(lead.c.id).cte("booking")
    return (sa.select(lead.c.id, lead.c.masked_ref, lead.c.booking_count).add_cte(booking),)


def book_demo(
    details: ContactDetails,
    ip_address: str | None,
    source: LeadSource = LeadSource.WEBSITE,
    with_confirmation: bool = True,
    by_staff: bool = False,
    touch: attribution.Touch = attribution.NO_TOUCH,
) -> BookingResult:
    """Create the lead, or count the booking on the one with this email; keep the submission.

    Commits. Status, masked_ref and created_at of an existing lead are never touched here, nor its details
    once it has left `new` or staff have touched it (see _upsert_statement). Without a confirmation (a lead
    staff typed in), or past the per-recipient cap, the booking's mail is never due, so no job or sweep
    sends it.

    On PostgreSQL the writes are two statements (lead and booking; then the mails), so one booking costs
    BEGIN, two statements and COMMIT.
    """
    now = utcnow()
    booking_id = uuid.uuid4()
    first_contact_due = next_steps.first_step(now).due_at
    parameters = {
        "id": uuid.uuid4(),
        "masked_ref": new_masked_ref(),
        "source": source.value,
        "ip_address": ip_address,
        "created_at": now,
        "updated_at": now,
        "status_changed_at": now,
        "next_step_due_at": first_contact_due,
        "first_contact_due_at": first_contact_due,
        **touch.prefixed("first_"),
        **touch.prefixed("latest_"),
        **touch.as_dict(),
        "staff_edited_at": now if by_staff else None,
        "booking_id": booking_id,
        **details.as_dict(),
    }
    try:
        store_lead, *store_booking = booking_statements(db.session.get_bind().dialect.name, by_staff)
        lead_id, masked_ref, booking_count = db.session.execute(store_lead, parameters).one()
        for statement in store_booking:
            db.session.execute(statement, {**parameters, "lead_id": lead_id})
        drafts = []
        if with_confirmation:
            drafts.append(confirmations.draft(booking_id, lead_id, details.email))
        if not by_staff:
            # The team hears of every booking from the website; whoever typed a lead in knows already.
            drafts.append(notifications.new_booking_notice(booking_id, lead_id))
        # A statement of its own, after the upsert: see confirmations.draft for why the cap needs that.
        mails = outbox.write(drafts, now=now)
        db.session.commit()
    except Exception:
        db.session.rollback()
        raise
    mail_due = with_confirmation and mails[0].closed_at is None
    # After the commit: a job never looks for a row that is not there yet. Without Redis the sweep sends them.
    for mail in mails:
        outbox.dispatch(mail)
    result = BookingResult(
        lead_id=lead_id, booking_id=booking_id, masked_ref=masked_ref, booking_count=booking_count, mail_due=mail_due
    )
    log.info(
        "demo rebooked" if result.is_rebooking else "demo booked",
        extra={
            "event": "rebooking" if result.is_rebooking else "booking",
            "lead_id": str(lead_id),
            "booking_id": str(booking_id),
            "booking_count": booking_count,
            "source": source.value,
            "mail_due": mail_due,
        },
    )
    return result


def find_by_masked_ref(masked_ref: str) -> Lead | None:
    # Anything but the URL-safe alphabet is no ref of ours (and a NUL would upset PostgreSQL).
    if not MASKED_REF_SHAPE.fullmatch(masked_ref or ""):
        return None
    return db.session.execute(db.select(Lead).where(Lead.masked_ref == masked_ref)).scalar_one_or_none()


# --- status pipeline --------------------------------------------------------------------------------

PIPELINE_ORDER = (
    LeadStatus.NEW,
    LeadStatus.CONTACTED,
    LeadStatus.QUALIFIED,
    LeadStatus.DEMO_SCHEDULED,
    LeadStatus.CONVERTED,
)
FINAL_STATUSES = frozenset({LeadStatus.CONVERTED, LeadStatus.LOST})


class StatusTransitionError(ValueError):
    """A move the pipeline does not allow; the message is Norwegian and meant for the salesperson."""

    def __init__(self, from_status: str, to_status: str, message: str):
        super().__init__(message)
        self.from_status = from_status
        self.to_status = to_status
        self.message = message


class UnknownStatusError(ValueError):
    def __init__(self, status: object):
        super().__init__(f"Ukjent status: {status!r}. Gyldige verdier: {', '.join(LeadStatus.values())}.")
        self.status = status


def parse_status(value: object) -> LeadStatus:
    try:
        return LeadStatus(value)
    except ValueError:
        raise UnknownStatusError(value) from None


def can_move(from_status: str, to_status: str) -> bool:
    """Forward only: skipping ahead is fine, lost is reachable from any open status, finals stay final."""
    origin, target = parse_status(from_status), parse_status(to_status)
    if origin in FINAL_STATUSES or origin == target:
        return False
    if target == LeadStatus.LOST:
        return True
    return PIPELINE_ORDER.index(target) > PIPELINE_ORDER.index(origin)


@functools.cache
def allowed_moves(from_status: str) -> tuple[LeadStatus, ...]:
    # Asked for every card on the board: six statuses, so the answers are worth keeping.
    return tuple(status for status in LeadStatus if can_move(from_status, status))


def check_transition(from_status: str, to_status: str) -> None:
    """Raise StatusTransitionError with a reason a salesperson understands, or return for an allowed move."""
    origin, target = parse_status(from_status), parse_status(to_status)
    if can_move(origin, target):
        return
    if origin == target:
        message = f"Leaden står allerede i «{origin.label}»."
    elif origin in FINAL_STATUSES:
        message = f"«{origin.label}» er en sluttstatus. En lead kan ikke flyttes derfra."
    else:
        message = f"En lead kan bare flyttes fremover i løpet. «{target.label}» ligger før «{origin.label}»."
    raise StatusTransitionError(origin.value, target.value, message)
