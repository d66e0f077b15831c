"""The form's free times are kept while nothing they depend on changes (slots/offer.py, hosts.data_version): a
booking without a time keeps them, and every change to a demo gives the next visitor new ones at once."""

import re

import sqlalchemy as sa
from helpers.booking import book
from helpers.staff import move

from meander_site.business_days import OSLO
from meander_site.extensions import db
from meander_site.leads.models import Lead
from meander_site.slots import hosts

SLOT_INPUT = re.compile(r'name="slot" value="([0-9T:-]{16})"')


def offered(client) -> list[str]:
    return SLOT_INPUT.findall(client.get("/demo").get_data(as_text=True))


def version(app) -> tuple:
    with app.app_context():
        return hosts.data_version()


def test_a_booking_without_a_time_keeps_the_free_times_the_form_computed(app, client, staff_user):
    before, times = version(app), offered(client)
    assert book(client, email="uten.tid@lhl.no").status_code == 303
    assert version(app) == before
    assert offered(client) == times


def test_a_booked_time_is_gone_from_the_next_form_at_once(app, client, staff_user):
    before, times = version(app), offered(client)
    assert book(client, email="med.tid@lhl.no", slot=times[0]).status_code == 303
    assert version(app) != before
    assert times[0] not in offered(client)


def test_a_demo_lead_moved_to_lost_frees_its_time_for_the_next_visitor_at_once(
    app, client, staff_client, token, staff_user
):
    times = offered(client)
    assert book(client, email="tapt@lhl.no", slot=times[0]).status_code == 303
    assert times[0] not in offered(client)
    with app.app_context():
        lead = db.session.execute(sa.select(Lead)).scalar_one()
        lead_id, demo_at = lead.id, lead.demo_at
    assert move(staff_client, lead_id, "lost", token, reason="no_need").status_code == 200
    assert demo_at.astimezone(OSLO).strftime("%Y-%m-%dT%H:%M") in offered(client)
