"""A new pass for a lost lead: a booking from its address, or staff with a reason, reopen it in «Ny» with a new
first-contact time. The pass that ended is kept (lead_passes) with its outcome and lost reason; moves stay
forward-only within a pass. A «Kunde» stays «Kunde». Knows nothing of HTTP.

The one place a lead is reopened: `reopen`. Both the booking story (booking/book_demo.py) and the lead page
(pipeline/views/passes.py) call it.
"""

import logging
import uuid
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa

from ..accounts import team_settings
from ..accounts.models import User
from ..business_hours import first_contact_due, halfway
from ..core.text import text_problem
from ..extensions import db
from .models import MAX_NOTE_LENGTH, Lead, LeadEvent, LeadPass, LeadStatusChange
from .next_step import FIRST_CONTACT, first_step
from .records import get_lead, mark_worked
from .statuses import LOST_REASONS, LeadStatus, StatusTransitionError
from .validation import LeadValidationError

log = logging.getLogger(__name__)

REOPENED_BY_BOOKING = "Tidligere tapt lead har booket igjen"
EXISTING_CUSTOMER_BOOKED = "Eksisterende kunde ber om demo"
# The reason recorded on the reopening move (lead_status_changes.reason): never a lost reason.
REOPEN_REASON = "reopened"

# The journey of a pass (migration 0008's trigger keeps it): a new pass starts it afresh.
JOURNEY_RESET = {
    "funnel_rank": 0,
    "left_new_at": None,
    "first_contact_at": None,
    "reached_demo_at": None,
    "converted_at": None,
    "lost_reason": None,
    "new_stage_seconds": None,
    "contacted_stage_seconds": None,
    "qualified_stage_seconds": None,
    "demo_stage_seconds": None,
}


def new_pass_first_contact_due(now: datetime) -> tuple[datetime, datetime]:
    """When a reopened lead must be contacted by, and when its owner is reminded: the first-contact clock of a
    lead arriving in «Ny» at `now`, in the team's business hours (business_hours.py), as for a new booking."""
    settings = team_settings.current()
    hours, target = settings.business_hours, settings.first_contact_target
    return first_contact_due(now, target, hours), halfway(now, target, hours)


def validate_reopen_reason(raw: object) -> str:
    reason = " ".join(str(raw or "").split())
    if not reason:
        raise LeadValidationError(
            {"reopen_reason": "Skriv hvorfor leaden gjenåpnes, for eksempel «Ringte og vil se demo»."}
        )
    problem = text_problem(reason, "Grunnen", MAX_NOTE_LENGTH)
    if problem:
        raise LeadValidationError({"reopen_reason": problem})
    return reason


def reopen(lead_id: uuid.UUID, now: datetime, *, by: User | None = None, reason: str | None = None) -> bool:
    """Start a new pass for a lost lead, in the caller's transaction: keep the ended pass, put the lead in «Ny»
    with a new first-contact time, and record the reopening as the new pass's first move.

    `by` is None for a booking from the lead's address. Returns False when the lead is not «Tapt» (any more):
    the compare-and-set on status and pass number makes two reopenings at once start one pass.
    """
    lead = get_lead(lead_id)
    if lead.status != LeadStatus.LOST.value:
        return False
    ended_pass = lead.pass_number
    due, reminder_at = new_pass_first_contact_due(now)
    reopened = db.session.execute(
        sa.update(Lead)
        .where(Lead.id == lead_id, Lead.status == LeadStatus.LOST.value, Lead.pass_number == ended_pass)
        .values(
            status=LeadStatus.NEW.value,
            pass_number=ended_pass + 1,
            pass_started_at=now,
            status_changed_at=now,
            updated_at=now,
            first_contact_due_at=due,
            first_contact_reminder_at=reminder_at,
            escalation_stage=0,  # the new pass's clock escalates afresh
            next_step=FIRST_CONTACT,
            next_step_due_at=first_step(now).due_at,  # as for a new booking (booking.book_demo)
            estimated_value=None,
            expected_close_month=None,
            demo_change_requested_at=None,
            demo_change_request=None,
            **JOURNEY_RESET,
        )
        .execution_options(synchronize_session=False)
    ).rowcount
    if reopened != 1:
        return False
    db.session.add(
        LeadPass(
            lead_id=lead_id,
            pass_number=ended_pass,
            started_at=lead.pass_started_at or lead.created_at,
            ended_at=lead.status_changed_at,
            outcome=LeadStatus.LOST.value,
            lost_reason=lead.lost_reason,
            owner_id=lead.owner_id,
            funnel_rank=lead.funnel_rank,
            left_new_at=lead.left_new_at,
            first_contact_at=lead.first_contact_at,
            reached_demo_at=lead.reached_demo_at,
            estimated_value=lead.estimated_value,
        )
    )
    db.session.add(
        LeadStatusChange(
            lead_id=lead_id,
            from_status=LeadStatus.LOST.value,
            to_status=LeadStatus.NEW.value,
            changed_by_id=by.id if by else None,
            changed_by_name=by.name if by else None,
            changed_at=now,
            reason=REOPEN_REASON,
            note=reason,
            pass_number=ended_pass + 1,
        )
    )
    if by is not None:
        mark_worked(lead_id, now)
    else:
        db.session.add(LeadEvent(lead_id=lead_id, kind="reopened_by_booking", at=now, detail=REOPENED_BY_BOOKING))
    log.info(
        "lead reopened",
        extra={"event": "lead_reopened", "lead_id": str(lead_id), "pass_number": ended_pass + 1, "by_staff": bool(by)},
    )
    return True


def reopen_by_staff(lead_id: uuid.UUID, reason: str, by: User, now: datetime) -> None:
    """Staff reopen a lost lead from its page, with a reason. Commits."""
    if not reopen(lead_id, now, by=by, reason=reason):
        db.session.rollback()
        lead = get_lead(lead_id)
        db.session.refresh(lead)
        raise StatusTransitionError(
            lead.status,
            LeadStatus.NEW.value,
            f"Bare en tapt lead kan gjenåpnes. Leaden står i «{lead.status_label}».",
        )
    db.session.commit()


# --- the passes, for the lead page ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Pass:
    number: int
    started_at: datetime
    ended_at: datetime | None
    outcome: str  # a status value: the ended pass's outcome, or the current status
    lost_reason: str | None
    is_current: bool

    @property
    def outcome_label(self) -> str:
        return LeadStatus(self.outcome).label

    @property
    def lost_reason_label(self) -> str | None:
        return LOST_REASONS.get(self.lost_reason or "") if self.lost_reason else None


def passes_of(lead: Lead) -> list[Pass]:
    """Every pass the lead made, oldest first, the current one last."""
    ended = db.session.execute(
        sa.select(LeadPass).where(LeadPass.lead_id == lead.id).order_by(LeadPass.pass_number)
    ).scalars()
    passes = [
        Pass(row.pass_number, row.started_at, row.ended_at, row.outcome, row.lost_reason, is_current=False)
        for row in ended
    ]
    current_reason = lead.lost_reason if lead.status == LeadStatus.LOST.value else None
    passes.append(
        Pass(lead.pass_number, lead.pass_started_at or lead.created_at, None, lead.status, current_reason, True)
    )
    return passes
