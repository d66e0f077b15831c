"""What a lead's demo is now, read by everything else in scheduling: when it ends, whether it is still to come, what
the prospect's page shows, and who hosts it."""

import uuid
from datetime import datetime, timedelta

import sqlalchemy as sa

from ..accounts.models import User
from ..core.clock import utcnow
from ..extensions import db
from ..leads.models import Lead
from ..leads.statuses import LeadStatus

DEFAULT_MINUTES = 30


def demo_ends_at(lead: Lead) -> datetime | None:
    if lead.demo_at is None:
        return None
    return lead.demo_at + timedelta(minutes=lead.demo_minutes or DEFAULT_MINUTES)


def has_upcoming_demo(lead: Lead, now: datetime | None = None) -> bool:
    return (
        lead.status == LeadStatus.DEMO_SCHEDULED.value
        and lead.demo_at is not None
        and lead.demo_cancelled_at is None
        and (demo_ends_at(lead) > (now or utcnow()))
    )


def public_state(lead: Lead, now: datetime | None = None) -> str:
    """Where the booking stands for the prospect: "received", "scheduled", "held" (a thank-you) or "none"
    (cancelled or lost: no demo is scheduled; the page never says why)."""
    now = now or utcnow()
    if lead.status == LeadStatus.LOST.value or lead.demo_cancelled_at is not None:
        return "none"
    if lead.demo_at is not None and lead.status in (LeadStatus.DEMO_SCHEDULED.value, LeadStatus.CONVERTED.value):
        return "scheduled" if demo_ends_at(lead) > now else "held"
    if lead.status == LeadStatus.CONVERTED.value:
        return "held"
    return "received"


def host_of(lead: Lead) -> User | None:
    return db.session.get(User, lead.demo_host_id) if lead.demo_host_id else None


def lead_and_host(lead_id: uuid.UUID | None) -> tuple[Lead | None, User | None]:
    """A demo mail's lead and its demo's host, in one statement (the builders pass the host on rather than call
    host_of: the session keeps a loaded object only while something refers to it)."""
    if lead_id is None:
        return None, None
    row = db.session.execute(
        sa.select(Lead, User).outerjoin(User, User.id == Lead.demo_host_id).where(Lead.id == lead_id)
    ).first()
    return (row[0], row[1]) if row is not None else (None, None)
