"""«Demoer»: a host sets whether they take demos and when; an administrator sets the rules; the form follows."""

import re
import uuid
from datetime import timedelta

import pytest
import sqlalchemy as sa
from helpers.accounts import admin_client_fixture, admin_fixture  # noqa: F401  (fixtures)
from helpers.booking import make_lead
from helpers.staff import post, staff_csrf
from sqlalchemy.exc import IntegrityError

from meander_site.core.clock import utcnow
from meander_site.extensions import db
from meander_site.leads.models import Lead
from meander_site.slots import claims, rules
from meander_site.slots.models import SlotClaim

SLOT_INPUT = re.compile(r'name="slot" value="([0-9T:-]{16})"')
ALL_WEEK = (
    {f"day{day}": "on" for day in range(5)}
    | {f"from{day}": "09:00" for day in range(5)}
    | {f"to{day}": "16:00" for day in range(5)}
)


def test_a_host_who_stops_taking_demos_leaves_the_form_without_times(app, client, staff_client):
    assert SLOT_INPUT.findall(client.get("/demo").get_data(as_text=True))
    page = staff_client.get("/pipeline/demoer").get_data(as_text=True)
    assert "Tar demoer" in page and "Regler for demoer" not in page
    response = post(staff_client, "/pipeline/demoer/meg", staff_csrf(staff_client), **ALL_WEEK)
    assert response.status_code == 303
    assert not SLOT_INPUT.findall(client.get("/demo").get_data(as_text=True))
    assert "ingen ledige tider" in client.get("/demo").get_data(as_text=True)


def test_a_host_with_mornings_only_offers_mornings(app, client, staff_client):
    week = {"takes_demos": "on"} | ALL_WEEK | {f"to{day}": "11:00" for day in range(5)}
    assert post(staff_client, "/pipeline/demoer/meg", staff_csrf(staff_client), **week).status_code == 303
    times = {value[11:] for value in SLOT_INPUT.findall(client.get("/demo").get_data(as_text=True))}
    assert times and max(times) <= "10:30"


def test_hours_that_end_before_they_start_are_refused_in_norwegian(staff_client):
    week = {"takes_demos": "on", "day0": "on", "from0": "16:00", "to0": "09:00"}
    response = post(staff_client, "/pipeline/demoer/meg", staff_csrf(staff_client), **week)
    assert response.status_code == 422
    assert "sluttiden være etter starttiden" in response.get_data(as_text=True)


def test_an_administrator_sets_the_rules_and_a_seller_may_not(app, staff_user, admin_client, staff_client):
    form = {name: str(getattr(rules.Rules(), name)) for name in rules.LIMITS} | {"location": "Teams"}
    assert post(staff_client, "/pipeline/demoer/regler", staff_csrf(staff_client), **form).status_code == 403
    form["demo_minutes"] = "45"
    assert post(admin_client, "/pipeline/demoer/regler", staff_csrf(admin_client), **form).status_code == 303
    with app.app_context():
        assert rules.current().demo_minutes == 45 and rules.current().location == "Teams"
    form["step_minutes"] = "5"
    refused = post(admin_client, "/pipeline/demoer/regler", staff_csrf(admin_client), **form)
    assert refused.status_code == 422 and "velg et helt tall mellom 15 og 60" in refused.get_data(as_text=True)


def test_the_database_refuses_two_overlapping_claims_of_one_host(app, staff_user):
    """The exclusion constraint holds whatever writes, even past the booking's own checks."""
    first, second = make_lead(app), make_lead(app, email="ola@lhl.no")
    starts_at = (utcnow() + timedelta(days=3)).replace(second=0, microsecond=0)
    with app.app_context():
        if db.engine.dialect.name != "postgresql":
            pytest.skip("SQLite relies on the booking's one write transaction")
        for lead, offset in ((first, 0), (second, 20)):
            start = starts_at + timedelta(minutes=offset)
            db.session.add(
                SlotClaim(
                    id=uuid.uuid4(),
                    lead_id=lead["id"],
                    host_id=staff_user["id"],
                    starts_at=start,
                    ends_at=start + timedelta(minutes=30),
                    blocked_until=start + timedelta(minutes=45),
                )
            )
        with pytest.raises(IntegrityError):
            db.session.commit()


def test_a_claim_the_constraint_refuses_is_a_plain_no_and_the_booking_goes_on(app, staff_user):
    """hold() inserts with ON CONFLICT DO NOTHING: an overlap with a live demo's claim answers False, and the
    transaction (the booking around it) is still usable; a claim whose demo is gone gives way."""
    first, second, third = make_lead(app), make_lead(app, email="ola@lhl.no"), make_lead(app, email="kari@lhl.no")
    starts_at = (utcnow() + timedelta(days=3)).replace(second=0, microsecond=0)
    slot_rules = rules.Rules()
    with app.app_context():
        if db.engine.dialect.name != "postgresql":
            pytest.skip("SQLite relies on the booking's one write transaction")
        db.session.execute(
            sa.update(Lead)
            .where(Lead.id == first["id"])
            .values(status="demo_scheduled", demo_at=starts_at, demo_minutes=30, demo_host_id=staff_user["id"])
        )
        assert claims.hold(first["id"], staff_user["id"], starts_at, slot_rules, utcnow())
        later = starts_at + timedelta(minutes=20)
        assert not claims.hold(second["id"], staff_user["id"], later, slot_rules, utcnow())
        assert db.session.scalar(sa.select(sa.func.count()).select_from(SlotClaim)) == 1  # still usable
        db.session.execute(sa.update(Lead).where(Lead.id == first["id"]).values(demo_cancelled_at=utcnow()))
        assert claims.hold(third["id"], staff_user["id"], later, slot_rules, utcnow())
        db.session.commit()
        assert db.session.execute(sa.select(SlotClaim.lead_id)).scalars().all() == [third["id"]]
