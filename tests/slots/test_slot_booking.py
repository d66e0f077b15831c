"""Booking a slot on the public form: the demo booked in the booking's transaction, the invitation instead of the
confirmation, a 422 for a time never offered, «Tidspunktet ble nettopp tatt» with other times, and known leads."""

import re
from dataclasses import replace
from datetime import datetime, timedelta

import sqlalchemy as sa
from helpers.booking import CSRF_INPUT, VALID_BOOKING, book, csrf_token, make_lead
from helpers.jobs import run_jobs

from meander_site.accounts import absences, team_settings
from meander_site.accounts.models import User
from meander_site.booking import confirmation_mail
from meander_site.dev.demo_data import create_demo_leads
from meander_site.extensions import db
from meander_site.leads.models import Lead
from meander_site.mail.models import OutboxMessage
from meander_site.scheduling import demos
from meander_site.scheduling import mails as demo_mails
from meander_site.slots import rules
from meander_site.slots.models import SlotClaim

SLOT_INPUT = re.compile(r'<input type="radio" id="slot-[0-9T-]+" name="slot" value="([0-9T:-]{16})"')


def offered_slots(client, path="/demo") -> list[str]:
    return SLOT_INPUT.findall(client.get(path).get_data(as_text=True))


def kinds_sent(app) -> list[tuple[str, str]]:
    with app.app_context():
        return sorted(tuple(row) for row in db.session.execute(sa.select(OutboxMessage.kind, OutboxMessage.recipient)))


def test_the_form_offers_free_times_as_plain_radios_grouped_by_day(client, staff_user):
    html = client.get("/demo").get_data(as_text=True)
    assert "Velg et tidspunkt" in html
    assert "Ingen av tidene passer – skriv når det passer" in html
    assert len(SLOT_INPUT.findall(html)) > 5
    assert html.count('class="slot-day"') == 3 and "Flere tider" in html


def test_flere_tider_gives_the_next_days_without_and_with_htmx(client, staff_user):
    html = client.get("/demo").get_data(as_text=True)
    more = re.search(r'href="(/demo\?fra=[0-9-]+)#slot"', html).group(1)
    fragment = re.search(r'hx-get="(/demo/tider\?fra=[0-9-]+)"', html).group(1)
    first_page = set(SLOT_INPUT.findall(html))
    later = set(SLOT_INPUT.findall(client.get(more).get_data(as_text=True)))
    assert later and not later & first_page
    part = client.get(fragment, headers={"HX-Request": "true"}).get_data(as_text=True)
    assert set(SLOT_INPUT.findall(part)) == later and "<html" not in part


def test_booking_with_a_slot_books_the_demo_and_sends_the_invitation_not_the_confirmation(app, client, staff_user):
    slot = offered_slots(client)[0]
    response = book(client, slot=slot)
    assert response.status_code == 303
    page = client.get(response.headers["Location"]).get_data(as_text=True)
    assert "Demoen er avtalt" in page
    with app.app_context():
        lead = db.session.execute(sa.select(Lead)).scalar_one()
        assert lead.status == "demo_scheduled" and lead.demo_host_id == staff_user["id"]
        assert lead.owner_id == staff_user["id"]
        assert db.session.scalar(sa.select(sa.func.count()).select_from(SlotClaim)) == 1
    kinds = [kind for kind, _ in kinds_sent(app)]
    assert kinds.count(demo_mails.INVITATION_KIND) == 2  # the prospect and the host
    assert confirmation_mail.KIND not in kinds


def test_a_slot_never_offered_is_a_norwegian_422_with_the_form_kept(app, client, staff_user):
    for value in ("2020-01-06T10:00", "tomorrow", "2030-05-17T10:00", "2027-01-12T03:00"):
        response = book(client, slot=value)
        html = response.get_data(as_text=True)
        assert response.status_code == 422, value
        assert "Tidspunktet kan ikke velges" in html and 'value="Kari"' in html
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(Lead)) == 0


def test_a_slot_taken_a_moment_ago_keeps_the_booking_and_offers_other_times(app, client, staff_user):
    slot = offered_slots(client)[0]
    assert book(client, slot=slot).status_code == 303
    other = app.test_client()
    token = csrf_token(other)
    response = other.post("/demo", data={**VALID_BOOKING, "email": "ola@lhl.no", "slot": slot, "csrf_token": token})
    assert response.status_code == 303 and "tatt=1" in response.headers["Location"]
    page = other.get(response.headers["Location"]).get_data(as_text=True)
    assert "Tidspunktet ble nettopp tatt" in page
    assert SLOT_INPUT.findall(page) and slot not in SLOT_INPUT.findall(page)
    kinds = kinds_sent(app)
    assert (confirmation_mail.KIND, "ola@lhl.no") in kinds
    # The page's own form books another time.
    form_token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    action = re.search(r'action="(/confirm/[^"]+/tidspunkt)"', page).group(1)
    picked = other.post(action, data={"csrf_token": form_token, "slot": SLOT_INPUT.findall(page)[0]})
    assert picked.status_code == 303
    assert "Demoen er avtalt" in other.get(picked.headers["Location"]).get_data(as_text=True)


