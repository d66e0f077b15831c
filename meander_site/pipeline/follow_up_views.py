"""Owners, next steps, notes and the notification setting: small posts from the card menu and the lead page.

Each answers htmx with the card (so the board shows the change at once) and a plain form post with a
redirect back to where it came from, with the result flashed.
"""

import uuid

from flask import flash, redirect, render_template, request, url_for
from flask_login import current_user

from .. import accounts, follow_up, leads, sales
from ..htmx import is_htmx_request, redirect_after_post
from . import bp


def _back_to(lead_id: uuid.UUID) -> str:
    # Only our own two pages: the board or the lead page, never a URL the request supplied.
    if request.form.get("back") == "board":
        return url_for("pipeline.board")
    return url_for("pipeline.lead_page", lead_id=lead_id)


def _answer(lead_id: uuid.UUID, text: str, status: int = 200, kind: str = "info"):
    if is_htmx_request():
        card = sales.get_card(lead_id) if status == 200 else None
        return render_template("pipeline/_move_result.html", message=text, kind=kind, moved_card=card), status
    flash(text)
    return redirect(_back_to(lead_id), code=303)


def _refused(lead_id: uuid.UUID, error: leads.LeadValidationError):
    text = " ".join(error.errors.values())
    if is_htmx_request():
        return render_template("pipeline/_move_result.html", message=text, kind="error"), 422
    from .views import render_lead_page

    return render_lead_page(lead_id, errors=error.errors, status=422)


@bp.post("/leads/<uuid:lead_id>/owner")
def assign_owner(lead_id: uuid.UUID):
    sales.get_lead(lead_id)
    raw = request.form.get("owner_id", "")
    try:
        owner_id = uuid.UUID(raw) if raw else None
    except ValueError:
        owner_id = uuid.UUID(int=0)  # no such user: refused below with the usual message
    try:
        lead = follow_up.assign_owner(lead_id, owner_id, by=current_user.user)
    except leads.LeadValidationError as error:
        return _refused(lead_id, error)
    owner = follow_up.owner_of(lead)
    if owner is None:
        return _answer(lead_id, f"«{lead.organization_name}» er nå ufordelt.")
    return _answer(lead_id, f"«{lead.organization_name}» er gitt til {owner.name}.")


@bp.post("/leads/<uuid:lead_id>/next-step")
def set_next_step(lead_id: uuid.UUID):
    sales.get_lead(lead_id)
    try:
        step = follow_up.validate_next_step(request.form.get("next_step"), request.form.get("next_step_due"))
        lead = follow_up.set_next_step(lead_id, step, by=current_user.user)
    except leads.LeadValidationError as error:
        return _refused(lead_id, error)
    return _answer(lead_id, f"Neste steg for «{lead.organization_name}» er lagret.")


@bp.post("/leads/<uuid:lead_id>/notes")
def add_note(lead_id: uuid.UUID):
    sales.get_lead(lead_id)
    try:
        follow_up.add_note(lead_id, follow_up.validate_note(request.form.get("body")), by=current_user.user)
    except leads.LeadValidationError as error:
        return _refused(lead_id, error)
    flash("Notatet er lagret.")
    return redirect_after_post(url_for("pipeline.lead_page", lead_id=lead_id) + "#timeline-heading")


@bp.get("/settings")
def settings():
    return render_template("pipeline/settings.html", user=current_user.user)


@bp.post("/settings")
def save_settings():
    enabled = request.form.get("notify_new_leads") == "on"
    accounts.set_new_lead_notifications(current_user.user.id, enabled)
    flash("Du får e-post om nye leads." if enabled else "Du får ikke lenger e-post om nye leads.")
    return redirect_after_post(url_for("pipeline.settings"))


@bp.get("/leads/<uuid:lead_id>/menu")
def card_menu(lead_id: uuid.UUID):
    """The card menu's quick actions, fetched when the menu opens: the board itself stays light."""
    return render_template(
        "pipeline/_card_menu.html",
        card=sales.get_card(lead_id),
        staff=follow_up.active_staff(),
        details_statuses={status.value for status in sales.MOVES_ASKING_FOR_DETAILS},
    )
