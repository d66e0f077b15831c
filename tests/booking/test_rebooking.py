"""A rebooking with a known address: what it may change on the lead, where its browser goes, what the
mail says, and how many mails one address gets (issue 7, item 1)."""

import re

import sqlalchemy as sa
from helpers.booking import VALID_BOOKING, book, confirmation_rows
from helpers.jobs import run_jobs

from meander_site.extensions import db
from meander_site.leads.models import Booking, Lead
from meander_site.mail import sweep
from meander_site.mail.models import OutboxMessage

HTMX = {"HX-Request": "true"}
STRANGER = {
    "first_name": "Ola",
    "last_name": "Svindel",
    "phone": "+46 70 123 45 67",
    "organization_name": "Svindel AS",
    "role_title": "Innkrever",
    "current_solution": "Se www.evil.example",
    "preferred_demo_timing": "Betal den forfalte fakturaen på http://evil.example/betal",
    "notes": "Ring oss på evil.example i dag.",
}
TYPED_BY_STRANGER = ["Ola", "Svindel", "Innkrever", "evil.example", "fakturaen", "Ring oss"]


def lead_row(app) -> Lead:
    """The one lead there is, detached for reading."""
    with app.app_context():
        lead = db.session.execute(db.select(Lead)).scalar_one()
        db.session.expunge(lead)
        return lead


def lead_row_by_email(app, email: str) -> Lead:
    with app.app_context():
        lead = db.session.execute(db.select(Lead).where(Lead.email == email)).scalar_one()
        db.session.expunge(lead)
        return lead


def bookings_of(app) -> list[Booking]:
    with app.app_context():
        rows = db.session.execute(db.select(Booking).order_by(Booking.created_at, Booking.id)).scalars().all()
        for row in rows:
            db.session.expunge(row)
        return rows


def set_status(app, status: str) -> None:
    with app.app_context():
        db.session.execute(sa.update(Lead).values(status=status))
        db.session.commit()


def mail_text(message) -> str:
    return message.get_body(preferencelist=("plain",)).get_content()


def mail_html(message) -> str:
    return message.get_body(preferencelist=("html",)).get_content()


def card_of(board: str, lead_id) -> str:
    return re.search(rf'<li class="lead-card[^"]*"\s+id="card-{lead_id}".*?</li>', board, re.S).group(0)


# --- what a rebooking may change ---------------------------------------------------------------------


def test_rebooking_a_lead_sales_have_moved_keeps_its_details_but_stores_and_counts_the_booking(app, client):
    book(client)
    set_status(app, "converted")
    before = lead_row(app)

    response = book(client, **STRANGER)

    assert response.status_code == 303
    lead = lead_row(app)
    for field in (
        "first_name",
        "last_name",
        "phone",
        "organization_name",
        "role_title",
        "notes",
        "current_solution",
        "preferred_demo_timing",
    ):
        assert getattr(lead, field) == getattr(before, field), field
    assert (lead.status, lead.booking_count, lead.ip_address) == ("converted", 2, before.ip_address)
    assert lead.updated_at > before.updated_at
    first, second = bookings_of(app)
    assert (second.first_name, second.organization_name, second.notes) == ("Ola", "Svindel AS", STRANGER["notes"])
    assert lead.newer_details_booking_id == second.id


def test_rebooking_a_new_lead_staff_have_edited_keeps_its_details(app, client, staff_client, token):
    book(client)
    lead_id = lead_row(app).id
    edited = {**VALID_BOOKING, "first_name": "Kari Anne", "csrf_token": token}
    assert staff_client.post(f"/pipeline/leads/{lead_id}", data=edited).status_code == 303

    book(client, **STRANGER)

    lead = lead_row(app)
    assert (lead.status, lead.first_name, lead.organization_name, lead.booking_count) == (
        "new",
        "Kari Anne",
        "LHL Hjerneslag",
        2,
    )
    assert lead.staff_edited_at is not None


def test_rebooking_a_lead_staff_typed_in_keeps_its_details(app, client, staff_client, token):
    typed = {**VALID_BOOKING, "source": "phone", "csrf_token": token}
    assert staff_client.post("/pipeline/leads/new", data=typed).status_code == 303

    book(client, **STRANGER)

    lead = lead_row(app)
    assert (lead.status, lead.source, lead.first_name, lead.booking_count) == ("new", "phone", "Kari", 2)
    assert lead.newer_details_booking_id == bookings_of(app)[-1].id


