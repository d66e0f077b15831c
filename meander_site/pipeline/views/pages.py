"""What the board page and a lead's page are made of: the contexts their templates (and the fragments htmx
swaps into them) need, so a full page and its fragment never diverge."""

import uuid
from dataclasses import dataclass
from datetime import datetime

from flask import render_template

from ...accounts.models import User
from ...accounts.users import active_staff
from ...core import formatting
from ...core.clock import utcnow
from ...leads import deal_value, passes
from ...leads.models import Lead
from ...leads.records import get_lead
from ...leads.statuses import LOST_REASONS, LeadStatus, allowed_moves, parse_status
from ...leads.validation import FIELD_LABELS
from ...scheduling import demo_state, labels
from ...scheduling.demo_state import DEFAULT_MINUTES
from .. import board, contact_details, follow_up, lead_history
from .forms import LeadEditForm


def board_context(board_filter: board.BoardFilter) -> dict:
    """What the board page and its htmx refresh both need."""
    return {
        "columns": board.board(board_filter),
        "board_filter": board_filter,
        "since": utcnow().isoformat(),
        "overdue_count": board.overdue_count(board_filter),
        "sort_orders": board.SORT_ORDERS,
    }


def demo_dialog_context() -> dict:
    """What the board's scheduling dialog (pipeline/_demo_dialog.html) needs besides the limits."""
    return {"demo_default_minutes": DEFAULT_MINUTES}


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
        return labels.demo_label(self.lead.demo_at) if self.lead.demo_at else None

    @property
    def is_cancelled(self) -> bool:
        return self.lead.demo_cancelled_at is not None

    @property
    def wants_new_time(self) -> bool:
        return self.can_move and self.lead.demo_change_requested_at is not None

    @property
    def minutes(self) -> int:
        return self.lead.demo_minutes or DEFAULT_MINUTES

    def local_value(self) -> str:
        """The <input type="datetime-local"> value of the demo's start (Oslo wall clock)."""
        return formatting.oslo_local_value(self.lead.demo_at)

    def earliest_value(self) -> str:
        return formatting.oslo_local_value(self.now)


def demo_section(lead: Lead) -> DemoSection:
    status = parse_status(lead.status)
    return DemoSection(
        lead=lead,
        host=demo_state.host_of(lead),
        can_schedule=LeadStatus.DEMO_SCHEDULED in allowed_moves(lead.status),
        can_move=status == LeadStatus.DEMO_SCHEDULED,
        now=utcnow(),
    )


def render_lead_page(lead_id: uuid.UUID, form: LeadEditForm | None = None, errors=None, status: int = 200):
    lead = get_lead(lead_id)
    form = form or LeadEditForm(obj=lead, formdata=None)
    return render_template(
        "pipeline/lead.html",
        lead=lead,
        form=form,
        errors=errors or {},
        card=board.get_card(lead_id),
        newer=contact_details.newer_details(lead),
        bookings=lead_history.booking_history(lead_id),
        can_resend=lead_history.confirmation_to_resend(lead_id) is not None,
        lost_reasons=LOST_REASONS,
        field_labels=FIELD_LABELS,
        staff=active_staff(),
        timeline=follow_up.timeline(lead_id),
        demo=demo_section(lead),
        can_estimate=deal_value.can_estimate(lead.status),
        lead_passes=passes.passes_of(lead),
    ), status
