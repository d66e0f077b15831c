"""The report's speed to lead in business time: median, 90th percentile and share within the target, overall, by
owner and by channel; conversion by speed; leads assigned per member against their share."""

import re
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from helpers.accounts import make_user
from helpers.assignment import set_weights
from helpers.booking import make_lead
from helpers.staff import STAFF_PASSWORD

from meander_site.accounts import team_settings
from meander_site.accounts.models import User
from meander_site.business_days import OSLO
from meander_site.extensions import db
from meander_site.leads.models import Lead
from meander_site.reporting import cache, filters, queries, speed


def oslo(*parts) -> datetime:
    return datetime(*parts, tzinfo=OSLO).astimezone(UTC)


def place(app, lead_id, **values) -> None:
    with app.app_context():
        db.session.execute(sa.update(Lead).where(Lead.id == lead_id).values(**values))
        db.session.commit()


def test_speed_is_measured_in_business_time_by_owner_and_channel(app):
    kari = make_user(app, "kari@meander.no", "Kari Selger", STAFF_PASSWORD)["id"]
    per = make_user(app, "per@meander.no", "Per Deltid", STAFF_PASSWORD)["id"]
    set_weights(app, {kari: 100, per: 50})
    now = datetime.now(UTC)
    # Friday 15:00 → Monday 08:30: 1 h 30 min of business time, within two hours.
    quick = make_lead(app, email="rask@lhl.no")["id"]
    place(
        app,
        quick,
        owner_id=kari,
        first_channel="google / cpc",
        created_at=oslo(2026, 11, 27, 15, 0),
        first_contact_due_at=oslo(2026, 11, 30, 9, 0),
        first_contact_at=oslo(2026, 11, 30, 8, 30),
        status="converted",
    )
    # 09:00 → 15:00 the same day: 6 h, late.
    slow = make_lead(app, email="treg@lhl.no")["id"]
    place(
        app,
        slow,
        owner_id=per,
        first_channel="Direkte",
        created_at=oslo(2026, 11, 24, 9, 0),
        first_contact_due_at=oslo(2026, 11, 24, 11, 0),
        first_contact_at=oslo(2026, 11, 24, 15, 0),
    )
    # Never contacted and past its time: decided, not within; no time to count.
    never = make_lead(app, email="aldri@lhl.no")["id"]
    place(
        app,
        never,
        owner_id=per,
        first_channel="Direkte",
        created_at=oslo(2026, 11, 23, 9, 0),
        first_contact_due_at=oslo(2026, 11, 23, 11, 0),
    )

    with app.app_context():
        report = speed.speed_report(queries.build(filters.ReportFilter.from_args({"period": "365d"}), now).speed)

    assert report.overall.decided == 3 and report.overall.within == 1
    assert report.overall.median_minutes == (90 + 360) / 2
    by_owner = {row.label: row for row in report.by_owner}
    assert by_owner["Kari Selger"].share_within == 1.0 and by_owner["Per Deltid"].share_within == 0.0
    by_channel = {row.label: row for row in report.by_channel}
    assert by_channel["google / cpc"].median_minutes == 90 and by_channel["Direkte"].decided == 2
    fast, late = report.conversion
    assert (fast.leads, fast.converted, late.leads, late.converted) == (1, 1, 2, 0)
    shares = {person.name: (person.leads, person.expected_share) for person in report.assigned}
    assert shares["Kari Selger"] == (1, 100 / 150) and shares["Per Deltid"] == (2, 50 / 150)


def test_the_report_page_shows_the_speed_section(app, staff_client):
    make_lead(app)
    page = staff_client.get("/pipeline/report").get_data(as_text=True)
    assert "Svartid i arbeidstid" in page and "Svartid per kanal" in page
    assert "Tildelte leads per person mot andelen i rundgangen" in page


THIS_AUTUMN = {"period": "custom", "from": "2026-09-01", "to": "2026-12-31"}
THIS_DECEMBER = {"period": "custom", "from": "2026-12-01", "to": "2026-12-31"}


