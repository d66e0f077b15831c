"""One job serves every due mail: a burst of bookings costs one job, each mail still goes exactly once.

The claim hands back what a confirmation needs (no SELECT), a mail that fails in someone else's job gets a
retry job of its own, a job whose lease runs short hands back what it did not try, and the message bytes are
the RFC 5322 message a mail client expects.
"""

import email
import logging
import threading
from email import policy

import pytest
import sqlalchemy as sa
from flask_mail import BadHeaderError, Message
from helpers.booking import make_lead
from helpers.jobs import lose_queued_jobs, run_jobs
from rq.registry import ScheduledJobRegistry

from meander_site.booking import confirmation_mail
from meander_site.core.redis_client import redis_connection
from meander_site.extensions import db
from meander_site.leads.models import Lead
from meander_site.mail import dispatch, smtp, sweep
from meander_site.mail.models import OutboxMessage
from meander_site.worker import jobs as send_jobs

PROSPECTS = [f"prospect{n}@eksempel.no" for n in range(6)]


def book_many(app, addresses) -> list[dict]:
    return [make_lead(app, email=address, organization_name=f"Lag {n}") for n, address in enumerate(addresses)]


def queued_jobs(app) -> list:
    with app.app_context():
        return dispatch.mail_queue(redis_connection()).get_jobs()


def confirmations_by_address(app) -> dict[str, OutboxMessage]:
    with app.app_context():
        rows = db.session.execute(
            sa.select(OutboxMessage).where(OutboxMessage.kind == confirmation_mail.KIND)
        ).scalars()
        result = {row.recipient: row for row in rows}
        db.session.expunge_all()
        return result


def delivered_to(smtp_server) -> list[str]:
    return sorted(mail["X-RcptTo"] for mail in smtp_server.messages())


def test_a_burst_of_bookings_queues_one_job_which_sends_every_confirmation_once(app, smtp_server):
    book_many(app, PROSPECTS)

    jobs = queued_jobs(app)
    assert len(jobs) == 1, "the first booking queued a job; the others found it waiting"
    assert run_jobs(app) == 1

    assert delivered_to(smtp_server) == sorted(PROSPECTS)
    rows = confirmations_by_address(app)
    assert all(row.sent_at is not None and row.attempts == 1 for row in rows.values())
    with app.app_context():
        confirmed = db.session.scalar(
            sa.select(sa.func.count()).select_from(Lead).where(Lead.confirmation_sent_at.is_not(None))
        )
    assert confirmed == len(PROSPECTS)

    # Nothing is left for a second job: a booking now queues one again, and it sends just that mail.
    make_lead(app, email="senere@eksempel.no")
    assert run_jobs(app) == 1
    assert delivered_to(smtp_server) == sorted([*PROSPECTS, "senere@eksempel.no"])


def test_the_job_reads_what_the_mail_needs_from_its_claim_and_records_each_send_in_one_statement(app, smtp_server):
    lead = make_lead(app, email="en@eksempel.no", first_name="Åse", organization_name="Lag Øst")
    statements: list[str] = []

    def remember(conn, cursor, statement, parameters, context, executemany):
        statements.append(statement.split(None, 1)[0].upper())

    with app.app_context():
        message_id = confirmation_mail.message_for(lead["booking_id"]).id
        db.session.remove()
        sa.event.listen(db.engine, "before_cursor_execute", remember)
        try:
            assert send_jobs.send_message(str(message_id)) == "sent"
        finally:
            sa.event.remove(db.engine, "before_cursor_execute", remember)

    [mail] = smtp_server.messages()
    assert (
        "Åse" in mail.get_body(("plain",)).get_content()
        and lead["masked_ref"] in mail.get_body(("html",)).get_content()
    )
    # The claim (lead fields included), the send's record (with the lead's «confirmation sent»), and the claim
    # that found nothing more. No ORM session around them. On PostgreSQL the record first locks the lead's row
    # (SELECT … FOR UPDATE, in the record's transaction), so two jobs recording one lead's mails take turns.
    if db_dialect(app) == "postgresql":
        assert statements == ["UPDATE", "SELECT", "WITH", "UPDATE"]
    else:
        assert "SELECT" not in statements
        assert statements.count("UPDATE") == 4  # SQLite: the record is two statements in one transaction


def db_dialect(app) -> str:
    with app.app_context():
        return db.engine.dialect.name


