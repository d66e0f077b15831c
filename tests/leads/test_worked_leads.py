"""A lead staff have worked keeps its details against an anonymous rebooking (issue 16, item 2). Any staff action
counts as worked (one definition: leads.records.mark_worked / not_yet_worked), so every later public booking's
details wait for staff under «Nye opplysninger»; staff taking them or keeping the lead's is recorded."""

from datetime import date, timedelta

import pytest
import sqlalchemy as sa
from helpers.assignment import leave_the_pool
from helpers.booking import VALID_BOOKING, book, make_lead

from meander_site.extensions import db
from meander_site.leads.models import Booking, Lead

HTMX = {"HX-Request": "true"}
ATTACKER = {
    "email": "WORKED@example.no",
    "first_name": "Angrip",
    "last_name": "Erson",
    "organization_name": "Falsk Forening",
    "phone": "+46 70 999 88 77",
}
ORIGINAL = {**VALID_BOOKING, "email": "worked@example.no"}
TOMORROW = (date.today() + timedelta(days=1)).isoformat()


@pytest.fixture(autouse=True)
def leads_arrive_unowned(app, staff_user):
    """Assignment would make the salesperson the owner already, and «set the owner» would change nothing."""
    leave_the_pool(app)


def staff_post(client, token, path, **data):
    return client.post(path, data=data, headers={**HTMX, "X-CSRFToken": token})


# Every staff action on a lead, as the board and the lead page post it.
STAFF_ACTIONS = {
    "owner": lambda client, token, lead, user: staff_post(
        client, token, f"/pipeline/leads/{lead['id']}/owner", owner_id=str(user["id"])
    ),
    "note": lambda client, token, lead, user: staff_post(
        client, token, f"/pipeline/leads/{lead['id']}/notes", body="Ringte, svarte ikke."
    ),
    "next step": lambda client, token, lead, user: staff_post(
        client, token, f"/pipeline/leads/{lead['id']}/next-step", next_step="Ring igjen", next_step_due=TOMORROW
    ),
    "move": lambda client, token, lead, user: staff_post(
        client, token, f"/pipeline/leads/{lead['id']}/status", status="contacted"
    ),
    "edit": lambda client, token, lead, user: staff_post(
        client, token, f"/pipeline/leads/{lead['id']}", **{**ORIGINAL, "role_title": "Leder"}
    ),
    "resend": lambda client, token, lead, user: staff_post(client, token, f"/pipeline/leads/{lead['id']}/resend"),
    "contact attempt": lambda client, token, lead, user: staff_post(
        client, token, f"/pipeline/leads/{lead['id']}/contact-attempts", attempt_kind="called"
    ),
}
# The routes that act on one lead, and the action above that exercises each (erasing leaves nothing to keep).
ROUTES = {
    "pipeline.assign_owner": "owner",
    "pipeline.add_note": "note",
    "pipeline.set_next_step": "next step",
    "pipeline.move": "move",
    "pipeline.edit_lead": "edit",
    "pipeline.resend_confirmation": "resend",
    "pipeline.log_contact_attempt": "contact attempt",
    "pipeline.reschedule_demo": "demo (tests/scheduling: a reschedule records a timeline event, which works the lead)",
    "pipeline.apply_booking_details": "the decisions below",
    "pipeline.keep_current_details": "the decisions below",
    "pipeline.erase_lead": None,
    # Only from «Kvalifisert» on (a move first, which works the lead); it records a timeline event too.
    "pipeline.set_estimate": "move",
    # Only for a lost lead (a move first); staff reopening it mark it worked (leads/passes.py).
    "pipeline.reopen_lead": "move",
}


def the_lead(app, lead_id) -> Lead:
    with app.app_context():
        lead = db.session.get(Lead, lead_id)
        db.session.expunge(lead)
        return lead


def attacker_booking(app) -> Booking:
    with app.app_context():
        booking = db.session.execute(
            sa.select(Booking).where(Booking.first_name == ATTACKER["first_name"])
        ).scalar_one()
        db.session.expunge(booking)
        return booking


def rebook_from_elsewhere(app):
    client = app.test_client()
    response = book(client, environ_overrides={"REMOTE_ADDR": "203.0.113.66"}, **ATTACKER)
    assert response.status_code == 303
    return attacker_booking(app)


def assert_kept_and_flagged(app, staff_client, lead_id, booking):
    lead = the_lead(app, lead_id)
    assert (lead.first_name, lead.organization_name, lead.phone) == (
        ORIGINAL["first_name"],
        ORIGINAL["organization_name"],
        "+4791234567",
    ), "the rebooking overwrote a lead staff had worked"
    assert lead.newer_details_booking_id == booking.id
    page = staff_client.get(f"/pipeline/leads/{lead_id}").get_data(as_text=True)
    assert "Nye opplysninger" in page and "Falsk Forening" in page


