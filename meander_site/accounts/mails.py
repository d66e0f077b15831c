"""The mails about an account: an invitation, a link to choose a new password, and the notice that the password
was changed. Each is an outbox kind (listed in worker/kinds.py); a link's secret is made when its mail is built
(tokens.mint), so the outbox row holds only the link's id."""

import json
import uuid

import sqlalchemy as sa
from flask import render_template
from flask_mail import Message

from ..core.links import external_url
from ..extensions import db
from ..mail import outbox
from ..mail.kind import Kind
from . import tokens
from .models import AccountToken, Invitation, User

INVITATION_KIND = "account_invitation"
PASSWORD_RESET_KIND = "password_reset"  # noqa: S105 (a mail kind, not a password)
PASSWORD_CHANGED_KIND = "password_changed"  # noqa: S105 (a mail kind)
# A reset link's row names no address: the builder reads the account's when it sends, and a request for an
# address with no account is written the same way (its builder finds nobody and sends nothing).
ACCOUNT_RECIPIENT = "account"


def link_with_secret(endpoint: str, secret: str) -> str:
    """The page's address with the secret in its fragment, which no browser sends to a server."""
    return f"{external_url(endpoint)}#{secret}"


def _token(row: sa.Row) -> AccountToken | None:
    token_id = json.loads(row.payload or "{}").get("token_id")
    return db.session.get(AccountToken, uuid.UUID(token_id)) if token_id else None


def _message(subject: str, recipient: str, template: str, **context) -> Message:
    return Message(
        subject=subject,
        recipients=[recipient],
        body=render_template(f"mail/{template}.txt", **context),
        html=render_template(f"mail/{template}.html", **context),
    )


def write_link_mail(kind: "Kind", recipient: str, token: AccountToken, user_id: uuid.UUID | None = None):
    """The outbox row for a link's mail, in the caller's transaction."""
    return outbox.add(kind, recipient, user_id=user_id, payload={"token_id": str(token.id)})


def build_invitation(rows: list[sa.Row]) -> Message | None:
    token = _token(rows[0])
    invitation = db.session.get(Invitation, token.invitation_id) if token and token.invitation_id else None
    if invitation is None or invitation.accepted_at or invitation.withdrawn_at:
        return None  # accepted, withdrawn or replaced meanwhile
    context = {
        "inviter": invitation.invited_by.name if invitation.invited_by else None,
        "role": invitation.role_label,
        "hours": round((token.expires_at - token.created_at).total_seconds() / 3600),
        "expires_at": token.expires_at,
    }
    recipient, token_id = invitation.email, token.id
    secret = tokens.mint(token_id)
    if secret is None:
        return None  # expired before it could be sent
    context["link"] = link_with_secret("accounts.invitation", secret)
    return _message("Du er invitert til Meanders salgsteam", recipient, "account_invitation", **context)


def build_password_reset(rows: list[sa.Row]) -> Message | None:
    token = _token(rows[0])
    user = db.session.get(User, token.user_id) if token and token.user_id else None
    if user is None or not user.is_active:
        return None  # no account with that address: nothing is sent, whatever was asked
    context = {"name": user.first_name, "minutes": round((token.expires_at - token.created_at).total_seconds() / 60)}
    recipient, token_id = user.email, token.id
    secret = tokens.mint(token_id)
    if secret is None:
        return None
    context["link"] = link_with_secret("accounts.new_password", secret)
    context["forgot_url"] = external_url("accounts.forgot_password")
    return _message("Velg nytt passord for Meander", recipient, "password_reset", **context)


def build_password_changed(rows: list[sa.Row]) -> Message | None:
    row = rows[0]
    user = db.session.get(User, row.user_id) if row.user_id else None
    if user is None or not user.is_active:
        return None
    context = {"name": user.first_name, "forgot_url": external_url("accounts.forgot_password")}
    return _message("Passordet ditt er endret", user.email, "password_changed", **context)


INVITATION = Kind(INVITATION_KIND, build_invitation)
PASSWORD_RESET = Kind(PASSWORD_RESET_KIND, build_password_reset)
PASSWORD_CHANGED = Kind(PASSWORD_CHANGED_KIND, build_password_changed)
KINDS = (INVITATION, PASSWORD_RESET, PASSWORD_CHANGED)
