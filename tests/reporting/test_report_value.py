"""What the pipeline is worth and which channel pays, against numbers worked out by hand.

«now» is Mon 15.06.2026 12:00 UTC; the period is 1–14 June (Oslo). Weights are the defaults (Kvalifisert 25 %,
Demo avtalt 50 %).

    A  Mon 01.06, google / cpc, «vinter»:  → Kunde on Thu 11.06 (10 days), 48 000; its demo was held on 08.06
    B  Tue 02.06, referred by www.finn.no: Kvalifisert, estimate 100 000 closing July 2026
    C  Wed 03.06, neither (Direkte):       Demo avtalt (demo on 16.06, not held yet), estimate 20 000 closing June
    D  Fri 01.05, Direkte:                 Tapt (price) on 05.05; a booking reopens it on Tue 02.06 (pass 2);
                                           → Kunde on Tue 09.06 (7 days into its pass), 30 000

June: 4 leads entering the funnel (A, B, C and D's second pass); won 78 000 from 2 customers (average 39 000);
open 120 000, weighted 25 000 + 10 000 = 35 000; by close month: June 20 000 (weighted 10 000), July 100 000
(25 000). May: 1 lead (D's first pass), lost for price. The year: 5 passes, 2 customers, 1 lost.
"""

from datetime import UTC, date, datetime, timedelta

import pytest
import sqlalchemy as sa
from helpers.assignment import leave_the_pool
from helpers.booking import VALID_BOOKING

from meander_site.accounts import users
from meander_site.booking import book_demo
from meander_site.extensions import db
from meander_site.leads import attribution, passes, validation
from meander_site.leads.models import Booking, Lead, LeadStatusChange
from meander_site.reporting import filters, queries

NOW = datetime(2026, 6, 15, 12, 0, tzinfo=UTC)
DAY = timedelta(days=1)
JUNE = {"period": "custom", "from": "2026-06-01", "to": "2026-06-14"}
MAY = {"period": "custom", "from": "2026-05-01", "to": "2026-05-31"}


def at(day: int, month: int = 6) -> datetime:
    return datetime(2026, month, day, 8, 0, tzinfo=UTC)


def arrive(name: str, arrived: datetime, touch: attribution.Touch = attribution.NO_TOUCH):
    details = validation.validate_contact_details(
        {**VALID_BOOKING, "email": f"{name}@example.no", "organization_name": f"Org {name}"}
    )
    result = book_demo.book_demo(details, ip_address=None, with_confirmation=False, touch=touch)
    db.session.execute(sa.update(Lead).where(Lead.id == result.lead_id).values(created_at=arrived))
    db.session.execute(sa.update(Booking).where(Booking.lead_id == result.lead_id).values(created_at=arrived))
    db.session.commit()
    return result.lead_id


def moved(lead_id, origin: str, target: str, when: datetime, reason=None, pass_number=1, **values) -> None:
    db.session.add(
        LeadStatusChange(
            lead_id=lead_id,
            from_status=origin,
            to_status=target,
            changed_at=when,
            reason=reason,
            pass_number=pass_number,
        )
    )
    db.session.flush()
    db.session.execute(
        sa.update(Lead).where(Lead.id == lead_id).values(status=target, status_changed_at=when, **values)
    )
    db.session.commit()


@pytest.fixture
def history(app):
    with app.app_context():
        seller = users.create_user("kari@meander.no", "Kari Salg", "et langt passord 123", admin=False)
        leave_the_pool(app)  # the fixture gives owners by hand
        a = arrive("a", at(1), attribution.Touch(utm_source="google", utm_medium="cpc", utm_campaign="vinter"))
        moved(a, "new", "demo_scheduled", at(3), demo_at=at(8), owner_id=seller.id)
        moved(a, "demo_scheduled", "converted", at(11), deal_value=48000)
        b = arrive("b", at(2), attribution.Touch(referrer_host="www.finn.no"))
        moved(b, "new", "qualified", at(4), estimated_value=100000, expected_close_month=date(2026, 7, 1))
        c = arrive("c", at(3))
        moved(c, "new", "demo_scheduled", at(5), demo_at=at(16), estimated_value=20000)
        db.session.execute(sa.update(Lead).where(Lead.id == c).values(expected_close_month=date(2026, 6, 1)))
        db.session.commit()
        d = arrive("d", at(1, month=5))
        moved(d, "new", "lost", at(5, month=5), reason="price")
        assert passes.reopen(d, at(2))
        db.session.commit()
        moved(d, "new", "converted", at(9), pass_number=2, deal_value=30000)
    return app


