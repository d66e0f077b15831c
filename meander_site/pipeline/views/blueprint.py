"""The staff blueprint under /pipeline: only signed-in staff, never cached, and a lead that is gone says so."""

import uuid

from flask import Blueprint, render_template

from ...accounts.access import administrators_only, staff_only
from ...assignment.first_contact import ATTEMPT_KINDS
from ...leads.records import LeadNotFound, erased_at
from ...leads.statuses import LeadStatus
from ..moves import DEMO_CANCEL_NOTICE
from .limits import FORM_LIMITS

bp = Blueprint("pipeline", __name__, url_prefix="/pipeline")
staff_only(bp)
# What only an administrator sets for the pipeline (the stage weights).
admin_bp = Blueprint("pipeline_admin", __name__, url_prefix="/pipeline")
administrators_only(admin_bp)
# Templates name statuses and limits through these, never by retyping them.
bp.add_app_template_global(LeadStatus, "LeadStatus")
bp.add_app_template_global(FORM_LIMITS, "limits")
bp.add_app_template_global(ATTEMPT_KINDS, "attempt_kinds")
bp.add_app_template_global(DEMO_CANCEL_NOTICE, "demo_cancel_notice")


@bp.errorhandler(LeadNotFound)
@bp.errorhandler(404)
def not_found(error):
    """Staff looking for a lead that is gone: say whether it was erased, and lead back to the board."""
    lead_id = error.args[0] if isinstance(error, LeadNotFound) and error.args else None
    when_erased = erased_at(lead_id) if isinstance(lead_id, uuid.UUID) else None
    return render_template("pipeline/not_found.html", erased_at=when_erased), 404
