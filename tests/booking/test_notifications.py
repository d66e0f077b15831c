"""The team hears of every booking from the website: a mail per minute of bookings, to everyone who asked.

Real parts throughout: bookings through the public form, the outbox rows they write, RQ jobs run as the
worker runs them (the notice waits a minute in RQ's scheduled registry first), and the SMTP sink.
"""

import logging
import uuid
from datetime import timedelta

import pytest
import sqlalchemy as sa
from helpers.assignment import leave_the_pool
from helpers.booking import VALID_BOOKING, book, make_lead
from helpers.jobs import release_scheduled_jobs, run_jobs
from helpers.staff import STAFF_PASSWORD, log_in, staff_csrf
from helpers.waiting import run_together

from meander_site.accounts import models, users
from meander_site.booking import book_demo, team_notice
from meander_site.core.clock import utcnow
from meander_site.extensions import db
from meander_site.leads import validation
from meander_site.leads.models import Lead
from meander_site.mail import dispatch, sweep
from meander_site.mail.models import OutboxMessage
from meander_site.worker import jobs

SECOND_BOOKING = {
    **VALID_BOOKING,
    "first_name": "Ola",
    "last_name": "Fjellstad",
    "email": "ola.fjellstad@fjellklubben.no",
    "organization_name": "Fjellklubben Nord",
    "phone": "",
    "notes": "Vi er 40 frivillige.",
}


@pytest.fixture
def team(app):
    """Four staff users: two want the mail, one turned it off, one has left the company."""
    with app.app_context():
        for email, name in (
            ("anne@meander.no", "Anne Andersen"),
            ("bjorn@meander.no", "Bjørn Berg"),
            ("cecilie@meander.no", "Cecilie Carlsen"),
            ("dag@meander.no", "Dag Dahl"),
        ):
            users.create_user(email, name, STAFF_PASSWORD)
        cecilie = db.session.execute(sa.select(models.User).where(models.User.email == "cecilie@meander.no"))
        users.set_new_lead_notifications(cecilie.scalar_one().id, False)
        users.deactivate("dag@meander.no")
    # Nobody takes new leads: the leads here stay «Ufordelt», and the team hears of them as before assignment.
    # (tests/assignment has the owner's mail.)
    leave_the_pool(app)
    return {"notified": {"anne@meander.no", "bjorn@meander.no"}}


def staff_mails(smtp_server):
    return [mail for mail in smtp_server.messages() if mail["To"] and "@meander.no" in mail["To"]]


def envelope_recipients(mail) -> set[str]:
    return {address.strip() for address in mail["X-RcptTo"].split(",")}


def notice_rows(app) -> list[OutboxMessage]:
    with app.app_context():
        rows = list(
            db.session.execute(
                sa.select(OutboxMessage)
                .where(OutboxMessage.kind == team_notice.NEW_LEADS_KIND)
                .order_by(OutboxMessage.created_at)
            ).scalars()
        )
        db.session.expunge_all()
        return rows


def leads_by_email(app) -> dict[str, uuid.UUID]:
    with app.app_context():
        return {lead.email: lead.id for lead in db.session.execute(sa.select(Lead)).scalars()}


def send_everything(app) -> None:
    run_jobs(app)  # the confirmations, right away
    release_scheduled_jobs(app)
    run_jobs(app)  # the team's notice, a minute later


# --- what the mail says and to whom ------------------------------------------------------------------


def test_a_new_lead_mails_each_notified_staff_member_with_the_details_and_a_link(app, client, smtp_server, team):
    assert book(client).status_code in (200, 303)
    lead = leads_by_email(app)[VALID_BOOKING["email"]]

    run_jobs(app)
    assert staff_mails(smtp_server) == [], "the team's mail waits a minute for other bookings to join it"
    send_everything(app)

    [mail] = staff_mails(smtp_server)
    assert envelope_recipients(mail) == team["notified"]  # not the one who opted out, nor the one who left
    assert mail["Subject"] == "Ny lead: LHL Hjerneslag"
    assert mail["Reply-To"] == VALID_BOOKING["email"]  # a reply goes straight to the prospect
    text = mail.get_body(preferencelist=("plain",)).get_content()
    html = mail.get_body(preferencelist=("html",)).get_content()
    for part in (text, html):
        assert "LHL Hjerneslag" in part
        assert "Kari Nordmann" in part
        assert "Koordinator" in part  # role
        assert "51–200" in part or "51-200" in part  # size
        assert "Nettsiden" in part or "nettsiden" in part.lower()  # source
        assert "Vi har 120 likepersoner i fem fylker." in part  # what the prospect wrote
        assert f"https://demo.meander.test/pipeline/leads/{lead}" in part
    assert "Velg «Bare mine»" in text


