"""The confirmation mail on the real stack: RQ on a real Redis, a real SMTP server, outages of both.

A confirmation is an outbox row (kind "confirmation"); these tests read its state there."""

import logging

import sqlalchemy as sa
from helpers.booking import CSRF_INPUT, VALID_BOOKING, book
from helpers.jobs import lose_queued_jobs, run_jobs
from helpers.waiting import wait_until
from redis import Redis
from rq.scheduler import RQScheduler

from meander_site.booking import confirmation_mail
from meander_site.core.redis_client import redis_connection
from meander_site.dev.embedded import find_free_port
from meander_site.extensions import db, limiter
from meander_site.leads import validation
from meander_site.leads.models import Booking, Lead
from meander_site.mail.dispatch import mail_queue
from meander_site.mail.models import OutboxMessage
from meander_site.mail.sweep import retry_pending, sweep_due
from meander_site.pipeline import board, lead_history, staff_leads
from meander_site.worker.jobs import send_message

DEAD_REDIS = "unix:///tmp/nonexistent-meander.sock"
SITE = "https://demo.meander.test"


def the_lead() -> Lead:
    return db.session.execute(db.select(Lead)).scalar_one()


def the_booking() -> Booking:
    return db.session.execute(db.select(Booking)).scalar_one()


def the_confirmation() -> OutboxMessage:
    return db.session.execute(db.select(OutboxMessage).where(OutboxMessage.kind == confirmation_mail.KIND)).scalar_one()


def confirmation_jobs(app) -> int:
    """How many queued jobs are for a confirmation (a booking also queues the team's new-lead mail)."""
    with app.app_context():
        ids = {
            str(message_id)
            for message_id in db.session.scalars(
                db.select(OutboxMessage.id).where(OutboxMessage.kind == confirmation_mail.KIND)
            )
        }
        return sum(job.args[0] in ids for job in mail_queue().get_jobs())


def plain(message) -> str:
    return message.get_body(preferencelist=("plain",)).get_content()


def html(message) -> str:
    return message.get_body(preferencelist=("html",)).get_content()


def enqueue_due_retries(app) -> int:
    """What the worker's RQ scheduler does every second: move retries whose time has come into the queue;
    returns how many jobs the queue then holds."""
    with app.app_context():
        connection = redis_connection()
        queue = mail_queue(connection)
        scheduler = RQScheduler([queue], connection=connection)
        scheduler.prepare_registries([queue.name])
        scheduler.enqueue_scheduled_jobs()
        return queue.count


# --- the mail ----------------------------------------------------------------------------------------


def test_confirmation_is_a_norwegian_mail_with_text_and_html_and_the_site_url_link(app, client, smtp_server):
    location = book(client).headers["Location"]
    run_jobs(app)

    [message] = smtp_server.wait_for(1)
    assert message["Subject"] == "Vi har mottatt demoforespørselen din – Meander"
    assert message.is_multipart()
    assert {part.get_content_type() for part in message.walk()} >= {"text/plain", "text/html"}
    link = SITE + location
    assert link in plain(message) and f'href="{link}"' in html(message)
    assert "Hei Kari" in plain(message)
    assert "LHL Hjerneslag" in plain(message)
    assert message["X-RcptTo"] == VALID_BOOKING["email"]


def test_confirmation_link_comes_from_site_url_never_from_the_host_header(app, client, smtp_server):
    # A Host that is not ours gets a 400 at the door (test_request_limits.py); another of the names we
    # answer to must not end up in the link either.
    forged = {"Host": "127.0.0.1:5000"}
    token = CSRF_INPUT.search(client.get("/demo", headers=forged).get_data(as_text=True)).group(1)
    response = client.post("/demo", data={**VALID_BOOKING, "csrf_token": token}, headers=forged)
    assert response.status_code == 303
    location = response.headers["Location"]
    run_jobs(app)

    [message] = smtp_server.wait_for(1)
    assert "127.0.0.1" not in plain(message) and "127.0.0.1" not in html(message)
    assert SITE + location in plain(message)


def test_markup_typed_into_the_form_is_escaped_in_the_html_mail(app, client, smtp_server):
    book(client, first_name="<b>Kari</b>", organization_name="<script>alert(1)</script>")
    run_jobs(app)

    [message] = smtp_server.wait_for(1)
    assert "<script>alert(1)" not in html(message)
    assert "&lt;script&gt;alert(1)" in html(message)
    assert "<b>Kari</b>" not in html(message)


def test_confirmation_reaches_an_address_with_norwegian_letters_in_the_domain(app, client, smtp_server):
    assert book(client, email="Kari@BLÅBÆR.NO").status_code == 303
    run_jobs(app)

    with app.app_context():
        assert the_confirmation().last_error is None
    [message] = smtp_server.wait_for(1, timeout=2)
    assert message["X-RcptTo"] == "kari@" + "blåbær.no".encode("idna").decode()  # the domain as DNS knows it


