"""The sign-in and account pages as responses, for the account views and the error pages (a 429 or an expired
form shows the form again)."""

from urllib.parse import urlsplit

from flask import render_template, request, url_for
from werkzeug.urls import iri_to_uri

from . import tokens
from .forms import CodeForm, ForgotPasswordForm, LoginForm


def safe_next(target: str | None) -> str:
    """Only a path on this site: never another host, scheme, or a protocol-relative //host."""
    default = url_for("pipeline.board")
    # Judged on the raw string, which is what would be sent: urlsplit quietly drops tabs and line breaks,
    # and a line break in a Location header fails the response after the session has been created.
    if not target or not target.isprintable():
        return default
    if not target.startswith("/") or target.startswith("//") or "\\" in target:
        return default
    parts = urlsplit(target)
    if parts.scheme or parts.netloc:
        return default
    return iri_to_uri(target)  # a header carries ASCII only


def render_login(form: LoginForm, error: str | None = None, status: int = 200):
    next_target = safe_next(request.args.get("next"))
    return render_template("accounts/login.html", form=form, error=error, next_target=next_target), status


def render_code_step(form: CodeForm | None = None, errors: dict | None = None, notice=None, status: int = 200):
    return render_template(
        "accounts/code.html", form=form or CodeForm(formdata=None), errors=errors or {}, notice=notice
    ), status


def render_forgot_password(form: ForgotPasswordForm | None = None, errors=None, notice=None, status=200, sent=False):
    """«Glemt passord?»: the form, or (sent) the one answer every address gets."""
    return render_template(
        "accounts/forgot_password.html",
        form=form or ForgotPasswordForm(formdata=None),
        errors=errors or {},
        notice=notice,
        sent=sent,
    ), status


# What a link that cannot be used says, by what it was for and why; and who can send a new one.
LINK_PROBLEMS = {
    tokens.LinkState.USED: ("Lenken er allerede brukt", 410),
    tokens.LinkState.EXPIRED: ("Lenken er utløpt", 410),
    tokens.LinkState.UNKNOWN: ("Lenken virker ikke", 404),
}


def render_link_problem(purpose: str, state: tokens.LinkState, inviter: str | None = None, withdrawn=False):
    title, status = LINK_PROBLEMS[state]
    if withdrawn:
        title = "Invitasjonen er trukket tilbake eller erstattet"
    return render_template(
        "accounts/link_problem.html", title=title, purpose=purpose, state=state, inviter=inviter, withdrawn=withdrawn
    ), status
