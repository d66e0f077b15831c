"""The prospect moves or cancels from /confirm/<ref>: the same host first, the 2-hour cutoff, at most 3 moves, the
same UID with the next SEQUENCE, the timeline, the owner told; and reminders 24 hours and 1 hour before that
follow the demo (issue 19)."""

import re
from datetime import timedelta

import sqlalchemy as sa
from helpers.booking import book
from helpers.jobs import run_jobs
from helpers.scheduling import make_reminders_due

from meander_site.business_days import OSLO
from meander_site.core.clock import utcnow
from meander_site.extensions import db
from meander_site.leads.models import Lead, LeadEvent
from meander_site.mail import sweep
from meander_site.mail.models import OutboxMessage
from meander_site.scheduling import mails as demo_mails
from meander_site.scheduling import reminders as demo_reminders
from meander_site.slots import mails as slot_mails
from meander_site.slots.models import SlotClaim

SLOT_INPUT = re.compile(r'name="slot" value="([0-9T:-]{16})"')
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def booked(app, client) -> tuple[str, str]:
    """A slot booked on the form: the confirmation page's path and its HTML."""
    slot = SLOT_INPUT.findall(client.get("/demo").get_data(as_text=True))[0]
    location = book(client, slot=slot).headers["Location"]
    return location, client.get(location).get_data(as_text=True)


def post_change(client, page_path: str, action: str, **data):
    page = client.get(page_path).get_data(as_text=True)
    return client.post(f"{page_path}/{action}", data={"csrf_token": CSRF.search(page).group(1), **data})


def the_lead(app) -> Lead:
    with app.app_context():
        lead = db.session.execute(sa.select(Lead)).scalar_one()
        db.session.expunge(lead)
        return lead


def rows(app, kind: str) -> list[OutboxMessage]:
    with app.app_context():
        found = list(
            db.session.execute(
                sa.select(OutboxMessage).where(OutboxMessage.kind == kind).order_by(OutboxMessage.created_at)
            ).scalars()
        )
        db.session.expunge_all()
        return found


def test_moving_sends_an_update_with_the_next_sequence_and_tells_the_owner(app, client, staff_user, smtp_server):
    path, page = booked(app, client)
    assert "Flytt demoen" in page and "Avlys demoen" in page
    before = the_lead(app)
    other = SLOT_INPUT.findall(page)[-1]
    response = post_change(client, path, "flytt", slot=other)
    assert response.status_code == 303
    after = the_lead(app)
    assert after.demo_sequence == before.demo_sequence + 1 and after.demo_at != before.demo_at
    assert after.demo_host_id == staff_user["id"]
    assert len(rows(app, demo_mails.UPDATE_KIND)) == 2
    assert len(rows(app, slot_mails.CHANGE_NOTICE_KIND)) == 1
    with app.app_context():
        details = db.session.execute(sa.select(LeadEvent.detail).where(LeadEvent.kind == "demo_moved")).scalars().all()
        assert details and details[0].startswith("Demo flyttet av kunden")
    run_jobs(app)
    updates = [m for m in smtp_server.messages() if m["Subject"].startswith("Demoen er flyttet")]
    assert len(updates) == 2  # the prospect and the host
    for update in updates:
        ics = next(part for part in update.walk() if part.get_content_type() == "text/calendar").get_content()
        assert "SEQUENCE:1" in ics and f"UID:demo-{after.id}@" in ics


def test_at_most_three_moves(app, client, staff_user):
    path, page = booked(app, client)
    for _ in range(3):
        current = the_lead(app).demo_at
        choices = SLOT_INPUT.findall(client.get(path).get_data(as_text=True))
        target = next(
            value for value in reversed(choices) if value != current.astimezone(OSLO).strftime("%Y-%m-%dT%H:%M")
        )
        assert post_change(client, path, "flytt", slot=target).status_code == 303
        assert the_lead(app).demo_at != current
    page = client.get(path).get_data(as_text=True)
    assert "flyttet så mange ganger det går an" in page
    refused = post_change(client, path, "flytt", slot=SLOT_INPUT.findall(client.get("/demo").get_data(as_text=True))[0])
    assert refused.status_code == 409
    with app.app_context():
        assert db.session.execute(sa.select(SlotClaim.moves)).scalar_one() == 3


