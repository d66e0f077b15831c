"""The conversion report against numbers worked out by hand, from a small history with known dates.

Five leads arrive in June 2026 (Oslo is UTC+2; no public holidays that month), one in May:

    A  Mon 01.06 website, «vinter», 11–50:  Ny 1 d → Kontaktet 2 d → Kvalifisert 3 d → Demo 4 d → Kunde (day 10)
    B  Tue 02.06 website, «vinter», 11–50:  Ny 2 d → Kontaktet 2 d → Demo avtalt (skipped «Kvalifisert»)
    C  Wed 03.06 referral:                  Ny 1 d → Tapt (price)
    D  Fri 05.06 event:                     Ny 3 d → Kvalifisert (skipped «Kontaktet») 2 d → Tapt (no need)
    E  Fri 12.06 website:                   still Ny, its day to be answered not over yet at «now»
    F  Wed 20.05 website:                   Ny 1 d → Kontaktet, before the period

«now» is Mon 15.06 12:00 UTC. B also booked again on Tue 09.06.
"""

import re
import uuid
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from flask_migrate import upgrade
from helpers.app import app_config
from helpers.booking import VALID_BOOKING
from helpers.migrations import STATUS_CHANGES, day, insert_lead

from meander_site import business_days, create_app
from meander_site.booking import book_demo
from meander_site.extensions import db
from meander_site.leads import attribution, validation
from meander_site.leads.models import Booking, Lead, LeadSource, LeadStatusChange
from meander_site.reporting import filters, queries

NOW = datetime(2026, 6, 15, 12, 0, tzinfo=UTC)
DAY = timedelta(days=1)
JUNE = {"period": "custom", "from": "2026-06-01", "to": "2026-06-14"}


def at(day: int, month: int = 6) -> datetime:
    return datetime(2026, month, day, 8, 0, tzinfo=UTC)  # 10:00 in Oslo


def arrive(app, name, arrived, moves=(), source="website", campaign=None, size=None):
    """A lead booked through the domain layer, then placed in time with its moves (from, to, after, reason)."""
    with app.app_context():
        details = validation.validate_contact_details(
            {
                **VALID_BOOKING,
                "email": f"{name}@example.no",
                "organization_name": f"Org {name}",
                "organization_size": size,
            }
        )
        result = book_demo.book_demo(
            details,
            ip_address=None,
            source=LeadSource(source),
            with_confirmation=False,
            touch=attribution.Touch(utm_campaign=campaign),
        )
        # Placed in time first: the journey trigger measures each move from the lead's arrival.
        db.session.execute(
            sa.update(Lead)
            .where(Lead.id == result.lead_id)
            .values(created_at=arrived, first_contact_due_at=business_days.end_of_next_business_day(arrived))
        )
        db.session.execute(sa.update(Booking).where(Booking.lead_id == result.lead_id).values(created_at=arrived))
        moved_at = arrived
        for origin, target, after, reason in moves:
            moved_at = moved_at + after
            db.session.add(
                LeadStatusChange(
                    lead_id=result.lead_id, from_status=origin, to_status=target, changed_at=moved_at, reason=reason
                )
            )
            db.session.flush()
        db.session.execute(
            sa.update(Lead)
            .where(Lead.id == result.lead_id)
            .values(status=moves[-1][1] if moves else "new", status_changed_at=moved_at)
        )
        db.session.commit()
        return result.lead_id


