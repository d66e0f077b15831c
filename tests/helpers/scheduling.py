"""Leads with a demo, made through the domain layer as a host's move to «Demo avtalt» would make them."""

from datetime import timedelta

import sqlalchemy as sa

from helpers.booking import make_lead
from meander_site.accounts.models import User
from meander_site.core.clock import utcnow
from meander_site.extensions import db
from meander_site.leads.statuses import LeadStatus
from meander_site.mail import sweep
from meander_site.mail.models import OutboxMessage
from meander_site.pipeline import moves
from meander_site.scheduling import demos
from meander_site.scheduling.reminders import REMINDER_KIND


def make_scheduled_lead(app, host_id, starts_at=None, **fields) -> dict:
    """A lead moved to «Demo avtalt» by its host, with a demo a week from now (or `starts_at`), through the domain
    layer; its invitations are queued. Returns make_lead's ids."""
    lead = make_lead(app, **fields)
    with app.app_context():
        host = db.session.get(User, host_id)
        plan = demos.DemoPlan(
            starts_at=starts_at or (utcnow() + timedelta(days=7)).replace(second=0, microsecond=0),
            minutes=30,
            location="https://meet.meander.no/demo",
            host_id=host.id,
        )
        moves.move(lead["id"], LeadStatus.DEMO_SCHEDULED.value, host, moves.MoveDetails(demo=plan))
    return lead


def make_reminders_due(app) -> int:
    """Every demo reminder written so far due now, as if the clock had reached it; the sweep queues them. Returns
    how many it queued."""
    with app.app_context():
        past = utcnow() - timedelta(seconds=1)
        db.session.execute(
            sa.update(OutboxMessage).where(OutboxMessage.kind == REMINDER_KIND).values(send_after=past, due_at=past)
        )
        db.session.commit()
        return sweep.sweep_due()
