"""One mailbox, one lead: every spelling of an address that reaches the same mailbox is the same lead."""

import unicodedata

import pytest
import sqlalchemy as sa
from flask_migrate import upgrade
from helpers.app import app_config
from helpers.booking import VALID_BOOKING, book, make_lead
from helpers.jobs import run_jobs
from helpers.migrations import day, insert_lead
from helpers.staff import staff_csrf

from meander_site import create_app
from meander_site.core import email_address
from meander_site.extensions import db
from meander_site.leads.models import Booking, Lead, LeadStatusChange, LeadStatusCount

# (typed first, typed later, stored): each pair is one mailbox; the domain is kept in its Unicode form.
SAME_MAILBOX = [
    pytest.param("kari@ｄｅｄｕｐｅ.no", "kari@dedupe.no", "kari@dedupe.no", id="fullwidth-letters"),
    pytest.param("kari@ﬁrma.no", "kari@firma.no", "kari@firma.no", id="fi-ligature"),
    pytest.param("kari@bær.no", "kari@xn--br-1ia.no", "kari@bær.no", id="unicode-vs-punycode"),
    pytest.param("kari@xn--br-1ia.no", "KARI@BÆR.NO", "kari@bær.no", id="punycode-first"),
    pytest.param(
        unicodedata.normalize("NFC", "kari@blå.no"),
        unicodedata.normalize("NFD", "kari@blå.no"),
        "kari@blå.no",
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
    assert email_address.normalize_email(first) == email_address.normalize_email(later) == stored
    assert email_address.normalize_email(stored) == stored


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


# --- the migration that merges the leads stored before ----------------------------------------------


def moves_of(lead_id) -> list[str]:
    return list(
        db.session.execute(
            sa.select(LeadStatusChange.to_status)
            .where(LeadStatusChange.lead_id == lead_id)
            .order_by(LeadStatusChange.changed_at)
        ).scalars()
    )


def test_the_migration_merges_leads_whose_addresses_are_one_mailbox(empty_database_url, redis_url, smtp_server):
    app = create_app(app_config(empty_database_url, redis_url, smtp_server))
    with app.app_context():
        upgrade(revision="0002")
        punycode = insert_lead("kari@xn--br-1ia.no", created=2, status="contacted", moved=5, bookings=2)
        unicode_first = insert_lead("kari@bær.no", created=1)
        nfd_converted = insert_lead(unicodedata.normalize("NFD", "ola@blå.no"), created=3, status="converted", moved=6)
        nfc_earlier = insert_lead(unicodedata.normalize("NFC", "ola@blå.no"), created=2, status="qualified", moved=4)
        fullwidth = insert_lead("per@ｄｅｄｕｐｅ.no", created=7)
        ligature_alone = insert_lead("anne@ﬁrma.no", created=8, status="lost", moved=9)
        untouched = insert_lead("siri@lhl.no", created=9)
        plain = insert_lead("per@dedupe.no", created=8, status="contacted", moved=8)
        db.session.commit()

        upgrade(revision="0004")
        upgrade()  # later revisions only add columns and tables: read 0004's merge through today's models

        merged = {lead.email: lead for lead in db.session.execute(sa.select(Lead)).scalars()}
        assert sorted(merged) == sorted(["kari@bær.no", "ola@blå.no", "per@dedupe.no", "anne@firma.no", "siri@lhl.no"])
        kari, ola, per = merged["kari@bær.no"], merged["ola@blå.no"], merged["per@dedupe.no"]
        # The earliest lead survives with its id and ref; the others' counts, bookings and moves join it.
        assert (kari.id, kari.masked_ref, kari.created_at) == (
            unicode_first["id"],
            unicode_first["masked_ref"],
            unicode_first["created_at"],
        )
        assert kari.booking_count == 3 and len(kari.bookings) == 3
        assert kari.status == "contacted" and kari.status_changed_at == day(5)
        assert kari.updated_at == day(5, 10)
        assert moves_of(kari.id) == ["contacted"]
        assert (ola.id, ola.masked_ref) == (nfc_earlier["id"], nfc_earlier["masked_ref"])
        assert ola.status == "converted", "a final status beats an open one"
        assert moves_of(ola.id) == ["qualified", "converted"]
        assert (per.id, per.masked_ref, per.booking_count) == (fullwidth["id"], fullwidth["masked_ref"], 2)
        assert per.status == "contacted"
        assert merged["anne@firma.no"].id == ligature_alone["id"]
        assert merged["siri@lhl.no"].id == untouched["id"]
        assert {email for email in db.session.execute(sa.select(Booking.email)).scalars()} == set(merged)
        assert db.session.scalar(sa.select(sa.func.count()).select_from(Booking)) == 9
        gone = [punycode["id"], nfd_converted["id"], plain["id"]]
        assert db.session.scalar(sa.select(sa.func.count()).where(Booking.lead_id.in_(gone))) == 0
        assert db.session.scalar(sa.select(sa.func.count()).where(LeadStatusChange.lead_id.in_(gone))) == 0
        # The board's counts (kept by triggers) still match the leads.
        counts = dict(db.session.execute(sa.select(LeadStatusCount.status, LeadStatusCount.lead_count)).all())
        actual = dict(db.session.execute(sa.select(Lead.status, sa.func.count()).group_by(Lead.status)).all())
        assert counts == {status: actual.get(status, 0) for status in counts}
        assert sum(counts.values()) == 5
        db.session.remove()
        db.engine.dispose()
