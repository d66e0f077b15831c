"""unique_email_per_lead under real concurrency: simultaneous bookings with one email make one lead."""

import threading

import sqlalchemy as sa
from helpers.booking import CSRF_INPUT, VALID_BOOKING
from helpers.waiting import run_together

from meander_site.booking import book_demo
from meander_site.extensions import db
from meander_site.leads import validation
from meander_site.leads.models import Booking, Lead

THREADS = 10
EMAILS = [
    "kari.nordmann@lhl.no",
    "KARI.NORDMANN@LHL.NO",
    "Kari.Nordmann@lhl.no",
    "kari.NORDMANN@lhl.no",
    " kari.nordmann@LHL.no ",
]


def assert_one_lead_with(app, count: int) -> Lead:
    with app.app_context():
        lead = db.session.execute(db.select(Lead)).scalar_one()
        bookings = db.session.scalar(sa.select(sa.func.count()).select_from(Booking).where(Booking.lead_id == lead.id))
        assert lead.email == "kari.nordmann@lhl.no"
        assert lead.booking_count == count
        assert bookings == count
        db.session.expunge(lead)
        return lead


def test_simultaneous_form_posts_with_one_email_make_one_lead_with_every_booking_counted(app):
    def post(n: int, barrier: threading.Barrier):
        client = app.test_client()
        address = {"REMOTE_ADDR": f"10.1.0.{n + 1}"}  # one IP each, so the rate limit stays out of it
        page = client.get("/demo", environ_overrides=address).get_data(as_text=True)
        data = {
            **VALID_BOOKING,
            "email": EMAILS[n % len(EMAILS)],
            "notes": f"Innsending nr. {n}",
            "csrf_token": CSRF_INPUT.search(page).group(1),
        }
        barrier.wait()
        response = client.post("/demo", data=data, environ_overrides=address)
        return response.status_code, response.headers.get("Location")

    results = run_together(THREADS, post)

    assert [status for status, _ in results] == [303] * THREADS
    locations = sorted(location for _, location in results)
    lead = assert_one_lead_with(app, THREADS)
    # Only the booking that made the lead sees its page; the others get the neutral one.
    assert locations == sorted([f"/confirm/{lead.masked_ref}"] + ["/demo/mottatt"] * (THREADS - 1))
    with app.app_context():
        notes = set(db.session.execute(sa.select(Booking.notes)).scalars())
        assert notes == {f"Innsending nr. {n}" for n in range(THREADS)}


def test_simultaneous_domain_bookings_with_one_email_make_one_lead(app):
    def book(n: int, barrier: threading.Barrier):
        details = validation.validate_contact_details({**VALID_BOOKING, "email": EMAILS[n % len(EMAILS)]})
        with app.app_context():
            barrier.wait()
            result = book_demo.book_demo(details, ip_address=f"10.2.0.{n + 1}")
            return result.lead_id, result.masked_ref, result.booking_count

    results = run_together(THREADS, book)

    assert len({(lead_id, ref) for lead_id, ref, _ in results}) == 1
    assert sorted(count for _, _, count in results) == list(range(1, THREADS + 1))
    lead = assert_one_lead_with(app, THREADS)
    assert results[0][1] == lead.masked_ref
