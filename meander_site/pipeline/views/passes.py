"""A new pass for a lost lead, from its page: staff reopen it with a reason (leads/passes.py)."""

import uuid

from flask import flash, request, url_for
from flask_login import current_user

from ...core.clock import utcnow
from ...core.htmx import redirect_after_post
from ...leads import passes
from ...leads.statuses import StatusTransitionError
from ...leads.validation import LeadValidationError
from .blueprint import bp
from .pages import render_lead_page


@bp.post("/leads/<uuid:lead_id>/reopen")
def reopen_lead(lead_id: uuid.UUID):
    try:
        reason = passes.validate_reopen_reason(request.form.get("reopen_reason"))
        passes.reopen_by_staff(lead_id, reason, by=current_user.user, now=utcnow())
    except LeadValidationError as error:
        return render_lead_page(lead_id, errors=error.errors, status=422)
    except StatusTransitionError as error:
        return render_lead_page(lead_id, errors={"reopen_reason": error.message}, status=409)
    flash("Leaden er gjenåpnet i «Ny» og har startet en ny runde.")
    return redirect_after_post(url_for("pipeline.lead_page", lead_id=lead_id))