def report_for(app, args) -> queries.Report:
    with app.app_context():
        return queries.build(filters.ReportFilter.from_args(args), NOW)


def test_won_value_average_deal_and_the_open_pipeline_weighted_and_not(history):
    value = report_for(history, JUNE).value

    assert (value.won_count, value.won_value, value.average_deal) == (2, 78000, 39000)
    assert (value.open_value, value.weighted_value) == (120000, 35000)
    months = [(month.month, month.open_value, month.weighted_value) for month in value.months]
    assert months[:2] == [(date(2026, 6, 1), 20000, 10000), (date(2026, 7, 1), 100000, 25000)]
    assert [month.month for month in value.months][-1] == date(2026, 11, 1) and len(months) == 6
    assert all(month[1:] == (0, 0) for month in months[2:])


def test_value_by_owner_and_by_channel(history):
    value = report_for(history, JUNE).value

    by_owner = {row.label: (row.won_count, row.won_value, row.open_value, row.weighted_value) for row in value.by_owner}
    assert by_owner == {"Kari Salg": (1, 48000, 0, 0), "Ufordelt": (1, 30000, 120000, 35000)}
    by_channel = {row.label: (row.won_value, row.open_value, row.weighted_value) for row in value.by_channel}
    assert by_channel == {
        "google / cpc": (48000, 0, 0),
        "Direkte": (30000, 20000, 10000),
        "finn.no": (0, 100000, 25000),
    }


def test_the_channel_table_counts_leads_demos_customers_and_time_to_customer_per_pass(history):
    rows = {
        (row.channel, row.campaign): (
            row.leads,
            row.demos_held,
            row.customers,
            row.conversion_rate,
            row.won_value,
            row.median_days_to_customer,
        )
        for row in report_for(history, JUNE).value.channels
    }

    assert rows[("google / cpc", None)] == (1, 1, 1, 1.0, 48000, pytest.approx(10.0))
    assert rows[("google / cpc", "vinter")] == (1, 1, 1, 1.0, 48000, pytest.approx(10.0))
    assert rows[("finn.no", None)] == (1, 0, 0, 0.0, 0, None)  # only a referrer
    assert rows[("Direkte", None)] == (2, 1, 1, 0.5, 30000, pytest.approx(7.0))  # neither; D's second pass
    assert ("Direkte", "(ingen kampanje)") not in rows and ("finn.no", "(ingen kampanje)") not in rows


def test_a_lead_lost_reopened_and_won_counts_once_in_each_pass(history):
    june, may = report_for(history, JUNE), report_for(history, MAY)
    year = report_for(history, {"period": "custom", "from": "2026-01-01", "to": "2026-06-14"})

    assert june.arrived == 4 and june.funnel[-1].count == 2 and june.lost_total == 0
    assert may.arrived == 1 and may.funnel[-1].count == 0 and may.lost_reasons == [("Pris eller budsjett", 1)]
    assert {row.channel: row.leads for row in may.value.channels if row.campaign is None} == {"Direkte": 1}
    assert year.arrived == 5 and year.funnel[-1].count == 2 and year.lost_total == 1
    # Time to customer is per pass: D counts 7 days from its reopening, A 10 days: the median is 8.5.
    to_customer = {timing.key: timing.median_days for timing in year.timings}["to_customer"]
    assert to_customer == pytest.approx(8.5)


def test_the_siste_kontakt_switch_reads_the_latest_touch(history):
    with history.app_context():
        book_demo.book_demo(
            validation.validate_contact_details(
                {**VALID_BOOKING, "email": "b@example.no", "organization_name": "Org b"}
            ),
            ip_address=None,
            with_confirmation=False,
            touch=attribution.Touch(utm_source="nyhetsbrev"),
        )
    first = {row.channel for row in report_for(history, JUNE).value.channels}
    latest = {row.channel for row in report_for(history, {**JUNE, "touch": "latest"}).value.channels}

    assert "finn.no" in first and "nyhetsbrev" not in first
    assert "nyhetsbrev" in latest and "finn.no" not in latest


def test_the_report_page_shows_the_value_and_the_channel_table(history, staff_client):
    page = staff_client.get("/pipeline/report?period=year").get_data(as_text=True)

    assert "Hva pipelinen er verdt" in page and "Etter kanal: hvilken kanal gir kunder" in page
    assert "Etter opprinnelse" in page and 'name="touch" value="latest"' in page
