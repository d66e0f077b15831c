"""A booked demo ends in the prospect's calendar: scheduling from the board and the lead page, the invitations,
updates and cancellations (read back with vobject, a parser independent of the icalendar library that wrote
them), and the confirmation page that follows the booking."""

import json
import re
import uuid
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa
import vobject
from helpers.booking import CSRF_INPUT, book, make_lead
from helpers.jobs import lose_queued_jobs, run_jobs
from helpers.scheduling import make_reminders_due
from helpers.staff import STAFF_PASSWORD, staff_csrf
from helpers.waiting import run_together

from meander_site.accounts import users
from meander_site.accounts.models import User
from meander_site.core.clock import utcnow
from meander_site.extensions import db
from meander_site.leads import validation
from meander_site.leads.models import Lead
from meander_site.mail import dispatch, sweep
from meander_site.mail.models import OutboxMessage
from meander_site.pipeline import moves
from meander_site.scheduling import calendar as demo_calendar
from meander_site.scheduling import demos, labels
from meander_site.scheduling import mails as scheduling_mails
from meander_site.scheduling import reminders as demo_reminders
from meander_site.worker import jobs

OSLO = ZoneInfo("Europe/Oslo")
HTMX = {"HX-Request": "true"}
VIDEO = "https://meet.meander.no/demo-lhl"


def next_year() -> int:
    return date.today().year + 1


def last_sunday(year: int, month: int) -> date:
    day = date(year, month + 1, 1) - timedelta(days=1)
    return day - timedelta(days=(day.weekday() - 6) % 7)


def local_value(day: date, clock: str) -> str:
    return f"{day.isoformat()}T{clock}"


def future_tuesday_12_january() -> date:
    """The issue's example, «tirsdag 12. januar»: the next 12 January that falls on a Tuesday."""
    year = next_year()
    while date(year, 1, 12).weekday() != 1:
        year += 1
    return date(year, 1, 12)


def schedule(client, token, lead_id, when: str, **fields):
    data = {"status": "demo_scheduled", "demo_at": when, "demo_location": VIDEO, **fields}
    return client.post(f"/pipeline/leads/{lead_id}/status", data=data, headers={**HTMX, "X-CSRFToken": token})


def reschedule(client, token, lead_id, when: str, **fields):
    data = {"demo_at": when, "demo_location": VIDEO, **fields}
    return client.post(f"/pipeline/leads/{lead_id}/demo", data=data, headers={**HTMX, "X-CSRFToken": token})


def move(client, token, lead_id, status: str, **fields):
    return client.post(
        f"/pipeline/leads/{lead_id}/status", data={"status": status, **fields}, headers={**HTMX, "X-CSRFToken": token}
    )


def board_message(response) -> str:
    return re.search(r'<p class="board-message[^"]*">(.*?)</p>', response.get_data(as_text=True), re.S).group(1)


def demo_mails(smtp_server):
    return [mail for mail in smtp_server.messages() if mail["Subject"].startswith("Demoen")]


def calendar_parts(mail) -> tuple[str, str]:
    """The text/calendar alternative and the .ics attachment of a mail, as text."""
    inline = [part for part in mail.walk() if part.get_content_type() == "text/calendar"]
    attached = [part for part in mail.walk() if part.get_filename() == "invitation.ics"]
    assert len(inline) == 1 and len(attached) == 1
    return inline[0], attached[0].get_payload(decode=True).decode("utf-8")


def parsed(ics: str):
    """Read with vobject: an independent parser, with its own reading of the VTIMEZONE."""
    return vobject.readOne(ics)


def stored_lead(app, lead_id) -> Lead:
    with app.app_context():
        lead = db.session.get(Lead, lead_id)
        db.session.expunge(lead)
        return lead


def outbox_rows(app, lead_id) -> list[OutboxMessage]:
    with app.app_context():
        rows = list(
            db.session.execute(
                sa.select(OutboxMessage).where(OutboxMessage.lead_id == lead_id).order_by(OutboxMessage.created_at)
            ).scalars()
        )
        for row in rows:
            db.session.expunge(row)
        return rows


@pytest.fixture
def owned_lead(app, staff_user):
    """A lead the signed-in salesperson owns: the demo's host by default."""
    lead = make_lead(app)
    with app.app_context():
        db.session.execute(sa.update(Lead).where(Lead.id == lead["id"]).values(owner_id=staff_user["id"]))
        db.session.commit()
    return lead


@pytest.fixture
def signed_in(staff_client):
    return staff_client, staff_csrf(staff_client)


# --- scheduling and the invitation ----------------------------------------------------------------------------


