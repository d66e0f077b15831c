"""Races with real threads around one address: a burst of bookings against the mail cap, and bookings
that commit while staff erase their lead (issue 7, items 1 and 7)."""

import threading
import time
import uuid

import sqlalchemy as sa
from helpers.booking import CSRF_INPUT, VALID_BOOKING, make_lead
from helpers.jobs import run_jobs
from helpers.waiting import run_together

from meander_site.accounts.models import User
from meander_site.booking import book_demo, confirmation_mail
from meander_site.extensions import db
from meander_site.leads import records, validation
from meander_site.leads.models import Booking, Lead
from meander_site.mail.models import OutboxMessage

BURST = 10


def get_form_token(client, address: dict) -> str:
    page = client.get("/demo", environ_overrides=address).get_data(as_text=True)
    return CSRF_INPUT.search(page).group(1)


def post_booking(client, address: dict, token: str, notes: str):
    data = {**VALID_BOOKING, "notes": notes, "csrf_token": token}
    return client.post("/demo", data=data, environ_overrides=address)


def wait_until(condition, timeout: float = 20.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.01)


def stored_notes(app) -> set[str]:
    with app.app_context():
        return set(db.session.execute(sa.select(Booking.notes)).scalars())


def test_a_burst_of_bookings_for_one_address_from_many_ips_gets_at_most_three_mails(app, smtp_server):
    def post(n: int, barrier: threading.Barrier):
        client = app.test_client()
        address = {"REMOTE_ADDR": f"10.3.0.{n + 1}"}
        token = get_form_token(client, address)
        barrier.wait()
        return post_booking(client, address, token, f"Storm nr. {n}").status_code

    assert run_together(BURST, post) == [303] * BURST

    run_jobs(app)
    smtp_server.wait_for(3)
    assert run_jobs(app) == 0
    assert len(smtp_server.messages()) == 3
    assert stored_notes(app) == {f"Storm nr. {n}" for n in range(BURST)}
    with app.app_context():
        mails = db.session.execute(
            sa.select(OutboxMessage.sent_at, OutboxMessage.closed_reason).where(
                OutboxMessage.kind == confirmation_mail.KIND
            )
        ).all()
    # Every booking has its row: three sent, the rest closed as capped (so staff see why none went).
    assert sorted("sent" if sent_at else reason for sent_at, reason in mails) == ["capped"] * 7 + ["sent"] * 3


def sessions_waiting_on_a_lock(app) -> int:
    with app.app_context():
        with db.engine.connect() as connection:
            return connection.scalar(
                sa.text(
                    "SELECT count(*) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND wait_event_type = 'Lock'"
                )
            )


def test_bookings_that_commit_while_staff_erase_their_lead_survive_as_a_new_lead(app, staff_user):
    """The erasure is held right after it deleted the lead's bookings; bookings for that address arrive
    then. Each must exist afterwards (without the fix they committed, got their 303, and went with the
    lead's ON DELETE CASCADE)."""
    erased = make_lead(app)
    count = 4
    erasing, entered, done = {}, set(), set()
    paused, resume = threading.Event(), threading.Event()
    with app.app_context():
        engine = db.engine
        is_postgres = engine.dialect.name == "postgresql"

    def hold_the_erasure(conn, cursor, statement, parameters, context, executemany):
        if threading.get_ident() == erasing.get("thread") and statement.lstrip().upper().startswith(
            "DELETE FROM BOOKINGS"
        ):
            paused.set()
            resume.wait(30)

    def note_booking_upsert(conn, cursor, statement, parameters, context, executemany):
        # Its first write: choosing the owner, or (with nobody to choose) the upsert.
        if statement.lstrip().upper().startswith(("UPDATE USERS", "INSERT INTO LEADS")):
            entered.add(threading.get_ident())

    def erase():
        erasing["thread"] = threading.get_ident()
        with app.app_context():
            records.erase(erased["id"], by=db.session.get(User, staff_user["id"]))

    results = {}

    def booking(n: int):
        client = app.test_client()
        address = {"REMOTE_ADDR": f"10.4.0.{n + 1}"}
        token = get_form_token(client, address)
        paused.wait(20)
        results[n] = post_booking(client, address, token, f"Under slettingen nr. {n}").status_code
        done.add(n)

    sa.event.listen(engine, "after_cursor_execute", hold_the_erasure)
    sa.event.listen(engine, "before_cursor_execute", note_booking_upsert)
    try:
        eraser = threading.Thread(target=erase)
        bookers = [threading.Thread(target=booking, args=(n,)) for n in range(count)]
        eraser.start()
        for thread in bookers:
            thread.start()
        assert paused.wait(20), "the erasure reached its bookings DELETE"

        def every_booking_committed_or_queued() -> bool:
            if is_postgres:
                return len(done) + sessions_waiting_on_a_lock(app) >= count
            # SQLite: the erasure holds the write lock, so a booking that reached its upsert is queued.
            return len(entered) >= count

        wait_until(every_booking_committed_or_queued, what="the bookings to commit or queue behind the erasure")
        resume.set()
        eraser.join(30)
        for thread in bookers:
            thread.join(30)
    finally:
        resume.set()
        sa.event.remove(engine, "after_cursor_execute", hold_the_erasure)
        sa.event.remove(engine, "before_cursor_execute", note_booking_upsert)

    assert results == dict.fromkeys(range(count), 303)
    assert stored_notes(app) == {f"Under slettingen nr. {n}" for n in range(count)}
    with app.app_context():
        assert db.session.get(Lead, erased["id"]) is None
        lead = db.session.execute(sa.select(Lead)).scalar_one()
        assert (lead.email, lead.booking_count, lead.status) == ("kari.nordmann@lhl.no", count, "new")


