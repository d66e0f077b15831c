"""The exports the team opens in Excel: GET /pipeline/leads.xlsx, /pipeline/report.xlsx and /pipeline/leads.csv.

Norwegian headers and labels, Oslo times, phone numbers as text; nothing a prospect typed is ever read as a
formula. The .xlsx files are read back with openpyxl, the CSV with the csv module using `;`.
"""

import csv
import io
import re
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa
from helpers.booking import make_lead
from openpyxl import load_workbook

from meander_site.extensions import db
from meander_site.leads.models import Lead
from meander_site.reporting import exports
from meander_site.reporting.csv_export import would_be_formula

OSLO = ZoneInfo("Europe/Oslo")
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
HOSTILE = {
    "organization_name": '=HYPERLINK("http://evil.example","Klikk her")',
    "notes": "@SUM(1)",
    "role_title": "+Leder",
    "current_solution": "-2+3",
    "preferred_demo_timing": "Helst =tirsdag",
}


def workbook_of(response):
    assert response.status_code == 200
    assert response.mimetype == XLSX
    return load_workbook(io.BytesIO(response.get_data()))


def sheet_rows(sheet) -> list[dict]:
    header, *rows = list(sheet.iter_rows())
    titles = [cell.value for cell in header]
    return [dict(zip(titles, row, strict=True)) for row in rows]


def csv_export(client, **args):
    response = client.get("/pipeline/leads.csv", query_string=args)
    assert response.status_code == 200
    return response


def csv_rows(response) -> list[dict]:
    return list(csv.DictReader(io.StringIO(response.get_data().decode("utf-8-sig"), newline=""), delimiter=";"))


def qualify(app, lead_id):
    with app.app_context():
        db.session.execute(sa.update(Lead).where(Lead.id == lead_id).values(status="qualified"))
        db.session.commit()


# --- .xlsx -------------------------------------------------------------------------------------------------


def test_the_excel_download_has_norwegian_headers_labels_oslo_times_and_phones_as_text(app, staff_client):
    lead = make_lead(app)
    qualify(app, lead["id"])
    with app.app_context():
        created_at = db.session.get(Lead, lead["id"]).created_at

    response = staff_client.get("/pipeline/leads.xlsx")

    assert re.fullmatch(r'attachment; filename="leads-\d{4}-\d\d-\d\d\.xlsx"', response.headers["Content-Disposition"])
    assert response.headers["Cache-Control"] == "no-store"
    sheet = workbook_of(response)["Leads"]
    assert [cell.value for cell in sheet[1]] == exports.LEAD_HEADER
    assert {"Fornavn", "E-post", "Telefon", "Organisasjon", "Status", "Opprinnelse", "Størrelse", "Opprettet"} <= set(
        exports.LEAD_HEADER
    )
    [row] = sheet_rows(sheet)
    assert row["Status"].value == "Kvalifisert"
    assert row["Opprinnelse"].value == "Nettsiden"
    assert row["Størrelse"].value == "51–200 personer"
    assert (row["Telefon"].value, row["Telefon"].data_type) == ("+4791234567", "s")
    assert row["Bookinger"].value == 1 and row["Bookinger"].data_type == "n"
    # Excel has no time zones: the cell holds the Oslo wall-clock time, as a date cell.
    assert row["Opprettet"].is_date
    assert abs(row["Opprettet"].value - created_at.astimezone(OSLO).replace(tzinfo=None)).total_seconds() < 1
    assert row["Id"].value == str(lead["id"])


def test_text_that_looks_like_a_formula_is_stored_as_text_in_the_excel_file(app, staff_client):
    make_lead(app, **HOSTILE)

    [row] = sheet_rows(workbook_of(staff_client.get("/pipeline/leads.xlsx"))["Leads"])

    for header, typed in (
        ("Organisasjon", HOSTILE["organization_name"]),
        ("Notater", "@SUM(1)"),
        ("Rolle", "+Leder"),
        ("Bruker i dag", "-2+3"),
    ):
        assert (row[header].value, row[header].data_type) == (typed, "s")
    # No cell of the file is a formula, whatever it says.
    assert all(cell.data_type != "f" for cell in row.values())


