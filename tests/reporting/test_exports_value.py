"""The exports, read back with openpyxl: the leads export's lost reason, demo time and host, value, channel and
pass; «Frist» as a date; typed numbers; an autofilter and fitted widths; report.xlsx's period and filters on its
first sheet and in its file name."""

import io
import re
from datetime import date, timedelta

import sqlalchemy as sa
from helpers.booking import make_lead
from helpers.staff import move
from openpyxl import load_workbook

from meander_site.accounts.models import User
from meander_site.core.clock import utcnow
from meander_site.extensions import db
from meander_site.leads.models import Lead


def workbook_of(response):
    assert response.status_code == 200
    return load_workbook(io.BytesIO(response.data))


def rows_by_header(sheet) -> list[dict]:
    rows = list(sheet.iter_rows())
    header = [cell.value for cell in rows[0]]
    return [dict(zip(header, row, strict=True)) for row in rows[1:]]


def test_the_leads_export_has_value_channel_pass_lost_reason_and_demo(app, staff_client, token, staff_user):
    won = make_lead(app, organization_name="Vunnet AS")
    lost = make_lead(app, email="tapt@lhl.no", organization_name="Tapt AS")
    move(staff_client, won["id"], "converted", token, deal_value="48 000")
    move(staff_client, lost["id"], "lost", token, reason="price")
    demo_at = utcnow() + timedelta(days=3)
    with app.app_context():
        db.session.execute(
            sa.update(Lead).where(Lead.id == won["id"]).values(demo_at=demo_at, demo_host_id=staff_user["id"])
        )
        db.session.commit()
        host = db.session.get(User, staff_user["id"]).name

    rows = {
        row["Organisasjon"].value: row
        for row in rows_by_header(workbook_of(staff_client.get("/pipeline/leads.xlsx"))["Leads"])
    }

    assert (rows["Vunnet AS"]["Avtalt verdi (kr)"].value, rows["Vunnet AS"]["Avtalt verdi (kr)"].data_type) == (
        48000,
        "n",
    )
    assert rows["Vunnet AS"]["Demovert"].value == host and rows["Vunnet AS"]["Demo"].is_date
    assert rows["Tapt AS"]["Tapt-årsak"].value == "Pris eller budsjett"
    assert rows["Tapt AS"]["Kanal"].value == "Direkte" and rows["Tapt AS"]["Runde"].value == 1


def test_frist_is_a_date_and_both_workbooks_have_an_autofilter_and_fitted_widths(app, staff_client):
    make_lead(app, organization_name="En organisasjon med et ganske langt navn AS")

    leads = workbook_of(staff_client.get("/pipeline/leads.xlsx"))["Leads"]
    report = workbook_of(staff_client.get("/pipeline/report.xlsx", query_string={"period": "month"}))

    [row] = rows_by_header(leads)
    assert row["Frist"].is_date and row["Frist"].number_format == "dd.mm.yyyy"
    assert (row["Frist"].value.hour, row["Frist"].value.minute) == (0, 0)  # a day, not 23:59
    assert re.fullmatch(r"A1:[A-Z]+2", leads.auto_filter.ref)
    header = [cell.value for cell in leads[1]]
    organization = leads.column_dimensions[chr(ord("A") + header.index("Organisasjon"))].width
    assert organization >= len("En organisasjon med et ganske langt navn AS")
    assert report["Trakt"].auto_filter.ref == "A1:D6"


def test_the_report_workbook_states_its_period_and_filters_first_and_in_its_name(app, staff_client):
    make_lead(app)
    args = {"period": "custom", "from": "2026-01-01", "to": "2026-06-30", "source": "website", "campaign": "vinter"}

    response = staff_client.get("/pipeline/report.xlsx", query_string=args)

    disposition = response.headers["Content-Disposition"]
    assert disposition == (
        'attachment; filename="rapport-2026-01-01-til-2026-06-30-opprinnelse-nettsiden-kampanje-vinter.xlsx"'
    )
    workbook = workbook_of(response)
    assert workbook.sheetnames[0] == "Om rapporten"
    about = {row[0].value: row[1].value for row in workbook["Om rapporten"].iter_rows(min_row=2)}
    assert about["Periode fra"].date() == date(2026, 1, 1) and about["Periode til"].date() == date(2026, 6, 30)
    assert (about["Opprinnelse"], about["Kampanje"], about["Kanal fra"]) == ("Nettsiden", "vinter", "Første kontakt")
    value = {row[0].value: row[1] for row in workbook["Verdi"].iter_rows(min_row=2)}
    assert value["Vunnet i perioden (kr)"].value == 0 and value["Vunnet i perioden (kr)"].data_type == "n"
