"""`flask demo-data`, including the triggers that keep lead_status_counts equal to the real counts.

The CSV export's tests live in test_exports.py, beside the .xlsx ones."""

import re
from datetime import timedelta

import sqlalchemy as sa
from conftest import book, make_lead, staff_csrf

from meander_site import sales
from meander_site.extensions import db
from meander_site.models import Booking, Lead, LeadStatusChange, LeadStatusCount, User, utcnow

STATUSES = ["new", "contacted", "qualified", "demo_scheduled", "converted", "lost"]


def real_counts() -> dict[str, int]:
    counts = dict.fromkeys(STATUSES, 0)
    counts.update(db.session.execute(sa.select(Lead.status, sa.func.count()).group_by(Lead.status)).all())
    return counts


def stored_counts() -> dict[str, int]:
    return dict(db.session.execute(sa.select(LeadStatusCount.status, LeadStatusCount.lead_count)).all())


# --- demo data and the count triggers ---------------------------------------------------------------


def test_demo_data_creates_realistic_leads_over_every_status_with_counts_kept_by_the_triggers(app):
    result = app.test_cli_runner().invoke(args=["demo-data", "--leads", "300"])

    assert result.exit_code == 0, result.output
    assert "Created 300 demo leads." in result.output
    with app.app_context():
        leads = db.session.execute(sa.select(Lead)).scalars().all()
        assert len(leads) == 300
        assert {lead.status for lead in leads} == set(STATUSES)
        assert stored_counts() == real_counts()
        booked = db.session.execute(sa.select(Booking.lead_id, sa.func.count()).group_by(Booking.lead_id)).all()
        assert len(booked) == 300 and {count for _, count in booked} == {1}
        moved = {lead.id for lead in leads if lead.status != "new"}
        changed = set(db.session.execute(sa.select(LeadStatusChange.lead_id)).scalars())
        assert changed == moved
        lost_reasons = (
            db.session.execute(sa.select(LeadStatusChange.reason).where(LeadStatusChange.to_status == "lost"))
            .scalars()
            .all()
        )
        assert lost_reasons and all(reason in sales.LOST_REASONS for reason in lost_reasons)
        oldest = min(lead.created_at for lead in leads)
        newest = max(lead.created_at for lead in leads)
        assert newest - oldest > timedelta(days=90)  # spread over dates, so period filters mean something
        assert newest <= utcnow()
        assert len({lead.organization_name for lead in leads}) > 50
        assert any(ch in "".join(lead.first_name + lead.last_name for lead in leads) for ch in "æøåÆØÅ")


def test_demo_data_can_run_twice_without_colliding_on_emails(app):
    runner = app.test_cli_runner()

    first = runner.invoke(args=["demo-data", "--leads", "150"])
    second = runner.invoke(args=["demo-data", "--leads", "150"])

    assert (first.exit_code, second.exit_code) == (0, 0), first.output + second.output
    with app.app_context():
        emails = db.session.execute(sa.select(Lead.email)).scalars().all()
        assert len(emails) == len(set(emails)) == 300
        assert stored_counts() == real_counts()


def test_demo_data_refuses_a_count_below_one(app):
    result = app.test_cli_runner().invoke(args=["demo-data", "--leads", "0"])

    assert result.exit_code == 2
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(Lead)) == 0


def test_the_board_shows_the_demo_leads_with_right_counts(app, staff_client):
    app.test_cli_runner().invoke(args=["demo-data", "--leads", "120"])

    page = staff_client.get("/pipeline").get_data(as_text=True)

    shown = {
        status: int(count)
        for status, count in re.findall(
            r'<span id="count-([a-z_]+)" class="count"[^>]*><span class="visually-hidden">[^<]*</span>(\d+)</span>',
            page,
        )
    }
    with app.app_context():
        assert shown == real_counts()


def test_status_counts_stay_equal_to_real_counts_through_bookings_moves_edits_and_erasure(
    app, client, staff_client, staff_user
):
    ids = [make_lead(app, email=f"lead{n}@eksempel.no")["id"] for n in range(4)]
    book(client, email="lead0@eksempel.no", notes="Rebooking")  # an upsert: no new lead
    token = staff_csrf(staff_client)
    headers = {"X-CSRFToken": token, "HX-Request": "true"}
    staff_client.post(f"/pipeline/leads/{ids[0]}/status", data={"status": "qualified"}, headers=headers)
    staff_client.post(f"/pipeline/leads/{ids[1]}/status", data={"status": "lost", "reason": "price"}, headers=headers)
    staff_client.post(f"/pipeline/leads/{ids[1]}/status", data={"status": "new"}, headers=headers)  # refused
    staff_client.post(
        f"/pipeline/leads/{ids[2]}",
        data={
            "first_name": "Endret",
            "last_name": "Navn",
            "email": "lead2@eksempel.no",
            "organization_name": "Org",
            "role_title": "Rolle",
            "csrf_token": token,
        },
    )
    staff_client.post(f"/pipeline/leads/{ids[3]}/delete", data={"csrf_token": token})
    with app.app_context():
        user = db.session.get(User, staff_user["id"])
        sales.move(ids[0], "converted", by=user)

    with app.app_context():
        assert real_counts() == {
            "new": 1,
            "contacted": 0,
            "qualified": 0,
            "demo_scheduled": 0,
            "converted": 1,
            "lost": 1,
        }
        assert stored_counts() == real_counts()
