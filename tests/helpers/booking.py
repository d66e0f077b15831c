"""A prospect's booking: the form's values, posting it as a browser would, and reading back what it stored."""

import re

import sqlalchemy as sa

from meander_site.booking import book_demo, confirmation_mail
from meander_site.extensions import db
from meander_site.leads import validation
from meander_site.leads.models import Booking, Lead
from meander_site.mail.models import OutboxMessage

VALID_BOOKING = {
    "first_name": "Kari",
    "last_name": "Nordmann",
    "email": "kari.nordmann@lhl.no",
    "phone": "912 34 567",
    "organization_name": "LHL Hjerneslag",
    "role_title": "Koordinator",
    "organization_size": "51-200",
    "current_solution": "Excel og e-post",
    "preferred_demo_timing": "Tirsdager etter kl. 12",
    "notes": "Vi har 120 likepersoner i fem fylker.",
}

CSRF_INPUT = re.compile(r'name="csrf_token"[^>]*value="([^"]+)"')


def csrf_token(client) -> str:
    page = client.get("/demo")
    match = CSRF_INPUT.search(page.get_data(as_text=True))
    assert match, "the booking form carries a CSRF token"
    return match.group(1)


def book(client, headers=None, environ_overrides=None, **fields):
    """Submit the public form as a browser would: fetch it for the CSRF token, then post."""
    data = {**VALID_BOOKING, **fields}
    data = {key: value for key, value in data.items() if value is not None}
    data["csrf_token"] = csrf_token(client)
    return client.post("/demo", data=data, headers=headers or {}, environ_overrides=environ_overrides or {})


def make_lead(app, **fields) -> dict:
    """A lead booked through the domain layer; returns its id and masked_ref."""

    with app.app_context():
        details = validation.validate_contact_details({**VALID_BOOKING, **fields})
        result = book_demo.book_demo(details, ip_address="198.51.100.7")
        return {"id": result.lead_id, "masked_ref": result.masked_ref, "booking_id": result.booking_id}


def stored_counts(app) -> tuple[int, int]:
    """How many leads and bookings the database holds."""
    with app.app_context():
        leads = db.session.scalar(sa.select(sa.func.count()).select_from(Lead))
        bookings = db.session.scalar(sa.select(sa.func.count()).select_from(Booking))
        return leads, bookings


def only_lead(app) -> Lead:
    """The one lead there is (fails if there is none or more), detached for reading."""
    with app.app_context():
        lead = db.session.execute(db.select(Lead)).scalar_one()
        db.session.expunge(lead)
        return lead


def confirmation_rows(app) -> list:
    """Every confirmation in the outbox, oldest first, detached for reading."""

    with app.app_context():
        rows = list(
            db.session.execute(
                sa.select(OutboxMessage)
                .where(OutboxMessage.kind == confirmation_mail.KIND)
                .order_by(OutboxMessage.created_at, OutboxMessage.id)
            ).scalars()
        )
        db.session.expunge_all()
        return rows
