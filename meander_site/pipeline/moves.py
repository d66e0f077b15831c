"""Moving a lead on the board: forward only, one compare-and-set, with what the move needs (a lost reason, a demo).
Knows nothing of HTTP."""

import logging
import uuid
from collections.abc import Mapping
from dataclasses import dataclass

import sqlalchemy as sa

from ..accounts.models import User
from ..core.clock import utcnow
from ..core.text import text_problem
from ..extensions import db
from ..leads import deal_value, records
from ..leads.models import MAX_NOTE_LENGTH, Lead, LeadStatusChange
from ..leads.next_step import NextStep
from ..leads.records import get_lead
from ..leads.statuses import (
    FINAL_STATUSES,
    LOST_REASONS,
    LeadStatus,
    StatusTransitionError,
    check_transition,
    parse_status,
)
from ..leads.validation import LeadValidationError
from ..mail import dispatch
from ..scheduling import demos
from . import follow_up, next_steps

log = logging.getLogger(__name__)


# Moves the board asks details for before it posts them: «Tapt» needs a reason, «Kunde» the agreed annual value
# (deal_value) and may carry a note.
MOVES_ASKING_FOR_DETAILS = frozenset({LeadStatus.LOST, LeadStatus.CONVERTED})


REASON_REQUIRED = frozenset({LeadStatus.LOST})
# What the «Tapt» dialog says for a lead with a booked demo: the move cancels it (scheduling.demos.apply_move), and
# the cancellation mail links to a page that shows the status, no longer a form for another time.
DEMO_CANCEL_NOTICE = "Leaden har en avtalt demo. Den avlyses, og kontakten får en avlysning på e-post."
VALUE_REQUIRED = frozenset({LeadStatus.CONVERTED})


@dataclass(frozen=True)
class MoveDetails:
    reason: str | None = None
    note: str | None = None
    # What comes next, as staff set it in the move dialog; None: the proposal for the new status.
    next_step: NextStep | None = None
    # The demo a move to «Demo avtalt» schedules.
    demo: demos.DemoPlan | None = None
    # The agreed annual value a move to «Kunde» records (whole kroner).
    deal_value: int | None = None


def validate_move_details(
    to_status: LeadStatus, raw: Mapping[str, str], default_host_id: uuid.UUID | None = None
) -> MoveDetails:
    reason = (raw.get("reason") or "").strip() or None
    note = (raw.get("note") or "").strip() or None
    errors = {}
    if to_status in REASON_REQUIRED and reason not in LOST_REASONS:
        errors["reason"] = "Velg hvorfor leaden er tapt."
    if to_status not in REASON_REQUIRED:
        reason = None
    problem = note and text_problem(note, "Notatet", MAX_NOTE_LENGTH, multiline=True)
    if problem:
        errors["note"] = problem
    next_step = None
    if to_status not in FINAL_STATUSES and (raw.get("next_step") or raw.get("next_step_due")):
        try:
            next_step = follow_up.validate_next_step(raw.get("next_step"), raw.get("next_step_due"))
        except LeadValidationError as error:
            errors.update(error.errors)
    demo = None
    if to_status == LeadStatus.DEMO_SCHEDULED:
        try:
            demo = demos.validate_demo(raw, default_host_id)
        except LeadValidationError as error:
            errors.update(error.errors)
    value = None
    if to_status == LeadStatus.CONVERTED:
        try:
            value = deal_value.validate_deal_value(raw)
        except LeadValidationError as error:
            errors.update(error.errors)
    if errors:
        raise LeadValidationError(errors)
    return MoveDetails(reason=reason, note=note, next_step=next_step, demo=demo, deal_value=value)


def move(lead_id: uuid.UUID, to_status: str, by: User, details: MoveDetails = MoveDetails()) -> Lead:
    """Move a lead forward with a compare-and-set, so two people moving one card never move it backward."""
    target = parse_status(to_status)
    lead = get_lead(lead_id)
    current = lead.status
    check_transition(current, target)
    demos.require_plan(target, details.demo)
    now = utcnow()
    demo_at = details.demo.starts_at if details.demo else None
    step = details.next_step or next_steps.proposal_after_move(target.value, now, demo_at=demo_at)
    if target in FINAL_STATUSES:
        step = None
    if target == LeadStatus.CONVERTED and details.deal_value is None:
        raise LeadValidationError({"deal_value": "Skriv avtalt årsverdi i hele kroner, for eksempel 48000."})
    values = {"deal_value": details.deal_value} if target == LeadStatus.CONVERTED else {}
    moved = db.session.execute(
        sa.update(Lead)
        .where(Lead.id == lead_id, Lead.status == current)
        .values(
            status=target.value,
            status_changed_at=now,
            updated_at=now,
            next_step=step.text if step else None,
            next_step_due_at=step.due_at if step else None,
            **values,
        )
        .execution_options(synchronize_session=False)
    ).rowcount
    if moved != 1:
        db.session.rollback()
        latest = get_lead(lead_id)
        db.session.refresh(latest)
        raise StatusTransitionError(
            current,
            target.value,
            f"Noen andre flyttet nettopp leaden til «{latest.status_label}». Kortet står nå der.",
        )
    db.session.add(
        LeadStatusChange(
            lead_id=lead_id,
            from_status=current,
            to_status=target.value,
            changed_by_id=by.id,
            changed_by_name=by.name,
            changed_at=now,
            reason=details.reason,
            note=details.note,
            pass_number=lead.pass_number,
        )
    )
    records.mark_worked(lead_id, now)
    mails = demos.apply_move(lead, current, target, details.demo, by, now)
    # Read before the commit expires `by`: logging must not cost a query.
    moved_by = str(by.id)
    db.session.commit()
    dispatch.dispatch_all(mails)
    log.info(
        "lead moved",
        extra={
            "event": "status_moved",
            "lead_id": str(lead_id),
            "from_status": current,
            "to_status": target.value,
            "user_id": moved_by,
        },
    )
    db.session.refresh(lead)
    return lead