def test_scheduling_a_demo_mails_the_prospect_and_the_host_an_invitation_their_calendars_accept(
    app, signed_in, owned_lead, staff_user, smtp_server
):
    client, token = signed_in
    day = future_tuesday_12_january()

    response = schedule(client, token, owned_lead["id"], local_value(day, "13:00"), demo_minutes="45")

    assert response.status_code == 200
    assert "flyttet til «Demo avtalt»" in board_message(response)
    run_jobs(app)
    mails = demo_mails(smtp_server)
    assert sorted(mail["To"] for mail in mails) == sorted(["kari.nordmann@lhl.no", staff_user["email"]])
    to_prospect = next(mail for mail in mails if mail["To"] == "kari.nordmann@lhl.no")
    assert to_prospect["Subject"] == "Demoen er avtalt: tirsdag 12. januar kl. 13.00"
    assert to_prospect["Reply-To"] == staff_user["email"]
    # A text part and an HTML part beside the calendar part, the same object attached as a file.
    inline, attached = calendar_parts(to_prospect)
    assert inline.get_param("method") == "REQUEST"
    assert inline.get_content().replace("\r\n", "\n") == attached.replace("\r\n", "\n")
    types = [part.get_content_type() for part in to_prospect.walk()]
    assert types[:5] == ["multipart/mixed", "multipart/alternative", "text/plain", "text/html", "text/calendar"]
    assert "Tirsdag 12. januar kl. 13.00" in to_prospect.get_body(("plain",)).get_content()

    calendar = parsed(attached)
    event = calendar.vevent
    assert calendar.method.value == "REQUEST"
    assert event.uid.value == f"demo-{owned_lead['id']}@demo.meander.no"
    assert int(event.sequence.value) == 0
    assert event.dtstart.value == datetime(day.year, 1, 12, 13, 0, tzinfo=OSLO)
    assert event.dtstart.value.astimezone(UTC) == datetime(day.year, 1, 12, 12, 0, tzinfo=UTC)
    assert event.dtend.value - event.dtstart.value == timedelta(minutes=45)
    assert event.organizer.value == f"mailto:{staff_user['email']}"
    assert event.attendee.value == "mailto:kari.nordmann@lhl.no"
    assert event.location.value == VIDEO
    assert event.valarm.trigger.value == timedelta(minutes=-15)
    # The host's copy is the same event.
    to_host = next(mail for mail in mails if mail["To"] == staff_user["email"])
    assert parsed(calendar_parts(to_host)[1]).vevent.uid.value == event.uid.value


@pytest.mark.parametrize(
    ("month", "clock", "utc_hour", "utc_minute"),
    [
        # Last Sunday of March: 02:00 becomes 03:00; 10:00 that day is already summer time (UTC+2).
        (3, "10:00", 8, 0),
        (3, "01:30", 0, 30),  # still winter time (UTC+1)
        # Last Sunday of October: 03:00 becomes 02:00; 10:00 is winter time again (UTC+1).
        (10, "10:00", 9, 0),
        (10, "02:30", 0, 30),  # happens twice: the first, still summer time
    ],
)
def test_demo_times_stay_right_across_the_dst_changes(
    app, signed_in, owned_lead, smtp_server, month, clock, utc_hour, utc_minute
):
    client, token = signed_in
    day = last_sunday(next_year(), month)

    assert schedule(client, token, owned_lead["id"], local_value(day, clock)).status_code == 200

    expected = datetime(day.year, day.month, day.day, utc_hour, utc_minute, tzinfo=UTC)
    assert stored_lead(app, owned_lead["id"]).demo_at == expected
    run_jobs(app)
    event = parsed(calendar_parts(demo_mails(smtp_server)[0])[1]).vevent
    assert event.dtstart.value.astimezone(UTC) == expected
    # Half an hour later, however the clocks changed in between.
    assert event.dtend.value.astimezone(UTC) == expected + timedelta(minutes=30)


def test_a_demo_a_week_after_the_spring_change_keeps_its_wall_clock_time(app, signed_in, owned_lead, smtp_server):
    client, token = signed_in
    day = last_sunday(next_year(), 3) - timedelta(days=5)  # Tuesday before: winter time

    schedule(client, token, owned_lead["id"], local_value(day, "13:00"))
    reschedule(client, token, owned_lead["id"], local_value(day + timedelta(days=7), "13:00"))  # summer time

    assert stored_lead(app, owned_lead["id"]).demo_at.hour == 11  # 13:00 CEST
    run_jobs(app)
    (update,) = [mail for mail in demo_mails(smtp_server) if mail["To"] == "kari.nordmann@lhl.no"]
    event = parsed(calendar_parts(update)[1]).vevent
    assert event.dtstart.value.astimezone(OSLO).hour == 13


