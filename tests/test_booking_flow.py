from conftest import VALID_BOOKING, book, confirmation_rows, run_jobs

from meander_site.extensions import db
from meander_site.models import Booking, Lead


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