def test_rebooking_a_moved_lead_with_the_same_details_flags_nothing(app, client, staff_client):
    book(client)
    set_status(app, "contacted")

    book(client)

    lead = lead_row(app)
    assert lead.booking_count == 2 and lead.newer_details_booking_id is None
    board = staff_client.get("/pipeline").get_data(as_text=True)
    assert "Nye opplysninger" not in card_of(board, lead.id)


def test_newer_details_show_on_the_card_and_as_old_to_new_on_the_lead_page(app, client, staff_client):
    book(client)
    set_status(app, "contacted")
    book(client, **STRANGER)
    lead = lead_row(app)

    card = card_of(staff_client.get("/pipeline").get_data(as_text=True), lead.id)
    page = staff_client.get(f"/pipeline/leads/{lead.id}").get_data(as_text=True)

    assert "Nye opplysninger" in card
    section = re.search(r'<section class="card newer-details".*?</section>', page, re.S).group(0)
    assert "<strong>Fornavn</strong>: <del>Kari</del> → <ins>Ola</ins>" in section
    assert "<strong>Organisasjon</strong>: <del>LHL Hjerneslag</del> → <ins>Svindel AS</ins>" in section
    assert "E-post" not in section  # unchanged fields are not listed
    booking_id = bookings_of(app)[-1].id
    assert f'action="/pipeline/leads/{lead.id}/bookings/{booking_id}/apply"' in section
    assert 'name="csrf_token"' in section and "Bruk disse opplysningene" in section


def test_using_the_newer_details_applies_them_and_records_who_did_it(app, client, staff_client, token, staff_user):
    book(client)
    set_status(app, "contacted")
    book(
        client,
        first_name="Kari Anne",
        organization_name="LHL Hjerneslag Oslo",
        notes="Nytt nummer.",
        phone="+47 22 33 44 55",
    )
    lead = lead_row(app)
    booking_id = lead.newer_details_booking_id

    response = staff_client.post(f"/pipeline/leads/{lead.id}/bookings/{booking_id}/apply", data={"csrf_token": token})

    assert response.status_code == 303
    assert response.headers["Location"] == f"/pipeline/leads/{lead.id}"
    after = lead_row(app)
    assert (after.first_name, after.organization_name, after.notes, after.phone) == (
        "Kari Anne",
        "LHL Hjerneslag Oslo",
        "Nytt nummer.",
        "+4722334455",
    )
    assert (after.status, after.newer_details_booking_id) == ("contacted", None)
    page = staff_client.get(f"/pipeline/leads/{lead.id}").get_data(as_text=True)
    assert "Opplysningene fra bookingen er tatt i bruk." in page
    timeline = re.search(r'<section class="card" aria-labelledby="timeline-heading">.*?</section>', page, re.S).group(0)
    assert re.search(rf"· {staff_user['name']}</p>\s*<p[^>]*>Tok i bruk opplysningene fra bookingen", timeline)
    assert "newer-details" not in page
    card = card_of(staff_client.get("/pipeline").get_data(as_text=True), lead.id)
    assert "Nye opplysninger" not in card


def test_using_newer_details_without_a_csrf_token_changes_nothing(app, client, staff_client):
    book(client)
    set_status(app, "contacted")
    book(client, **STRANGER)
    lead = lead_row(app)

    response = staff_client.post(f"/pipeline/leads/{lead.id}/bookings/{lead.newer_details_booking_id}/apply")

    assert response.status_code == 400
    assert lead_row(app).first_name == "Kari"


def test_a_booking_of_another_lead_cannot_be_applied(app, client, staff_client, token):
    book(client)
    book(client, email="annen@eksempel.no", first_name="Ola")
    kari = lead_row_by_email(app, "kari.nordmann@lhl.no")
    other_booking = next(b for b in bookings_of(app) if b.email == "annen@eksempel.no")

    response = staff_client.post(
        f"/pipeline/leads/{kari.id}/bookings/{other_booking.id}/apply", data={"csrf_token": token}
    )

    assert response.status_code == 404
    assert lead_row_by_email(app, "kari.nordmann@lhl.no").first_name == "Kari"


