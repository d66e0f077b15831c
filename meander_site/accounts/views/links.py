"""The pages a one-time link from a mail leads to: accepting an invitation, and choosing a new password.

The link's secret is in the URL's fragment, which the browser never sends: the page's script posts it, the server
keeps only its hash in the (signed) session and sends the browser on to the same, secret-free address, where
the form is. Every one of these pages is `Referrer-Policy: no-referrer` and `Cache-Control: no-store`.
"""

from flask import flash, redirect, render_template, request, session, url_for

from .. import invitations, resets, tokens
from ..forms import AcceptInvitationForm, NewPasswordForm
from ..pages import render_link_problem
from ..responses import link_page, sign_in, start_signed_in
from .blueprints import bp

INVITATION_LINK = "invitation_link"
RESET_LINK = "reset_link"
PURPOSES = {
    tokens.INVITATION: ("accounts.invitation", INVITATION_LINK),
    tokens.PASSWORD_RESET: ("accounts.new_password", RESET_LINK),
}


def _opener(purpose: str):
    return render_template("accounts/link_opener.html", purpose=purpose, action=url_for(request.endpoint + "_link"))


def _read_link(purpose: str, look_up):
    """The posted secret, checked; its hash goes into the session and the browser on to the secret-free page."""
    endpoint, key = PURPOSES[purpose]
    secret = (request.form.get("secret") or "").strip().lstrip("#")
    token_hash = tokens.hash_token(secret) if tokens.plausible(secret) else None
    found = look_up(token_hash)
    if found.state != tokens.LinkState.VALID:
        session.pop(key, None)
        return _problem(purpose, found)
    session[key] = token_hash
    return redirect(url_for(endpoint), code=303)


def _form_or_opener(purpose: str, look_up, render_form):
    """The form, for a browser whose session holds an opened link that still works; else the page that opens one
    (or says why the one it held no longer works)."""
    key = PURPOSES[purpose][1]
    token_hash = session.get(key)
    if not token_hash:
        return _opener(purpose)
    found = look_up(token_hash)
    if found.state != tokens.LinkState.VALID:
        session.pop(key, None)
        return _problem(purpose, found)
    return render_form(found)


def _problem(purpose: str, found):
    if purpose == tokens.INVITATION:
        return render_link_problem(purpose, found.state, inviter=found.inviter_name, withdrawn=found.withdrawn)
    return render_link_problem(purpose, found.state)


# --- an invitation ------------------------------------------------------------------------------------


def _render_invitation(link, form=None, errors=None, status=200):
    return render_template(
        "accounts/accept_invitation.html",
        invitation=link.invitation,
        inviter=link.inviter_name,
        form=form or AcceptInvitationForm(formdata=None),
        errors=errors or {},
    ), status


@bp.get("/invitasjon")
@link_page
def invitation():
    return _form_or_opener(tokens.INVITATION, invitations.open_link, _render_invitation)


@bp.post("/invitasjon/lenke")
@link_page
def invitation_link():
    return _read_link(tokens.INVITATION, invitations.open_link)


@bp.post("/invitasjon")
@link_page
def accept_invitation():
    token_hash = session.get(INVITATION_LINK)
    form = AcceptInvitationForm()
    try:
        user = invitations.accept(token_hash, form.name.data, form.password.data)
    except invitations.InvitationRefused as refused:
        return _render_invitation(invitations.open_link(token_hash), form, refused.errors, 422)
    except tokens.LinkNotUsable:
        session.pop(INVITATION_LINK, None)
        return _problem(tokens.INVITATION, invitations.open_link(token_hash))
    response = start_signed_in(user, url_for("pipeline.board"))
    flash(f"Velkommen, {user.first_name}! Kontoen din er klar.")
    return response


# --- a new password -----------------------------------------------------------------------------------


def _render_new_password(form=None, errors=None, status=200):
    return render_template(
        "accounts/new_password.html", form=form or NewPasswordForm(formdata=None), errors=errors or {}
    ), status


@bp.get("/nytt-passord")
@link_page
def new_password():
    return _form_or_opener(tokens.PASSWORD_RESET, resets.open_link, lambda found: _render_new_password())


@bp.post("/nytt-passord/lenke")
@link_page
def new_password_link():
    return _read_link(tokens.PASSWORD_RESET, resets.open_link)


@bp.post("/nytt-passord")
@link_page
def save_new_password():
    token_hash = session.get(RESET_LINK)
    form = NewPasswordForm()
    try:
        user = resets.complete_reset(token_hash, form.password.data)
    except resets.PasswordRefused as refused:
        return _render_new_password(form, refused.errors, 422)
    except tokens.LinkNotUsable:
        session.pop(RESET_LINK, None)
        return _problem(tokens.PASSWORD_RESET, resets.open_link(token_hash))
    # Every session of the account has ended; this browser signs in (with the code too, if two-factor is on).
    response = sign_in(user, url_for("pipeline.board"), url_for("accounts.code_form"))
    flash("Passordet er endret, og du er logget ut overalt ellers.")
    return response
