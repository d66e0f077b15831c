"""«Ble demoen holdt?»: after a demo's end the card and the lead page ask, and staff answer «Ja» (the follow-up is
proposed), «Kunden møtte ikke» (the prospect gets one mail offering new times) or «Vi måtte avlyse». The answer is
kept on the lead (demo_outcome), which the report's no-show rate reads."""

import logging
import uuid
from datetime import datetime

import sqlalchemy as sa

from ..accounts.models import User
from ..business_days import end_of_next_business_day
from ..core.clock import utcnow
from ..extensions import db
from ..leads import records
from ..leads.models import Lead
from ..leads.statuses import LeadStatus
from ..mail import dispatch
from ..scheduling.demo_state import demo_ends_at
from ..scheduling.labels import demo_label
from . import claims
from . import mails as slot_mails

log = logging.getLogger(__name__)

HELD, NO_SHOW, CANCELLED_BY_US = "held", "no_show", "cancelled_by_us"
ANSWERS = {HELD: "Ja", NO_SHOW: "Kunden møtte ikke", CANCELLED_BY_US: "Vi måtte avlyse"}
EVENT_DETAIL = {HELD: "Demoen ble holdt", NO_SHOW: "Kunden møtte ikke", CANCELLED_BY_US: "Vi måtte avlyse demoen"}


class OutcomeRefused(Exception):
    """Not an answer, or nothing to answer for (no demo that has ended, or answered already)."""


def asks_outcome(lead: Lead, now: datetime | None = None) -> bool:
    """The demo has ended, was not cancelled, and nobody has said how it went."""
    ends_at = demo_ends_at(lead)
    return (
        lead.status == LeadStatus.DEMO_SCHEDULED.value
        and ends_at is not None
        and lead.demo_cancelled_at is None
        and lead.demo_outcome is None
        and ends_at <= (now or utcnow())
    )


def record_outcome(lead_id: uuid.UUID, answer: object, by: User, now: datetime | None = None) -> str:
    """One compare-and-set: of two colleagues answering at once, one answer stands. Commits."""
    now = now or utcnow()
    if answer not in ANSWERS:
        raise OutcomeRefused(lead_id)
    values = {"demo_outcome": answer, "demo_outcome_at": now, "updated_at": now}
    if answer == HELD:
        values.update(next_step=claims.FOLLOW_UP_AFTER_DEMO, next_step_due_at=end_of_next_business_day(now))
    changed = db.session.execute(
        sa.update(Lead)
        .where(
            Lead.id == lead_id,
            Lead.status == LeadStatus.DEMO_SCHEDULED.value,
            Lead.demo_outcome.is_(None),
            Lead.demo_cancelled_at.is_(None),
            Lead.demo_at.is_not(None),
            Lead.demo_at <= now,
        )
        .values(**values)
        .execution_options(synchronize_session=False)
    ).rowcount
    if changed != 1:
        db.session.rollback()
        raise OutcomeRefused(lead_id)
    lead = db.session.get(Lead, lead_id)
    db.session.refresh(lead)
    records.record_event(lead_id, "demo_outcome", by, f"{EVENT_DETAIL[answer]} ({demo_label(lead.demo_at)})", now)
    records.mark_worked(lead_id, now)
    written = slot_mails.write_no_show_offer(lead, now) if answer == NO_SHOW else []
    db.session.commit()
    dispatch.dispatch_all(written)
    log.info("demo outcome", extra={"event": "demo_outcome", "lead_id": str(lead_id), "outcome": answer})
    return answer