def race_bookings_against_an_erasure(app, staff_user, round_number: int, bookers: int):
    """One lead; its erasure and `bookers` bookings for its address start together. Returns the erased
    lead, the ids the erasure reports erasing, and the ids of the bookings that returned."""
    erased = make_lead(app, notes=f"Runde {round_number}")
    erased_ids: set[uuid.UUID] = set()

    def work(n: int, barrier: threading.Barrier):
        with app.app_context():
            if n == 0:
                user = db.session.get(User, staff_user["id"])
                barrier.wait()
                erased_ids.update(records.erase(erased["id"], by=user))
                return None
            details = validation.validate_contact_details({**VALID_BOOKING, "notes": f"{round_number}/{n}"})
            barrier.wait()
            return book_demo.book_demo(details, ip_address=f"10.5.{round_number}.{n}").booking_id

    booked = {booking_id for booking_id in run_together(bookers + 1, work) if booking_id}
    return erased, erased_ids, booked


def test_erasure_racing_bookings_loses_none_that_it_did_not_erase(app, staff_user):
    """Free-running races, several rounds: every booking that returned either exists afterwards or is one
    the erasure reported erasing (it committed before the erasure began)."""
    for round_number in range(6):
        erased, erased_ids, booked = race_bookings_against_an_erasure(app, staff_user, round_number, bookers=6)

        with app.app_context():
            existing = set(db.session.execute(sa.select(Booking.id)).scalars())
            assert db.session.get(Lead, erased["id"]) is None
        assert erased["booking_id"] in erased_ids
        assert not existing & erased_ids
        lost = booked - existing - erased_ids
        assert not lost, f"round {round_number}: {len(lost)} committed booking(s) vanished"
        with app.app_context():
            db.session.execute(sa.delete(Booking))
            db.session.execute(sa.delete(Lead))
            db.session.commit()


def test_bookings_queued_on_the_lead_row_lock_count_every_one_committed_while_they_waited(app):
    """The cap's count runs in a statement after the upsert's: a booking that waited for the lead's row
    lock sees the confirmations committed meanwhile. (Counted inside the upsert's own statement, its
    snapshot predates the wait and every queued booking would mail.)"""
    make_lead(app)  # the first confirmation; its lead's row is what the others queue on
    count = 6
    entered = set()
    with app.app_context():
        engine = db.engine
        is_postgres = engine.dialect.name == "postgresql"

    def note_booking_upsert(conn, cursor, statement, parameters, context, executemany):
        if statement.lstrip().upper().startswith("UPDATE USERS") or "INSERT INTO LEADS" in statement.upper():
            entered.add(threading.get_ident())

    def book(n: int, barrier: threading.Barrier):
        with app.app_context():
            details = validation.validate_contact_details({**VALID_BOOKING, "notes": f"I kø nr. {n}"})
            barrier.wait()
            return book_demo.book_demo(details, ip_address=f"10.6.0.{n + 1}").mail_due

    sa.event.listen(engine, "before_cursor_execute", note_booking_upsert)
    holder = engine.connect()
    try:
        if is_postgres:
            holder.execute(sa.select(Lead.id).with_for_update())
        else:
            holder.exec_driver_sql("BEGIN IMMEDIATE")  # SQLite: the write lock every upsert waits for
        results = []
        booking = threading.Thread(target=lambda: results.extend(run_together(count, book)))
        booking.start()

        def every_booking_queued() -> bool:
            if is_postgres:
                return sessions_waiting_on_a_lock(app) >= count
            return len(entered) >= count

        wait_until(every_booking_queued, what="every booking to queue behind the lead's lock")
        holder.rollback()
        booking.join(60)
    finally:
        holder.close()
        sa.event.remove(engine, "before_cursor_execute", note_booking_upsert)

    assert sorted(results) == [False] * (count - 2) + [True] * 2
    with app.app_context():
        reasons = db.session.execute(
            sa.select(OutboxMessage.closed_reason).where(OutboxMessage.kind == confirmation_mail.KIND)
        ).scalars()
        assert sorted(reason or "due" for reason in reasons) == ["capped"] * (count - 2) + ["due"] * 3
