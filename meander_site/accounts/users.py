"""Staff accounts and their server-side sessions. Knows nothing of HTTP."""

import secrets
import uuid
from dataclasses import dataclass
from datetime import timedelta

import sqlalchemy as sa
from argon2 import PasswordHasher, profiles
from argon2.exceptions import InvalidHashError, VerificationError
from flask import current_app
from flask_login import UserMixin

from ..core.clock import utcnow
from ..core.email_address import normalize_email
from ..core.text import has_control_characters
from ..extensions import db
from . import audit, roles, team_settings
from .models import Role, StaffSession, User
from .passwords import MIN_PASSWORD_LENGTH, password_problem

MAX_NAME_LENGTH = 100
# argon2id, RFC 9106 low-memory profile (t=3, m=64 MiB, p=4). The tests swap in argon2's cheapest profile.
PASSWORD_HASH_PARAMETERS = profiles.RFC_9106_LOW_MEMORY
password_hasher = PasswordHasher.from_parameters(PASSWORD_HASH_PARAMETERS)
# Checked when the email is unknown, so a wrong email costs as long as a wrong password.
_DUMMY_HASH = password_hasher.hash(secrets.token_urlsafe(16))


class AccountError(ValueError):
    pass


@dataclass
class SignedInStaff(UserMixin):
    """What Flask-Login holds for a request: the user and the session token the cookie carries."""

    user: User
    token: str
    two_factor_required: bool = False

    def get_id(self) -> str:
        return self.token

    @property
    def name(self) -> str:
        return self.user.name

    @property
    def id(self):
        return self.user.id

    @property
    def is_admin(self) -> bool:
        return self.user.is_admin

    @property
    def must_set_up_two_factor(self) -> bool:
        """The team requires two-factor and this person has none yet: setup is all they may see."""
        return self.two_factor_required and not self.user.has_two_factor


def hash_password(password: str) -> str:
    return password_hasher.hash(password)


def password_matches(user: User, password: str) -> bool:
    try:
        return password_hasher.verify(user.password_hash, password or "")
    except (VerificationError, InvalidHashError):
        return False


def user_by_email(email: str) -> User | None:
    email = normalize_email(email or "")
    # An address with control characters is no account of ours (and a NUL would upset PostgreSQL).
    if has_control_characters(email):
        return None
    return db.session.execute(sa.select(User).where(User.email == email)).scalar_one_or_none()


def no_active_administrator() -> bool:
    return (
        db.session.execute(sa.select(User.id).where(User.role == Role.ADMIN.value, User.is_active).limit(1)).first()
        is None
    )


def create_user(email: str, name: str, password: str, admin: bool = False, by_operator: bool = False) -> User:
    """An account made on the server (the command line; the browser's way is an invitation). The command makes the
    first account of an installation an administrator (admin=True), and records it (by_operator)."""
    email = normalize_email(email)
    if "@" not in email:
        raise AccountError("That is not an email address.")
    if len(password) < MIN_PASSWORD_LENGTH:
        raise AccountError(f"The password must be at least {MIN_PASSWORD_LENGTH} characters.")
    problem = password_problem(password, (email, name))
    if problem:
        raise AccountError(f"That password is refused: {problem}")
    if db.session.execute(sa.select(User.id).where(User.email == email)).first():
        raise AccountError(f"A user with email {email} exists already.")
    role = Role.ADMIN if admin else Role.SELLER
    user = User(
        id=uuid.uuid4(),
        email=email,
        name=name.strip() or email.split("@")[0],
        password_hash=hash_password(password),
        role=role.value,
    )
    db.session.add(user)
    if by_operator:
        audit.record("user_created", actor_id=None, subject_id=user.id, detail=role.value)
    db.session.commit()
    return user


def authenticate(email: str, password: str) -> User | None:
    user = user_by_email(email)
    try:
        password_hasher.verify(user.password_hash if user else _DUMMY_HASH, password or "")
    except (VerificationError, InvalidHashError):
        return None
    if user is None or not user.is_active:
        return None
    if password_hasher.check_needs_rehash(user.password_hash):
        user.password_hash = hash_password(password)
    return user


