"""Business rules of the lead: one lead per email (the upsert), masked_ref never changes, the status pipeline."""

import pytest
import sqlalchemy as sa
from helpers.booking import VALID_BOOKING, book, confirmation_rows
from helpers.jobs import run_jobs

from meander_site.booking import book_demo
from meander_site.extensions import db
from meander_site.leads import validation
from meander_site.leads.models import Booking, Lead, LeadSource, MaskedRefImmutableError
from meander_site.leads.statuses import (
    StatusTransitionError,
    UnknownStatusError,
    allowed_moves,
    can_move,
    check_transition,
)


def the_lead() -> Lead:
    return db.session.execute(db.select(Lead)).scalar_one()


# --- unique_email_per_lead ---------------------------------------------------------------------------

REBOOKING = {
    "email": "  KARI.Nordmann@LHL.no ",
    "first_name": "Kari Anne",
    "phone": "+46 70 123 45 67",
    "organization_name": "LHL",
    "role_title": "Daglig leder",
    "organization_size": "201-1000",
    "current_solution": "Papir og perm",
    "preferred_demo_timing": "Onsdager før lunsj",
    "notes": "Vi har vokst siden sist.",
}


def test_rebooking_same_email_in_other_case_updates_a_new_lead_and_keeps_its_identity(app, client):
    first = book(client)
    with app.app_context():
        lead = the_lead()
        lead_id, masked_ref, created_at = lead.id, lead.masked_ref, lead.created_at

    second = book(client, **REBOOKING)

    assert first.status_code == second.status_code == 303
    assert first.headers["Location"] == f"/confirm/{masked_ref}"
    assert second.headers["Location"] == "/demo/mottatt"
    with app.app_context():
        lead = the_lead()
        assert (lead.id, lead.masked_ref, lead.created_at) == (lead_id, masked_ref, created_at)
        assert lead.status == "new"
        assert lead.booking_count == 2
        assert lead.email == "kari.nordmann@lhl.no"
        assert lead.first_name == "Kari Anne"
        assert lead.phone == "+46701234567"
        assert lead.organization_name == "LHL"
        assert lead.role_title == "Daglig leder"
        assert lead.organization_size == "201-1000"
        assert lead.notes == "Vi har vokst siden sist."
        assert lead.updated_at >= created_at
        assert lead.newer_details_booking_id is None


def test_rebooking_keeps_every_earlier_submission_in_the_booking_history(app, client):
    book(client)
    book(client, **REBOOKING)

    with app.app_context():
        history = the_lead().bookings
        assert [booking.notes for booking in history] == [VALID_BOOKING["notes"], REBOOKING["notes"]]
        assert [booking.preferred_demo_timing for booking in history] == [
            VALID_BOOKING["preferred_demo_timing"],
            REBOOKING["preferred_demo_timing"],
        ]
        assert [booking.current_solution for booking in history] == [
            VALID_BOOKING["current_solution"],
            REBOOKING["current_solution"],
        ]
        assert [booking.first_name for booking in history] == ["Kari", "Kari Anne"]
        assert history[0].created_at <= history[1].created_at


def test_different_emails_make_different_leads(app, client):
    book(client)
    book(client, email="ola@lhl.no")

    with app.app_context():
        emails = db.session.execute(db.select(Lead.email).order_by(Lead.email)).scalars().all()
        assert emails == ["kari.nordmann@lhl.no", "ola@lhl.no"]


def test_rebooking_sends_a_new_confirmation_and_never_resends_the_first(app, client, smtp_server):
    location = book(client).headers["Location"]
    assert run_jobs(app) == 1
    smtp_server.wait_for(1)

    book(client, **REBOOKING)
    assert run_jobs(app) == 1

    first, second = smtp_server.wait_for(2)
    assert len(smtp_server.messages()) == 2
    link = "https://demo.meander.test" + location
    assert link in first.get_body(preferencelist=("plain",)).get_content()
    assert link in second.get_body(preferencelist=("plain",)).get_content()
    assert "Kari Anne" in second.get_body(preferencelist=("plain",)).get_content()
    with app.app_context():
        lead = the_lead()
        assert lead.confirmation_sent_at is not None
        booking_ids = {booking.id for booking in lead.bookings}
    mails = confirmation_rows(app)
    assert {mail.booking_id for mail in mails} == booking_ids and all(mail.sent_at for mail in mails)


def test_book_demo_never_touches_source_status_or_ref_of_an_existing_lead(app):
    details = validation.validate_contact_details(VALID_BOOKING)
    with app.app_context():
        first = book_demo.book_demo(details, ip_address="192.0.2.1", source=LeadSource.REFERRAL)
        again = book_demo.book_demo(details, ip_address="192.0.2.2", source=LeadSource.WEBSITE)

        assert (again.lead_id, again.masked_ref) == (first.lead_id, first.masked_ref)
        assert (first.booking_count, again.booking_count) == (1, 2)
        assert again.is_rebooking and not first.is_rebooking
        lead = the_lead()
        assert lead.source == "referral"
        assert lead.status == "new"
        assert lead.ip_address == "192.0.2.2"