@pytest.mark.parametrize("action", list(STAFF_ACTIONS))
def test_after_any_staff_action_a_public_rebooking_waits_for_staff(app, staff_client, token, staff_user, action):
    lead = make_lead(app, **ORIGINAL)
    response = STAFF_ACTIONS[action](staff_client, token, lead, staff_user)
    assert response.status_code in (200, 303), response.get_data(as_text=True)

    booking = rebook_from_elsewhere(app)

    assert_kept_and_flagged(app, staff_client, lead["id"], booking)


def test_the_reported_attack_owner_note_and_next_step_on_a_lead_still_in_ny(app, staff_client, token, staff_user):
    lead = make_lead(app, **ORIGINAL)
    for action in ("owner", "note", "next step"):
        STAFF_ACTIONS[action](staff_client, token, lead, staff_user)
    assert the_lead(app, lead["id"]).status == "new"

    booking = rebook_from_elsewhere(app)

    assert_kept_and_flagged(app, staff_client, lead["id"], booking)
    card = staff_client.get("/pipeline").get_data(as_text=True)
    assert "Nye opplysninger" in card


def test_a_lead_no_one_has_touched_still_takes_the_newer_details(app, staff_client):
    lead = make_lead(app, **ORIGINAL)

    rebook_from_elsewhere(app)

    assert the_lead(app, lead["id"]).organization_name == "Falsk Forening"


def test_every_route_that_acts_on_a_lead_is_covered_here(app):
    """The canary: a new staff action on a lead must be added above (and work the lead through mark_worked)."""
    acting = {
        rule.endpoint
        for rule in app.url_map.iter_rules()
        if rule.endpoint.startswith("pipeline.") and "POST" in rule.methods and "lead_id" in rule.arguments
    }
    assert acting == set(ROUTES)


def flagged_lead(app, staff_client, token, staff_user) -> tuple[dict, Booking]:
    lead = make_lead(app, **ORIGINAL)
    STAFF_ACTIONS["owner"](staff_client, token, lead, staff_user)
    return lead, rebook_from_elsewhere(app)


def test_keeping_the_current_details_is_recorded_and_clears_the_flag(app, staff_client, token, staff_user):
    lead, booking = flagged_lead(app, staff_client, token, staff_user)

    response = staff_client.post(f"/pipeline/leads/{lead['id']}/bookings/{booking.id}/keep", data={"csrf_token": token})

    assert response.status_code == 303
    stored = the_lead(app, lead["id"])
    assert stored.organization_name == ORIGINAL["organization_name"]
    assert stored.newer_details_booking_id is None
    decided = attacker_booking(app)
    assert decided.details_rejected_by_name == staff_user["name"] and decided.details_rejected_at is not None
    assert decided.details_applied_at is None
    page = staff_client.get(f"/pipeline/leads/{lead['id']}").get_data(as_text=True)
    assert "Leaden beholder opplysningene sine" in page
    assert "Beholdt opplysningene, ikke dem fra bookingen" in page, "the timeline records the decision"
    assert "Ikke tatt i bruk" in page, "the booking records it"
    assert "Behold nåværende" not in page, "nothing left to decide"


def test_taking_the_newer_details_is_recorded_too(app, staff_client, token, staff_user):
    lead, booking = flagged_lead(app, staff_client, token, staff_user)
    page = staff_client.get(f"/pipeline/leads/{lead['id']}").get_data(as_text=True)
    assert "Bruk disse opplysningene" in page and "Behold nåværende" in page

    response = staff_client.post(
        f"/pipeline/leads/{lead['id']}/bookings/{booking.id}/apply", data={"csrf_token": token}
    )

    assert response.status_code == 303
    assert the_lead(app, lead["id"]).organization_name == "Falsk Forening"
    page = staff_client.get(f"/pipeline/leads/{lead['id']}").get_data(as_text=True)
    assert "Tok i bruk opplysningene fra bookingen" in page


def test_keeping_needs_a_booking_of_that_lead(app, staff_client, token, staff_user):
    lead, booking = flagged_lead(app, staff_client, token, staff_user)
    other = make_lead(app, email="annen@lhl.no")

    response = staff_client.post(
        f"/pipeline/leads/{other['id']}/bookings/{booking.id}/keep", data={"csrf_token": token}
    )

    assert response.status_code == 404
    assert the_lead(app, lead["id"]).newer_details_booking_id == booking.id
