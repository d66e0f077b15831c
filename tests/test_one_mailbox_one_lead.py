"""One mailbox, one lead: every spelling of an address that reaches the same mailbox is the same lead."""

import unicodedata

import pytest
from conftest import VALID_BOOKING, book, make_lead, run_jobs, staff_csrf

from meander_site import leads
from meander_site.extensions import db
from meander_site.models import Booking, Lead

# (typed first, typed later, stored): each pair is one mailbox; the domain is kept in its Unicode form.
SAME_MAILBOX = [
    pytest.param("kari@ｄｅｄｕｐｅ.no", "kari@dedupe.no", "kari@dedupe.no", id="fullwidth-letters"),
    pytest.param("kari@ﬁrma.no", "kari@firma.no", "kari@firma.no", id="fi-ligature"),
    pytest.param("kari@bær.no", "kari@xn--br-1ia.no", "kari@bær.no", id="unicode-vs-punycode"),
    pytest.param("kari@xn--br-1ia.no", "KARI@BÆR.NO", "kari@bær.no", id="punycode-first"),
    pytest.param(
        unicodedata.normalize("NFC", "kari@blå.no"), unicodedata.normalize("NFD", "kari@blå.no"), "kari@blå.no",
        id="nfc-vs-nfd",
    ),
]


def leads_and_bookings(app) -> list[tuple[str, int, int]]:
    with app.app_context():
        return [
            (lead.email, lead.booking_count, len(lead.bookings))
            for lead in db.session.execute(db.select(Lead)).scalars()
        ]


@pytest.mark.parametrize(("first", "later", "stored"), SAME_MAILBOX)
def test_rebooking_with_another_spelling_of_the_same_mailbox_updates_the_one_lead(app, client, first, later, stored):
    assert book(client, email=first).status_code == 303
    assert book(client, email=later).status_code == 303

    assert leads_and_bookings(app) == [(stored, 2, 2)]
    with app.app_context():
        assert set(db.session.execute(db.select(Booking.email)).scalars()) == {stored}


@pytest.mark.parametrize(("first", "later", "stored"), SAME_MAILBOX)
def test_the_canonical_address_is_its_own_canonical_form(first, later, stored):
    assert leads.normalize_email(first) == leads.normalize_email(later) == stored
    assert leads.normalize_email(stored) == stored


def test_a_staff_edit_to_another_spelling_of_a_known_mailbox_is_refused(app, staff_client):
    lead = make_lead(app, email="forste@eksempel.no")
    make_lead(app, email="kari@bær.no")
    token = staff_csrf(staff_client)

    response = staff_client.post(
        f"/pipeline/leads/{lead['id']}", data={**VALID_BOOKING, "email": "kari@xn--br-1ia.no", "csrf_token": token}
    )

    assert response.status_code == 422
    assert "En annen lead har allerede denne e-postadressen" in response.get_data(as_text=True)
    assert sorted(email for email, _, _ in leads_and_bookings(app)) == ["forste@eksempel.no", "kari@bær.no"]


def test_a_staff_created_lead_typed_in_punycode_finds_the_lead_booked_in_unicode(app, staff_client):
    make_lead(app, email="kari@blåbær.no")
    token = staff_csrf(staff_client)

    response = staff_client.post(
        "/pipeline/leads/new",
        data={**VALID_BOOKING, "email": "Kari@xn--blbr-roah.no", "source": "phone", "csrf_token": token},
    )

    assert response.status_code == 303
    assert leads_and_bookings(app) == [("kari@blåbær.no", 2, 2)]


def test_a_lead_booked_with_a_fullwidth_domain_is_mailed_at_the_plain_domain(app, client, smtp_server):
    assert book(client, email="kari@ｌｈｌ.no").status_code == 303
    run_jobs(app)

    [message] = smtp_server.wait_for(1)
    assert message["X-RcptTo"] == "kari@lhl.no"


def test_a_lead_stored_with_a_unicode_domain_is_mailed_at_its_punycode_form(app, client, smtp_server):
    assert book(client, email="kari@xn--br-1ia.no").status_code == 303
    run_jobs(app)

    [message] = smtp_server.wait_for(1)
    assert message["X-RcptTo"] == "kari@xn--br-1ia.no"