def test_the_excel_download_follows_the_boards_filters_and_link(app, staff_client):
    make_lead(app)
    make_lead(app, email="ola@bymisjon.no", organization_name="Kirkens Bymisjon Bergen", organization_size="1-10")
    page = staff_client.get("/pipeline", query_string={"q": "bymisjon"}).get_data(as_text=True)
    link = re.search(r'<a id="export-xlsx-link"[^>]*href="([^"]+)"', page).group(1).replace("&amp;", "&")

    rows = sheet_rows(workbook_of(staff_client.get(link))["Leads"])
    everything = sheet_rows(workbook_of(staff_client.get("/pipeline/leads.xlsx"))["Leads"])

    assert link.startswith("/pipeline/leads.xlsx?") and "q=bymisjon" in link
    assert [row["E-post"].value for row in rows] == ["ola@bymisjon.no"]
    assert [row["E-post"].value for row in everything] == ["ola@bymisjon.no", "kari.nordmann@lhl.no"]


def test_the_reports_tables_download_as_one_workbook(app, staff_client):
    lead = make_lead(app, organization_size="11-50")
    qualify(app, lead["id"])

    response = staff_client.get("/pipeline/report.xlsx", query_string={"period": "month"})

    workbook = workbook_of(response)
    assert workbook.sheetnames == [
        "Om rapporten",
        "Verdi",
        "Per måned",
        "Verdi etter eier",
        "Verdi etter kanal",
        "Etter kanal",
        "Trakt",
        "Opprinnelse",
        "Kampanje",
        "Størrelse",
        "Tid",
        "Svartid",
        "Tapt",
        "Uker",
    ]
    funnel = [[cell.value for cell in row] for row in workbook["Trakt"].iter_rows()]
    assert funnel[0] == ["Steg", "Leads", "Andel av steget før", "Andel av alle"]
    assert funnel[1] == ["Ny", 1, None, 1.0]
    assert workbook["Trakt"]["D2"].number_format == "0.0 %"
    sizes = [[cell.value for cell in row] for row in workbook["Størrelse"].iter_rows()]
    assert sizes[1][:3] == ["11–50 personer", 1, 0]
    assert len(list(workbook["Uker"].iter_rows())) == 27
    assert workbook["Uker"]["A2"].is_date


def test_the_report_page_links_to_its_workbook_with_the_same_filters(app, staff_client):
    page = staff_client.get("/pipeline/report", query_string={"period": "30d", "source": "event"}).get_data(
        as_text=True
    )

    link = re.search(r'href="(/pipeline/report\.xlsx[^"]*)">Last ned Excel', page).group(1).replace("&amp;", "&")

    assert "period=30d" in link and "source=event" in link
    assert staff_client.get(link).status_code == 200


# --- CSV -----------------------------------------------------------------------------------------------


def test_the_csv_is_for_a_norwegian_excel(app, staff_client):
    lead = make_lead(app)
    make_lead(app, notes="Andre booking.")
    qualify(app, lead["id"])
    with app.app_context():
        created_at = db.session.get(Lead, lead["id"]).created_at

    response = csv_export(staff_client)

    assert response.headers["Content-Type"] == "text/csv; charset=utf-8"
    assert re.fullmatch(r'attachment; filename="leads-\d{4}-\d\d-\d\d\.csv"', response.headers["Content-Disposition"])
    assert response.headers["Cache-Control"] == "no-store"
    raw = response.get_data()
    assert raw.startswith(b"\xef\xbb\xbf")
    assert raw.decode("utf-8-sig").splitlines()[0] == ";".join(exports.LEAD_HEADER)
    [row] = csv_rows(response)
    assert row["Id"] == str(lead["id"])
    assert (row["Status"], row["Opprinnelse"], row["Størrelse"]) == ("Kvalifisert", "Nettsiden", "51–200 personer")
    assert row["Bookinger"] == "2" and row["Notater"] == "Andre booking."
    assert row["Opprettet"] == created_at.astimezone(OSLO).strftime("%d.%m.%Y %H:%M")
    assert row["Telefon"] == "+4791234567"  # a number to Excel, never a formula: no apostrophe
    ref = lead["masked_ref"]
    assert row["Referanse"] == ("'" + ref if would_be_formula(ref) else ref)


def test_the_csv_guards_exactly_the_cells_excel_would_read_as_formulas(app, staff_client):
    make_lead(app, **HOSTILE)

    [row] = csv_rows(csv_export(staff_client))

    assert row["Organisasjon"] == "'" + HOSTILE["organization_name"]
    assert row["Notater"] == "'@SUM(1)"
    assert row["Rolle"] == "'+Leder"
    assert row["Bruker i dag"] == "'-2+3"
    assert row["Ønsket tidspunkt"] == "Helst =tirsdag"  # only a leading trigger makes a formula
    assert row["Telefon"] == "+4791234567"
    assert row["Fornavn"] == "Kari"


