"""`flask demo-data`, including the triggers that keep lead_status_counts equal to the real counts.

The CSV export's tests live in test_exports.py, beside the .xlsx ones."""

import re
from datetime import timedelta

import sqlalchemy as sa
from helpers.booking import book, make_lead
from helpers.staff import staff_csrf

from meander_site.accounts.models import User
from meander_site.core.clock import utcnow
from meander_site.core.money import kroner
from meander_site.extensions import db
from meander_site.leads import statuses
from meander_site.leads.models import Booking, Lead, LeadStatusChange, LeadStatusCount
from meander_site.leads.statuses import LeadStatus
from meander_site.pipeline import moves

STATUSES = ["new", "contacted", "qualified", "demo_scheduled", "converted", "lost"]


def real_counts() -> dict[str, int]:
    counts = dict.fromkeys(STATUSES, 0)
    counts.update(db.session.execute(sa.select(Lead.status, sa.func.count()).group_by(Lead.status)).all())
    return counts


def stored_counts() -> dict[str, int]:
    return dict(db.session.execute(sa.select(LeadStatusCount.status, LeadStatusCount.lead_count)).all())


# --- demo data and the count triggers ---------------------------------------------------------------


def test_demo_data_creates_realistic_leads_over_every_status_with_counts_kept_by_the_triggers(app):
    result = app.test_cli_runner().invoke(args=["demo-data", "--leads", "300", "--fresh", "0"])

    assert result.exit_code == 0, result.output
    assert "Created 300 demo leads" in result.output
    with app.app_context():
        leads = db.session.execute(sa.select(Lead)).scalars().all()
        assert len(leads) == 300
        assert {lead.status for lead in leads} == set(STATUSES)
        assert stored_counts() == real_counts()
        booked = db.session.execute(sa.select(Booking.lead_id, sa.func.count()).group_by(Booking.lead_id)).all()
        assert len(booked) == 300 and {count for _, count in booked} == {1}
        moved = {lead.id for lead in leads if lead.status != "new" or lead.pass_number > 1}
        changed = set(db.session.execute(sa.select(LeadStatusChange.lead_id)).scalars())
        assert changed == moved
        lost_reasons = (
            db.session.execute(sa.select(LeadStatusChange.reason).where(LeadStatusChange.to_status == "lost"))
            .scalars()
            .all()
        )
        assert lost_reasons and all(reason in statuses.LOST_REASONS for reason in lost_reasons)
        oldest = min(lead.created_at for lead in leads)
        newest = max(lead.created_at for lead in leads)
        assert newest - oldest > timedelta(days=90)  # spread over dates, so period filters mean something
        assert newest <= utcnow()
        assert len({lead.organization_name for lead in leads}) > 50
        assert any(ch in "".join(lead.first_name + lead.last_name for lead in leads) for ch in "æøåÆØÅ")


def test_demo_data_can_run_twice_without_colliding_on_emails(app):
    runner = app.test_cli_runner()

    first = runner.invoke(args=["demo-data", "--leads", "150", "--fresh", "0"])
    second = runner.invoke(args=["demo-data", "--leads", "150", "--fresh", "0"])

    assert (first.exit_code, second.exit_code) == (0, 0), first.output + second.output
    with app.app_context():
        emails = db.session.execute(sa.select(Lead.email)).scalars().all()
        assert len(emails) == len(set(emails)) == 300
        assert stored_counts() == real_counts()


