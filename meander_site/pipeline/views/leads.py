"""One lead: its page, correcting its contact details, taking over or declining a later booking's details,
resending its confirmation, erasing it, and registering a new one."""

import uuid

from flask import flash, render_template, request, url_for
from flask_login import current_user

from ...core.htmx import redirect_after_post
from ...leads import records
from ...leads.validation import LeadValidationError
from .. import contact_details, lead_history, staff_leads
from .blueprint import bp
from .forms import LeadEditForm, NewLeadForm
from .pages import render_lead_page


@bp.get("/leads/<uuid:lead_id>")
def lead_page(lead_id: uuid.UUID):
    return render_lead_page(lead_id)


@bp.post("/leads/<uuid:lead_id>")
def edit_lead(lead_id: uuid.UUID):
    try:
        contact_details.update_contact(lead_id, request.form)
    except LeadValidationError as error:
        return render_lead_page(lead_id, form=LeadEditForm(), errors=error.errors, status=422)
    flash("Endringene er lagret.")
    return redirect_after_post(url_for("pipeline.lead_page", lead_id=lead_id))


@bp.post("/leads/<uuid:lead_id>/bookings/<uuid:booking_id>/apply")
def apply_booking_details(lead_id: uuid.UUID, booking_id: uuid.UUID):
    try:
        contact_details.apply_booking_details(lead_id, booking_id, by=current_user.user)
    except LeadValidationError as error:
        flash(" ".join(error.errors.values()))
    else:
        flash("Opplysningene fra bookingen er tatt i bruk. Valget er notert i historikken.")
    return redirect_after_post(url_for("pipeline.lead_page", lead_id=lead_id))


@bp.post("/leads/<uuid:lead_id>/bookings/<uuid:booking_id>/keep")
def keep_current_details(lead_id: uuid.UUID, booking_id: uuid.UUID):
    contact_details.keep_current_details(lead_id, booking_id, by=current_user.user)
    flash("Leaden beholder opplysningene sine. Valget er notert i historikken.")
    return redirect_after_post(url_for("pipeline.lead_page", lead_id=lead_id))


@bp.post("/leads/<uuid:lead_id>/resend")
def resend_confirmation(lead_id: uuid.UUID):
    sending = lead_history.resend_confirmation(records.get_lead(lead_id).id)
    if sending is None:
        flash("Bekreftelsen er allerede sendt.")
    elif sending:
        flash("Bekreftelsen sendes på nytt nå.")
    else:
        flash("Køen svarer ikke akkurat nå. Bekreftelsen sendes automatisk så snart den gjør det.")
    return redirect_after_post(url_for("pipeline.lead_page", lead_id=lead_id))


@bp.post("/leads/<uuid:lead_id>/delete")
def erase_lead(lead_id: uuid.UUID):
    records.erase(lead_id, by=current_user.user)
    flash("Leaden og all historikk om den er slettet.")
    return redirect_after_post(url_for("pipeline.board"))


@bp.get("/leads/new")
def new_lead_form():
    return render_template("pipeline/new_lead.html", form=NewLeadForm(formdata=None), errors={})


@bp.post("/leads/new")
def create_lead():
    form = NewLeadForm()
    try:
        details, source = staff_leads.validate_staff_lead(request.form)
        result = staff_leads.create_by_staff(details, source, form.send_confirmation.data)
    except LeadValidationError as error:
        return render_template("pipeline/new_lead.html", form=form, errors=error.errors), 422
    flash("Leaden er lagret." if not result.is_rebooking else "E-posten fantes fra før: leaden er oppdatert.")
    return redirect_after_post(url_for("pipeline.lead_page", lead_id=result.lead_id))
