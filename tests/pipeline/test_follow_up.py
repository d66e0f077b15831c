"""Following leads up on the board and the lead page: owners and their filters, next steps and what falls due,
staff notes, the notification setting, and what staff see when a lead is gone."""

import re
import uuid
from datetime import timedelta

import pytest
import sqlalchemy as sa
from helpers.assignment import leave_the_pool
from helpers.booking import make_lead
from helpers.staff import STAFF_PASSWORD, log_in, post, staff_csrf

from meander_site.accounts import users
from meander_site.accounts.models import User
from meander_site.core.clock import utcnow
from meander_site.extensions import db
from meander_site.leads import next_step
from meander_site.leads.models import Lead

HTMX = {"HX-Request": "true"}
CARD = r'<li class="lead-card[^"]*"\s+id="card-{id}".*?</li>'


def board(client, **args) -> str:
    response = client.get("/pipeline", query_string=args)
    assert response.status_code == 200
    return response.get_data(as_text=True)


def card(page: str, lead_id) -> str:
    match = re.search(CARD.format(id=lead_id), page, re.S)
    assert match, f"card {lead_id} is on the page"
    return match.group(0)


def shown_ids(page: str) -> set[str]:
    return set(re.findall(r'<li class="lead-card[^"]*"\s+id="card-([^"]+)"', page))


def the_lead(app, lead_id) -> Lead:
    with app.app_context():
        lead = db.session.get(Lead, lead_id)
        db.session.expunge(lead)
        return lead


@pytest.fixture(autouse=True)
def leads_arrive_unowned(app, staff_user):
    """Nobody takes new leads: owners here are set by hand (tests/assignment: owners in rotation)."""
    leave_the_pool(app)


@pytest.fixture
def colleague(app):
    with app.app_context():
        user = users.create_user("ola@meander.no", "Ola Oppfølger", STAFF_PASSWORD)
        person = {"id": user.id, "email": user.email, "name": user.name}
    leave_the_pool(app)
    return person


def timeline_texts(client, lead_id) -> list[str]:
    page = client.get(f"/pipeline/leads/{lead_id}").get_data(as_text=True)
    section = re.search(r'aria-labelledby="timeline-heading">.*?</section>', page, re.S).group(0)
    return [html_text.strip() for html_text in re.findall(r'<li class="timeline-entry[^"]*">(.*?)</li>', section, re.S)]


# --- owners ------------------------------------------------------------------------------------------


def test_assigning_from_the_card_menu_answers_with_the_card_and_the_history_records_each_change(
    app, staff_client, token, staff_user, colleague
):
    lead = make_lead(app)
    path = f"/pipeline/leads/{lead['id']}/owner"

    response = post(staff_client, path, token, htmx=True, owner_id=str(colleague["id"]), back="board")

    assert response.status_code == 200
    body = response.get_data(as_text=True)
    assert "«LHL Hjerneslag» er gitt til Ola Oppfølger." in body
    changed = re.search(r'<template data-lead-id="[^"]+" data-status="new" data-changed>(.*?)</template>', body, re.S)
    assert changed and '<span aria-hidden="true">OO</span><span class="visually-hidden">Eier: Ola Oppfølger</span>' in (
        changed.group(1)
    )
    assert the_lead(app, lead["id"]).owner_id == colleague["id"]

    post(staff_client, path, token, htmx=True, owner_id="", back="board")

    assert the_lead(app, lead["id"]).owner_id is None
    entries = timeline_texts(staff_client, lead["id"])
    assert "Eier: Ola Oppfølger → Ufordelt" in entries[0] and staff_user["name"] in entries[0]
    assert "Eier: Ufordelt → Ola Oppfølger" in entries[1]


def test_assigning_from_the_lead_page_without_javascript_redirects_back_with_a_message(
    app, staff_client, token, staff_user
):
    lead = make_lead(app)

    response = post(staff_client, f"/pipeline/leads/{lead['id']}/owner", token, owner_id=str(staff_user["id"]))

    assert response.status_code == 303
    assert response.headers["Location"] == f"/pipeline/leads/{lead['id']}"
    page = staff_client.get(response.headers["Location"]).get_data(as_text=True)
    assert "«LHL Hjerneslag» er gitt til Siri Selger." in page
    assert re.search(rf'<option value="{staff_user["id"]}" selected>Siri Selger \(meg\)</option>', page)


