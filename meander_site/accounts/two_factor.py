"""Two-factor sign-in: a code from an authenticator app (TOTP, RFC 6238: 30-second steps, six digits) or one of
ten single-use recovery codes.

Setup shows a secret (as a QR code drawn on the server as SVG, and as text) and turns it on once one valid
code comes back. A code is never accepted twice: the last accepted time step is stored, and a code counts
only for a later step, by compare-and-set. Recovery codes are 80 random bits each, stored as SHA-256.
"""

import base64
import hashlib
import hmac
import secrets
import uuid
from datetime import datetime

import pyotp
import segno
import sqlalchemy as sa

from ..core.clock import utcnow
from ..extensions import db
from . import audit
from .models import RecoveryCode, User

ISSUER = "Meander Salg"
RECOVERY_CODE_COUNT = 10
RECOVERY_CODE_BYTES = 10  # 80 bits: 16 base32 letters, shown in groups of four
# A step either side of now: a phone's clock a little off, or a code typed as it changed.
STEPS_EITHER_SIDE = 1


class CodeRefused(ValueError):
    pass


WRONG_CODE = "Koden stemmer ikke. Skriv inn de seks sifrene appen viser nå, eller en ubrukt reservekode."


def _normalized(code: str | None) -> str:
    return "".join((code or "").split()).replace("-", "").lower()


def _recovery_hash(code: str) -> str:
    return hashlib.sha256(_normalized(code).encode("ascii", "replace")).hexdigest()


def _matching_step(secret: str, code: str, now: datetime) -> int | None:
    """The time step the code belongs to, within a step of now; compared in constant time."""
    if len(code) != 6 or not code.isascii() or not code.isdigit():
        return None
    totp = pyotp.TOTP(secret)
    current = totp.timecode(now)
    matches = [
        step
        for step in range(current - STEPS_EITHER_SIDE, current + STEPS_EITHER_SIDE + 1)
        if hmac.compare_digest(totp.generate_otp(step), code)
    ]
    return matches[-1] if matches else None


# --- setup --------------------------------------------------------------------------------------------


def setup_secret(user_id: uuid.UUID) -> str:
    """The secret being set up (a new one the first time); kept until a code confirms it."""
    pending = db.session.execute(sa.select(User.totp_pending_secret).where(User.id == user_id)).scalar_one()
    if pending:
        return pending
    secret = pyotp.random_base32()
    db.session.execute(sa.update(User).where(User.id == user_id).values(totp_pending_secret=secret))
    db.session.commit()
    return secret


def provisioning_uri(email: str, secret: str) -> str:
    return pyotp.TOTP(secret).provisioning_uri(name=email, issuer_name=ISSUER)


def qr_code_svg(uri: str) -> str:
    """The QR code as an SVG data URI, for an <img> (the page's policy allows data: images, no inline markup)."""
    return segno.make(uri, error="m").svg_data_uri(scale=5, border=2, dark="#1c2b33", light="#ffffff")


def grouped(secret: str) -> str:
    """The secret as people type it: groups of four."""
    return " ".join(secret[index : index + 4] for index in range(0, len(secret), 4))


def confirm_setup(user_id: uuid.UUID, code: str | None, now: datetime | None = None) -> list[str]:
    """Turn two-factor on with a valid code for the pending secret; returns the new recovery codes (shown once)."""
    now = now or utcnow()
    # Sealed values differ each time they are sealed: the compare-and-set compares the stored text.
    stored_pending = sa.type_coerce(User.totp_pending_secret, sa.String)
    secret, sealed = db.session.execute(
        sa.select(User.totp_pending_secret, stored_pending.label("sealed")).where(User.id == user_id)
    ).one()
    step = _matching_step(secret, _normalized(code), now) if secret else None
    if step is None:
        raise CodeRefused("Koden stemmer ikke. Skriv inn de seks sifrene appen viser nå.")
    confirmed = db.session.execute(
        sa.update(User)
        .where(User.id == user_id, stored_pending == sealed)
        .values(totp_secret=secret, totp_pending_secret=None, two_factor_enabled_at=now, totp_last_step=step)
        .execution_options(synchronize_session=False)
    ).rowcount
    if confirmed != 1:
        db.session.rollback()
        raise CodeRefused("Oppsettet ble endret i et annet vindu. Last siden på nytt og prøv igjen.")
    codes = _replace_recovery_codes(user_id, now)
    audit.record("two_factor_enabled", actor_id=user_id, subject_id=user_id, now=now)
    db.session.commit()
    return codes