# --- refusals ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"demo_at": ""}, "Velg dato og klokkeslett for demoen."),
        ({"demo_at": "2020-01-14T13:00"}, "Tidspunktet har allerede vært."),
        ({"demo_at": "i morgen kl. 13"}, "Velg dato og klokkeslett"),
        ({"demo_location": ""}, "Skriv hvor demoen er"),
        ({"demo_minutes": "600"}, "Velg en lengde mellom 15 og 240 minutter"),
    ],
)
def test_a_move_to_demo_scheduled_without_a_usable_demo_is_a_422_that_keeps_the_card(
    app, signed_in, owned_lead, fields, expected
):
    client, token = signed_in
    tomorrow = (datetime.now(OSLO) + timedelta(days=1)).strftime("%Y-%m-%dT13:00")
    data = {"demo_at": tomorrow, **fields}

    response = schedule(client, token, owned_lead["id"], data.pop("demo_at"), **data)

    assert response.status_code == 422
    assert expected in board_message(response)
    lead = stored_lead(app, owned_lead["id"])
    assert lead.status == "new" and lead.demo_at is None
    assert not [row for row in outbox_rows(app, owned_lead["id"]) if row.kind in scheduling_mails.CALENDAR_KINDS]


def test_a_move_without_any_demo_field_is_a_422(app, signed_in, owned_lead):
    client, token = signed_in

    response = move(client, token, owned_lead["id"], "demo_scheduled")

    assert response.status_code == 422
    assert board_message(response).startswith("Velg dato og klokkeslett for demoen.")
    assert stored_lead(app, owned_lead["id"]).status == "new"


def test_a_time_in_the_spring_gap_is_a_422_that_says_the_clock_skips_it(app, signed_in, owned_lead):
    client, token = signed_in
    day = last_sunday(next_year(), 3)

    response = schedule(client, token, owned_lead["id"], local_value(day, "02:30"))

    assert response.status_code == 422
    assert "Klokken 02.30 finnes ikke" in board_message(response)
    assert stored_lead(app, owned_lead["id"]).status == "new"


# --- moving and cancelling ---------------------------------------------------------------------------------------


def test_moving_the_demo_sends_an_update_of_the_same_event_and_moving_on_cancels_it(
    app, signed_in, owned_lead, smtp_server
):
    client, token = signed_in
    day = future_tuesday_12_january()
    schedule(client, token, owned_lead["id"], local_value(day, "13:00"))
    run_jobs(app)

    response = reschedule(client, token, owned_lead["id"], local_value(day + timedelta(days=2), "09:30"))

    assert response.status_code == 200
    assert "torsdag 14. januar kl. 09.30" in board_message(response)
    run_jobs(app)
    response = move(client, token, owned_lead["id"], "lost", reason="price")
    assert response.status_code == 200
    run_jobs(app)

    to_prospect = [mail for mail in demo_mails(smtp_server) if mail["To"] == "kari.nordmann@lhl.no"]
    assert [mail["Subject"] for mail in to_prospect] == [
        "Demoen er avtalt: tirsdag 12. januar kl. 13.00",
        "Demoen er flyttet: torsdag 14. januar kl. 09.30",
        "Demoen er avlyst: torsdag 14. januar kl. 09.30",
    ]
    calendars = [parsed(calendar_parts(mail)[1]) for mail in to_prospect]
    assert {calendar.vevent.uid.value for calendar in calendars} == {f"demo-{owned_lead['id']}@demo.meander.no"}
    assert [int(calendar.vevent.sequence.value) for calendar in calendars] == [0, 1, 2]
    assert [calendar.method.value for calendar in calendars] == ["REQUEST", "REQUEST", "CANCEL"]
    assert calendars[2].vevent.status.value == "CANCELLED"
    assert calendar_parts(to_prospect[2])[0].get_param("method") == "CANCEL"
    # The host's calendar follows too.
    assert len(demo_mails(smtp_server)) == 6