@pytest.mark.parametrize("owner_id", ["not-a-uuid", str(uuid.uuid4())], ids=["not-a-uuid", "unknown-id"])
def test_an_unknown_or_deactivated_owner_is_refused_and_changes_nothing(app, staff_client, token, colleague, owner_id):
    lead = make_lead(app)
    with app.app_context():
        users.deactivate(colleague["email"])

    for candidate in (owner_id, str(colleague["id"])):
        response = post(staff_client, f"/pipeline/leads/{lead['id']}/owner", token, htmx=True, owner_id=candidate)
        assert response.status_code == 422
        assert "Velg en aktiv kollega, eller «Ufordelt»." in response.get_data(as_text=True)
    assert the_lead(app, lead["id"]).owner_id is None


def test_the_owner_filters_show_mine_unassigned_or_one_persons_leads(app, staff_client, token, staff_user, colleague):
    mine = make_lead(app, email="min@eksempel.no")["id"]
    theirs = make_lead(app, email="deres@eksempel.no")["id"]
    nobodys = make_lead(app, email="ingen@eksempel.no")["id"]
    post(staff_client, f"/pipeline/leads/{mine}/owner", token, owner_id=str(staff_user["id"]))
    post(staff_client, f"/pipeline/leads/{theirs}/owner", token, owner_id=str(colleague["id"]))

    assert shown_ids(board(staff_client, owner="mine")) == {str(mine)}
    assert shown_ids(board(staff_client, owner="none")) == {str(nobodys)}
    assert shown_ids(board(staff_client, owner=str(colleague["id"]))) == {str(theirs)}
    assert shown_ids(board(staff_client)) == {str(mine), str(theirs), str(nobodys)}
    page = board(staff_client, owner="mine")
    assert '<option value="mine" selected>Mine</option>' in page
    assert re.search(rf'<option value="{colleague["id"]}">Ola Oppfølger</option>', page)


# --- next steps --------------------------------------------------------------------------------------


def test_a_new_lead_starts_with_forste_kontakt_due_by_the_end_of_the_next_business_day(app):
    lead = make_lead(app)

    stored = the_lead(app, lead["id"])

    assert stored.next_step == "Første kontakt"
    assert stored.next_step_due_at == next_step.first_step(stored.created_at).due_at
    assert stored.next_step_due_at > stored.created_at + timedelta(hours=12)


def test_staff_change_the_next_step_from_the_card_menu_and_it_shows_on_the_card(app, staff_client, token):
    lead = make_lead(app)

    response = post(
        staff_client,
        f"/pipeline/leads/{lead['id']}/next-step",
        token,
        htmx=True,
        next_step="  Ring  etter påske ",
        next_step_due="2031-04-22",
        back="board",
    )

    assert response.status_code == 200
    assert "Neste steg for «LHL Hjerneslag» er lagret." in response.get_data(as_text=True)
    stored = the_lead(app, lead["id"])
    assert stored.next_step == "Ring etter påske"
    assert stored.next_step_due_at.isoformat().startswith("2031-04-22T21:59:59")  # 23:59:59 in Oslo (summer time)
    shown = card(board(staff_client), lead["id"])
    assert "Ring etter påske</span> · <time" in shown
    assert "Neste steg: Ring etter påske (frist 22.04.2031)" in timeline_texts(staff_client, lead["id"])[0]


@pytest.mark.parametrize(
    "text, due, message",
    [
        ("", "2031-01-02", "Skriv hva som skal skje, for eksempel «Ring for å avtale demo»."),
        ("Ring", "", "Velg en frist, for eksempel i morgen."),
        ("Ring", "2.1.2031", "Velg en frist, for eksempel i morgen."),
        ("Ring", "1999-12-31", "Velg en frist mellom år 2000 og 2100."),
        ("x" * 201, "2031-01-02", "Neste steg kan være høyst 200 tegn. Du har skrevet 201."),
    ],
)
def test_a_bad_next_step_on_the_lead_page_is_422_with_its_message_and_keeps_what_was_typed(
    app, staff_client, token, text, due, message
):
    lead = make_lead(app)
    before = the_lead(app, lead["id"])

    response = post(staff_client, f"/pipeline/leads/{lead['id']}/next-step", token, next_step=text, next_step_due=due)

    assert response.status_code == 422
    page = response.get_data(as_text=True)
    assert message in page
    assert '<div class="error-summary" role="alert" tabindex="-1">' in page
    assert f'value="{due}"' in page or not due
    after = the_lead(app, lead["id"])
    assert (after.next_step, after.next_step_due_at) == (before.next_step, before.next_step_due_at)


