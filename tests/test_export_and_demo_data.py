"""GET /pipeline/leads.csv (Excel-friendly, filtered, injection-safe) and `flask demo-data`, including the
triggers that keep lead_status_counts equal to the real counts."""

import csv
import io
import re
from datetime import timedelta

import sqlalchemy as sa
from conftest import book, make_lead, staff_csrf

from meander_site import sales
from meander_site.extensions import db
from meander_site.models import Booking, Lead, LeadStatusChange, LeadStatusCount, User, utcnow

STATUSES = ["new", "contacted", "qualified", "demo_scheduled", "converted", "lost"]


def export(client, **args):
    response = client.get("/pipeline/leads.csv", query_string=args)
    assert response.status_code == 200
    return response


def rows_of(response) -> list[dict]:
    return list(csv.DictReader(io.StringIO(response.get_data().decode("utf-8-sig"), newline="")))


def real_counts() -> dict[str, int]:
    counts = dict.fromkeys(STATUSES, 0)
    counts.update(db.session.execute(sa.select(Lead.status, sa.func.count()).group_by(Lead.status)).all())
    return counts


def stored_counts() -> dict[str, int]:
    return dict(db.session.execute(sa.select(LeadStatusCount.status, LeadStatusCount.lead_count)).all())


# --- CSV -------------------------------------------------------------------------------------------


def test_the_export_is_an_excel_friendly_csv_download_with_a_header_of_attribute_names(app, staff_client):
    lead = make_lead(app)
    make_lead(app, notes="Andre booking.")

    response = export(staff_client)

    assert response.mimetype == "text/csv"
    assert response.headers["Content-Type"] == "text/csv; charset=utf-8"
    assert re.fullmatch(r'attachment; filename="leads-\d{4}-\d\d-\d\d\.csv"', response.headers["Content-Disposition"])
    assert response.headers["Cache-Control"] == "no-store"
    raw = response.get_data()
    assert raw.startswith(b"\xef\xbb\xbf")
    header = next(csv.reader(io.StringIO(raw.decode("utf-8-sig"))))
    assert header == list(sales.EXPORT_COLUMNS)
    assert {"id", "email", "organization_name", "status", "source", "masked_ref", "booking_count"} <= set(header)
    [row] = rows_of(response)
    assert row["id"] == str(lead["id"])
    assert row["masked_ref"] == lead["masked_ref"]
    assert row["booking_count"] == "2"
    assert row["email"] == "kari.nordmann@lhl.no"
    assert row["notes"] == "Andre booking."
    assert row["status"] == "new" and row["source"] == "website"


def test_the_export_follows_the_boards_search_and_filters(app, staff_client):
    make_lead(app)
    make_lead(app, email="ola@bymisjon.no", organization_name="Kirkens Bymisjon Bergen", organization_size="1-10")
    make_lead(app, email="per@bymisjon.no", first_name="Per", organization_name="Kirkens Bymisjon Oslo")

    searched = rows_of(export(staff_client, q="bymisjon"))
    filtered = rows_of(export(staff_client, q="bymisjon", organization_size="1-10"))
    everything = rows_of(export(staff_client))

    assert {row["email"] for row in searched} == {"ola@bymisjon.no", "per@bymisjon.no"}
    assert [row["email"] for row in filtered] == ["ola@bymisjon.no"]
    assert len(everything) == 3
    # Newest first, as on the board.
    assert [row["email"] for row in everything] == ["per@bymisjon.no", "ola@bymisjon.no", "kari.nordmann@lhl.no"]


def test_the_board_export_link_downloads_exactly_what_the_board_shows(app, staff_client):
    make_lead(app)
    wanted = make_lead(app, email="ola@bymisjon.no", organization_name="Kirkens Bymisjon")
    page = staff_client.get("/pipeline", query_string={"q": "bymisjon"}).get_data(as_text=True)
    link = re.search(r'<a id="export-link"[^>]*href="([^"]+)"', page).group(1).replace("&amp;", "&")

    rows = rows_of(staff_client.get(link))

    assert [row["id"] for row in rows] == [str(wanted["id"])]


def test_cells_that_start_a_formula_are_neutralized(app, staff_client):
    make_lead(
        app,
        organization_name='=HYPERLINK("http://evil.example","Klikk her")',
        notes="@SUM(1)",
        role_title="+Leder",
        current_solution="-2+3",
        preferred_demo_timing="Helst =tirsdag",
    )

    [row] = rows_of(export(staff_client))

    assert row["organization_name"] == "'" + '=HYPERLINK("http://evil.example","Klikk her")'
    assert row["notes"] == "'@SUM(1)"
    assert row["role_title"] == "'+Leder"
    assert row["current_solution"] == "'-2+3"
    assert row["preferred_demo_timing"] == "Helst =tirsdag"  # only a leading trigger is a formula
    assert row["first_name"] == "Kari"


def test_norwegian_letters_quotes_commas_and_line_breaks_survive_the_export(app, staff_client):
    make_lead(
        app,
        first_name="Bjørn",
        last_name="Sæther",
        email="bjorn@aalesund.no",
        organization_name="Ålesund Sanitetsforening",
        notes='Linje én, med "sitat"\nLinje to: Øvre Årdal',
    )

    [row] = rows_of(export(staff_client))

    assert (row["first_name"], row["last_name"]) == ("Bjørn", "Sæther")
    assert row["organization_name"] == "Ålesund Sanitetsforening"
    assert row["notes"].splitlines() == ['Linje én, med "sitat"', "Linje to: Øvre Årdal"]


def test_the_export_of_an_empty_search_is_just_the_header(app, staff_client):
    make_lead(app)

    response = export(staff_client, q="finnes-ikke")

    assert response.get_data().decode("utf-8-sig").splitlines() == [",".join(sales.EXPORT_COLUMNS)]


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
        lost_reasons = db.session.execute(
            sa.select(LeadStatusChange.reason).where(LeadStatusChange.to_status == "lost")
        ).scalars().all()
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
    staff_client.post(f"/pipeline/leads/{ids[2]}", data={
        "first_name": "Endret", "last_name": "Navn", "email": "lead2@eksempel.no",
        "organization_name": "Org", "role_title": "Rolle", "csrf_token": token,
    })
    staff_client.post(f"/pipeline/leads/{ids[3]}/delete", data={"csrf_token": token})
    with app.app_context():
        user = db.session.get(User, staff_user["id"])
        sales.move(ids[0], "converted", by=user)

    with app.app_context():
        assert real_counts() == {"new": 1, "contacted": 0, "qualified": 0, "demo_scheduled": 0, "converted": 1,
                                 "lost": 1}
        assert stored_counts() == real_counts()