def test_demo_data_says_what_it_added_as_the_database_has_it(app, staff_user):
    result = app.test_cli_runner().invoke(args=["demo-data", "--leads", "300", "--fresh", "0"])

    assert result.exit_code == 0, result.output
    with app.app_context():
        leads = db.session.execute(sa.select(Lead)).scalars().all()
        now = utcnow()
        counts = real_counts()
        owners = {lead.owner_id for lead in leads if lead.owner_id}
        colleagues = set(db.session.scalars(sa.select(User.id).where(User.email.like("%@demo.meander.no"))))
        with_steps = [lead for lead in leads if lead.next_step]
        campaigns = [lead.first_utm_campaign for lead in leads if lead.first_utm_campaign]
        valued = [lead for lead in leads if lead.estimated_value is not None]
        won = sum(lead.deal_value or 0 for lead in leads)
        channels = {lead.first_channel for lead in leads}
        reopened = sum(1 for lead in leads if lead.pass_number > 1)
    owned = sum(1 for lead in leads if lead.owner_id)
    assert result.output.splitlines() == [
        "Created 300 demo leads (emails @demo.meander.no; their confirmations count as sent):",
        "  by status: " + ", ".join(f"{counts[status.value]} {status.label}" for status in LeadStatus),
        f"  owners: {owned} leads spread over {len(owners & colleagues)} demo colleagues (3 added now), who cannot "
        f"sign in, and {len(owners - colleagues)} staff account(s); {300 - owned} «Ufordelt»",
        f"  next steps: {len(with_steps)}, {sum(lead.next_step_due_at < now for lead in with_steps)} of them overdue",
        f"  demos: {sum(1 for lead in leads if lead.demo_at)} booked, all within the next two weeks",
        f"  campaigns: {len(campaigns)} website leads came by {len(set(campaigns))} campaigns",
        f"  values: {len(valued)} leads with an estimate, {kroner(won)} won",
        f"  channels: {len(channels)}; {reopened} lost leads reopened for a new pass",
    ]
    assert valued and won and len(channels) > 3 and reopened
    assert owners - colleagues == {staff_user["id"]}  # the account that existed gets leads of its own


def test_demo_data_books_fresh_leads_with_owners_in_rotation_and_some_past_their_time(app, staff_user):
    result = app.test_cli_runner().invoke(args=["demo-data", "--leads", "20", "--fresh", "6"])

    assert result.exit_code == 0, result.output
    [line] = [line for line in result.output.splitlines() if line.startswith("Booked 6 website leads")]
    owners = line.split("rotation: ")[1].split(";")[0].split(", ")
    assert len(set(owners)) == 4  # Siri Selger and the three demo colleagues, each in turn
    assert owners[:4] != owners[1:5]
    with app.app_context():
        fresh = db.session.scalars(sa.select(Lead).where(Lead.email.like("%.fersk%"))).all()
        assert len(fresh) == 6 and all(lead.owner_id for lead in fresh)
        assert sum(lead.first_contact_due_at < utcnow() for lead in fresh) == 2
        assert sum(lead.escalation_stage == 0 for lead in fresh) == 6  # the worker escalates these


def test_demo_data_history_reopened_leads_included_leaves_the_worker_no_escalation_mail(app, staff_user):
    result = app.test_cli_runner().invoke(args=["demo-data", "--leads", "300", "--fresh", "0"])

    assert result.exit_code == 0, result.output
    with app.app_context():
        reopened = db.session.scalar(sa.select(sa.func.count()).where(Lead.pass_number > 1))
        waiting = db.session.scalar(sa.select(sa.func.count()).where(Lead.escalation_stage == 0))
    assert reopened > 0  # months-old reopenings are history, like the rest
    assert waiting == 0


def test_demo_data_refuses_to_run_in_production_and_writes_nothing(app, make_app):
    production = make_app(ENV_NAME="production")

    result = production.test_cli_runner().invoke(args=["demo-data", "--leads", "50"])

    assert result.exit_code == 1
    assert "demo-data does not run with MEANDER_ENV=production" in result.output
    with production.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(Lead)) == 0
        assert db.session.scalar(sa.select(sa.func.count()).select_from(User)) == 0  # no demo colleagues either


def test_demo_data_refuses_a_count_below_one(app):
    result = app.test_cli_runner().invoke(args=["demo-data", "--leads", "0"])

    assert result.exit_code == 2
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(Lead)) == 0


def test_the_board_shows_the_demo_leads_with_right_counts(app, staff_client):
    app.test_cli_runner().invoke(args=["demo-data", "--leads", "120", "--fresh", "0"])

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
        moves.move(ids[0], "converted", by=user, details=moves.MoveDetails(deal_value=1000))

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