def start_session(user: User) -> str:
    token = secrets.token_urlsafe(32)
    now = utcnow()
    hours = current_app.config["STAFF_SESSION_HOURS"]
    db.session.add(StaffSession(token=token, user_id=user.id, created_at=now, expires_at=now + timedelta(hours=hours)))
    user.last_login_at = now
    db.session.commit()
    return token


def load_session(token: str) -> SignedInStaff | None:
    """The session, its user, and whether the team requires two-factor: one statement per request."""
    row = db.session.execute(
        sa.select(StaffSession, team_settings.require_two_factor_condition()).where(StaffSession.token == token)
    ).first()
    if row is None:
        return None
    session, required = row
    if session.expires_at <= utcnow() or not session.user.is_active:
        return None
    return SignedInStaff(user=session.user, token=token, two_factor_required=bool(required))


def end_session(token: str) -> None:
    db.session.execute(sa.delete(StaffSession).where(StaffSession.token == token))
    db.session.commit()


def end_sessions(user_id: uuid.UUID, keep_token: str | None = None) -> None:
    """Sign a person out everywhere (but the browser holding keep_token), in the caller's transaction."""
    statement = sa.delete(StaffSession).where(StaffSession.user_id == user_id)
    if keep_token is not None:
        statement = statement.where(StaffSession.token != keep_token)
    db.session.execute(statement)


def deactivate(email: str) -> User:
    """The command line's deactivation, by address (the team page deactivates by id: roles.deactivate)."""
    user = user_by_email(email)
    if user is None:
        raise AccountError(f"No user with email {email}.")
    try:
        roles.deactivate(user.id, by_id=None)
    except roles.LastAdministrator:
        raise AccountError(f"{user.email} is the last active administrator: make someone else one first.") from None
    return user


def all_users() -> list[User]:
    return list(db.session.execute(sa.select(User).order_by(User.email)).scalars())


def team() -> list[User]:
    """Everyone on the team page: active first, then by name."""
    return list(
        db.session.execute(
            sa.select(User).options(sa.orm.undefer_group("pool")).order_by(User.is_active.desc(), User.name, User.email)
        ).scalars()
    )


def set_new_lead_notifications(user_id, enabled: bool) -> None:
    """«Varsle meg om nye leads», on or off, for one person."""
    db.session.execute(sa.update(User).where(User.id == user_id).values(notify_new_leads=enabled))
    audit.record("notifications_changed", actor_id=user_id, subject_id=user_id, detail="on" if enabled else "off")
    db.session.commit()


def validate_name(name: str | None) -> tuple[str, str | None]:
    """The name as it will be stored, and what is wrong with it (None: nothing)."""
    name = " ".join((name or "").split())
    if not name:
        return name, "Skriv inn navnet ditt, slik kollegene kjenner deg."
    if has_control_characters(name):
        return name, "Navnet inneholder et usynlig kontrolltegn. Skriv det inn på nytt."
    if len(name) > MAX_NAME_LENGTH:
        return name, f"Navnet kan ha høyst {MAX_NAME_LENGTH} tegn. Du har skrevet {len(name)}."
    return name, None


def rename(user_id: uuid.UUID, name: str) -> None:
    db.session.execute(sa.update(User).where(User.id == user_id).values(name=name))
    audit.record("name_changed", actor_id=user_id, subject_id=user_id)
    db.session.commit()


def administrators() -> list[User]:
    """Whom to ask for what only an administrator may do."""
    return list(
        db.session.execute(
            sa.select(User).where(User.is_active, User.role == Role.ADMIN.value).order_by(User.name)
        ).scalars()
    )


def active_staff() -> list[User]:
    """Who a lead can be given to, by name."""
    return list(db.session.execute(sa.select(User).where(User.is_active).order_by(User.name)).scalars())


TEAM_RECIPIENT = "team"  # the new-lead mail goes to whoever has notifications on when it is sent


def notified_staff() -> list[User]:
    return list(
        db.session.execute(sa.select(User).where(User.is_active, User.notify_new_leads).order_by(User.name)).scalars()
    )
