"""The account forms' fields, for the `_field.html` macro (label, hint, error, aria in one place). The rules live
in the domain (passwords.py, users.validate_name, invitations.validate_invitation); these only describe fields."""

from datetime import date

from flask_wtf import FlaskForm
from wtforms import EmailField, PasswordField, SelectField, StringField

from ..business_days import ACCEPTED_YEARS
from ..core.text import has_control_characters
from .absences import AbsenceError
from .models import Role
from .passwords import MAX_PASSWORD_LENGTH, RULE
from .users import MAX_NAME_LENGTH


class AccountForm(FlaskForm):
    REQUIRED: tuple[str, ...] = ()
    HINTS: dict[str, str] = {}

    def contact_fields(self):
        """The fields in form order (what the error summary lists)."""
        return [field for field in self if field.name != "csrf_token"]


class LoginForm(FlaskForm):
    email = EmailField("E-post", render_kw={"autocomplete": "username", "required": True})
    password = PasswordField("Passord", render_kw={"autocomplete": "current-password", "required": True})


def new_password_field(label: str = "Nytt passord") -> PasswordField:
    return PasswordField(
        label, render_kw={"autocomplete": "new-password", "maxlength": MAX_PASSWORD_LENGTH, "spellcheck": "false"}
    )


class CodeForm(AccountForm):
    code = StringField(
        "Kode",
        render_kw={
            "autocomplete": "one-time-code",
            "inputmode": "text",
            "spellcheck": "false",
            "autocapitalize": "off",
        },
    )
    REQUIRED = ("code",)
    HINTS = {"code": "De seks sifrene i autentiseringsappen, eller en av reservekodene dine (som abcd-efgh-ijkl-mnop)."}


class SetupCodeForm(AccountForm):
    code = StringField(
        "Kode fra appen", render_kw={"autocomplete": "one-time-code", "inputmode": "numeric", "maxlength": 8}
    )
    REQUIRED = ("code",)
    HINTS = {"code": "De seks sifrene appen viser nå."}


class ForgotPasswordForm(AccountForm):
    email = EmailField("E-post", render_kw={"autocomplete": "username"})
    REQUIRED = ("email",)
    HINTS = {"email": "Adressen du logger inn med."}


class NewPasswordForm(AccountForm):
    password = new_password_field()
    REQUIRED = ("password",)
    HINTS = {"password": RULE}


class AcceptInvitationForm(AccountForm):
    name = StringField("Navn", render_kw={"autocomplete": "name", "maxlength": MAX_NAME_LENGTH})
    password = new_password_field("Passord")
    REQUIRED = ("name", "password")
    HINTS = {"name": "Fornavn og etternavn, slik kollegene kjenner deg.", "password": RULE}


class InviteForm(AccountForm):
    email = EmailField("E-post", render_kw={"autocomplete": "off", "spellcheck": "false"})
    role = SelectField("Rolle", choices=Role.choices(), default=Role.SELLER.value, validate_choice=False)
    REQUIRED = ("email", "role")
    HINTS = {"role": "Administratorer styrer teamet og innstillingene for alle. Selgere jobber med leads."}


class NameForm(AccountForm):
    name = StringField("Navn", render_kw={"autocomplete": "name", "maxlength": MAX_NAME_LENGTH})
    REQUIRED = ("name",)


class ChangePasswordForm(AccountForm):
    current_password = PasswordField("Nåværende passord", render_kw={"autocomplete": "current-password"})
    password = new_password_field()
    REQUIRED = ("current_password", "password")
    HINTS = {"password": RULE}


class ConfirmWithPasswordForm(AccountForm):
    current_password = PasswordField(
        "Passordet ditt", id="confirm_password", render_kw={"autocomplete": "current-password"}
    )
    REQUIRED = ("current_password",)


def parse_absence(form) -> tuple[date, date, str | None]:
    """An absence as the form posts it (two <input type="date">, a note); AbsenceError says in Norwegian what to fix."""
    try:
        starts_on = date.fromisoformat((form.get("starts_on") or "").strip())
        ends_on = date.fromisoformat((form.get("ends_on") or "").strip())
    except ValueError:
        raise AbsenceError("Velg første og siste fraværsdag, for eksempel 01.07.2027 og 05.07.2027.") from None
    if not ACCEPTED_YEARS.start <= starts_on.year < ACCEPTED_YEARS.stop or not (
        ACCEPTED_YEARS.start <= ends_on.year < ACCEPTED_YEARS.stop
    ):
        raise AbsenceError("Sjekk årstallet og lagre igjen.")
    note = form.get("note") or None
    if note is not None and has_control_characters(note):
        raise AbsenceError("Merknaden inneholder et usynlig kontrolltegn. Skriv den inn på nytt.")
    return starts_on, ends_on, note