# --- masked_ref_immutability -------------------------------------------------------------------------


def test_assigning_a_new_masked_ref_through_the_orm_is_refused(app, client):
    book(client)
    with app.app_context():
        lead = the_lead()
        original = lead.masked_ref
        with pytest.raises(MaskedRefImmutableError):
            lead.masked_ref = "a-brand-new-reference-xyz"
        db.session.commit()
        db.session.expire_all()
        assert the_lead().masked_ref == original


def test_masked_ref_stays_immutable_on_a_lead_loaded_before_a_commit(app, client):
    # The everyday path: load, change something, commit (which expires the object), then touch masked_ref.
    book(client)
    with app.app_context():
        lead = the_lead()
        original = lead.masked_ref
        lead.status = "contacted"
        db.session.commit()
        with pytest.raises(MaskedRefImmutableError):
            lead.masked_ref = "a-brand-new-reference-xyz"
            db.session.flush()
        db.session.rollback()
        assert the_lead().masked_ref == original


def test_bulk_update_of_masked_ref_is_refused(app, client):
    book(client)
    with app.app_context():
        original = the_lead().masked_ref
        with pytest.raises(MaskedRefImmutableError):
            db.session.execute(sa.update(Lead).values(masked_ref="bulk-rewritten-reference"))
        db.session.rollback()
        assert the_lead().masked_ref == original


def test_raw_sql_update_of_masked_ref_is_refused_by_the_database(app, client):
    book(client)
    with app.app_context():
        original = the_lead().masked_ref
        with pytest.raises(sa.exc.DBAPIError, match="masked_ref is immutable"):
            db.session.execute(sa.text("UPDATE leads SET masked_ref = 'raw-sql-reference'"))
            db.session.commit()
        db.session.rollback()
        # Other columns stay editable with plain SQL: the guard is about masked_ref only.
        db.session.execute(sa.text("UPDATE leads SET status = 'qualified'"))
        db.session.commit()
        lead = the_lead()
        assert (lead.masked_ref, lead.status) == (original, "qualified")


def test_rebooking_never_changes_the_masked_ref(app, client):
    first = book(client).headers["Location"]
    for n in range(3):
        assert book(client, notes=f"runde {n}").status_code == 303
    with app.app_context():
        assert first == f"/confirm/{the_lead().masked_ref}"


# --- status_transition_ordering ----------------------------------------------------------------------

STATUSES = ["new", "contacted", "qualified", "demo_scheduled", "converted", "lost"]
ALLOWED = {
    "new": {"contacted", "qualified", "demo_scheduled", "converted", "lost"},
    "contacted": {"qualified", "demo_scheduled", "converted", "lost"},
    "qualified": {"demo_scheduled", "converted", "lost"},
    "demo_scheduled": {"converted", "lost"},
    "converted": set(),
    "lost": set(),
}


@pytest.mark.parametrize("origin", STATUSES)
@pytest.mark.parametrize("target", STATUSES)
def test_status_move_is_allowed_exactly_when_the_pipeline_says_so(origin, target):
    expected = target in ALLOWED[origin]

    assert can_move(origin, target) is expected
    if expected:
        check_transition(origin, target)
    else:
        with pytest.raises(StatusTransitionError) as caught:
            check_transition(origin, target)
        assert (caught.value.from_status, caught.value.to_status) == (origin, target)
        assert caught.value.message.strip()


@pytest.mark.parametrize("origin", STATUSES)
def test_allowed_moves_lists_exactly_the_permitted_targets(origin):
    assert {status.value for status in allowed_moves(origin)} == ALLOWED[origin]


@pytest.mark.parametrize(
    ("origin", "target", "words"),
    [
        ("contacted", "contacted", "allerede"),
        ("converted", "lost", "sluttstatus"),
        ("lost", "new", "sluttstatus"),
        ("qualified", "new", "fremover"),
        ("demo_scheduled", "contacted", "fremover"),
    ],
)
def test_refused_move_is_explained_in_norwegian(origin, target, words):
    with pytest.raises(StatusTransitionError) as caught:
        check_transition(origin, target)

    assert words in str(caught.value)


def test_moves_to_or_from_an_unknown_status_are_refused():
    with pytest.raises(UnknownStatusError):
        can_move("new", "bogus")
    with pytest.raises(UnknownStatusError):
        check_transition("bogus", "lost")


def test_booking_history_survives_only_with_its_lead(app, client):
    book(client)
    book(client, **REBOOKING)
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(Booking)) == 2
        assert {booking.email for booking in db.session.execute(db.select(Booking)).scalars()} == {
            "kari.nordmann@lhl.no"
        }
