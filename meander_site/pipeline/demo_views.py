"""Moving a scheduled demo to another time, from the lead page and the board's scheduling dialog.

Answers like the other quick actions (follow_up_views.py): htmx gets the card, a plain form post a redirect
back with the result flashed, and a refusal keeps what was typed.
"""

import uuid
from dataclasses import dataclass
from datetime import datetime

from flask import request
from flask_login import current_user

from .. import formatting, leads, sales, scheduling
from ..models import Lead, LeadStatus, User, utcnow
from . import bp
from .follow_up_views import _answer, _refused


@dataclass
class DemoSection:
    """What the lead page's demo section (pipeline/_demo.html) shows and offers."""

    lead: Lead
    host: User | None
    can_schedule: bool  # the lead may still move to «Demo avtalt»: offer the form that does it
    can_move: bool  # the lead is in «Demo avtalt»: offer to move its demo
    now: datetime

    @property
    def label(self) -> str | None:
        return scheduling.demo_label(self.lead.demo_at) if self.lead.demo_at else None

    @property
    def is_cancelled(self) -> bool:
        return self.lead.demo_cancelled_at is not None

    @property
    def wants_new_time(self) -> bool:
        return self.can_move and self.lead.demo_change_requested_at is not None

    def local_value(self) -> str:
        """The <input type="datetime-local"> value of the demo's start (Oslo wall clock)."""
        return formatting.oslo_local_value(self.lead.demo_at)

    def earliest_value(self) -> str:
        return formatting.oslo_local_value(self.now)


def demo_context(lead: Lead) -> DemoSection:
    status = leads.parse_status(lead.status)
    return DemoSection(
        lead=lead,
        host=scheduling.host_of(lead),
        can_schedule=LeadStatus.DEMO_SCHEDULED in leads.allowed_moves(lead.status),
        can_move=status == LeadStatus.DEMO_SCHEDULED,
        now=utcnow(),
    )


@bp.post("/leads/<uuid:lead_id>/demo")
def reschedule_demo(lead_id: uuid.UUID):
    lead = sales.get_lead(lead_id)
    try:
        plan = scheduling.validate_demo(request.form, default_host_id=lead.demo_host_id or lead.owner_id)
        lead = scheduling.reschedule(lead_id, plan, by=current_user.user)
    except leads.LeadValidationError as error:
        return _refused(lead_id, error)
    except scheduling.DemoNotScheduled:
        return _answer(
            lead_id, f"«{lead.organization_name}» står ikke i «Demo avtalt». Flytt leaden dit først.", 409, "error"
        )
    except scheduling.DemoChanged:
        return _answer(lead_id, "Noen andre endret nettopp demoen. Se det nye tidspunktet og prøv igjen.", 409, "error")
    return _answer(
        lead_id,
        f"Demoen med «{lead.organization_name}» er flyttet til {scheduling.demo_label(lead.demo_at)}. "
        "Kontakten og verten får en oppdatert invitasjon.",
    )


def dialog_context() -> dict:
    """What the board's scheduling dialog (pipeline/_demo_dialog.html) needs."""
    return {"demo_default_minutes": scheduling.DEFAULT_MINUTES, "demo_minutes_range": scheduling.MINUTES_RANGE}