def test_a_mail_failing_in_the_middle_of_a_batch_gets_its_own_retry_and_the_others_go_once(app, smtp_server):
    failing = PROSPECTS[2]
    smtp_server.fail_for.add(failing)
    book_many(app, PROSPECTS[:5])

    assert run_jobs(app) == 1

    assert delivered_to(smtp_server) == sorted(set(PROSPECTS[:5]) - {failing})
    rows = confirmations_by_address(app)
    assert rows[failing].sent_at is None and rows[failing].attempts == 1 and "451" in rows[failing].last_error
    with app.app_context():
        scheduled = ScheduledJobRegistry(queue=dispatch.mail_queue(redis_connection())).get_job_ids()
    retries = [job_id for job_id in scheduled if job_id.startswith(f"mail-{rows[failing].id}")]
    assert retries == [f"mail-{rows[failing].id}-retry-1"], "a retry job of its own, on RQ's schedule"

    smtp_server.fail_for.clear()
    with app.app_context():
        send_jobs.send_message(str(rows[failing].id))  # what that job does when its time comes
    run_jobs(app)

    assert delivered_to(smtp_server) == sorted(PROSPECTS[:5])
    assert all(row.sent_at is not None for row in confirmations_by_address(app).values())


def test_duplicate_and_concurrent_jobs_send_each_mail_once(app, smtp_server):
    booked = book_many(app, PROSPECTS)
    with app.app_context():
        ids = [confirmation_mail.message_for(lead["booking_id"]).id for lead in booked]
        for message_id in ids:
            dispatch.dispatch(message_id)
            dispatch.enqueue(message_id, dispatch.job_id_for(message_id, "-dup"), trigger="test")

    from helpers.waiting import run_together

    def work(n, barrier):
        with app.app_context():
            barrier.wait()
            return send_jobs.send_message(str(ids[n]))

    run_together(len(ids), work)
    run_jobs(app)

    assert delivered_to(smtp_server) == sorted(PROSPECTS)


def test_a_job_whose_lease_runs_short_hands_back_what_it_did_not_try(app, make_app, smtp_server, caplog):
    # A lease shorter than three SMTP timeouts: after the first mail of each claim, none may start.
    short_lease = make_app(MAIL_SEND_LEASE_SECONDS=4, MAIL_TIMEOUT_SECONDS=2)
    book_many(short_lease, PROSPECTS[:3])

    with caplog.at_level(logging.WARNING):
        ran = run_jobs(short_lease)

    handed_back = [record.count for record in caplog.records if getattr(record, "event", "") == "mail_handed_back"]
    # The job sent its own mail, then the first of its next claim, and handed the third back untried ...
    assert handed_back == [1]
    # ... with a successor queued for it, which sent it.
    assert ran == 2
    assert delivered_to(smtp_server) == sorted(PROSPECTS[:3])
    assert [row.attempts for row in confirmations_by_address(app).values()] == [1, 1, 1], (
        "a mail handed back was not tried"
    )


def test_redis_lost_between_enqueue_and_run_the_sweep_sends_every_mail_once(app, smtp_server):
    book_many(app, PROSPECTS[:4])
    with app.app_context():
        lose_queued_jobs()
        db.session.execute(sa.update(OutboxMessage).values(due_at=sa.func.now()))
        db.session.commit()
        assert sweep.sweep_due() >= 4
    run_jobs(app)

    assert delivered_to(smtp_server) == sorted(PROSPECTS[:4])
    with app.app_context():
        assert sweep.sweep_due() == 0