def test_bookings_within_a_minute_share_one_mail_without_a_reply_to(app, client, smtp_server, team):
    book(client)
    book(client, **SECOND_BOOKING)

    send_everything(app)

    [mail] = staff_mails(smtp_server)
    assert mail["Subject"] == "2 nye bookinger på demo"
    assert mail["Reply-To"] is None  # two prospects: a reply must not go to either by accident
    text = mail.get_body(preferencelist=("plain",)).get_content()
    assert "LHL Hjerneslag" in text and "Fjellklubben Nord" in text
    assert all(row.sent_at is not None for row in notice_rows(app))


def test_a_booking_after_the_mail_went_gets_a_mail_of_its_own(app, client, smtp_server, team):
    book(client)
    send_everything(app)
    book(client, **SECOND_BOOKING)
    send_everything(app)

    subjects = [mail["Subject"] for mail in staff_mails(smtp_server)]
    assert subjects == ["Ny lead: LHL Hjerneslag", "Ny lead: Fjellklubben Nord"]


def test_a_rebooking_from_the_website_is_announced_as_a_known_lead(app, client, smtp_server, team):
    book(client)
    send_everything(app)
    book(client, notes="Vi vil gjerne ha demoen før jul.")
    send_everything(app)

    first, second = staff_mails(smtp_server)
    assert first["Subject"] == "Ny lead: LHL Hjerneslag"
    assert second["Subject"] == "Ny booking fra kjent lead: LHL Hjerneslag"
    text = second.get_body(preferencelist=("plain",)).get_content()
    assert "Booket igjen" in text
    assert "Vi vil gjerne ha demoen før jul." in text  # what they wrote this time
    assert second["Reply-To"] == VALID_BOOKING["email"]


def test_a_lead_typed_in_by_staff_is_not_announced(app, smtp_server, team):
    with app.app_context():
        details = validation.validate_contact_details(VALID_BOOKING)
        book_demo.book_demo(details, ip_address=None, with_confirmation=False, by_staff=True)
    send_everything(app)

    assert staff_mails(smtp_server) == []
    assert notice_rows(app) == []


def test_nobody_with_notifications_on_means_no_mail_and_a_closed_row(app, client, smtp_server):
    with app.app_context():
        user = users.create_user("eva@meander.no", "Eva Eng", STAFF_PASSWORD)
        users.set_new_lead_notifications(user.id, False)
    leave_the_pool(app)
    book(client)
    send_everything(app)

    assert staff_mails(smtp_server) == []
    [row] = notice_rows(app)
    assert row.sent_at is None and row.closed_at is not None  # no job or sweep will try again


def test_turning_notifications_off_on_the_settings_page_stops_the_mail(app, client, smtp_server, team):
    staff = app.test_client()
    assert log_in(staff, "anne@meander.no", STAFF_PASSWORD).status_code == 303
    page = staff.get("/pipeline/settings").get_data(as_text=True)
    assert "Alle nye leads" in page and "Bare mine" in page
    response = staff.post(
        "/pipeline/settings", data={"notify_new_leads": "off", "csrf_token": staff_csrf(staff)}
    )  # «Bare mine»
    assert response.status_code == 303

    book(client)
    send_everything(app)

    [mail] = staff_mails(smtp_server)
    assert envelope_recipients(mail) == {"bjorn@meander.no"}


def test_markup_the_prospect_typed_is_escaped_in_the_team_mail(app, client, smtp_server, team):
    book(client, notes='<img src=x onerror="alert(1)"> <a href="https://evil.example">klikk</a>')
    send_everything(app)

    [mail] = staff_mails(smtp_server)
    html = mail.get_body(preferencelist=("html",)).get_content()
    assert "<img src=x" not in html and 'href="https://evil.example"' not in html
    assert "&lt;img src=x" in html


def test_an_erased_lead_is_not_announced(app, client, smtp_server, team):
    book(client)
    with app.app_context():
        db.session.execute(sa.delete(Lead))
        db.session.commit()
    send_everything(app)

    assert staff_mails(smtp_server) == []


