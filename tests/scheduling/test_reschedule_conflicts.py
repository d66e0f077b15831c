"""Two people moving one demo, and a demo changing hands (issue 16, items 4 and 5).

The form carries the demo's SEQUENCE as the staff member saw it; the reschedule is a compare-and-set on it, so of
two moves from the same page one wins and the other gets a 409 that says where the demo is now. A host who is
replaced gets a CANCEL of the same UID, so their calendar is not left with a demo they no longer hold."""

import re
from datetime import date, timedelta

import pytest
import sqlalchemy as sa
import vobject
from helpers.jobs import run_jobs
from helpers.scheduling import make_scheduled_lead
from helpers.staff import log_in, staff_csrf
from helpers.waiting import run_together

from meander_site.accounts import users
from meander_site.extensions import db
from meander_site.leads.models import Lead
from meander_site.mail.models import OutboxMessage
from meander_site.scheduling import calendar as demo_calendar
from meander_site.scheduling import labels
from meander_site.scheduling import mails as scheduling_mails

HTMX = {"HX-Request": "true"}
COLLEAGUE_PASSWORD = "et-langt-passord-for-kollega"
SEQUENCE_INPUT = re.compile(r'<input type="hidden" name="demo_sequence" value="(\d+)">')


@pytest.fixture
def colleague(app):
    with app.app_context():
        user = users.create_user("kollega@meander.no", "Kari Kollega", COLLEAGUE_PASSWORD)
        return {"id": user.id, "email": user.email, "name": user.name}


@pytest.fixture
def colleague_client(app, colleague):
    client = app.test_client()
    assert log_in(client, colleague["email"], COLLEAGUE_PASSWORD).status_code == 303
    return client


@pytest.fixture
def demo_lead(app, staff_user):
    lead = make_scheduled_lead(app, staff_user["id"])
    run_jobs(app)  # the invitations went out
    return lead


def in_days(days: int, clock: str) -> str:
    return f"{(date.today() + timedelta(days=days)).isoformat()}T{clock}"


def seen_sequence(client, lead_id) -> str:
    """What the lead page's «Flytt demoen» form carries."""
    return SEQUENCE_INPUT.search(client.get(f"/pipeline/leads/{lead_id}").get_data(as_text=True)).group(1)


def reschedule(client, lead_id, when: str, sequence: str, htmx: bool = True, **fields):
    data = {"demo_at": when, "demo_location": "https://meet.meander.no/ny", "demo_sequence": sequence, **fields}
    headers = {"X-CSRFToken": staff_csrf(client), **(HTMX if htmx else {})}
    return client.post(f"/pipeline/leads/{lead_id}/demo", data=data, headers=headers)


def updates_to(app, lead_id) -> list[str]:
    with app.app_context():
        return db.session.scalars(
            sa.select(OutboxMessage.recipient).where(
                OutboxMessage.lead_id == lead_id, OutboxMessage.kind == scheduling_mails.UPDATE_KIND
            )
        ).all()


def demo_at(app, lead_id):
    with app.app_context():
        return db.session.get(Lead, lead_id).demo_at


def test_the_second_of_two_moves_from_the_same_page_gets_409_with_the_current_time(
    app, staff_client, colleague_client, demo_lead
):
    mine, theirs = seen_sequence(staff_client, demo_lead["id"]), seen_sequence(colleague_client, demo_lead["id"])
    assert mine == theirs == "0"

    first = reschedule(staff_client, demo_lead["id"], in_days(9, "10:00"), mine)
    moved_to = demo_at(app, demo_lead["id"])
    second = reschedule(colleague_client, demo_lead["id"], in_days(10, "14:00"), theirs)

    assert first.status_code == 200
    assert second.status_code == 409
    answer = second.get_data(as_text=True)
    assert f"Noen andre flyttet nettopp demoen til {labels.demo_label(moved_to)}" in answer
    assert demo_at(app, demo_lead["id"]) == moved_to, "the first move stands"
    assert len(updates_to(app, demo_lead["id"])) == 2, "one update for the prospect and one for the host, not two each"