def test_final_statuses_have_no_next_step_and_refuse_one(app, staff_client, token):
    lead = make_lead(app)
    post(staff_client, f"/pipeline/leads/{lead['id']}/status", token, htmx=True, status="converted", deal_value="1")

    stored = the_lead(app, lead["id"])
    assert (stored.next_step, stored.next_step_due_at) == (None, None)
    response = post(
        staff_client,
        f"/pipeline/leads/{lead['id']}/next-step",
        token,
        htmx=True,
        next_step="Ring",
        next_step_due="2031-01-02",
    )
    assert response.status_code == 422
    assert "«Kunde» er en sluttstatus og har ikke neste steg." in response.get_data(as_text=True)
    menu = staff_client.get(f"/pipeline/leads/{lead['id']}/menu", headers=HTMX).get_data(as_text=True)
    assert "next-step-form" not in menu and "move-form" not in menu


def test_a_move_may_carry_the_next_step_staff_chose_instead_of_the_proposal(app, staff_client, token):
    lead = make_lead(app)

    post(
        staff_client,
        f"/pipeline/leads/{lead['id']}/status",
        token,
        htmx=True,
        status="contacted",
        next_step="Send tilbud",
        next_step_due="2031-01-03",
    )

    stored = the_lead(app, lead["id"])
    assert (stored.status, stored.next_step) == ("contacted", "Send tilbud")


# --- what falls due ----------------------------------------------------------------------------------


def make_overdue(app, lead_id, days: int = 2) -> None:
    with app.app_context():
        db.session.execute(
            sa.update(Lead).where(Lead.id == lead_id).values(next_step_due_at=utcnow() - timedelta(days=days))
        )
        db.session.commit()


def test_overdue_cards_alone_carry_data_overdue_and_the_header_counts_them(app, staff_client, token, staff_user):
    late = make_lead(app, email="sen@eksempel.no")["id"]
    later = make_lead(app, email="senere@eksempel.no")["id"]
    on_time = make_lead(app, email="i.tide@eksempel.no")["id"]
    lost = make_lead(app, email="tapt@eksempel.no")["id"]
    make_overdue(app, late)
    make_overdue(app, later, days=9)
    make_overdue(app, lost)
    post(staff_client, f"/pipeline/leads/{lost}/status", token, htmx=True, status="lost", reason="price")

    page = board(staff_client)

    assert "data-overdue" in card(page, late) and "Forfalt" in card(page, late)
    assert "data-overdue" in card(page, later)
    assert "data-overdue" not in card(page, on_time) and "Forfalt" not in card(page, on_time)
    assert "data-overdue" not in card(page, lost)  # a final status has nothing due
    assert re.search(
        r'<a id="overdue-count" class="overdue-count overdue-count--some"\s+href="/pipeline\?overdue=1">'
        r"2 forfalt</a>",
        page,
    )
    # «Forfaller først» (chosen: «Ny» reads by its first-contact time by default): the longest overdue on top.
    page = board(staff_client, sort_new="due")
    new_column = page.split('id="cards-new"')[1].split("</ol>")[0]
    assert re.findall(r'<li class="lead-card[^"]*"\s+id="card-([^"]+)"', new_column)[:2] == [str(later), str(late)]

    filtered = board(staff_client, overdue="1")
    assert shown_ids(filtered) == {str(late), str(later)}
    assert 'id="filter-overdue" name="overdue" value="1" checked' in filtered


def test_the_overdue_count_follows_the_other_filters(app, staff_client, token, staff_user):
    mine = make_lead(app, email="min@eksempel.no")["id"]
    other = make_lead(app, email="annen@eksempel.no")["id"]
    make_overdue(app, mine)
    make_overdue(app, other)
    post(staff_client, f"/pipeline/leads/{mine}/owner", token, owner_id=str(staff_user["id"]))

    assert ">1 forfalt</a>" in board(staff_client, owner="mine")
    assert ">2 forfalt</a>" in board(staff_client)


# --- notes -------------------------------------------------------------------------------------------


def test_notes_form_a_dated_timeline_with_their_authors_beside_moves(app, staff_client, token, colleague):
    lead = make_lead(app)
    path = f"/pipeline/leads/{lead['id']}/notes"

    first = post(staff_client, path, token, body="Ringte, svarer i morgen.")
    post(staff_client, f"/pipeline/leads/{lead['id']}/status", token, htmx=True, status="contacted")
    other = app.test_client()
    log_in(other, colleague["email"], STAFF_PASSWORD)
    post(other, path, staff_csrf(other), body="Sendte prisliste.\nVil ha demo i mars.")

    assert first.status_code == 303 and first.headers["Location"].endswith("#timeline-heading")
    entries = timeline_texts(staff_client, lead["id"])
    assert "Ola Oppfølger skrev" in entries[0] and "Sendte prisliste.\nVil ha demo i mars." in entries[0]
    assert "Flyttet fra «Ny» til «Kontaktet»" in entries[1]
    assert "Siri Selger skrev" in entries[2] and "Ringte, svarer i morgen." in entries[2]
    assert all(re.search(r'<time datetime="\d{4}-\d\d-\d\dT[\d:]+Z">', entry) for entry in entries)