def _replace_recovery_codes(user_id: uuid.UUID, now: datetime) -> list[str]:
    db.session.execute(sa.delete(RecoveryCode).where(RecoveryCode.user_id == user_id))
    codes = []
    for _ in range(RECOVERY_CODE_COUNT):
        letters = base64.b32encode(secrets.token_bytes(RECOVERY_CODE_BYTES)).decode("ascii").lower()
        code = "-".join(letters[index : index + 4] for index in range(0, len(letters), 4))
        db.session.add(RecoveryCode(user_id=user_id, code_hash=_recovery_hash(code), created_at=now))
        codes.append(code)
    return codes


def renew_recovery_codes(user_id: uuid.UUID) -> list[str]:
    now = utcnow()
    codes = _replace_recovery_codes(user_id, now)
    audit.record("recovery_codes_renewed", actor_id=user_id, subject_id=user_id, now=now)
    db.session.commit()
    return codes


def unused_recovery_codes(user_id: uuid.UUID) -> int:
    return db.session.execute(
        sa.select(sa.func.count())
        .select_from(RecoveryCode)
        .where(RecoveryCode.user_id == user_id, RecoveryCode.used_at.is_(None))
    ).scalar_one()


def turn_off(user_id: uuid.UUID, by_id: uuid.UUID | None) -> bool:
    """Two-factor off (by the person, or reset by an administrator when a phone is lost); False if it was off."""
    changed = db.session.execute(
        sa.update(User)
        .where(User.id == user_id, sa.or_(User.totp_secret.is_not(None), User.totp_pending_secret.is_not(None)))
        .values(totp_secret=None, totp_pending_secret=None, two_factor_enabled_at=None, totp_last_step=None)
        .execution_options(synchronize_session=False)
    ).rowcount
    if not changed:
        db.session.rollback()
        return False
    db.session.execute(sa.delete(RecoveryCode).where(RecoveryCode.user_id == user_id))
    by_themselves = by_id == user_id
    audit.record("two_factor_disabled" if by_themselves else "two_factor_reset", actor_id=by_id, subject_id=user_id)
    db.session.commit()
    return True


# --- signing in ---------------------------------------------------------------------------------------


def accept_code(user_id: uuid.UUID, code: str | None, now: datetime | None = None) -> str:
    """Check the second step's code: an app code for a later time step than any accepted before, or an unused
    recovery code (used up by this). Returns which it was ("app" or "recovery"); raises CodeRefused."""
    now = now or utcnow()
    typed = _normalized(code)
    secret = db.session.execute(sa.select(User.totp_secret).where(User.id == user_id)).scalar_one_or_none()
    if not secret or not typed:
        raise CodeRefused(WRONG_CODE)
    if typed.isdigit():
        step = _matching_step(secret, typed, now)
        accepted = step is not None and (
            db.session.execute(
                sa.update(User)
                .where(User.id == user_id, sa.or_(User.totp_last_step.is_(None), User.totp_last_step < step))
                .values(totp_last_step=step)
                .execution_options(synchronize_session=False)
            ).rowcount
            == 1
        )
        kind = "app"
    else:
        accepted = (
            db.session.execute(
                sa.update(RecoveryCode)
                .where(
                    RecoveryCode.user_id == user_id,
                    RecoveryCode.code_hash == _recovery_hash(typed),
                    RecoveryCode.used_at.is_(None),
                )
                .values(used_at=now)
                .execution_options(synchronize_session=False)
            ).rowcount
            == 1
        )
        kind = "recovery"
    if not accepted:
        db.session.rollback()
        raise CodeRefused(WRONG_CODE)
    db.session.commit()
    return kind