def test_confirmation_sent_at_is_set_only_once_smtp_accepted(app, client, smtp_server):
    book(client)
    with app.app_context():
        assert the_lead().confirmation_sent_at is None
        mail = the_confirmation()
        assert mail.sent_at is None and mail.booking_id == the_booking().id
        assert mail.recipient == VALID_BOOKING["email"]

    run_jobs(app)

    smtp_server.wait_for(1)
    with app.app_context():
        mail = the_confirmation()
        assert mail.sent_at is not None
        assert mail.due_at is None
        assert the_lead().confirmation_sent_at == mail.sent_at


# --- SMTP outages ------------------------------------------------------------------------------------


def test_smtp_refusal_keeps_the_lead_records_the_failure_and_a_retry_delivers_once(app, client, smtp_server, caplog):
    smtp_server.fail_with = "451 4.3.0 Try again later"

    response = book(client)
    with caplog.at_level(logging.ERROR):
        run_jobs(app)

    assert response.status_code == 303
    assert smtp_server.messages() == []
    with app.app_context():
        lead, mail = the_lead(), the_confirmation()
        message_id = mail.id
        assert lead.confirmation_sent_at is None
        assert mail.sent_at is None
        assert mail.attempts == 1
        assert "451" in mail.last_error
    failures = [record for record in caplog.records if record.levelno == logging.ERROR]
    assert [(record.event, record.message_id, record.retry_by) for record in failures] == [
        ("mail_failed", str(message_id), "rq")
    ]

    smtp_server.fail_with = None
    wait_until(lambda: enqueue_due_retries(app), 5, "RQ's first retry (1 s in the tests) to come due")
    assert run_jobs(app) == 1

    [message] = smtp_server.wait_for(1)
    assert message["X-RcptTo"] == VALID_BOOKING["email"]
    with app.app_context():
        mail = the_confirmation()
        assert mail.sent_at is not None
        assert mail.last_error is None
        assert the_lead().confirmation_sent_at is not None
    assert run_jobs(app) == 0  # no job is left that could still send
    assert len(smtp_server.messages()) == 1


def test_smtp_server_down_records_the_failure_without_a_server_error(app, make_app, smtp_server):
    no_mail_app = make_app(MAIL_PORT=find_free_port())
    limiter.reset()
    client = no_mail_app.test_client()

    response = book(client)
    run_jobs(no_mail_app)

    assert response.status_code == 303
    with no_mail_app.app_context():
        mail = the_confirmation()
        assert mail.sent_at is None
        assert mail.attempts == 1
        assert mail.last_error
        assert the_lead().email == VALID_BOOKING["email"]
    assert client.get(response.headers["Location"]).status_code == 200


# --- never twice -------------------------------------------------------------------------------------


def test_running_the_job_again_after_a_successful_send_sends_nothing(app, client, smtp_server):
    book(client)
    run_jobs(app)
    smtp_server.wait_for(1)

    with app.app_context():
        message_id = str(the_confirmation().id)
        assert send_message(message_id) == "skipped"
        assert send_message(message_id) == "skipped"

    assert run_jobs(app) == 0  # no job is left that could still send
    assert len(smtp_server.messages()) == 1


def test_two_jobs_queued_for_one_booking_send_one_mail(app, client, smtp_server):
    book(client)
    with app.app_context():
        assert retry_pending() == 2  # a second job next to the one the booking enqueued (and the team's mail)
    assert confirmation_jobs(app) == 2

    assert run_jobs(app) == 3

    smtp_server.wait_for(1)
    assert run_jobs(app) == 0  # no job is left that could still send
    assert len(smtp_server.messages()) == 1


# --- Redis outage, the sweep, retry-pending ----------------------------------------------------------


def test_booking_succeeds_while_redis_is_down_and_the_sweep_delivers_the_mail_later(app, make_app, smtp_server):
    outage_app = make_app(REDIS_URL=DEAD_REDIS, MAIL_SWEEP_GRACE_SECONDS=0)
    client = outage_app.test_client()

    response = book(client)

    assert response.status_code == 303
    with outage_app.app_context():
        lead = the_lead()
        assert response.headers["Location"] == f"/confirm/{lead.masked_ref}"
        assert db.session.scalar(sa.select(sa.func.count()).select_from(Booking)) == 1
    assert client.get(response.headers["Location"]).status_code == 200

    # Redis is back (the normal app): the worker's periodic sweep finds the unsent, due confirmation.
    with app.app_context():
        assert sweep_due() == 1
        assert sweep_due() == 0
    assert confirmation_jobs(app) == 1
    assert run_jobs(app) == 1

    [message] = smtp_server.wait_for(1)
    assert message["X-RcptTo"] == VALID_BOOKING["email"]
    with app.app_context():
        assert the_confirmation().sent_at is not None
        assert sweep_due() == 0
    assert run_jobs(app) == 0  # no job is left that could still send
    assert len(smtp_server.messages()) == 1


def test_sweep_leaves_a_fresh_booking_to_its_own_job(app, client, smtp_server):
    book(client)
    with app.app_context():
        assert sweep_due() == 0
    assert run_jobs(app) == 1
    smtp_server.wait_for(1)