@pytest.mark.parametrize(
    "body, message",
    [
        ("   ", "Skriv notatet før du lagrer det."),
        ("x" * 1001, "Notatet kan være høyst 1000 tegn. Du har skrevet 1001."),
    ],
)
def test_an_empty_or_overlong_note_is_422_with_its_message_and_saves_nothing(app, staff_client, token, body, message):
    lead = make_lead(app)

    response = post(staff_client, f"/pipeline/leads/{lead['id']}/notes", token, body=body)

    assert response.status_code == 422
    page = response.get_data(as_text=True)
    assert message in page and 'aria-invalid="true"' in page
    assert "Ingen notater eller endringer ennå." in page


# --- the notification setting ------------------------------------------------------------------------


def test_each_person_turns_new_lead_mail_off_and_on_again(app, staff_client, token, staff_user):
    page = staff_client.get("/pipeline/settings").get_data(as_text=True)
    assert 'id="notify_all" name="notify_new_leads" value="on" checked' in page
    assert '<label for="notify_all">Alle nye leads</label>' in page

    off = post(staff_client, "/pipeline/settings", token)

    assert off.status_code == 303
    with app.app_context():
        assert db.session.get(User, staff_user["id"]).notify_new_leads is False
    page = staff_client.get("/pipeline/settings").get_data(as_text=True)
    assert "Du får ikke lenger e-post om nye leads, bare om dem du får tildelt." in page
    assert 'id="notify_mine" name="notify_new_leads" value="off" checked' in page

    post(staff_client, "/pipeline/settings", token, notify_new_leads="on")
    with app.app_context():
        assert db.session.get(User, staff_user["id"]).notify_new_leads is True


def test_the_setting_needs_a_csrf_token(app, staff_client, staff_user):
    response = staff_client.post("/pipeline/settings", data={})

    assert response.status_code == 400
    with app.app_context():
        assert db.session.get(User, staff_user["id"]).notify_new_leads is True


# --- staff pages ---------------------------------------------------------------------------------------


def test_an_erased_leads_page_says_it_was_erased_and_leads_back_to_the_board(app, staff_client, token):
    lead = make_lead(app)
    post(staff_client, f"/pipeline/leads/{lead['id']}/delete", token)

    response = staff_client.get(f"/pipeline/leads/{lead['id']}")

    assert response.status_code == 404
    page = response.get_data(as_text=True)
    assert '<h1 id="not-found-heading">Leaden er slettet</h1>' in page
    assert '<a class="button button--secondary" href="/pipeline">Tilbake til tavla</a>' in page
    assert "bestille en demo" not in page and 'href="/demo"' not in page


@pytest.mark.parametrize("path", ["/pipeline/leads/{id}", "/pipeline/leads/{id}/menu", "/pipeline/nowhere"])
def test_an_unknown_lead_or_staff_address_says_so_and_leads_back_to_the_board(staff_client, path):
    response = staff_client.get(path.format(id=uuid.uuid4()))

    assert response.status_code == 404
    page = response.get_data(as_text=True)
    assert "Fant ikke leaden" in page and 'href="/pipeline">Tilbake til tavla</a>' in page
    assert "bestille en demo" not in page


def test_a_visitor_who_is_not_signed_in_gets_the_public_404(client):
    response = client.get("/pipeline/nowhere")

    assert response.status_code in (302, 303, 404)
    assert "Tilbake til tavla" not in response.get_data(as_text=True)


def test_the_login_page_gives_no_shell_commands_and_points_to_an_administrator(client):
    page = client.get("/login").get_data(as_text=True)

    assert "Be en administrator om hjelp." in page
    assert "flask" not in page and "--app" not in page and "set-password" not in page


def test_an_administrator_resets_a_password_with_the_users_command(app, staff_user, client):
    runner = app.test_cli_runner()

    result = runner.invoke(args=["users", "set-password", staff_user["email"]], input="nytt-langt-passord-42\n")

    assert result.exit_code == 0, result.output
    assert log_in(client, staff_user["email"], "nytt-langt-passord-42").status_code == 303
    assert log_in(app.test_client(), staff_user["email"], STAFF_PASSWORD).status_code != 303
    assert client.get("/pipeline").status_code == 200