@pytest.mark.parametrize(
    "subject",
    ["Kort emne", "Vi har mottatt demoforespørselen din – Meander, og her er en lang emnelinje med æøå " * 2],
)
def test_the_message_bytes_parse_back_to_the_same_mail(app, subject):
    with app.app_context():
        message = Message(
            subject=subject,
            recipients=["kari@eksempel.no"],
            body="Hei Kari,\nlinje to med æøå\n",
            html="<p>Hei Kari</p>\n<p>æøå</p>",
            reply_to="Siri Sælger <siri@meander.no>",
        )
        message.attach("invitation.ics", "application/ics", b"BEGIN:VCALENDAR\r\nEND:VCALENDAR\r\n")
        data = smtp.message_bytes(message)

    assert b"\n" not in data.replace(b"\r\n", b""), "every line ends in CRLF"
    assert all(len(line) <= 998 for line in data.split(b"\r\n"))
    parsed = email.message_from_bytes(data, policy=policy.default)
    assert parsed["Subject"] == subject
    assert parsed["To"] == "kari@eksempel.no" and parsed["Reply-To"].addresses[0].display_name == "Siri Sælger"
    assert parsed["Message-ID"] == message.msgId and parsed["Date"] and parsed["MIME-Version"] == "1.0"
    assert parsed.get_body(("plain",)).get_content() == "Hei Kari,\r\nlinje to med æøå\r\n"
    assert parsed.get_body(("html",)).get_content() == "<p>Hei Kari</p>\r\n<p>æøå</p>"
    [attachment] = list(parsed.iter_attachments())
    assert attachment.get_filename() == "invitation.ics"
    assert attachment.get_content() == b"BEGIN:VCALENDAR\r\nEND:VCALENDAR\r\n"


def test_a_header_with_a_line_break_is_refused(app):
    with app.app_context():
        message = Message(subject="Hei\r\nBcc: alle@eksempel.no", recipients=["kari@eksempel.no"], body="x")
        with pytest.raises(BadHeaderError):
            smtp.message_bytes(message)


def test_a_job_out_of_time_queues_a_successor_and_the_next_booking_still_gets_a_job(app, smtp_server, monkeypatch):
    monkeypatch.setattr(send_jobs, "JOB_BUDGET_SECONDS", -1)  # every job is out of time after one batch
    monkeypatch.setattr(send_jobs, "CLAIM_BATCH_SIZE", 50)
    book_many(app, PROSPECTS[:3])

    # The first job sent its own mail and one batch, then queued a successor under an id of its own, which
    # found nothing left and queued none.
    assert run_jobs(app) == 2
    assert delivered_to(smtp_server) == sorted(PROSPECTS[:3])

    make_lead(app, email="senere@eksempel.no")  # no flag is left pointing at a job that is gone
    assert len(queued_jobs(app)) == 1
    run_jobs(app)
    assert "senere@eksempel.no" in delivered_to(smtp_server)


def test_a_full_batch_queues_a_job_for_another_worker_and_every_mail_goes_once(app, smtp_server, monkeypatch):
    monkeypatch.setattr(send_jobs, "CLAIM_BATCH_SIZE", 2)
    book_many(app, PROSPECTS)

    assert run_jobs(app) >= 2, "a full batch queued a second job"
    assert delivered_to(smtp_server) == sorted(PROSPECTS)

    make_lead(app, email="senere@eksempel.no")
    assert len(queued_jobs(app)) == 1
    run_jobs(app)
    assert delivered_to(smtp_server) == sorted([*PROSPECTS, "senere@eksempel.no"])


def test_a_send_the_recorder_thread_could_not_record_is_recorded_by_the_job_and_not_sent_again(
    app, smtp_server, monkeypatch, caplog
):
    if db_dialect(app) != "postgresql":
        pytest.skip("PostgreSQL only: on SQLite (one writer) the job records every send itself")
    record_sent = send_jobs._record_sent
    failures = []

    def recorder_thread_loses_its_connection_once(connection, kind_name, rows):
        # A fault in the recorder's thread only (its connection dropped, say): the job's thread must take over.
        if threading.current_thread().name == "mail-recorder" and not failures:
            failures.append(rows)
            raise sa.exc.OperationalError("UPDATE", {}, ConnectionError("connection lost"))
        return record_sent(connection, kind_name, rows)

    monkeypatch.setattr(send_jobs, "_record_sent", recorder_thread_loses_its_connection_once)
    book_many(app, PROSPECTS)
    with caplog.at_level(logging.WARNING):
        run_jobs(app)

    assert failures, "the batch was recorded by the recorder thread"
    assert [record.event for record in caplog.records if getattr(record, "event", "") == "mail_record_moved"] == [
        "mail_record_moved"
    ]
    assert delivered_to(smtp_server) == sorted(PROSPECTS)
    assert all(row.sent_at is not None for row in confirmations_by_address(app).values())
    with app.app_context():
        unsent = db.session.scalar(
            sa.select(sa.func.count())
            .select_from(OutboxMessage)
            .where(OutboxMessage.kind == confirmation_mail.KIND, OutboxMessage.sent_at.is_(None))
        )
    assert unsent == 0
