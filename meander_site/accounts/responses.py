"""How the account views finish: signing someone in (or on to the second step), and the headers of the pages a
one-time link leads to. Shared by the sign-in, link and settings views, which never import each other."""

import functools
import time
import uuid

from flask import current_app, make_response, redirect, session
from flask_login import login_user

from . import users
from .models import User

SECOND_STEP = "second_step"
SECOND_STEP_SECONDS = 300


def start_signed_in(user: User, next_target: str):
    """A fresh session for this browser: nothing from before (a planted session id, an old CSRF token) survives."""
    session.clear()
    login_user(users.SignedInStaff(user=user, token=users.start_session(user)))
    return redirect(next_target, code=303)


def begin_second_step(user: User, next_target: str, location: str):
    """The password was right; the code comes next. The signed cookie says whose code, until when."""
    session.clear()
    session[SECOND_STEP] = {"user": str(user.id), "until": time.time() + SECOND_STEP_SECONDS, "next": next_target}
    return redirect(location, code=303)


def sign_in(user: User, next_target: str, second_step_location: str):
    if user.has_two_factor:
        return begin_second_step(user, next_target, second_step_location)
    return start_signed_in(user, next_target)


def second_step_user_id() -> uuid.UUID | None:
    pending = session.get(SECOND_STEP)
    if not isinstance(pending, dict) or pending.get("until", 0) < time.time():
        return None
    try:
        return uuid.UUID(pending.get("user", ""))
    except ValueError:
        return None


def second_step_next() -> str | None:
    pending = session.get(SECOND_STEP)
    return pending.get("next") if isinstance(pending, dict) else None


def link_page(view):
    """A page a one-time link leads to: no Referer leaves it, and no cache or back-button store keeps it."""

    @functools.wraps(view)
    def wrapped(*args, **kwargs):
        response = make_response(view(*args, **kwargs))
        response.headers["Referrer-Policy"] = "no-referrer"
        response.headers["Cache-Control"] = "no-store"
        return response

    return wrapped


def rate_limit(setting: str):
    """A limit read from configuration per request, for Flask-Limiter's decorators."""
    return lambda: current_app.config[setting]