def test_two_sweeps_back_to_back_enqueue_a_due_mail_once(make_app, app, smtp_server, redis_url):
    due_at_once = make_app(MAIL_SWEEP_GRACE_SECONDS=0)
    limiter.reset()
    book(due_at_once.test_client())
    with due_at_once.app_context():
        lose_queued_jobs()  # Redis lost the booking's job

        assert sweep_due() == 1
        assert sweep_due() == 0
    assert run_jobs(due_at_once) == 1

    smtp_server.wait_for(1)
    assert run_jobs(due_at_once) == 0  # no job is left that could still send
    assert len(smtp_server.messages()) == 1


def test_retry_pending_command_re_enqueues_every_unsent_confirmation(app, client, smtp_server):
    book(client)
    book(client, email="ola@lhl.no", first_name="Ola")
    with app.app_context():
        lose_queued_jobs()  # the jobs were lost with Redis
    runner = app.test_cli_runner()

    result = runner.invoke(args=["mail", "retry-pending"])

    assert result.exit_code == 0, result.output
    assert "Re-enqueued 4 unsent mail(s)." in result.output  # two confirmations, two mails to the team
    assert confirmation_jobs(app) == 2
    assert run_jobs(app) == 4
    messages = smtp_server.wait_for(2)
    assert sorted(message["X-RcptTo"] for message in messages) == ["kari.nordmann@lhl.no", "ola@lhl.no"]
    second = runner.invoke(args=["mail", "retry-pending"])
    assert "Re-enqueued 0 unsent mail(s)." in second.output
    assert run_jobs(app) == 0


def test_job_for_an_erased_booking_sends_nothing(app, client, smtp_server, redis_url):
    book(client)
    with app.app_context():
        db.session.execute(sa.delete(Lead))
        db.session.commit()
    run_jobs(app)

    assert run_jobs(app) == 0  # no job is left that could still send
    assert smtp_server.messages() == []
    assert Redis.from_url(redis_url).ping()


# --- the cap, staff's «Send bekreftelsen nå», demo data ----------------------------------------------


def test_a_capped_booking_gets_a_closed_row_that_says_why_and_staff_can_still_send_it(app, client, smtp_server):
    for n in range(4):
        book(client, environ_overrides={"REMOTE_ADDR": f"203.0.113.{n + 1}"})
    run_jobs(app)
    smtp_server.wait_for(3)

    with app.app_context():
        capped = db.session.execute(
            db.select(OutboxMessage).where(OutboxMessage.closed_reason == "capped")
        ).scalar_one()
        assert (capped.kind, capped.sent_at, capped.due_at) == (confirmation_mail.KIND, None, None)
        capped_id, capped_booking_id = capped.id, capped.booking_id
        card = board.get_card(the_lead().id)
        assert (card.mail_state, card.mail_error) == ("capped", confirmation_mail.CAPPED)
        assert sweep_due() == 0 and retry_pending() == 4  # the team's four new-lead mails; the capped one stays
        booking = lead_history.confirmation_to_resend(the_lead().id)
        assert booking.id == capped_booking_id

        assert confirmation_mail.send_now(booking.id)  # staff decided: it goes, once
    run_jobs(app)
    assert len(smtp_server.wait_for(4)) == 4
    with app.app_context():
        assert db.session.get(OutboxMessage, capped_id).sent_at is not None
        assert board.get_card(the_lead().id).mail_state == "sent"
        assert lead_history.confirmation_to_resend(the_lead().id) is None
        assert not confirmation_mail.send_now(capped_booking_id)
    assert run_jobs(app) == 0
    assert len(smtp_server.messages()) == 4


def test_a_lead_staff_typed_in_without_a_confirmation_has_none_until_staff_send_one(app, smtp_server):
    details = validation.validate_contact_details(VALID_BOOKING)
    with app.app_context():
        result = staff_leads.create_by_staff(details, "phone", send_confirmation=False)
        assert confirmation_mail.message_for(result.booking_id) is None
        assert board.get_card(result.lead_id).mail_state == "none"
        [entry] = lead_history.booking_history(result.lead_id)
        assert entry.mail_state == "none"

        assert confirmation_mail.send_now(result.booking_id)
    run_jobs(app)

    [message] = smtp_server.wait_for(1)
    assert message["X-RcptTo"] == VALID_BOOKING["email"]
    with app.app_context():
        assert confirmation_mail.message_for(result.booking_id).sent_at is not None
        assert the_lead().confirmation_sent_at is not None


def test_demo_data_bookings_each_have_a_sent_confirmation_and_nothing_to_send(app, smtp_server):
    assert app.test_cli_runner().invoke(args=["demo-data", "--leads", "30", "--fresh", "0"]).exit_code == 0

    with app.app_context():
        rows = db.session.execute(db.select(OutboxMessage.booking_id, OutboxMessage.sent_at)).all()
        booking_ids = set(db.session.scalars(db.select(Booking.id)))
        assert {booking_id for booking_id, _ in rows} == booking_ids and all(sent for _, sent in rows)
        lead_ids = list(db.session.scalars(db.select(Lead.id)))
        assert {board.get_card(lead_id).mail_state for lead_id in lead_ids} == {"sent"}
        assert sweep_due() == 0 and retry_pending() == 0
    assert run_jobs(app) == 0
    assert smtp_server.messages() == []
