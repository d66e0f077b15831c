"""A forgotten password: a one-time link by mail (1 hour), and every replacement of a password, however it comes
(the link, Innstillinger, the command line): the person's other sessions end, open links close, and a mail
says the password was changed.

Asking for a link does the same work whether or not the address has an account, so neither the answer nor its
timing tells which: one lookup, one link row, one outbox row, one commit, one job. Only the mail's builder, in
the worker, finds out that there is nobody to send it to.
"""

import uuid
from datetime import datetime, timedelta

from ..core.clock import utcnow
from ..extensions import db
from ..mail import outbox
from ..mail.dispatch import dispatch
from . import audit, mails, tokens, users
from .models import User
from .passwords import password_problem

RESET_LIFETIME = timedelta(hours=1)


class PasswordRefused(ValueError):
    """The password cannot be used: a message per field (current_password, password)."""

    def __init__(self, errors: dict[str, str]) -> None:
        super().__init__(" ".join(errors.values()))
        self.errors = errors


def request_reset(email: str | None) -> None:
    """«Glemt passord?»: a link to the address if it is an active account's, and nothing otherwise."""
    user = users.user_by_email(email or "")
    user_id = user.id if user is not None and user.is_active else None
    token = tokens.new_link(tokens.PASSWORD_RESET, RESET_LIFETIME, user_id=user_id)
    message = mails.write_link_mail(mails.PASSWORD_RESET, mails.ACCOUNT_RECIPIENT, token, user_id=user_id)
    db.session.commit()
    dispatch(message)


def send_reset(user_id: uuid.UUID, by_id: uuid.UUID) -> bool:
    """An administrator sends a colleague the link; False when the account is gone or deactivated."""
    user = db.session.get(User, user_id)
    if user is None or not user.is_active:
        return False
    now = utcnow()
    token = tokens.new_link(tokens.PASSWORD_RESET, RESET_LIFETIME, user_id=user_id, now=now)
    message = mails.write_link_mail(mails.PASSWORD_RESET, mails.ACCOUNT_RECIPIENT, token, user_id=user_id)
    audit.record("password_reset_sent", actor_id=by_id, subject_id=user_id, now=now)
    db.session.commit()
    dispatch(message)
    return True


def open_link(token_hash: str | None) -> tokens.LinkLookup:
    lookup = tokens.look_up(tokens.PASSWORD_RESET, token_hash)
    if lookup.state == tokens.LinkState.VALID:
        user = db.session.get(User, lookup.token.user_id) if lookup.token.user_id else None
        if user is None or not user.is_active:
            return tokens.LinkLookup(tokens.LinkState.UNKNOWN)
    return lookup


def complete_reset(token_hash: str | None, password: str | None) -> User:
    """The link's new password: every session of the person ends (the caller may start one for this browser)."""
    lookup = open_link(token_hash)
    if lookup.state != tokens.LinkState.VALID:
        raise tokens.LinkNotUsable(lookup.state)
    user = db.session.get(User, lookup.token.user_id)
    problem = password_problem(password or "", (user.email, user.name))
    if problem:
        raise PasswordRefused({"password": problem})
    now = utcnow()
    if tokens.use(tokens.PASSWORD_RESET, token_hash, now) is None:
        db.session.rollback()
        raise tokens.LinkNotUsable(open_link(token_hash).state)
    message = replace_password(user, password, actor_id=user.id, action="password_reset_completed", now=now)
    db.session.commit()
    dispatch(message)
    return user


def change_password(user_id: uuid.UUID, current: str | None, new: str | None, keep_token: str) -> None:
    """Innstillinger: the current password first; the browser that asks stays signed in, every other ends."""
    user = db.session.get(User, user_id)
    errors = {}
    if not users.password_matches(user, current or ""):
        errors["current_password"] = "Det nåværende passordet stemmer ikke. Skriv det inn på nytt."  # noqa: S105
    problem = password_problem(new or "", (user.email, user.name))
    if problem:
        errors["password"] = problem
    if errors:
        raise PasswordRefused(errors)
    message = replace_password(user, new, actor_id=user.id, action="password_changed", keep_token=keep_token)
    db.session.commit()
    dispatch(message)


def set_password_by_operator(email: str, password: str) -> User:
    """`flask users set-password`: the fallback when no mail can reach the person."""
    user = users.user_by_email(email)
    if user is None:
        raise users.AccountError(f"No user with email {email}.")
    problem = password_problem(password, (user.email, user.name))
    if problem:
        raise users.AccountError(f"That password is refused: {problem}")
    message = replace_password(user, password, actor_id=None, action="password_set_by_operator")
    db.session.commit()
    dispatch(message)
    return user


def replace_password(
    user: User,
    password: str,
    *,
    actor_id: uuid.UUID | None,
    action: str,
    keep_token: str | None = None,
    now: datetime | None = None,
):
    """The new hash, sessions ended, reset links closed, the mail written and the change recorded, all in the
    caller's transaction. Returns the mail's outbox row, to dispatch after the commit."""
    now = now or utcnow()
    user.password_hash = users.hash_password(password)
    users.end_sessions(user.id, keep_token=keep_token)
    tokens.close_open_links(tokens.PASSWORD_RESET, now, user_id=user.id)
    audit.record(action, actor_id=actor_id, subject_id=user.id, now=now)
    return outbox.add(mails.PASSWORD_CHANGED, user.email, user_id=user.id, now=now)
