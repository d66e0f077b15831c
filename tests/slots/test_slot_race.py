"""Twenty prospects post the same slot at once with one host: exactly one demo at that time, twenty leads stored,
nineteen pages offering other times. Real threads, a real database (SQLite's one write transaction, PostgreSQL's
advisory lock and exclusion constraint)."""

import re
import threading

import pytest
import sqlalchemy as sa
from helpers.accounts import make_user
from helpers.booking import CSRF_INPUT, VALID_BOOKING, make_lead
from helpers.staff import STAFF_PASSWORD
from helpers.waiting import run_together, wait_until, waiting_for_locks

from meander_site.booking import book_demo
from meander_site.extensions import db
from meander_site.leads import validation
from meander_site.leads.models import Lead
from meander_site.slots import availability, claims, manage, offer
from meander_site.slots.models import SlotClaim

PROSPECTS = 20
SLOT_INPUT = re.compile(r'<input type="radio" id="slot-[0-9T-]+" name="slot" value="([0-9T:-]{16})"')


def test_twenty_prospects_posting_one_slot_with_one_host_get_one_demo_and_nineteen_other_offers(app, staff_user):
    first_client = app.test_client()
    slot = SLOT_INPUT.search(first_client.get("/demo").get_data(as_text=True)).group(1)

    def post(n: int, barrier):
        client = app.test_client()
        address = {"REMOTE_ADDR": f"10.19.0.{n + 1}"}
        token = CSRF_INPUT.search(client.get("/demo", environ_overrides=address).get_data(as_text=True)).group(1)
        data = {**VALID_BOOKING, "email": f"prospekt{n}@lhl.no", "slot": slot, "csrf_token": token}
        barrier.wait()
        response = client.post("/demo", data=data, environ_overrides=address)
        page = client.get(response.headers["Location"], environ_overrides=address).get_data(as_text=True)
        return response.status_code, "tatt=1" in response.headers["Location"], page

    results = run_together(PROSPECTS, post)

    assert [status for status, _, _ in results] == [303] * PROSPECTS
    taken_pages = [page for _, taken, page in results if taken]
    booked_pages = [page for _, taken, page in results if not taken]
    assert len(booked_pages) == 1 and "Demoen er avtalt" in booked_pages[0]
    assert len(taken_pages) == PROSPECTS - 1
    for page in taken_pages:
        offered = SLOT_INPUT.findall(page)
        assert "Tidspunktet ble nettopp tatt" in page and offered and slot not in offered
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(Lead)) == PROSPECTS
        claims = db.session.execute(sa.select(SlotClaim)).scalars().all()
        assert len(claims) == 1
        scheduled = db.session.scalar(
            sa.select(sa.func.count()).select_from(Lead).where(Lead.status == "demo_scheduled")
        )
        assert scheduled == 1


def test_prospects_booking_different_times_at_once_with_three_hosts_all_get_a_page(app, staff_user):
    """Every host in the assignment pool, every pool member held by some booking at some moment: a booking
    that has written its lead must not wait for the members other bookings hold (a deadlock on PostgreSQL,
    found by bench/ as 500s)."""
    for n in (1, 2):
        make_user(app, f"vert{n}@meander.no", f"Vert {n}", STAFF_PASSWORD)
    offered = SLOT_INPUT.findall(app.test_client().get("/demo").get_data(as_text=True))
    prospects = min(16, len(offered))

    def post(n: int, barrier):
        client = app.test_client()
        address = {"REMOTE_ADDR": f"10.20.0.{n + 1}"}
        token = CSRF_INPUT.search(client.get("/demo", environ_overrides=address).get_data(as_text=True)).group(1)
        data = {**VALID_BOOKING, "email": f"flere{n}@lhl.no", "slot": offered[n], "csrf_token": token}
        barrier.wait()
        return client.post("/demo", data=data, environ_overrides=address).status_code

    for _ in range(3):  # a race has to be given its chances
        assert run_together(prospects, post) == [303] * prospects
        with app.app_context():
            db.session.execute(sa.delete(SlotClaim))
            db.session.execute(sa.delete(Lead))
            db.session.commit()
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(Lead)) == 0


@pytest.mark.parametrize("change", ["pick", "move"])
def test_a_prospect_changing_the_demo_on_the_page_while_their_form_books_the_same_day_is_no_deadlock(
    app, staff_user, change
):
    """The confirmation page's pick or move (manage.book_for_lead, manage.move_demo) and the form's booking with a
    time (book_demo) take the same two locks, the day's and the lead's row: in the same order, or one of them
    deadlocks (a 500). The day is held by a third transaction until both are under way and waiting, the form's
    first."""
    if app.config["SQLALCHEMY_DATABASE_URI"].startswith("sqlite"):
        pytest.skip("PostgreSQL only: SQLite's one writer cannot deadlock")
    email = "samme@lhl.no"
    lead = make_lead(app, email=email)
    with app.app_context():
        first_days = offer.free_offer().days
        day = first_days[0]
        picked, posted = day.slots[0], day.slots[-1]
        details = validation.validate_contact_details({**VALID_BOOKING, "email": email})
        if change == "move":  # a demo on another day first, moved to this one
            manage.book_for_lead(lead["id"], first_days[1].slots[0].value)
    change_on_page = manage.book_for_lead if change == "pick" else manage.move_demo
    errors: list[BaseException] = []

    def in_app(step):
        def run():
            try:
                with app.app_context():
                    step()
            except BaseException as error:  # reported below
                errors.append(error)

        return threading.Thread(target=run)

    form = in_app(
        lambda: book_demo.book_demo(
            details, ip_address="198.51.100.8", slot=availability.parse_slot_value(posted.value)
        )
    )
    page = in_app(lambda: change_on_page(lead["id"], picked.value))
    with app.app_context(), db.engine.connect() as holder:
        holder.execute(
            sa.text("SELECT pg_advisory_xact_lock(:space, :day)"),
            {"space": claims.ADVISORY_LOCK_SPACE, "day": day.day.toordinal()},
        )
        form.start()
        wait_until(lambda: waiting_for_locks(app) >= 1, 10, "the form's booking to wait for the day")
        page.start()
        wait_until(lambda: waiting_for_locks(app) >= 2, 10, "the page's pick to wait too")
        holder.commit()
    form.join(timeout=30)
    page.join(timeout=30)

    assert not form.is_alive() and not page.is_alive(), "a step still waits"
    assert not errors, errors
    with app.app_context():
        stored = db.session.get(Lead, lead["id"])
        assert stored.status == "demo_scheduled"
        # The form went first: it booked its time for a lead without a demo (the page's pick then keeps that one),
        # and kept the demo a lead already had (the page's move then moves it).
        expected = posted if change == "pick" else picked
        assert stored.demo_at == availability.parse_slot_value(expected.value)
        assert db.session.scalar(sa.select(sa.func.count()).select_from(SlotClaim)) == 1