def test_no_change_within_two_hours_of_the_start(app, client, staff_user):
    path, _ = booked(app, client)
    with app.app_context():
        soon = utcnow() + timedelta(minutes=90)
        db.session.execute(sa.update(Lead).values(demo_at=soon))
        db.session.commit()
    page = client.get(path).get_data(as_text=True)
    assert "kan ikke flyttes eller avlyses her" in page
    assert post_change(client, path, "avlys").status_code == 409
    assert the_lead(app).demo_cancelled_at is None


def test_cancelling_frees_the_time_and_sends_cancellations(app, client, staff_user):
    path, _ = booked(app, client)
    demo_at = the_lead(app).demo_at
    response = post_change(client, path, "avlys", reason="Vi har valgt noe annet")
    assert response.status_code == 303
    lead = the_lead(app)
    assert lead.demo_cancelled_at is not None and lead.demo_cancel_reason == "Vi har valgt noe annet"
    assert len(rows(app, demo_mails.CANCELLATION_KIND)) == 2
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(SlotClaim)) == 0
    # The time is free again, and the page offers new times.
    page = client.get(path).get_data(as_text=True)
    assert "Ingen demo er avtalt" in page
    assert demo_at.astimezone(OSLO).strftime("%Y-%m-%dT%H:%M") in SLOT_INPUT.findall(page)


def test_reminders_are_due_24_hours_and_1_hour_before_and_follow_a_move(app, client, staff_user):
    path, page = booked(app, client)
    lead = the_lead(app)
    reminders = rows(app, demo_reminders.REMINDER_KIND)
    due = sorted(lead.demo_at - row.send_after for row in reminders)
    expected = [before for before in (timedelta(hours=1), timedelta(hours=24)) if lead.demo_at - before > utcnow()]
    assert due == expected
    later = SLOT_INPUT.findall(page)[-1]
    assert post_change(client, path, "flytt", slot=later).status_code == 303
    moved = the_lead(app)
    with app.app_context():
        for row in rows(app, demo_reminders.REMINDER_KIND):
            built = demo_reminders.build_reminder([row])
            if row.payload and f'"sequence": {moved.demo_sequence}' in row.payload:
                assert built is not None and "Flytt eller avlys" in built.body
            else:
                assert built is None  # the old time's reminder is never sent
    # A cancelled demo's reminders are never sent.
    assert post_change(client, path, "avlys").status_code == 303
    with app.app_context():
        assert all(demo_reminders.build_reminder([row]) is None for row in rows(app, demo_reminders.REMINDER_KIND))


def test_a_reminder_whose_moment_has_passed_is_not_written():
    now = utcnow()
    drafts = demo_reminders.reminder_drafts(
        lead_id=None, email="kari@lhl.no", demo_at=now + timedelta(hours=3), sequence=0, now=now
    )
    assert [round(draft.send_after.total_seconds() / 3600) for draft in drafts] == [2]


def test_the_change_forms_are_limited_per_link_whatever_the_address(app, client, staff_user):
    path, page = booked(app, client)
    token = CSRF.search(page).group(1)
    answers = [
        client.post(
            f"{path}/flytt",
            data={"csrf_token": token, "slot": "1999-01-01T10:00"},
            environ_overrides={"REMOTE_ADDR": f"10.19.1.{n + 1}"},
        ).status_code
        for n in range(8)
    ]
    assert answers[:6] == [422] * 6 and answers[6:] == [429, 429]


def test_a_due_reminder_is_sent_once_by_the_sweep(app, client, staff_user, smtp_server):
    booked(app, client)
    run_jobs(app)
    before = len(smtp_server.messages())
    swept = make_reminders_due(app)
    run_jobs(app)
    reminders = [m for m in smtp_server.messages()[before:] if "demo av Meander" in m["Subject"]]
    assert swept == len(reminders) >= 1
    assert all("Flytt eller avlys" in m.get_body(("plain",)).get_content() for m in reminders)
    with app.app_context():
        assert sweep.sweep_due() == 0
