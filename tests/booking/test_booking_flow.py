import sqlalchemy as sa
from helpers.booking import VALID_BOOKING, book, confirmation_rows, csrf_token
from helpers.jobs import run_jobs

from meander_site.extensions import db
from meander_site.leads.models import Booking, Lead


def test_booking_creates_lead_and_redirects_to_its_confirmation_page(app, client):
    response = book(client)

    assert response.status_code == 303
    with app.app_context():
        lead = db.session.execute(db.select(Lead)).scalar_one()
        assert response.headers["Location"] == f"/confirm/{lead.masked_ref}"
        assert lead.email == "kari.nordmann@lhl.no"
        assert lead.phone == "+4791234567"
        assert lead.status == "new"
        assert lead.source == "website"
        assert lead.booking_count == 1
        assert lead.ip_address == "127.0.0.1"


def test_confirmation_mail_is_sent_by_the_worker_with_the_link(app, client, smtp_server):
    response = book(client)
    assert run_jobs(app) == 1

    [message] = smtp_server.wait_for(1)
    assert message["To"] == VALID_BOOKING["email"]
    text = message.get_body(preferencelist=("plain",)).get_content()
    html = message.get_body(preferencelist=("html",)).get_content()
    link = "https://demo.meander.test" + response.headers["Location"]
    assert link in text and link in html
    assert "Kari" in text
    with app.app_context():
        lead = db.session.execute(db.select(Lead)).scalar_one()
        booking = db.session.execute(db.select(Booking)).scalar_one()
        assert lead.confirmation_sent_at is not None
        [confirmation] = confirmation_rows(app)
        assert confirmation.booking_id == booking.id and confirmation.sent_at == lead.confirmation_sent_at


def test_a_booking_writes_its_lead_booking_and_mails_in_three_statements_on_postgresql(app, client):
    """BEGIN, the owner's choice with the team's settings (assignment/pool.py), the lead upsert with the booking
    insert (one CTE), the mails with the cap counted in them, COMMIT. SQLite, without INSERT or UPDATE in a WITH,
    takes two statements more (the settings and the booking insert; no one is assigned here, so no timeline line)."""
    assert book(client).status_code == 303  # the pool holds a connection now
    token = csrf_token(client)
    statements = []
    with app.app_context():
        engine = db.engine
    expected = 3 if engine.dialect.name == "postgresql" else 5

    def note(conn, cursor, statement, parameters, context, executemany):
        statements.append(statement.split(None, 1)[0].upper())

    sa.event.listen(engine, "before_cursor_execute", note)
    try:
        response = client.post("/demo", data={**VALID_BOOKING, "email": "ola@frivillig.no", "csrf_token": token})
    finally:
        sa.event.remove(engine, "before_cursor_execute", note)

    assert response.status_code == 303
    assert len(statements) == expected, statements
    assert statements[-1] == "INSERT"