# --- exactly once ----------------------------------------------------------------------------------------


def test_a_duplicate_job_for_the_notice_sends_one_mail(app, client, smtp_server, team):
    book(client)
    run_jobs(app)
    [row] = notice_rows(app)
    with app.app_context():
        dispatch.dispatch(row.id, delay=timedelta(0))  # the same job, queued a second time
        dispatch.dispatch(row.id, delay=timedelta(0))
    send_everything(app)

    assert len(staff_mails(smtp_server)) == 1
    with app.app_context():
        assert db.session.get(OutboxMessage, row.id).attempts == 1  # the others found it taken


def test_two_workers_running_the_notice_at_once_send_one_mail(app, client, smtp_server, team):
    book(client)
    book(client, **SECOND_BOOKING)
    rows = notice_rows(app)

    def work(n, barrier):
        with app.app_context():
            barrier.wait()
            return jobs.send_message(str(rows[n].id))

    for attempt in range(1, 6):  # a race has to be given its chances
        results = run_together(2, work)

        assert sorted(results) == ["sent", "skipped"]
        assert len(staff_mails(smtp_server)) == attempt
        assert staff_mails(smtp_server)[-1]["Subject"] == "2 nye bookinger på demo"
        with app.app_context():  # the two rows unsent again, for the next round
            db.session.execute(
                sa.update(OutboxMessage)
                .where(OutboxMessage.id.in_([row.id for row in rows]))
                .values(sent_at=None, due_at=utcnow(), claimed_until=None, attempts=0)
            )
            db.session.commit()


def test_the_sweep_and_the_job_together_send_one_mail(app, client, smtp_server, team):
    book(client)
    [row] = notice_rows(app)
    with app.app_context():
        # The job was lost with Redis, as far as the sweep can tell: the row is overdue.
        db.session.execute(
            sa.update(OutboxMessage).where(OutboxMessage.id == row.id).values(due_at=utcnow() - timedelta(seconds=1))
        )
        db.session.commit()
        assert sweep.sweep_due() == 1
        assert sweep.sweep_due() == 0  # a second sweep right after finds it taken
    send_everything(app)  # the sweep's job and the original one

    assert len(staff_mails(smtp_server)) == 1
    with app.app_context():
        assert sweep.sweep_due() == 0  # sent: nothing left for a later sweep


def test_an_smtp_refusal_is_retried_and_then_delivered_once(app, client, smtp_server, team):
    book(client)
    run_jobs(app)
    smtp_server.fail_with = "451 4.3.0 Try again later"
    release_scheduled_jobs(app)
    run_jobs(app)
    [row] = notice_rows(app)
    assert row.sent_at is None and row.last_error and "451" in row.last_error

    smtp_server.fail_with = None
    with app.app_context():
        assert sweep.send_now(row.id)
    send_everything(app)

    assert len(staff_mails(smtp_server)) == 1
    [row] = notice_rows(app)
    assert row.sent_at is not None


def test_sending_the_notice_logs_ids_never_personal_data(app, client, smtp_server, team, caplog):
    with caplog.at_level(logging.DEBUG):
        book(client)
        smtp_server.fail_with = "550 5.1.1 <anne@meander.no>: Recipient address rejected"
        send_everything(app)
        smtp_server.fail_with = None
        with app.app_context():
            sweep.send_now(notice_rows(app)[0].id)
        send_everything(app)

    assert len(staff_mails(smtp_server)) == 1
    # Every logger of ours and of the libraries we use; not the test's SMTP sink (aiosmtpd's "mail.log").
    logged = "\n".join(
        f"{record.name} {record.getMessage()} {record.__dict__}"
        for record in caplog.records
        if not record.name.startswith("mail.log")
    )
    assert "mail_sent" in logged and "new_leads" in logged  # the events are there, by id
    for personal in ("Kari", "Nordmann", "kari.nordmann", "912 34 567", "LHL", "anne@meander.no", "Anne"):
        assert personal not in logged, f"{personal!r} in the log"


def test_make_lead_through_the_domain_is_announced_like_a_website_booking(app, smtp_server, team):
    lead = make_lead(app)
    send_everything(app)

    [mail] = staff_mails(smtp_server)
    assert str(lead["id"]) in mail.get_body(preferencelist=("plain",)).get_content()
