"""What deals are worth: a lead's estimate and expected close month, and the administrator's stage weights."""

import uuid

from flask import flash, render_template, request, url_for
from flask_login import current_user

from ...core.htmx import redirect_after_post
from ...leads import deal_value
from ...leads.statuses import OPEN_STATUSES
from ...leads.validation import LeadValidationError
from .blueprint import admin_bp, bp
from .pages import render_lead_page


@bp.post("/leads/<uuid:lead_id>/estimate")
def set_estimate(lead_id: uuid.UUID):
    try:
        estimate = deal_value.validate_estimate(request.form)
        deal_value.set_estimate(lead_id, estimate, by=current_user.user)
    except LeadValidationError as error:
        return render_lead_page(lead_id, errors=error.errors, status=422)
    flash("Anslått verdi er lagret.")
    return redirect_after_post(url_for("pipeline.lead_page", lead_id=lead_id))


def _weights_page(values: dict, errors: dict, status: int = 200):
    return render_template("pipeline/weights.html", statuses=OPEN_STATUSES, values=values, errors=errors), status


@admin_bp.get("/weights")
def weights():
    return _weights_page({key: str(value) for key, value in deal_value.stage_weights().items()}, {})


@admin_bp.post("/weights")
def save_weights():
    try:
        weights = deal_value.validate_weights(request.form)
    except LeadValidationError as error:
        typed = {status.value: request.form.get(f"weight_{status.value}", "") for status in OPEN_STATUSES}
        return _weights_page(typed, error.errors, 422)
    deal_value.set_stage_weights(weights, by=current_user.user)
    flash("Sannsynlighetene er lagret. Rapporten bruker dem fra nå.")
    return redirect_after_post(url_for("pipeline_admin.weights"))