def test_a_known_lead_with_a_future_demo_keeps_it_and_the_mail_says_so(app, client, staff_user, smtp_server):
    first, second = offered_slots(client)[:2]
    assert book(client, slot=first).status_code == 303
    again = book(client, slot=second)
    assert again.status_code == 303 and "/confirm/" not in again.headers["Location"]
    assert "beholder vi den" in client.get(again.headers["Location"]).get_data(as_text=True)
    with app.app_context():
        lead = db.session.execute(sa.select(Lead)).scalar_one()
        assert lead.booking_count == 2
        assert db.session.scalar(sa.select(sa.func.count()).select_from(SlotClaim)) == 1
    run_jobs(app)
    bodies = [message.get_body(("plain",)).get_content() for message in smtp_server.messages()]
    assert any("Vi beholder den" in body for body in bodies)


def test_a_known_lead_without_a_demo_gets_one(app, client, staff_user):
    make_lead(app)
    slot = offered_slots(client)[0]
    assert book(client, slot=slot).status_code == 303
    with app.app_context():
        lead = db.session.execute(sa.select(Lead)).scalar_one()
        assert lead.status == "demo_scheduled" and lead.booking_count == 2


def test_demo_data_leaves_the_form_with_free_times(app, client):
    with app.app_context():
        create_demo_leads(60, seed=19)
    assert len(offered_slots(client)) > 5


def test_a_demo_staff_moved_on_the_board_frees_its_old_time_for_a_slot(app, client, staff_user):
    slot = offered_slots(client)[0]
    assert book(client, slot=slot).status_code == 303
    assert slot not in offered_slots(client)
    with app.app_context():
        lead = db.session.execute(sa.select(Lead)).scalar_one()
        host = db.session.get(User, staff_user["id"])
        later = lead.demo_at + timedelta(days=14)
        demos.reschedule(lead.id, demos.DemoPlan(later, 30, "Teams", host.id), by=host)
    assert slot in offered_slots(client)
    other = app.test_client()
    response = other.post(
        "/demo", data={**VALID_BOOKING, "email": "ola@lhl.no", "slot": slot, "csrf_token": csrf_token(other)}
    )
    assert "tatt=1" not in response.headers["Location"]


def test_an_absence_entered_after_the_form_was_shown_makes_the_time_taken(app, client, staff_user):
    slot = offered_slots(client)[0]
    with app.app_context():
        day = datetime.strptime(slot, "%Y-%m-%dT%H:%M").date()
        absences.add_absence(staff_user["id"], day, day, actor=staff_user["id"])
        db.session.commit()
    response = book(client, slot=slot)
    assert response.status_code == 303 and "tatt=1" in response.headers["Location"]


def test_a_booking_with_a_time_reads_hosts_rules_and_settings_in_one_statement(app, client, staff_user):
    """What the offer's check and the booking both read (the hosts, the slot rules, the team's settings) is one
    SELECT, kept for the transaction: no statement of the POST reads the rules or the settings alone."""
    body = client.get("/demo").get_data(as_text=True)
    slot = SLOT_INPUT.search(body).group(1)
    token = CSRF_INPUT.search(body).group(1)
    statements = []
    with app.app_context():
        engine = db.engine

    def note(conn, cursor, statement, parameters, context, executemany):
        statements.append(" ".join(statement.split()))

    sa.event.listen(engine, "before_cursor_execute", note)
    try:
        response = client.post("/demo", data={**VALID_BOOKING, "slot": slot, "csrf_token": token})
    finally:
        sa.event.remove(engine, "before_cursor_execute", note)

    assert response.status_code == 303 and "tatt" not in response.headers["Location"]
    reads_of_the_rules = [text for text in statements if "slot_rules.demo_minutes" in text]
    reads_of_the_settings = [text for text in statements if "team_settings.opens_at_minute" in text]
    assert len(reads_of_the_rules) == 1, reads_of_the_rules
    assert reads_of_the_settings == reads_of_the_rules  # the same statement
    assert "demo_hosts.weekly_hours" in reads_of_the_rules[0]


def test_a_booking_with_a_time_follows_the_saved_rules_and_team_settings(app, client, staff_user):
    """The one read of hosts, rules and settings gives what the administrator saved, not the defaults: the demo's
    length and place from the rules, and the chat post from the team's settings (a sealed webhook address)."""
    with app.app_context():
        rules.save(replace(rules.Rules(), demo_minutes=45, location="Teams: lenken kommer"), by_id=None)
        team_settings.set_chat_webhook("http://127.0.0.1:9/hooks/abc", by_id=None, allow_loopback=True)
    body = client.get("/demo").get_data(as_text=True)
    data = {**VALID_BOOKING, "slot": SLOT_INPUT.search(body).group(1), "csrf_token": CSRF_INPUT.search(body).group(1)}

    response = client.post("/demo", data=data)

    assert response.status_code == 303 and "tatt" not in response.headers["Location"]
    with app.app_context():
        lead = db.session.execute(sa.select(Lead)).scalar_one()
        assert (lead.demo_minutes, lead.demo_location) == (45, "Teams: lenken kommer")
        chat_posts = db.session.scalars(sa.select(OutboxMessage.kind).where(OutboxMessage.kind == "chat_webhook")).all()
        assert len(chat_posts) == 2  # the new lead and the self-booked demo
