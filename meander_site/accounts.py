"""Staff accounts and their server-side sessions. Knows nothing of HTTP."""

import secrets
from dataclasses import dataclass
from datetime import timedelta

import sqlalchemy as sa
from argon2 import PasswordHasher, profiles
from argon2.exceptions import InvalidHashError, VerificationError
from flask import current_app
from flask_login import UserMixin

from .extensions import db
from .leads import has_control_characters, normalize_email
from .models import StaffSession, User, utcnow

MIN_PASSWORD_LENGTH = 12
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

    def get_id(self) -> str:
        return self.token

    @property
    def name(self) -> str:
        return self.user.name

    @property
    def id(self):
        return self.user.id


def create_user(email: str, name: str, password: str) -> User:
    email = normalize_email(email)
    if "@" not in email:
        raise AccountError("That is not an email address.")
    if len(password) < MIN_PASSWORD_LENGTH:
        raise AccountError(f"The password must be at least {MIN_PASSWORD_LENGTH} characters.")
    if db.session.execute(sa.select(User.id).where(User.email == email)).first():
        raise AccountError(f"A user with email {email} exists already.")
    user = User(email=email, name=name.strip() or email.split("@")[0], password_hash=password_hasher.hash(password))
    db.session.add(user)
    db.session.commit()
    return user


def authenticate(email: str, password: str) -> User | None:
    email = normalize_email(email or "")
    # An address with control characters is no account of ours (and a NUL would upset PostgreSQL).
    user = None
    if not has_control_characters(email):
        user = db.session.execute(sa.select(User).where(User.email == email)).scalar_one_or_none()
    try:
        password_hasher.verify(user.password_hash if user else _DUMMY_HASH, password or "")
    except (VerificationError, InvalidHashError):
        return None
    if user is None or not user.is_active:
        return None
    if password_hasher.check_needs_rehash(user.password_hash):
        user.password_hash = password_hasher.hash(password)
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
    session = db.session.get(StaffSession, token)
    if session is None or session.expires_at <= utcnow() or not session.user.is_active:
        return None
    return SignedInStaff(user=session.user, token=token)


def end_session(token: str) -> None:
    db.session.execute(sa.delete(StaffSession).where(StaffSession.token == token))
    db.session.commit()


def deactivate(email: str) -> User:
    user = db.session.execute(sa.select(User).where(User.email == normalize_email(email))).scalar_one_or_none()
    if user is None:
        raise AccountError(f"No user with email {email}.")
    user.is_active = False
    # Deactivation signs the person out everywhere at once.
    db.session.execute(sa.delete(StaffSession).where(StaffSession.user_id == user.id))
    db.session.commit()
    return user


def all_users() -> list[User]:
    return list(db.session.execute(sa.select(User).order_by(User.email)).scalars())


def set_password(email: str, password: str) -> User:
    """An administrator resets a forgotten password; every session of that person ends."""
    user = db.session.execute(sa.select(User).where(User.email == normalize_email(email))).scalar_one_or_none()
    if user is None:
        raise AccountError(f"No user with email {email}.")
    if len(password) < MIN_PASSWORD_LENGTH:
        raise AccountError(f"The password must be at least {MIN_PASSWORD_LENGTH} characters.")
    user.password_hash = password_hasher.hash(password)
    db.session.execute(sa.delete(StaffSession).where(StaffSession.user_id == user.id))
    db.session.commit()
    return user


def set_new_lead_notifications(user_id, enabled: bool) -> None:
    """«Varsle meg om nye leads», on or off, for one person."""
    db.session.execute(sa.update(User).where(User.id == user_id).values(notify_new_leads=enabled))
    db.session.commit()