@pytest.fixture
def history(app):
    arrive(
        app,
        "a",
        at(1),
        [
            ("new", "contacted", DAY, None),
            ("contacted", "qualified", 2 * DAY, None),
            ("qualified", "demo_scheduled", 3 * DAY, None),
            ("demo_scheduled", "converted", 4 * DAY, None),
        ],
        campaign="vinter",
        size="11-50",
    )
    b = arrive(
        app,
        "b",
        at(2),
        [("new", "contacted", 2 * DAY, None), ("contacted", "demo_scheduled", 2 * DAY, None)],
        campaign="vinter",
        size="11-50",
    )
    arrive(app, "c", at(3), [("new", "lost", DAY, "price")], source="referral", size="1-10")
    arrive(
        app,
        "d",
        at(5),
        [("new", "qualified", 3 * DAY, None), ("qualified", "lost", 2 * DAY, "no_need")],
        source="event",
    )
    arrive(app, "e", at(12))
    arrive(app, "f", at(20, month=5), [("new", "contacted", DAY, None)])
    with app.app_context():
        # B's second booking, a week later.
        rebooked = book_demo.book_demo(
            validation.validate_contact_details(
                {**VALID_BOOKING, "email": "b@example.no", "organization_name": "Org b"}
            ),
            ip_address=None,
            with_confirmation=False,
        )
        db.session.execute(sa.update(Booking).where(Booking.id == rebooked.booking_id).values(created_at=at(9)))
        db.session.commit()
        assert rebooked.lead_id == b
    return app


def build(app, **args) -> queries.Report:
    with app.app_context():
        return queries.build(filters.ReportFilter.from_args({**JUNE, **args}), now=NOW)


def test_the_funnel_counts_a_lead_that_skipped_a_stage_as_having_passed_it(history):
    report = build(history)

    assert report.arrived == 5
    assert [(step.status.value, step.count) for step in report.funnel] == [
        ("new", 5),
        ("contacted", 3),  # A, B, and D, which went straight to «Kvalifisert»
        ("qualified", 3),  # A, D, and B, which went straight to «Demo avtalt»
        ("demo_scheduled", 2),
        ("converted", 1),
    ]
    assert [step.step_rate for step in report.funnel] == [None, 0.6, 1.0, pytest.approx(2 / 3), 0.5]
    assert [step.overall_rate for step in report.funnel] == [1.0, 0.6, 0.6, 0.4, 0.2]


def test_times_to_first_contact_demo_and_customer_are_median_and_75th_percentile(history):
    timings = {timing.key: timing for timing in build(history).timings}

    # First contact (out of «Ny», not to «Tapt»): A 1, B 2, D 3 days. p75 interpolates: 2 + 0.5 × (3 − 2).
    assert timings["to_first_contact"].median_days == pytest.approx(2.0)
    assert timings["to_first_contact"].p75_days == pytest.approx(2.5)
    # Demo avtalt: A after 6 days, B after 4.
    assert timings["to_demo"].median_days == pytest.approx(5.0)
    assert timings["to_demo"].p75_days == pytest.approx(5.5)
    assert timings["to_customer"].median_days == pytest.approx(10.0)
    assert timings["to_customer"].p75_days == pytest.approx(10.0)


def test_median_time_in_each_stage_counts_the_stages_leads_have_left(history):
    medians = {stage.key: stage.median_days for stage in build(history).stage_medians}

    assert medians["new"] == pytest.approx(1.5)  # A 1, C 1, B 2, D 3
    assert medians["contacted"] == pytest.approx(2.0)  # A 2, B 2
    assert medians["qualified"] == pytest.approx(2.5)  # A 3, D 2
    assert medians["demo_scheduled"] == pytest.approx(4.0)  # A


def test_speed_to_lead_is_the_share_answered_by_the_end_of_the_next_business_day(history):
    report = build(history)

    # A (Mon→Tue), C (Wed→Thu, to «Tapt» counts as an answer) and D (Fri→Mon) were in time; B (Tue→Thu) was not.
    # E arrived Friday and has until Monday night: not decided yet.
    assert (report.promise_kept, report.promise_due) == (3, 4)
    assert report.promise_rate == 0.75


def test_conversion_and_lost_by_source_campaign_and_size(history):
    report = build(history)

    assert [(s.key, s.leads, s.converted, s.lost) for s in report.by_source] == [
        ("website", 3, 1, 0),
        ("event", 1, 0, 1),
        ("referral", 1, 0, 1),
    ]
    assert report.by_source[0].label == "Nettsiden"
    campaigns = {s.label: (s.leads, s.converted, s.lost) for s in report.by_campaign}
    assert campaigns == {"vinter": (2, 1, 0), queries.NO_CAMPAIGN: (3, 0, 2)}
    sizes = {s.label: (s.leads, s.converted, s.lost) for s in report.by_size}
    assert sizes == {"11–50 personer": (2, 1, 0), "1–10 personer": (1, 0, 1), queries.NO_SIZE: (2, 0, 1)}


