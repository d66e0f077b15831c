"""One-time links, one implementation for invitations and password resets.

A link's secret is random (256 bits), made when the mail that carries it is built, and stored only as its SHA-256:
the raw secret exists in the worker's memory and in the mail, nowhere else. A retried mail gets a fresh secret
(the earlier one stops working). The secret travels in the URL's fragment (`…/invitasjon#<secret>`), which
browsers never send to a server, so no access log, proxy or `Referer` can hold it; the page reads it with a
script, posts it, and the server keeps only its hash in the signed session cookie. A link is used once: the use
is a compare-and-set on `used_at`, and it expires (`expires_at`).
"""

import enum
import hashlib
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa

from ..core.clock import utcnow
from ..extensions import db
from .models import AccountToken

INVITATION = "invitation"
PASSWORD_RESET = "password_reset"  # noqa: S105 (a link's purpose, not a password)
TOKEN_BYTES = 32
# What a secret a person pastes may look like (token_urlsafe's alphabet); anything else is no token of ours.
MAX_TOKEN_LENGTH = 100


class LinkState(enum.Enum):
    VALID = "valid"
    USED = "used"
    EXPIRED = "expired"
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class LinkLookup:
    state: LinkState
    token: AccountToken | None = None


def hash_token(raw: str) -> str:
    return hashlib.sha256(raw.encode("utf-8")).hexdigest()


def plausible(raw: str) -> bool:
    return 0 < len(raw) <= MAX_TOKEN_LENGTH and raw.isascii() and all(c.isalnum() or c in "-_" for c in raw)


def new_link(
    purpose: str,
    lifetime: timedelta,
    *,
    user_id: uuid.UUID | None = None,
    invitation_id: uuid.UUID | None = None,
    now: datetime | None = None,
) -> AccountToken:
    """A link to mail, in the caller's transaction; its secret is made when the mail is built (mint)."""
    now = now or utcnow()
    token = AccountToken(
        id=uuid.uuid4(),
        purpose=purpose,
        user_id=user_id,
        invitation_id=invitation_id,
        created_at=now,
        expires_at=now + lifetime,
    )
    db.session.add(token)
    return token


def mint(token_id: uuid.UUID, now: datetime | None = None) -> str | None:
    """A fresh secret for a link that is still open (committed at once), or None when it was used or expired."""
    raw = secrets.token_urlsafe(TOKEN_BYTES)
    minted = db.session.execute(
        sa.update(AccountToken)
        .where(AccountToken.id == token_id, AccountToken.used_at.is_(None), AccountToken.expires_at > (now or utcnow()))
        .values(token_hash=hash_token(raw))
    ).rowcount
    db.session.commit()
    return raw if minted == 1 else None


def look_up(purpose: str, token_hash: str | None, now: datetime | None = None) -> LinkLookup:
    if not token_hash:
        return LinkLookup(LinkState.UNKNOWN)
    token = db.session.execute(
        sa.select(AccountToken).where(AccountToken.token_hash == token_hash, AccountToken.purpose == purpose)
    ).scalar_one_or_none()
    if token is None:
        return LinkLookup(LinkState.UNKNOWN)
    if token.used_at is not None:
        return LinkLookup(LinkState.USED, token)
    if token.expires_at <= (now or utcnow()):
        return LinkLookup(LinkState.EXPIRED, token)
    return LinkLookup(LinkState.VALID, token)


def use(purpose: str, token_hash: str, now: datetime) -> AccountToken | None:
    """Use a link, once: a compare-and-set in the caller's transaction. None: used, expired or unknown."""
    used_id = db.session.execute(
        sa.update(AccountToken)
        .where(
            AccountToken.token_hash == token_hash,
            AccountToken.purpose == purpose,
            AccountToken.used_at.is_(None),
            AccountToken.expires_at > now,
        )
        .values(used_at=now)
        .returning(AccountToken.id)
    ).scalar_one_or_none()
    return db.session.get(AccountToken, used_id, populate_existing=True) if used_id else None


def close_open_links(purpose: str, now: datetime, *, user_id=None, invitation_ids=None) -> None:
    """Every open link of a person (or of these invitations) stops working, in the caller's transaction."""
    condition = (
        AccountToken.user_id == user_id if user_id is not None else AccountToken.invitation_id.in_(invitation_ids)
    )
    db.session.execute(
        sa.update(AccountToken)
        .where(condition, AccountToken.purpose == purpose, AccountToken.used_at.is_(None))
        .values(used_at=now)
    )


class LinkNotUsable(Exception):
    """A link that cannot be used (any more): its state says why."""

    def __init__(self, state: LinkState) -> None:
        super().__init__(state.value)
        self.state = state
