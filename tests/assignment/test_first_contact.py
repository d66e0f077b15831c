"""The first-contact clock: a due time in business time on every new lead, «Logg kontaktforsøk» from the card menu and
the lead page, the countdown on «Ny» cards, red once passed, sorted by it, and counted in the column's header."""

import re
from datetime import timedelta

import sqlalchemy as sa
from helpers.assignment import leave_the_pool
from helpers.booking import make_lead
from helpers.staff import post

from meander_site.accounts import team_settings
from meander_site.assignment import first_contact
from meander_site.business_hours import first_contact_due, halfway
from meander_site.core.clock import utcnow
from meander_site.extensions import db
from meander_site.leads.models import Lead, LeadEvent


def board(client, **args) -> str:
    response = client.get("/pipeline", query_string=args)
    assert response.status_code == 200
    return response.get_data(as_text=True)


def card(page: str, lead_id) -> str:
    return re.search(rf'<li class="lead-card[^"]*"\s+id="card-{lead_id}".*?</li>', page, re.S).group(0)


def stored(app, lead_id) -> Lead:
    with app.app_context():
        lead = db.session.get(Lead, lead_id)
        db.session.expunge(lead)
        return lead


def set_due(app, lead_id, due_at) -> None:
    with app.app_context():
        db.session.execute(sa.update(Lead).where(Lead.id == lead_id).values(first_contact_due_at=due_at))
        db.session.commit()


def test_a_new_lead_stores_its_due_time_and_reminder_in_business_time(app):
    lead = make_lead(app)
    stored_lead = stored(app, lead["id"])
    arrived = stored_lead.created_at
    assert stored_lead.first_contact_due_at == first_contact_due(arrived)
    assert stored_lead.first_contact_reminder_at == halfway(arrived)


def test_the_target_comes_from_the_team_settings(app, staff_user):
    with app.app_context():
        team_settings.set_first_contact_rules(
            opens_at_minute=7 * 60, closes_at_minute=19 * 60, target_minutes=30, hand_over=False, by_id=staff_user["id"]
        )
        settings = team_settings.current()
    lead = stored(app, make_lead(app)["id"])
    assert lead.first_contact_due_at == first_contact_due(
        lead.created_at, settings.first_contact_target, settings.business_hours
    )


def test_a_new_card_counts_down_and_turns_red_once_the_time_has_passed(app, staff_client):
    fresh = make_lead(app, email="fersk@lhl.no")["id"]
    late = make_lead(app, email="sen@lhl.no")["id"]
    set_due(app, fresh, utcnow() + timedelta(days=30))
    set_due(app, late, utcnow() - timedelta(days=3))

    page = board(staff_client)
    assert re.search(r"Svar innen \d+ t", card(page, fresh))
    assert "data-first-contact-passed" not in card(page, fresh)
    assert "Svarfristen gikk ut for" in card(page, late)
    assert "data-first-contact-passed" in card(page, late) and "lead-card--late" in card(page, late)
    # «Svarfrist først» is «Ny»'s order: the late one on top; the header counts it.
    new_column = page.split('id="cards-new"')[1].split("</ol>")[0]
    assert re.findall(r'<li class="lead-card[^"]*"\s+id="card-([^"]+)"', new_column)[:2] == [str(late), str(fresh)]
    assert "1 over svarfristen" in page


def test_the_poll_moves_the_clocks_on_and_brings_back_a_card_whose_time_ran_out(app, staff_client):
    running = make_lead(app, email="fersk@lhl.no")["id"]
    expiring = make_lead(app, email="sen@lhl.no")["id"]
    since = utcnow() - timedelta(seconds=10)  # the board's last poll, when the second still counted down
    set_due(app, running, utcnow() + timedelta(days=30))
    set_due(app, expiring, since + timedelta(seconds=5))
    with app.app_context():  # neither lead changed since, as far as the poll can tell
        db.session.execute(sa.update(Lead).values(updated_at=since - timedelta(seconds=1)))
        db.session.commit()

    answer = staff_client.get(
        "/pipeline/changes", query_string={"since": since.isoformat()}, headers={"HX-Request": "true"}
    )

    assert answer.status_code == 200
    page = answer.get_data(as_text=True)
    clocks = dict(re.findall(r'<template data-clock-for="([^"]+)">([^<]*)</template>', page))
    assert re.fullmatch(r"Svar innen \d+ t( \d+ min)?", clocks[str(running)])
    assert clocks[str(expiring)].startswith("Svarfristen")
    # The card whose time ran out comes back whole, red; the other is left as it is.
    returned = re.findall(r'<template data-lead-id="([^"]+)"', page)
    assert returned == [str(expiring)]
    assert "lead-card--late" in page.split(f'<template data-lead-id="{expiring}"')[1].split("</template>")[0]


def test_logging_a_contact_attempt_from_the_card_menu_stops_the_clock_once(app, staff_client, token, staff_user):
    leave_the_pool(app)
    lead_id = make_lead(app)["id"]
    menu = staff_client.get(f"/pipeline/leads/{lead_id}/menu").get_data(as_text=True)
    assert "<legend>Logg kontaktforsøk</legend>" in menu and ">Ringte</label>" in menu and ">Fikk svar</label>" in menu

    answer = post(
        staff_client,
        f"/pipeline/leads/{lead_id}/contact-attempts",
        token,
        htmx=True,
        back="board",
        attempt_kind="called",
        attempt_note="Ikke svar, prøver i morgen",
    )
    assert answer.status_code == 200
    assert "logget som første kontakt" in answer.get_data(as_text=True)
    first_at = stored(app, lead_id).first_contact_at
    assert first_at is not None
    assert "Svar innen" not in card(board(staff_client), lead_id)

    again = post(staff_client, f"/pipeline/leads/{lead_id}/contact-attempts", token, htmx=True, attempt_kind="reached")
    assert "første kontakt" not in again.get_data(as_text=True)
    assert stored(app, lead_id).first_contact_at == first_at  # the first is kept
    with app.app_context():
        lines = list(
            db.session.scalars(
                sa.select(LeadEvent.detail)
                .where(LeadEvent.kind == first_contact.CONTACT_ATTEMPT)
                .order_by(LeadEvent.at)
            )
        )
    assert lines == ["Kontaktforsøk: Ringte – Ikke svar, prøver i morgen", "Kontaktforsøk: Fikk svar"]
    page = staff_client.get(f"/pipeline/leads/{lead_id}").get_data(as_text=True)
    assert "Kontaktforsøk: Fikk svar" in page and "Første kontakt:" in page


def test_a_bad_attempt_is_refused_with_a_message_and_changes_nothing(app, staff_client, token):
    lead_id = make_lead(app)["id"]
    for data in ({"attempt_kind": "shouted"}, {"attempt_kind": "called", "attempt_note": "x" * 300}, {}):
        response = post(staff_client, f"/pipeline/leads/{lead_id}/contact-attempts", token, **data)
        assert response.status_code == 422
    assert stored(app, lead_id).first_contact_at is None
    page = post(staff_client, f"/pipeline/leads/{lead_id}/contact-attempts", token, attempt_kind="x").get_data(
        as_text=True
    )
    assert "Velg hva du gjorde" in page


def test_a_move_out_of_ny_is_a_first_contact_too(app, staff_client, token):
    lead_id = make_lead(app)["id"]
    post(staff_client, f"/pipeline/leads/{lead_id}/status", token, htmx=True, status="contacted")
    assert stored(app, lead_id).first_contact_at is not None