def test_a_demo_staff_schedule_gets_the_prospects_reminders_and_a_move_takes_them_along(
    app, signed_in, owned_lead, smtp_server
):
    client, token = signed_in
    day = future_tuesday_12_january()
    schedule(client, token, owned_lead["id"], local_value(day, "13:00"))
    starts_at = stored_lead(app, owned_lead["id"]).demo_at
    reminder_rows = [row for row in outbox_rows(app, owned_lead["id"]) if row.kind == demo_reminders.REMINDER_KIND]
    assert sorted(starts_at - row.send_after for row in reminder_rows) == [timedelta(hours=1), timedelta(hours=24)]
    assert {row.recipient for row in reminder_rows} == {"kari.nordmann@lhl.no"}

    reschedule(client, token, owned_lead["id"], local_value(day + timedelta(days=2), "09:30"))
    make_reminders_due(app)  # the old time's and the new one's
    run_jobs(app)

    sent = [mail for mail in smtp_server.messages() if "demo av Meander" in mail["Subject"]]
    assert sorted(mail["Subject"] for mail in sent) == [
        "I morgen: demo av Meander torsdag 14. januar kl. 09.30",
        "Om en time: demo av Meander torsdag 14. januar kl. 09.30",
    ]
    assert "Flytt eller avlys" in sent[0].get_body(("plain",)).get_content()


def test_staff_are_told_when_the_host_already_has_a_demo_then(app, signed_in, owned_lead):
    client, token = signed_in
    day = future_tuesday_12_january()
    other = make_lead(app, email="annen@lhl.no", organization_name="Annen Forening")
    with app.app_context():
        db.session.execute(
            sa.update(Lead).where(Lead.id == other["id"]).values(owner_id=stored_lead(app, owned_lead["id"]).owner_id)
        )
        db.session.commit()
    first = schedule(client, token, other["id"], local_value(day, "13:00"), demo_minutes="60")
    assert "Merk:" not in board_message(first)

    overlapping = schedule(client, token, owned_lead["id"], local_value(day, "13:30"))
    assert overlapping.status_code == 200  # booked all the same: staff know whether someone else can take it
    assert "har en annen demo som overlapper, tirsdag 12. januar kl. 13.00 med «Annen Forening»" in board_message(
        overlapping
    )
    moved_clear = reschedule(client, token, owned_lead["id"], local_value(day, "14:00"))
    assert moved_clear.status_code == 200 and "Merk:" not in board_message(moved_clear)


def test_a_change_before_the_invitation_went_out_sends_only_the_latest(app, signed_in, owned_lead, smtp_server):
    client, token = signed_in
    day = future_tuesday_12_january()
    schedule(client, token, owned_lead["id"], local_value(day, "13:00"))
    reschedule(client, token, owned_lead["id"], local_value(day, "14:00"))

    run_jobs(app)

    subjects = [mail["Subject"] for mail in demo_mails(smtp_server) if mail["To"] == "kari.nordmann@lhl.no"]
    assert subjects == ["Demoen er flyttet: tirsdag 12. januar kl. 14.00"]
    superseded = [row for row in outbox_rows(app, owned_lead["id"]) if row.kind == scheduling_mails.INVITATION_KIND]
    assert all(row.closed_reason == "gone" and row.sent_at is None for row in superseded)


def test_moving_on_after_the_demo_was_held_cancels_nothing(app, signed_in, owned_lead, smtp_server):
    client, token = signed_in
    schedule(client, token, owned_lead["id"], local_value(future_tuesday_12_january(), "13:00"))
    run_jobs(app)
    with app.app_context():
        db.session.execute(
            sa.update(Lead).where(Lead.id == owned_lead["id"]).values(demo_at=utcnow() - timedelta(days=1))
        )
        db.session.commit()

    assert move(client, token, owned_lead["id"], "converted", deal_value="1").status_code == 200
    run_jobs(app)

    assert not [mail for mail in demo_mails(smtp_server) if mail["Subject"].startswith("Demoen er avlyst")]
    assert stored_lead(app, owned_lead["id"]).demo_cancelled_at is None


def test_rescheduling_a_lead_that_is_not_in_demo_scheduled_is_refused(app, signed_in, owned_lead):
    client, token = signed_in

    response = reschedule(client, token, owned_lead["id"], local_value(future_tuesday_12_january(), "13:00"))

    assert response.status_code == 409
    assert "står ikke i «Demo avtalt»" in board_message(response)