# --- where the browser goes ----------------------------------------------------------------------------


def test_a_rebooking_goes_to_a_neutral_page_that_reveals_nothing_stored(app, client):
    first = book(client)
    lead = lead_row(app)

    again = book(client, **STRANGER)
    htmx_again = book(client, headers=HTMX, **STRANGER)

    assert first.headers["Location"] == f"/confirm/{lead.masked_ref}"
    assert again.status_code == 303 and again.headers["Location"] == "/demo/mottatt"
    assert htmx_again.status_code == 200 and htmx_again.headers["HX-Redirect"] == "/demo/mottatt"
    page = client.get("/demo/mottatt").get_data(as_text=True)
    assert "Vi har mottatt forespørselen din og sendt en bekreftelse til adressen du oppga." in page
    for stored in (lead.masked_ref, "Kari", "Nordmann", "LHL", "kari.nordmann", "Ola", "Svindel"):
        assert stored not in page


# --- what the mail says --------------------------------------------------------------------------------


def test_the_mail_quotes_no_typed_text_and_greets_with_the_leads_stored_name(app, client, smtp_server):
    book(client)
    set_status(app, "contacted")
    run_jobs(app)
    smtp_server.wait_for(1)

    book(client, **STRANGER)
    run_jobs(app)

    first, second = smtp_server.wait_for(2)
    for message in (first, second):
        for body in (mail_text(message), mail_html(message)):
            assert "Hei Kari," in body and "LHL Hjerneslag" in body
            for typed in (
                *TYPED_BY_STRANGER,
                VALID_BOOKING["notes"],
                VALID_BOOKING["preferred_demo_timing"],
                VALID_BOOKING["current_solution"],
            ):
                assert typed not in body
    assert second["To"] == "kari.nordmann@lhl.no"


def test_a_name_that_looks_like_a_link_is_left_out_of_the_greeting(app, client, smtp_server):
    book(client, first_name="www.evil.example", organization_name="Betal på https://evil.example/faktura")
    run_jobs(app)

    [message] = smtp_server.wait_for(1)
    for body in (mail_text(message), mail_html(message)):
        assert "evil.example" not in body
        assert "Hei," in body and "demoforespørselen din" in body


# --- how many mails one address gets -------------------------------------------------------------------


def test_at_most_three_confirmations_per_address_a_day_whatever_the_ip(app, client, staff_client, smtp_server):
    for n in range(5):
        response = book(client, environ_overrides={"REMOTE_ADDR": f"203.0.113.{n + 1}"}, notes=f"Nr. {n}")
        assert response.status_code == 303
    run_jobs(app)
    smtp_server.wait_for(3)

    with app.app_context():
        sweep.retry_pending()  # sends what is unsent: the team's new-lead mail, never a capped confirmation
        sweep.sweep_due()
    run_jobs(app)
    to_prospect = [message for message in smtp_server.messages() if message["X-RcptTo"] == VALID_BOOKING["email"]]
    assert len(to_prospect) == 3
    bookings = bookings_of(app)
    assert [booking.notes for booking in bookings] == [f"Nr. {n}" for n in range(5)]
    mails = confirmation_rows(app)
    assert [mail.booking_id for mail in mails] == [booking.id for booking in bookings]
    assert [mail.sent_at is not None for mail in mails] == [True] * 3 + [False] * 2
    for capped in mails[3:]:
        assert capped.due_at is None and capped.closed_reason == "capped"
    lead = lead_row(app)
    page = staff_client.get(f"/pipeline/leads/{lead.id}").get_data(as_text=True)
    assert "Ikke sendt: for mange bekreftelser til denne adressen siste døgn" in page


def test_the_cap_counts_only_the_last_24_hours(app, client, smtp_server):
    for _ in range(3):
        book(client)
    run_jobs(app)
    smtp_server.wait_for(3)
    with app.app_context():
        rows = [*db.session.scalars(db.select(Booking)), *db.session.scalars(db.select(OutboxMessage))]
        for row in rows:
            row.created_at = row.created_at.replace(year=row.created_at.year - 1)
        db.session.commit()

    book(client)
    run_jobs(app)

    assert len(smtp_server.wait_for(4)) == 4
