"""What should happen next with a lead, and by when: the proposals staff see (and may change) after each move.

Pure functions over statuses and UTC datetimes, due dates on the Norwegian business-day calendar (business_days),
each due at the end (23:59:59 Oslo) of its day. Final statuses have no next step.
"""

from datetime import datetime

from ..business_days import (
    end_of_business_days_after,
    end_of_day,
    end_of_next_business_day,
    next_business_day,
    to_oslo,
)
from ..leads.next_step import NextStep
from ..leads.statuses import LeadStatus

FOLLOW_UP_AFTER_DEMO = "Følg opp etter demoen"
# Without a demo time, a follow-up after a demo waits this long.
DEMO_FOLLOW_UP_WITHOUT_TIME_DAYS = 5


# A move into one of these proposes this text, due this many business days after the move. «Demo avtalt» is
# timed by the demo when there is one (see proposal_after_move). «Ny» is where a lead starts
# (leads.next_step.first_step), never where a move ends; the final statuses are absent because nothing comes next.
_PROPOSALS: dict[LeadStatus, tuple[str, int]] = {
    LeadStatus.CONTACTED: ("Følg opp og kvalifiser", 2),
    LeadStatus.QUALIFIED: ("Avtal demo", 3),
    LeadStatus.DEMO_SCHEDULED: (FOLLOW_UP_AFTER_DEMO, DEMO_FOLLOW_UP_WITHOUT_TIME_DAYS),
}


def proposal_after_move(to_status: str, moved_at: datetime, demo_at: datetime | None = None) -> NextStep | None:
    """The next step to propose when a lead has just moved to `to_status`; None for a final status (and for «Ny»,
    which no move reaches).

    A move to «Demo avtalt» with a demo time proposes the follow-up for the business day after the demo (never
    due before the next business day after the move, should the demo already lie behind us); without one, in
    five business days.
    """
    status = LeadStatus(to_status)
    proposal = _PROPOSALS.get(status)
    if proposal is None:
        return None
    text, days = proposal
    due_at = end_of_business_days_after(moved_at, days)
    if status == LeadStatus.DEMO_SCHEDULED and demo_at is not None:
        due_after_demo = end_of_day(next_business_day(to_oslo(demo_at).date()))
        due_at = max(due_after_demo, end_of_next_business_day(moved_at))
    return NextStep(text, due_at)
