"""Owners, next steps and notes: small posts from the card menu and the lead page."""

import uuid

from flask import flash, render_template, request, url_for
from flask_login import current_user

from ...accounts import users
from ...assignment import first_contact
from ...core.htmx import redirect_after_post
from ...leads.records import get_lead
from ...leads.validation import LeadValidationError
from .. import board, follow_up
from .blueprint import bp
from .responses import answer, refused


@bp.post("/leads/<uuid:lead_id>/owner")
def assign_owner(lead_id: uuid.UUID):
    get_lead(lead_id)
    raw = request.form.get("owner_id", "")
    try:
        owner_id = uuid.UUID(raw) if raw else None
    except ValueError:
        owner_id = uuid.UUID(int=0)  # no such user: refused below with the usual message
    try:
        lead = follow_up.assign_owner(lead_id, owner_id, by=current_user.user)
    except LeadValidationError as error:
        return refused(lead_id, error)
    owner = follow_up.owner_of(lead)
    if owner is None:
        return answer(lead_id, f"«{lead.organization_name}» er nå ufordelt.")
    return answer(lead_id, f"«{lead.organization_name}» er gitt til {owner.name}.")


@bp.post("/leads/<uuid:lead_id>/next-step")
def set_next_step(lead_id: uuid.UUID):
    get_lead(lead_id)
    try:
        step = follow_up.validate_next_step(request.form.get("next_step"), request.form.get("next_step_due"))
        lead = follow_up.set_next_step(lead_id, step, by=current_user.user)
    except LeadValidationError as error:
        return refused(lead_id, error)
    return answer(lead_id, f"Neste steg for «{lead.organization_name}» er lagret.")


@bp.post("/leads/<uuid:lead_id>/notes")
def add_note(lead_id: uuid.UUID):
    get_lead(lead_id)
    try:
        follow_up.add_note(lead_id, follow_up.validate_note(request.form.get("body")), by=current_user.user)
    except LeadValidationError as error:
        return refused(lead_id, error)
    flash("Notatet er lagret.")
    return redirect_after_post(url_for("pipeline.lead_page", lead_id=lead_id) + "#timeline-heading")


@bp.post("/leads/<uuid:lead_id>/contact-attempts")
def log_contact_attempt(lead_id: uuid.UUID):
    """«Logg kontaktforsøk»: Ringte / Sendte e-post / Fikk svar, with a note; the first stops the clock."""
    lead = get_lead(lead_id)
    try:
        attempt = first_contact.validate_attempt(request.form.get("attempt_kind"), request.form.get("attempt_note"))
    except LeadValidationError as error:
        return refused(lead_id, error)
    first = first_contact.log_attempt(lead_id, attempt, by=current_user.user)
    text = f"Kontaktforsøket på «{lead.organization_name}» er logget"
    return answer(lead_id, f"{text} som første kontakt." if first else f"{text}.")


@bp.get("/leads/<uuid:lead_id>/menu")
def card_menu(lead_id: uuid.UUID):
    """The card menu's quick actions, fetched when the menu opens: the board itself stays light."""
    return render_template(
        "pipeline/_card_menu.html",
        card=board.get_card(lead_id),
        staff=users.active_staff(),
    )