def test_the_lead_page_schedules_and_moves_the_demo_with_plain_forms(app, staff_client, owned_lead, smtp_server):
    page = staff_client.get(f"/pipeline/leads/{owned_lead['id']}").get_data(as_text=True)
    token = CSRF_INPUT.search(page).group(1)
    assert 'id="demo-heading"' in page and "Avtal demo" in page
    day = future_tuesday_12_january()

    refused = staff_client.post(
        f"/pipeline/leads/{owned_lead['id']}/status",
        data={"csrf_token": token, "status": "demo_scheduled", "back": "lead", "demo_at": "", "demo_location": VIDEO},
    )
    assert refused.status_code == 422
    body = refused.get_data(as_text=True)
    assert "Demoen er ikke avtalt" in body and VIDEO in body  # the error, and what was typed is kept

    done = staff_client.post(
        f"/pipeline/leads/{owned_lead['id']}/status",
        data={
            "csrf_token": token,
            "status": "demo_scheduled",
            "back": "lead",
            "demo_at": local_value(day, "13:00"),
            "demo_location": VIDEO,
        },
    )
    assert done.status_code == 303 and done.headers["Location"].endswith(f"/pipeline/leads/{owned_lead['id']}")
    page = staff_client.get(done.headers["Location"]).get_data(as_text=True)
    assert "Tirsdag 12. januar kl. 13.00" in page and "Flytt demoen" in page

    moved = staff_client.post(
        f"/pipeline/leads/{owned_lead['id']}/demo",
        data={"csrf_token": token, "demo_at": local_value(day, "15:00"), "demo_location": VIDEO},
    )
    assert moved.status_code == 303
    assert stored_lead(app, owned_lead["id"]).demo_sequence == 1


# --- the outbox's guarantees --------------------------------------------------------------------------------------


def test_each_invitation_is_sent_exactly_once_however_often_its_job_runs(app, signed_in, owned_lead, smtp_server):
    client, token = signed_in
    schedule(client, token, owned_lead["id"], local_value(future_tuesday_12_january(), "13:00"))
    rows = [row for row in outbox_rows(app, owned_lead["id"]) if row.kind == scheduling_mails.INVITATION_KIND]
    assert len(rows) == 2

    with app.app_context():
        outcomes = []
        for row in rows:
            dispatch.dispatch(row.id)  # a duplicate nudge for each
            outcomes += [jobs.send_message(str(row.id)) for _ in range(2)]
    run_jobs(app)

    # The first job sent both (a job serves every due mail); every later one found nothing left to send.
    assert outcomes == ["sent", "skipped", "skipped", "skipped"]
    assert len(demo_mails(smtp_server)) == 2
    assert all(row.sent_at is not None for row in outbox_rows(app, owned_lead["id"]) if row.id in {r.id for r in rows})


def test_an_invitation_redis_lost_is_swept_up_and_a_failed_one_retried(app, signed_in, owned_lead, smtp_server):
    client, token = signed_in
    schedule(client, token, owned_lead["id"], local_value(future_tuesday_12_january(), "13:00"))
    invitations = sa.and_(
        OutboxMessage.lead_id == owned_lead["id"], OutboxMessage.kind.in_(scheduling_mails.CALENDAR_KINDS)
    )

    def lose_the_jobs_and_make_them_due():
        lose_queued_jobs()
        db.session.execute(sa.update(OutboxMessage).where(invitations).values(due_at=utcnow() - timedelta(seconds=1)))
        db.session.commit()

    with app.app_context():
        lose_the_jobs_and_make_them_due()
        assert sweep.sweep_due() == 2
        smtp_server.fail_with = "451 4.3.0 Try again later"
        first = db.session.execute(sa.select(OutboxMessage.id).where(invitations)).scalars().first()
        assert jobs.send_message(str(first)) == "failed"
        smtp_server.fail_with = None
        lose_the_jobs_and_make_them_due()
        assert sweep.sweep_due() == 2
    run_jobs(app)

    assert len(demo_mails(smtp_server)) == 2
    rows = [row for row in outbox_rows(app, owned_lead["id"]) if row.kind in scheduling_mails.CALENDAR_KINDS]
    assert all(row.sent_at is not None for row in rows)
    # Both failed in the first job (a job serves every due mail), and both were tried again.
    assert [row.attempts for row in rows] == [2, 2]


def test_sending_invitations_logs_no_personal_data(app, signed_in, owned_lead, smtp_server, caplog):
    client, token = signed_in
    caplog.set_level("DEBUG")
    schedule(client, token, owned_lead["id"], local_value(future_tuesday_12_january(), "13:00"))
    run_jobs(app)

    assert len(demo_mails(smtp_server)) == 2
    # The test's own SMTP server (aiosmtpd, logger "mail.log") logs addresses; the site must not.
    ours = [record for record in caplog.records if not record.name.startswith("mail.log")]
    logged = " ".join(record.getMessage() + str(record.__dict__) for record in ours)
    for personal in ("kari.nordmann@lhl.no", "Nordmann", "selger@meander.no", VIDEO):
        assert personal not in logged


# --- the confirmation page -------------------------------------------------------------------------------------------