def test_without_javascript_the_loser_sees_the_lead_page_with_the_current_demo_and_what_they_typed(
    app, staff_client, colleague_client, demo_lead
):
    seen = seen_sequence(colleague_client, demo_lead["id"])
    reschedule(staff_client, demo_lead["id"], in_days(9, "10:00"), seen_sequence(staff_client, demo_lead["id"]))

    response = reschedule(colleague_client, demo_lead["id"], in_days(10, "14:00"), seen, htmx=False)

    assert response.status_code == 409
    page = response.get_data(as_text=True)
    assert "Noen andre flyttet nettopp demoen til" in page
    assert f'value="{in_days(10, "14:00")}"' in page, "what they typed is kept"
    assert SEQUENCE_INPUT.search(page).group(1) == "1", "a second try compares with the demo as it is now"


def test_two_moves_at_once_one_wins_and_the_other_gets_409(app, staff_client, colleague_client, demo_lead):
    clients = [staff_client, colleague_client]
    seen = seen_sequence(staff_client, demo_lead["id"])
    tokens = [staff_csrf(client) for client in clients]

    def move(n, barrier):
        data = {
            "demo_at": in_days(9 + n, "10:00"),
            "demo_location": "https://meet.meander.no/ny",
            "demo_sequence": seen,
        }
        barrier.wait()
        response = clients[n].post(
            f"/pipeline/leads/{demo_lead['id']}/demo", data=data, headers={**HTMX, "X-CSRFToken": tokens[n]}
        )
        return response.status_code

    assert sorted(run_together(2, move)) == [200, 409]
    assert len(updates_to(app, demo_lead["id"])) == 2


def test_the_card_menu_carries_the_sequence_the_card_showed(app, staff_client, demo_lead):
    menu = staff_client.get(f"/pipeline/leads/{demo_lead['id']}/menu", headers=HTMX).get_data(as_text=True)

    assert 'data-demo-sequence="0"' in menu


# --- a demo changing hands -------------------------------------------------------------------------------------


def calendar_of(message):
    [part] = [part for part in message.walk() if part.get_content_type() == "text/calendar"]
    return vobject.readOne(part.get_payload(decode=True).decode("utf-8"))


def test_the_host_who_is_replaced_gets_a_cancel_of_the_same_uid(
    app, staff_client, staff_user, colleague, demo_lead, smtp_server
):
    smtp_server.clear()
    response = reschedule(staff_client, demo_lead["id"], in_days(9, "10:00"), "0", demo_host=str(colleague["id"]))
    assert response.status_code == 200
    run_jobs(app)

    by_recipient = {message["X-RcptTo"]: message for message in smtp_server.messages()}
    assert set(by_recipient) == {"kari.nordmann@lhl.no", colleague["email"], staff_user["email"]}
    uid = demo_calendar.demo_uid(demo_lead["id"])
    cancel = calendar_of(by_recipient[staff_user["email"]])
    assert cancel.method.value == "CANCEL"
    assert cancel.vevent.uid.value == uid
    assert int(cancel.vevent.sequence.value) == 1
    assert cancel.vevent.status.value == "CANCELLED"
    assert cancel.vevent.organizer.value == f"mailto:{staff_user['email']}", "the copy it cancels was theirs"
    assert "Du holder ikke lenger demoen" in by_recipient[staff_user["email"]]["Subject"]
    for recipient in ("kari.nordmann@lhl.no", colleague["email"]):
        update = calendar_of(by_recipient[recipient])
        assert (update.method.value, update.vevent.uid.value, int(update.vevent.sequence.value)) == ("REQUEST", uid, 1)


def test_a_host_who_takes_the_demo_back_before_the_cancel_goes_gets_no_cancel(
    app, staff_client, staff_user, colleague, demo_lead, smtp_server
):
    reschedule(staff_client, demo_lead["id"], in_days(9, "10:00"), "0", demo_host=str(colleague["id"]))
    reschedule(staff_client, demo_lead["id"], in_days(9, "11:00"), "1", demo_host=str(staff_user["id"]))
    smtp_server.clear()
    run_jobs(app)

    to_first_host = [calendar_of(m) for m in smtp_server.messages() if m["X-RcptTo"] == staff_user["email"]]
    assert [(c.method.value, int(c.vevent.sequence.value)) for c in to_first_host] == [("REQUEST", 2)]
    to_colleague = [calendar_of(m) for m in smtp_server.messages() if m["X-RcptTo"] == colleague["email"]]
    assert to_colleague == [], "their invitation was overtaken before it went: nothing to take back"