def test_lost_reasons_are_counted_with_their_labels(history):
    assert sorted(build(history).lost_reasons) == [("Ikke behov nå", 1), ("Pris eller budsjett", 1)]


def test_new_leads_and_bookings_per_week_over_26_weeks(history):
    weeks = build(history).weeks

    assert len(weeks) == 26
    assert weeks[-1].starts_on.isoformat() == "2026-06-15" and weeks[0].starts_on.isoformat() == "2025-12-22"
    by_monday = {week.starts_on.isoformat(): (week.new_leads, week.bookings) for week in weeks}
    assert by_monday["2026-06-01"] == (4, 4)
    assert by_monday["2026-06-08"] == (1, 2)  # E, and B's second booking
    assert by_monday["2026-05-18"] == (1, 1)
    assert sum(week.new_leads for week in weeks) == 6


def test_the_boards_filters_narrow_the_report(history):
    vinter = build(history, campaign="vinter")
    website = build(history, source="website")
    small = build(history, organization_size="1-10")

    assert [step.count for step in vinter.funnel] == [2, 2, 2, 2, 1]
    assert [step.count for step in website.funnel] == [3, 2, 2, 2, 1]
    assert [step.count for step in small.funnel] == [1, 0, 0, 0, 0]
    assert sum(week.new_leads for week in vinter.weeks) == 2


def test_the_periods_are_oslo_calendar_periods(history):
    with history.app_context():
        this_month = queries.build(filters.ReportFilter.from_args({"period": "month"}), now=NOW)
        last_30_days = queries.build(filters.ReportFilter.from_args({"period": "30d"}), now=NOW)
        quarter = filters.ReportFilter.from_args({"period": "quarter"})
        year = filters.ReportFilter.from_args({})

    assert this_month.arrived == 5
    assert last_30_days.arrived == 6  # F arrived 20.05, within 17.05–15.06
    assert quarter.days(NOW)[0].isoformat() == "2026-04-01"
    assert year.period == "year" and year.days(NOW)[0].isoformat() == "2026-01-01"
    # 1 June 00:00 in Oslo is 31 May 22:00 UTC.
    assert filters.ReportFilter.from_args(JUNE).bounds(NOW)[0] == datetime(2026, 5, 31, 22, 0, tzinfo=UTC)


def test_an_unusable_custom_period_falls_back_to_this_year_and_says_what_to_do(app):
    backwards = filters.ReportFilter.from_args({"period": "custom", "from": "2026-06-14", "to": "2026-06-01"})
    missing = filters.ReportFilter.from_args({"period": "custom", "from": "2026-06-01", "to": "juni"})

    assert backwards.period == "year" and "Bytt dem om" in backwards.errors[0]
    assert missing.period == "year" and "Velg både fra- og til-dato" in missing.errors[0]


def test_the_report_page_shows_the_funnel_charts_and_tables_without_javascript(history, staff_client):
    response = staff_client.get("/pipeline/report", query_string=JUNE)

    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"
    page = response.get_data(as_text=True)
    assert "<svg" in page and "<polyline" in page and "<rect" in page
    assert '<th scope="row">Kvalifisert</th><td>3</td><td>100,0 %</td><td>60,0 %</td>' in page
    assert '<th scope="row">Kunde</th><td>1</td><td>50,0 %</td><td>20,0 %</td>' in page
    assert "Pris eller budsjett" in page and "vinter" in page
    stylesheet = re.search(r'<link rel="stylesheet" href="([^"]*css/report[^"]*)">', page).group(1)
    assert "@media print" in staff_client.get(stylesheet).get_data(as_text=True)