def confirmation(client, ref):
    response = client.get(f"/confirm/{ref}")
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"
    assert response.headers["Referrer-Policy"] == "no-referrer"
    assert "noindex" in response.headers["X-Robots-Tag"]
    body = response.get_data(as_text=True)
    for private in ("kari.nordmann@lhl.no", "912 34 567", "+4791234567", "120 likepersoner"):
        assert private not in body
    return body


def test_the_confirmation_page_follows_the_booking_from_received_to_scheduled_to_held(
    app, client, signed_in, owned_lead
):
    staff, token = signed_in
    ref = owned_lead["masked_ref"]
    assert '<h1 id="thanks-heading">Takk, Kari!</h1>' in confirmation(client, ref)
    assert client.get(f"/confirm/{ref}/demo.ics").status_code == 404  # nothing to add yet

    schedule(staff, token, owned_lead["id"], local_value(future_tuesday_12_january(), "13:00"), demo_minutes="45")

    body = confirmation(client, ref)
    assert '<h1 id="thanks-heading">Demoen er avtalt</h1>' in body
    assert "Tirsdag 12. januar kl. 13.00" in body and "45 minutter" in body
    assert "Siri fra Meander" in body and "Selger" not in body  # the host's first name only
    assert VIDEO in body and f'href="/confirm/{ref}/demo.ics"' in body
    assert "Be om et annet tidspunkt" in body

    ics = client.get(f"/confirm/{ref}/demo.ics")
    assert ics.status_code == 200
    assert ics.mimetype == "text/calendar"
    assert ics.headers["Cache-Control"] == "no-store"
    event = parsed(ics.get_data(as_text=True)).vevent
    assert event.uid.value == f"demo-{owned_lead['id']}@demo.meander.no"
    assert event.dtstart.value.astimezone(OSLO).hour == 13
    assert "kari.nordmann@lhl.no" not in ics.get_data(as_text=True)  # a forwarded link leaks no address

    with app.app_context():
        db.session.execute(
            sa.update(Lead).where(Lead.id == owned_lead["id"]).values(demo_at=utcnow() - timedelta(hours=2))
        )
        db.session.commit()
    body = confirmation(client, ref)
    assert '<h1 id="thanks-heading">Takk for demoen, Kari!</h1>' in body


@pytest.mark.parametrize("how", ["cancelled", "lost"])
def test_a_cancelled_demo_or_a_lost_lead_shows_only_that_no_demo_is_scheduled(app, client, signed_in, owned_lead, how):
    staff, token = signed_in
    if how == "cancelled":
        schedule(staff, token, owned_lead["id"], local_value(future_tuesday_12_january(), "13:00"))
    move(staff, token, owned_lead["id"], "lost", reason="price", note="For dyrt, sier økonomisjefen.")

    body = confirmation(client, owned_lead["masked_ref"])

    assert '<h1 id="thanks-heading">Ingen demo er avtalt</h1>' in body
    assert "demo@meander.no" in body  # how to get in touch
    for reason in ("Pris", "budsjett", "For dyrt", "avlyst", "Tapt"):
        assert reason not in body
    assert client.get(f"/confirm/{owned_lead['masked_ref']}/demo.ics").status_code == 404


# --- «Be om et annet tidspunkt» ---------------------------------------------------------------------------------


def ask_for_other_time(client, ref, wish="Torsdag formiddag passer bedre."):
    page = client.get(f"/confirm/{ref}").get_data(as_text=True)
    match = CSRF_INPUT.search(page)
    token = match.group(1) if match else ""
    return client.post(f"/confirm/{ref}/annet-tidspunkt", data={"csrf_token": token, "wish": wish})


def test_asking_for_another_time_flags_the_card_and_mails_the_owner(
    app, client, signed_in, owned_lead, staff_user, smtp_server
):
    staff, token = signed_in
    schedule(staff, token, owned_lead["id"], local_value(future_tuesday_12_january(), "13:00"))
    run_jobs(app)
    smtp_server.clear()

    response = ask_for_other_time(client, owned_lead["masked_ref"])

    assert response.status_code == 303
    assert response.headers["Location"].endswith(f"/confirm/{owned_lead['masked_ref']}#other-time")
    assert "Vi har fått beskjed" in confirmation(client, owned_lead["masked_ref"])
    run_jobs(app)
    (mail,) = smtp_server.messages()
    assert mail["To"] == staff_user["email"]
    assert mail["Subject"] == "Ønsker ny tid for demoen: LHL Hjerneslag"
    assert mail["Reply-To"] == "kari.nordmann@lhl.no"
    assert "Torsdag formiddag passer bedre." in mail.get_body(("plain",)).get_content()
    board = staff.get("/pipeline").get_data(as_text=True)
    card = re.search(rf'<li class="lead-card[^"]*"\s+id="card-{owned_lead["id"]}".*?</li>', board, re.S).group(0)
    assert "Ønsker ny tid" in card
    lead_page = staff.get(f"/pipeline/leads/{owned_lead['id']}").get_data(as_text=True)
    assert "Torsdag formiddag passer bedre." in lead_page and "Ba om et annet tidspunkt for demoen" in lead_page

    # Moving the demo answers the wish: the flag goes.
    reschedule(staff, token, owned_lead["id"], local_value(future_tuesday_12_january() + timedelta(days=2), "10:00"))
    board = staff.get("/pipeline").get_data(as_text=True)
    card = re.search(rf'<li class="lead-card[^"]*"\s+id="card-{owned_lead["id"]}".*?</li>', board, re.S).group(0)
    assert "Ønsker ny tid" not in card


