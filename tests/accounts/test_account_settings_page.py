"""«Innstillinger»: a page of sections for what a person owns: name, password (the current one first), two-factor
sign-in and notifications."""

import re

import sqlalchemy as sa
from helpers.accounts import NEW_PASSWORD, audit_actions, mails, sign_in, signed_in, stored_user, submit
from helpers.jobs import run_jobs
from helpers.staff import STAFF_PASSWORD

from meander_site.accounts.models import StaffSession
from meander_site.extensions import db


def test_the_page_has_a_section_per_thing_a_person_owns(staff_client):
    page = staff_client.get("/pipeline/settings").text

    headings = re.findall(r'<h2 id="[a-z-]+-heading">([^<]+)</h2>', page)
    assert headings == ["Navn", "Passord", "Tofaktor-innlogging", "Varsler", "Fravær"]
    assert "Minst 12 tegn, og ikke lett å gjette" in page  # the rule is shown before anything is typed
    assert '<a href="/pipeline/settings" aria-current="page">Siri Selger' in page


def test_changing_the_name_shows_everywhere_and_is_audited(app, staff_user, staff_client):
    saved = submit(staff_client, "/pipeline/settings", "/pipeline/settings/name", name="  Siri   Selgersen ")

    assert saved.status_code == 303
    assert "Navnet er lagret." in staff_client.get("/pipeline/settings").text
    assert stored_user(app, staff_user["id"]).name == "Siri Selgersen"
    assert "Siri Selgersen" in staff_client.get("/pipeline").text
    assert ("name_changed", staff_user["id"], staff_user["id"], None) in audit_actions(app)


def test_an_empty_or_overlong_name_is_refused_and_kept(app, staff_user, staff_client):
    empty = submit(staff_client, "/pipeline/settings", "/pipeline/settings/name", name="   ")
    long = submit(staff_client, "/pipeline/settings", "/pipeline/settings/name", name="x" * 101)

    assert empty.status_code == long.status_code == 422
    assert "Skriv inn navnet ditt" in empty.text and "Navnet kan ha høyst 100 tegn. Du har skrevet 101." in long.text
    assert 'value="' + "x" * 101 + '"' in long.text
    assert stored_user(app, staff_user["id"]).name == "Siri Selger"


def test_changing_the_password_needs_the_current_one(app, staff_user, staff_client):
    response = submit(
        staff_client,
        "/pipeline/settings",
        "/pipeline/settings/password",
        current_password="feil",
        password=NEW_PASSWORD,
    )

    assert response.status_code == 422
    assert "Det nåværende passordet stemmer ikke." in response.text
    assert sign_in(app.test_client(), staff_user["email"], STAFF_PASSWORD).status_code == 303


def test_a_changed_password_keeps_this_browser_ends_the_others_and_mails_the_change(
    app, staff_user, staff_client, smtp_server
):
    other = signed_in(app, staff_user)

    response = submit(
        staff_client,
        "/pipeline/settings",
        "/pipeline/settings/password",
        current_password=STAFF_PASSWORD,
        password=NEW_PASSWORD,
    )

    assert response.status_code == 303
    assert "Passordet er endret." in staff_client.get("/pipeline/settings").text
    assert other.get("/pipeline").status_code == 302
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(StaffSession)) == 1
    assert sign_in(app.test_client(), staff_user["email"], NEW_PASSWORD).status_code == 303
    run_jobs(app)
    assert len(mails(smtp_server, "Passordet ditt er endret", staff_user["email"])) == 1
    assert ("password_changed", staff_user["id"], staff_user["id"], None) in audit_actions(app)


def test_a_guessable_new_password_gets_the_reason_in_norwegian(app, staff_client):
    response = submit(
        staff_client,
        "/pipeline/settings",
        "/pipeline/settings/password",
        current_password=STAFF_PASSWORD,
        password="qwertyuiopasdf",
    )

    assert response.status_code == 422
    assert "Passordet er for lett å gjette." in response.text
    assert "keyboard" not in response.text.lower() and "easy to guess" not in response.text


def test_the_notification_choice_still_saves_where_it_did(app, staff_user, staff_client):
    response = submit(staff_client, "/pipeline/settings")  # the box unticked

    assert response.status_code == 303 and response.headers["Location"] == "/pipeline/settings"
    assert stored_user(app, staff_user["id"]).notify_new_leads is False