def test_a_reopened_lead_is_timed_from_its_reopening_not_its_first_arrival(app):
    """Its new pass has its own first-contact clock (leads/passes.py): a year-old arrival is not the new pass's wait."""
    reopened = make_lead(app, email="igjen@lhl.no")["id"]
    place(
        app,
        reopened,
        created_at=oslo(2025, 6, 2, 9, 0),
        pass_number=2,
        pass_started_at=oslo(2026, 11, 23, 9, 0),
        first_contact_due_at=oslo(2026, 11, 23, 11, 0),
        first_contact_at=oslo(2026, 11, 23, 10, 0),
    )

    with app.app_context():
        report = speed.speed_report(queries.build(filters.ReportFilter.from_args(THIS_AUTUMN)).speed)

    assert (report.overall.decided, report.overall.within, report.overall.median_minutes) == (1, 1, 60)


def test_a_lead_lost_before_its_first_contact_is_decided_when_its_deadline_passes(app):
    """The kept figures end at that deadline, though the lead has left «Ny» and nothing is written then."""
    lost = make_lead(app, email="tapt@lhl.no")["id"]
    now = datetime.now(UTC)
    deadline = now + timedelta(hours=1)
    place(
        app,
        lost,
        status="lost",
        created_at=now - timedelta(minutes=30),
        left_new_at=now - timedelta(minutes=10),
        first_contact_due_at=deadline,
        updated_at=now - timedelta(minutes=1),
    )
    report_filter = filters.ReportFilter.from_args({"period": "month"})

    with app.app_context():
        before = cache.cached_build(report_filter, now=now)
        kept = cache.cached_build(report_filter, now=now + timedelta(seconds=1))
        after = cache.cached_build(report_filter, now=deadline + timedelta(seconds=1))

    assert before.valid_until == deadline and kept.from_cache and not after.from_cache
    assert (before.speed.overall.decided, kept.speed.overall.decided) == (0, 0)
    assert (after.speed.overall.decided, after.speed.overall.within) == (1, 0)


ASSIGNED_ROW = re.compile(r'<tr><th scope="row">([^<]+)</th><td>(\d+)</td><td>[^<]*</td><td>([^<]*)</td></tr>')


COMPUTED = "Tall beregnet kl."


def report_page(client) -> str:
    response = client.get("/pipeline/report", query_string=THIS_DECEMBER)
    assert response.status_code == 200
    return response.get_data(as_text=True)


def assigned_rows(page: str) -> dict[str, tuple[int, str]]:
    table = page.split("Tildelte leads per person mot andelen i rundgangen")[1].split("</table>")[0]
    return {name: (int(leads), share) for name, leads, share in ASSIGNED_ROW.findall(table)}


def test_kept_speed_figures_show_todays_names_and_pool_and_follow_the_business_hours(app, staff_client):
    """The figures are kept; who is called what and the pool's shares are read when the page is drawn, and new
    business hours are new figures."""
    kari = make_user(app, "kari@meander.no", "Kari Selger", STAFF_PASSWORD)["id"]
    set_weights(app, {kari: 100})
    # Tuesday 09:00 → 10:00: an hour of business time from 08:00, none once the day begins at 10:00.
    lead = make_lead(app, email="rask@lhl.no")["id"]
    place(
        app,
        lead,
        owner_id=kari,
        created_at=oslo(2026, 12, 1, 9, 0),
        first_contact_due_at=oslo(2026, 12, 1, 11, 0),
        first_contact_at=oslo(2026, 12, 1, 10, 0),
        updated_at=datetime.now(UTC) - timedelta(minutes=1),
    )
    report_page(staff_client)
    kept = report_page(staff_client)
    per = make_user(app, "per@meander.no", "Per Deltid", STAFF_PASSWORD)["id"]
    set_weights(app, {kari: 100, per: 100})
    with app.app_context():
        db.session.execute(sa.update(User).where(User.id == kari).values(name="Kari Nordmann"))
        db.session.commit()
    renamed = report_page(staff_client)
    with app.app_context():
        admin = make_user(app, "sjef@meander.no", "Sjef", STAFF_PASSWORD, admin=True)["id"]
        team_settings.set_first_contact_rules(
            opens_at_minute=10 * 60, closes_at_minute=16 * 60, target_minutes=120, hand_over=False, by_id=admin
        )
    later_opening = report_page(staff_client)

    assert COMPUTED in kept and COMPUTED in renamed and COMPUTED not in later_opening
    assert assigned_rows(kept) == {"Kari Selger": (1, "100,0 %")}
    assert assigned_rows(renamed) == {"Kari Nordmann": (1, "50,0 %"), "Per Deltid": (0, "50,0 %")}
    assert "Median 1 t," in kept and "Median 0 min," in later_opening
