"""A lead's next step: what should happen and by when, the first one every new lead gets, and the one
definition of «overdue» that the board, the lead page, the digest and the report all read."""

from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa

from ..business_days import end_of_next_business_day
from .models import Lead
from .statuses import FINAL_STATUSES, LeadStatus

FIRST_CONTACT = "Første kontakt"


@dataclass(frozen=True)
class NextStep:
    text: str
    due_at: datetime  # UTC, the end of the due day in Oslo

    def is_overdue(self, now: datetime) -> bool:
        return is_overdue(self.due_at, now)


def first_step(created_at: datetime) -> NextStep:
    """A new lead's first step: «Første kontakt» by the end of the next business day (the confirmation's promise)."""
    return NextStep(FIRST_CONTACT, end_of_next_business_day(created_at))


def is_overdue(due_at: datetime, now: datetime) -> bool:
    """Overdue once the due instant has passed: for a step due on a day, after 23:59:59 Oslo time that day."""
    return now > due_at


def lead_is_overdue(lead: Lead, now: datetime) -> bool:
    """An open lead whose next step is past its due instant (a final status has no next step)."""
    due_at = lead.next_step_due_at
    return LeadStatus(lead.status) not in FINAL_STATUSES and due_at is not None and is_overdue(due_at, now)


def overdue_condition(now: datetime) -> sa.ColumnElement[bool]:
    """lead_is_overdue as SQL: the same rule for the board's filter and count, the digest and the report."""
    return sa.and_(Lead.status.notin_([final.value for final in FINAL_STATUSES]), Lead.next_step_due_at < now)