def test_a_wish_for_an_unowned_lead_reaches_everyone_with_notifications_on(
    app, client, signed_in, owned_lead, staff_user, smtp_server
):
    staff, token = signed_in
    with app.app_context():
        users.create_user("kollega@meander.no", "Ola Kollega", STAFF_PASSWORD)
        quiet = users.create_user("stille@meander.no", "Stille Kollega", STAFF_PASSWORD)
        db.session.execute(sa.update(User).where(User.id == quiet.id).values(notify_new_leads=False))
        db.session.commit()
    schedule(staff, token, owned_lead["id"], local_value(future_tuesday_12_january(), "13:00"))
    with app.app_context():
        db.session.execute(sa.update(Lead).where(Lead.id == owned_lead["id"]).values(owner_id=None))
        db.session.commit()
    run_jobs(app)
    smtp_server.clear()

    assert ask_for_other_time(client, owned_lead["masked_ref"]).status_code == 303
    run_jobs(app)

    (mail,) = smtp_server.messages()
    assert sorted(mail["X-RcptTo"].split(", ")) == ["kollega@meander.no", staff_user["email"]]


def test_a_wish_needs_words_a_known_ref_and_a_token(app, client, signed_in, owned_lead):
    staff, token = signed_in
    schedule(staff, token, owned_lead["id"], local_value(future_tuesday_12_january(), "13:00"))

    empty = ask_for_other_time(client, owned_lead["masked_ref"], wish="  ")
    assert empty.status_code == 422
    assert "Skriv når det passer bedre" in empty.get_data(as_text=True)
    token = CSRF_INPUT.search(client.get(f"/confirm/{owned_lead['masked_ref']}").get_data(as_text=True)).group(1)
    unknown = client.post("/confirm/ukjent-referanse-000000/annet-tidspunkt", data={"csrf_token": token, "wish": "Fre"})
    assert unknown.status_code == 404
    no_token = client.post(f"/confirm/{owned_lead['masked_ref']}/annet-tidspunkt", data={"wish": "Fredag"})
    assert no_token.status_code == 400
    assert stored_lead(app, owned_lead["id"]).demo_change_requested_at is None


def test_wishes_have_their_own_limit_per_link_and_are_no_lead_creation_attempts(app, client, signed_in, owned_lead):
    staff, token = signed_in
    schedule(staff, token, owned_lead["id"], local_value(future_tuesday_12_january(), "13:00"))

    bookings = [book(client, email=f"person{n}@eksempel.no").status_code for n in range(3)]
    wishes = [ask_for_other_time(client, owned_lead["masked_ref"]).status_code for _ in range(4)]

    assert bookings == [303] * 3
    assert wishes == [303, 303, 303, 429]  # the link's own limit: three an hour
    # A wish is no lead creation attempt: two more bookings fit under the five an hour.
    assert [book(client, email=f"til{n}@eksempel.no").status_code for n in range(3)] == [303, 303, 429]


# --- the board -------------------------------------------------------------------------------------------------


def test_the_demo_column_lists_demos_in_the_order_they_happen_and_shows_their_time(app, signed_in, owned_lead):
    client, token = signed_in
    later = make_lead(app, email="senere@eksempel.no", organization_name="Senere AS")
    day = future_tuesday_12_january()
    schedule(client, token, later["id"], local_value(day + timedelta(days=1), "09:00"))
    schedule(client, token, owned_lead["id"], local_value(day, "13:00"))

    board = client.get("/pipeline").get_data(as_text=True)

    column = re.search(r'<section class="column" id="column-demo_scheduled".*?</section>', board, re.S).group(0)
    assert 'data-dialog="demo-dialog"' in column
    assert re.search(r'<option value="demo" selected>Demotid</option>', column)
    order = re.findall(r'id="card-([0-9a-f-]{36})"', column)
    assert order == [str(owned_lead["id"]), str(later["id"])]
    assert "tir. 12.01 13.00" in column
    assert 'id="demo-dialog"' in board and "js/demo_dialog" in board