def test_the_report_page_says_so_when_nothing_arrived_and_refuses_nothing(app, staff_client):
    empty = staff_client.get("/pipeline/report", query_string={"period": "month", "campaign": "finnes-ikke"})
    odd = staff_client.get("/pipeline/report", query_string={"period": "custom", "from": "0000-99-99", "to": "\x00"})

    assert empty.status_code == 200
    assert "Ingen leads kom inn i perioden" in empty.get_data(as_text=True)
    assert odd.status_code == 200
    assert "Velg både fra- og til-dato" in odd.get_data(as_text=True)


def test_the_report_needs_a_signed_in_salesperson(app, client):
    response = client.get("/pipeline/report")

    assert response.status_code in (302, 303) and "/login" in response.headers["Location"]


def test_demo_data_gives_a_meaningful_report_with_campaigns_stage_times_and_lost_reasons(app, staff_client):
    result = app.test_cli_runner().invoke(args=["demo-data", "--leads", "400", "--fresh", "0"])
    assert result.exit_code == 0, result.output

    with app.app_context():
        report = queries.build(
            filters.ReportFilter.from_args({"period": "custom", "from": "2000-01-01", "to": "2999-12-31"})
        )
        website_campaigns = db.session.execute(
            sa.select(sa.func.count()).select_from(Lead).where(Lead.first_utm_campaign.is_not(None))
        ).scalar_one()
        staff_typed_with_campaign = db.session.execute(
            sa.select(sa.func.count())
            .select_from(Lead)
            .where(Lead.source != "website", Lead.first_utm_campaign.is_not(None))
        ).scalar_one()
        bookings_with_campaign = db.session.execute(
            sa.select(sa.func.count()).select_from(Booking).where(Booking.utm_campaign.is_not(None))
        ).scalar_one()
        reopened = db.session.execute(sa.select(sa.func.count()).select_from(Lead).where(Lead.pass_number > 1)).scalar()

    # Each lead arrived once; a lost lead that demo-data reopened entered the funnel once more (its new pass).
    assert report.arrived == 400 + reopened
    counts = [step.count for step in report.funnel]
    assert counts == sorted(counts, reverse=True) and counts[-1] > 0
    assert website_campaigns > 40 and staff_typed_with_campaign == 0
    assert bookings_with_campaign == website_campaigns
    assert len(report.by_campaign) > 3
    assert all(timing.median_days for timing in report.timings)
    assert all(stage.median_days for stage in report.stage_medians)
    assert len(report.lost_reasons) >= 4
    assert report.promise_due > 0 and 0 < report.promise_rate < 1
    assert sum(week.new_leads for week in report.weeks) > 100
    page = staff_client.get("/pipeline/report").get_data(as_text=True)
    assert "likepersoner-sok" in page or "vinter" in page


def test_the_migration_gives_leads_moved_before_it_their_journey_and_deadline(
    empty_database_url,
    redis_url,
    smtp_server,
):
    app = create_app(app_config(empty_database_url, redis_url, smtp_server))
    with app.app_context():
        upgrade(revision="0006")
        # Arrived Monday 5 January 09:00 UTC; contacted the next day, qualified three days after that.
        lead = insert_lead("kari@lhl.no", created=5, status="contacted", moved=6)
        db.session.execute(
            sa.insert(STATUS_CHANGES),
            {
                "id": uuid.uuid4(),
                "lead_id": lead["id"],
                "from_status": "contacted",
                "to_status": "qualified",
                "changed_at": day(9),
            },
        )
        db.session.execute(sa.update(Lead).where(Lead.id == lead["id"]).values(status="qualified"))
        db.session.commit()

        upgrade()

        migrated = db.session.get(Lead, lead["id"])
        assert migrated.first_contact_due_at == datetime(2026, 1, 6, 22, 59, 59, tzinfo=UTC)  # Tue 23:59:59 Oslo
        assert migrated.funnel_rank == 2
        assert migrated.left_new_at == migrated.first_contact_at == day(6)
        assert migrated.new_stage_seconds == pytest.approx(86400)
        assert migrated.contacted_stage_seconds == pytest.approx(3 * 86400)
        assert migrated.qualified_stage_seconds is None
        assert db.session.scalar(sa.select(sa.func.count()).select_from(LeadStatusChange)) == 2
        db.session.remove()
        db.engine.dispose()
