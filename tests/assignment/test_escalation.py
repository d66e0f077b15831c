"""Escalation of the first-contact clock in the worker: a reminder at half the time, a mail to the owner and every
administrator once it has passed, the hand-over when the team wants it; each exactly once, whatever runs it."""

from datetime import timedelta

import pytest
import sqlalchemy as sa
from helpers.accounts import make_user
from helpers.assignment import set_weights
from helpers.booking import make_lead
from helpers.jobs import run_jobs
from helpers.staff import STAFF_PASSWORD
from helpers.waiting import run_together

from meander_site.accounts import team_settings
from meander_site.accounts.models import User
from meander_site.assignment import escalation, first_contact
from meander_site.core.clock import utcnow
from meander_site.extensions import db
from meander_site.leads.models import Lead, LeadEvent
from meander_site.mail import dispatch
from meander_site.mail.models import OutboxMessage


@pytest.fixture
def people(app):
    seller = make_user(app, "kari@meander.no", "Kari Selger", STAFF_PASSWORD)
    other = make_user(app, "ola@meander.no", "Ola Selger", STAFF_PASSWORD)
    boss = make_user(app, "sjef@meander.no", "Sara Sjef", STAFF_PASSWORD, admin=True)
    set_weights(app, {seller["id"]: 100})
    return {"seller": seller, "other": other, "boss": boss}


def shift_clock(app, lead_id, *, reminder_ago=None, due_ago=None) -> None:
    now = utcnow()
    values = {}
    if reminder_ago is not None:
        values["first_contact_reminder_at"] = now - reminder_ago
    if due_ago is not None:
        values["first_contact_due_at"] = now - due_ago
    with app.app_context():
        db.session.execute(sa.update(Lead).where(Lead.id == lead_id).values(**values))
        db.session.commit()


def escalate(app) -> int:
    """One round of the worker's periodic job (worker/runner.py: escalate_first_contacts)."""
    with app.app_context():
        messages = escalation.escalate_due()
        for message in messages:
            dispatch.dispatch(message)
        return len(messages)


def escalation_rows(app) -> list[tuple[str, str]]:
    with app.app_context():
        rows = db.session.execute(
            sa.select(OutboxMessage.payload, OutboxMessage.recipient).where(
                OutboxMessage.kind == escalation.FIRST_CONTACT_KIND
            )
        ).all()
    return sorted((payload.split('"')[3], recipient) for payload, recipient in rows)


def test_halfway_the_owner_is_reminded_once(app, people, smtp_server):
    lead = make_lead(app, organization_name="Hjerteforeningen")
    assert escalate(app) == 0  # nothing is due yet
    shift_clock(app, lead["id"], reminder_ago=timedelta(minutes=1))
    assert escalate(app) == 1
    assert escalate(app) == 0
    assert escalation_rows(app) == [("reminder", "kari@meander.no")]
    run_jobs(app)
    [mail] = [mail for mail in smtp_server.messages() if mail["Subject"].startswith("Halvveis")]
    assert mail["To"] == "kari@meander.no" and "Hjerteforeningen" in mail["Subject"]


def test_past_the_time_the_owner_and_every_administrator_hear_once(app, people, smtp_server):
    lead = make_lead(app, organization_name="Hjerteforeningen")
    shift_clock(app, lead["id"], reminder_ago=timedelta(hours=2), due_ago=timedelta(minutes=5))
    escalate(app)
    escalate(app)
    # The reminder and the expiry both fall due in one round: both go, once each.
    assert escalation_rows(app) == [
        ("expired", "kari@meander.no"),
        ("expired", "sjef@meander.no"),
        ("reminder", "kari@meander.no"),
    ]
    run_jobs(app)
    expired = [mail for mail in smtp_server.messages() if mail["Subject"].startswith("Svarfristen er gått ut")]
    assert sorted(mail["To"] for mail in expired) == ["kari@meander.no", "sjef@meander.no"]


def test_two_workers_at_once_and_then_a_restarted_one_escalate_each_lead_once(app, make_app, people):
    leads = [make_lead(app, email=f"lead{n}@lhl.no")["id"] for n in range(5)]
    for lead_id in leads:
        shift_clock(app, lead_id, reminder_ago=timedelta(hours=1), due_ago=timedelta(minutes=1))

    def worker(n, barrier):
        with app.app_context():
            barrier.wait()
            return len(escalation.escalate_due())

    written = run_together(2, worker)
    restarted = make_app()  # a fresh process's app: nothing in memory says what was done
    with restarted.app_context():
        assert escalation.escalate_due() == []
    assert sum(written) == 5 * 3  # per lead: a reminder, the owner's and the administrator's expiry
    assert len(escalation_rows(app)) == 15


def test_a_lead_contacted_meanwhile_is_not_escalated(app, people, staff_user, smtp_server):
    contacted = make_lead(app, email="ringt@lhl.no")["id"]
    moved = make_lead(app, email="flyttet@lhl.no")["id"]
    for lead_id in (contacted, moved):
        shift_clock(app, lead_id, reminder_ago=timedelta(hours=1), due_ago=timedelta(minutes=1))
    with app.app_context():
        by = db.session.get(User, staff_user["id"])
        first_contact.log_attempt(contacted, first_contact.validate_attempt("called", None), by=by)
        db.session.execute(sa.update(Lead).where(Lead.id == moved).values(status="contacted"))
        db.session.commit()
    assert escalate(app) == 0
    assert escalation_rows(app) == []


def test_a_mail_written_before_the_contact_is_dropped_when_it_is_built(app, people, staff_user, smtp_server):
    lead_id = make_lead(app)["id"]
    shift_clock(app, lead_id, reminder_ago=timedelta(minutes=1))
    run_jobs(app)
    smtp_server.clear()
    assert escalate(app) == 1
    with app.app_context():
        by = db.session.get(User, staff_user["id"])
        first_contact.log_attempt(lead_id, first_contact.validate_attempt("reached", None), by=by)
    run_jobs(app)
    assert [mail for mail in smtp_server.messages() if mail["Subject"].startswith("Halvveis")] == []
    with app.app_context():
        [row] = db.session.scalars(sa.select(OutboxMessage).where(OutboxMessage.kind == escalation.FIRST_CONTACT_KIND))
        assert row.sent_at is None and row.closed_reason == "gone"


def test_with_hand_over_on_the_lead_goes_to_the_next_member_with_the_reason(app, people, smtp_server):
    set_weights(app, {people["seller"]["id"]: 100, people["other"]["id"]: 100})
    with app.app_context():
        team_settings.set_first_contact_rules(
            opens_at_minute=480, closes_at_minute=960, target_minutes=120, hand_over=True, by_id=people["boss"]["id"]
        )
    lead_id = make_lead(app)["id"]
    with app.app_context():
        first_owner = db.session.get(Lead, lead_id).owner_id
    shift_clock(app, lead_id, reminder_ago=timedelta(hours=1), due_ago=timedelta(minutes=1))
    escalate(app)
    with app.app_context():
        lead = db.session.get(Lead, lead_id)
        new_owner = db.session.get(User, lead.owner_id)
        lines = list(db.session.scalars(sa.select(LeadEvent.detail).where(LeadEvent.lead_id == lead_id)))
    assert new_owner.id != first_owner
    assert f"Tildelt {new_owner.name} (fristen gikk ut)" in lines
    assert ("handed_over", new_owner.email) in escalation_rows(app)