def test_the_domain_refuses_a_move_to_demo_scheduled_without_a_demo(app, staff_user, owned_lead):

    with app.app_context():
        with pytest.raises(validation.LeadValidationError) as refused:
            moves.move(owned_lead["id"], "demo_scheduled", by=db.session.get(User, staff_user["id"]))
        assert "demo_at" in refused.value.errors
        assert db.session.get(Lead, owned_lead["id"]).status == "new"


def test_a_demo_label_reads_as_a_norwegian_says_it():
    assert labels.demo_label(datetime(2027, 1, 12, 12, 0, tzinfo=UTC)) == "tirsdag 12. januar kl. 13.00"
    assert labels.demo_label(datetime(2027, 7, 1, 7, 5, tzinfo=UTC)) == "torsdag 1. juli kl. 09.05"
    assert demo_calendar.demo_uid(uuid.UUID(int=1)) == demo_calendar.demo_uid(uuid.UUID(int=1))


# --- races ------------------------------------------------------------------------------------------------------


def test_a_reschedule_racing_a_move_to_lost_never_leaves_a_cancellation_a_calendar_would_ignore(
    app, signed_in, owned_lead, staff_user
):
    client, token = signed_in
    day = future_tuesday_12_january()
    schedule(client, token, owned_lead["id"], local_value(day, "13:00"))

    def work(n: int, barrier) -> str:
        with app.app_context():
            user = db.session.get(User, staff_user["id"])
            if n == 0:
                plan = demos.validate_demo(
                    {"demo_at": local_value(day, "15:00"), "demo_location": VIDEO}, default_host_id=user.id
                )
                barrier.wait()
                try:
                    demos.reschedule(owned_lead["id"], plan, by=user)
                    return "moved"
                except demos.DemoChanged:
                    return "refused"
                except demos.DemoNotScheduled:
                    return "refused"
            barrier.wait()
            moves.move(owned_lead["id"], "lost", by=user, details=moves.MoveDetails(reason="price"))
            return "lost"

    for _ in range(5):
        results = run_together(2, work)
        rows = [row for row in outbox_rows(app, owned_lead["id"]) if row.kind in scheduling_mails.CALENDAR_KINDS]
        sequences = {row.kind: json.loads(row.payload)["sequence"] for row in rows}
        assert sequences[scheduling_mails.CANCELLATION_KIND] == max(sequences.values())
        if results[0] == "moved":
            assert sequences[scheduling_mails.CANCELLATION_KIND] > sequences[scheduling_mails.UPDATE_KIND]
        lead = stored_lead(app, owned_lead["id"])
        assert lead.status == "lost" and lead.demo_cancelled_at is not None
        # Again, from the start.
        with app.app_context():
            db.session.execute(sa.delete(OutboxMessage).where(OutboxMessage.lead_id == owned_lead["id"]))
            db.session.execute(
                sa.update(Lead)
                .where(Lead.id == owned_lead["id"])
                .values(status="qualified", demo_at=None, demo_sequence=0, demo_cancelled_at=None)
            )
            db.session.commit()
        schedule(client, token, owned_lead["id"], local_value(day, "13:00"))


def test_two_people_moving_the_demo_at_once_give_every_update_its_own_sequence(app, signed_in, owned_lead, staff_user):
    client, token = signed_in
    day = future_tuesday_12_january()
    schedule(client, token, owned_lead["id"], local_value(day, "13:00"))

    def work(n: int, barrier) -> str:
        with app.app_context():
            user = db.session.get(User, staff_user["id"])
            plan = demos.validate_demo(
                {"demo_at": local_value(day, f"1{4 + n}:00"), "demo_location": VIDEO}, default_host_id=user.id
            )
            barrier.wait()
            try:
                demos.reschedule(owned_lead["id"], plan, by=user)
                return "moved"
            except demos.DemoChanged:
                return "refused"

    results = run_together(2, work)

    moved = results.count("moved")
    assert moved >= 1
    updates = [row for row in outbox_rows(app, owned_lead["id"]) if row.kind == scheduling_mails.UPDATE_KIND]
    sequences = sorted(json.loads(row.payload)["sequence"] for row in updates)
    assert sequences == sorted([n for n in range(1, moved + 1) for _ in range(2)])  # prospect and host each
    assert stored_lead(app, owned_lead["id"]).demo_sequence == moved
