"""A new pass for a lost lead: a booking from its address reopens it in «Ny» (the owner is told «Tidligere tapt lead
har booket igjen»), staff reopen it from its page with a reason, a «Kunde» stays «Kunde», the pass that ended is
kept with its lost reason, and moves stay forward-only within a pass."""

import sqlalchemy as sa
from helpers.booking import VALID_BOOKING, make_lead
from helpers.staff import move

from meander_site.accounts.models import User
from meander_site.booking import team_notice
from meander_site.business_days import end_of_next_business_day
from meander_site.business_hours import first_contact_due
from meander_site.extensions import db
from meander_site.leads.models import Lead, LeadPass, LeadStatusChange, LeadStatusCount
from meander_site.mail.models import OutboxMessage


def lost_lead(app, staff_client, token, **fields) -> dict:
    lead = make_lead(app, **fields)
    move(staff_client, lead["id"], "contacted", token)
    assert move(staff_client, lead["id"], "lost", token, reason="price").status_code == 200
    return lead


def stored(app, lead_id) -> Lead:
    with app.app_context():
        lead = db.session.get(Lead, lead_id)
        db.session.expunge(lead)
        return lead


def kept_passes(app, lead_id) -> list[tuple]:
    with app.app_context():
        rows = db.session.execute(
            sa.select(LeadPass.pass_number, LeadPass.outcome, LeadPass.lost_reason, LeadPass.funnel_rank).where(
                LeadPass.lead_id == lead_id
            )
        ).all()
        return [tuple(row) for row in rows]


def notice_for_latest_booking(app, lead_id):
    """The team's notice of the lead's latest booking, built as the worker builds it."""
    with app.app_context():
        rows = db.session.execute(
            sa.select(OutboxMessage)
            .where(OutboxMessage.lead_id == lead_id, OutboxMessage.kind == team_notice.NEW_LEADS_KIND)
            .order_by(OutboxMessage.created_at.desc())
            .limit(1)
        ).all()
        with app.test_request_context():
            return team_notice.build_new_leads([row[0] for row in rows])


def own_lead(app, lead_id, user_id) -> None:
    with app.app_context():
        db.session.execute(sa.update(Lead).where(Lead.id == lead_id).values(owner_id=user_id))
        db.session.commit()


def test_a_booking_from_a_lost_leads_address_starts_a_new_pass_in_ny(app, staff_client, token, staff_user):
    lead = lost_lead(app, staff_client, token)
    own_lead(app, lead["id"], staff_user["id"])
    before = stored(app, lead["id"])

    make_lead(app)  # the same address books again

    after = stored(app, lead["id"])
    assert (after.status, after.pass_number, after.booking_count) == ("new", 2, 2)
    # The new pass's first-contact clock, as for a new booking (business_hours.py), and its first step.
    assert after.first_contact_due_at == first_contact_due(after.pass_started_at) >= before.first_contact_due_at
    assert after.next_step == "Første kontakt"
    assert after.next_step_due_at == end_of_next_business_day(after.pass_started_at)
    assert (after.funnel_rank, after.left_new_at, after.lost_reason) == (0, None, None)
    assert kept_passes(app, lead["id"]) == [(1, "lost", "price", 1)]
    with app.app_context():
        counts = dict(db.session.execute(sa.select(LeadStatusCount.status, LeadStatusCount.lead_count)).all())
    assert counts["lost"] == 0 and counts["new"] == 1
    notice = notice_for_latest_booking(app, lead["id"])
    assert notice.subject == f"Tidligere tapt lead har booket igjen: {VALID_BOOKING['organization_name']}"
    assert staff_user["email"] in notice.recipients  # the owner is told
    page = staff_client.get(f"/pipeline/leads/{lead['id']}").get_data(as_text=True)
    assert "Runde 1" in page and "endte som «Tapt» (Pris eller budsjett)" in page and "Runde 2 (nå)" in page
    assert "Gjenåpnet: runde 2 startet i «Ny» (tidligere tapt lead har booket igjen)" in page


def test_a_customer_who_books_again_stays_kunde_and_the_owner_hears_it(app, staff_client, token, staff_user):
    lead = make_lead(app)
    own_lead(app, lead["id"], staff_user["id"])
    move(staff_client, lead["id"], "converted", token, deal_value="48000")

    make_lead(app)

    after = stored(app, lead["id"])
    assert (after.status, after.pass_number, after.booking_count, after.deal_value) == ("converted", 1, 2, 48000)
    notice = notice_for_latest_booking(app, lead["id"])
    assert notice.subject.startswith("Eksisterende kunde ber om demo: ")
    assert staff_user["email"] in notice.recipients


def test_staff_reopen_a_lost_lead_with_a_reason_and_moves_stay_forward_only_in_the_pass(app, staff_client, token):
    lead = lost_lead(app, staff_client, token)
    url = f"/pipeline/leads/{lead['id']}/reopen"

    without_reason = staff_client.post(url, data={"reopen_reason": "  "}, headers={"X-CSRFToken": token})
    assert without_reason.status_code == 422 and "Skriv hvorfor leaden gjenåpnes" in without_reason.get_data(True)
    assert stored(app, lead["id"]).status == "lost"

    done = staff_client.post(url, data={"reopen_reason": "Ringte og vil se demo"}, headers={"X-CSRFToken": token})
    assert done.status_code == 303
    after = stored(app, lead["id"])
    assert (after.status, after.pass_number) == ("new", 2)
    with app.app_context():
        reopening = db.session.execute(
            sa.select(LeadStatusChange).where(LeadStatusChange.lead_id == lead["id"], LeadStatusChange.pass_number == 2)
        ).scalar_one()
        assert (reopening.from_status, reopening.to_status, reopening.note) == ("lost", "new", "Ringte og vil se demo")
        assert reopening.changed_by_name == db.session.get(User, reopening.changed_by_id).name

    # Within the new pass, forward only as ever; a second reopening of an open lead is refused.
    assert move(staff_client, lead["id"], "qualified", token).status_code == 200
    assert move(staff_client, lead["id"], "contacted", token).status_code == 409
    again = staff_client.post(url, data={"reopen_reason": "Igjen"}, headers={"X-CSRFToken": token})
    assert again.status_code == 409 and "Bare en tapt lead kan gjenåpnes" in again.get_data(True)
    # The earlier pass's lost reason is visible in the new one.
    page = staff_client.get(f"/pipeline/leads/{lead['id']}").get_data(as_text=True)
    assert "Pris eller budsjett" in page and "Runde 2: flyttet fra «Ny» til «Kvalifisert»" in page


def test_the_journey_of_a_new_pass_is_measured_from_its_start(app, staff_client, token):
    lead = lost_lead(app, staff_client, token)
    staff_client.post(
        f"/pipeline/leads/{lead['id']}/reopen", data={"reopen_reason": "Ny sjanse"}, headers={"X-CSRFToken": token}
    )
    move(staff_client, lead["id"], "contacted", token)

    after = stored(app, lead["id"])
    assert after.funnel_rank == 1 and after.first_contact_at is not None
    assert 0 <= after.new_stage_seconds < 60  # from the reopening, not from when the lead first arrived