@pytest.mark.parametrize(
    ("text", "formula"),
    [
        ("=1+1", True),
        ('=HYPERLINK("http://x")', True),
        ("@SUM(1)", True),
        ("+Leder", True),
        ("-2+3", True),
        ("-Xy3_k", True),  # Excel reads it as a reference to a name (#NAVN?), so it is guarded
        ("+47 912 34 567", True),  # with spaces it is no number to Excel
        ("\t=1", True),
        ("\r=1", True),
        ("+4791234567", False),  # E.164: a number, not a formula
        ("-5", False),
        ("+1,5", False),
        ("-0.25", False),
        ("Helst =tirsdag", False),
        ("Kari", False),
        ("", False),
        ("2026-06-01", False),
    ],
)
def test_the_formula_rule(text, formula):
    assert would_be_formula(text) is formula


def test_the_csv_follows_the_boards_search_and_filters_newest_first(app, staff_client):
    make_lead(app)
    make_lead(app, email="ola@bymisjon.no", organization_name="Kirkens Bymisjon Bergen", organization_size="1-10")
    make_lead(app, email="per@bymisjon.no", first_name="Per", organization_name="Kirkens Bymisjon Oslo")

    searched = csv_rows(csv_export(staff_client, q="bymisjon"))
    filtered = csv_rows(csv_export(staff_client, q="bymisjon", organization_size="1-10"))
    everything = csv_rows(csv_export(staff_client))

    assert {row["E-post"] for row in searched} == {"ola@bymisjon.no", "per@bymisjon.no"}
    assert [row["E-post"] for row in filtered] == ["ola@bymisjon.no"]
    assert [row["E-post"] for row in everything] == ["per@bymisjon.no", "ola@bymisjon.no", "kari.nordmann@lhl.no"]


def test_the_board_csv_link_downloads_exactly_what_the_board_shows(app, staff_client):
    make_lead(app)
    wanted = make_lead(app, email="ola@bymisjon.no", organization_name="Kirkens Bymisjon")
    page = staff_client.get("/pipeline", query_string={"q": "bymisjon"}).get_data(as_text=True)
    link = re.search(r'<a id="export-link"[^>]*href="([^"]+)"', page).group(1).replace("&amp;", "&")

    assert [row["Id"] for row in csv_rows(staff_client.get(link))] == [str(wanted["id"])]


def test_norwegian_letters_semicolons_quotes_and_line_breaks_survive_the_csv(app, staff_client):
    make_lead(
        app,
        first_name="Bjørn",
        last_name="Sæther",
        email="bjorn@aalesund.no",
        organization_name="Ålesund Sanitetsforening; avd. Sunnmøre",
        notes='Linje én, med "sitat"\nLinje to: Øvre Årdal',
    )

    [row] = csv_rows(csv_export(staff_client))

    assert (row["Fornavn"], row["Etternavn"]) == ("Bjørn", "Sæther")
    assert row["Organisasjon"] == "Ålesund Sanitetsforening; avd. Sunnmøre"
    assert row["Notater"].splitlines() == ['Linje én, med "sitat"', "Linje to: Øvre Årdal"]


def test_the_csv_of_an_empty_search_is_just_the_header(app, staff_client):
    make_lead(app)

    response = csv_export(staff_client, q="finnes-ikke")

    assert response.get_data().decode("utf-8-sig").splitlines() == [";".join(exports.LEAD_HEADER)]


def test_exports_need_a_signed_in_salesperson(app, client):
    for path in ("/pipeline/leads.csv", "/pipeline/leads.xlsx", "/pipeline/report.xlsx"):
        response = client.get(path)
        assert response.status_code in (302, 303) and "/login" in response.headers["Location"], path


def test_times_in_the_exports_are_oslo_times_across_summer_time(app, staff_client):
    lead = make_lead(app)
    winter = datetime.fromisoformat("2026-01-15T11:30:00+00:00")
    with app.app_context():
        db.session.execute(sa.update(Lead).where(Lead.id == lead["id"]).values(created_at=winter))
        db.session.commit()

    [csv_row] = csv_rows(csv_export(staff_client))
    [xlsx_row] = sheet_rows(workbook_of(staff_client.get("/pipeline/leads.xlsx"))["Leads"])

    assert csv_row["Opprettet"] == "15.01.2026 12:30"
    assert xlsx_row["Opprettet"].value == datetime(2026, 1, 15, 12, 30)
