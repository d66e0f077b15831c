"""«Glemt passord?»: a one-time link by mail, valid for an hour. The answer, and the time it takes, are the same
whether or not the address has an account; the requests are limited per address and per client address; a
completed reset ends every other session and a mail says the password was changed."""

import re
import statistics
import time

import pytest
import sqlalchemy as sa
from helpers.accounts import (
    NEW_PASSWORD,
    audit_actions,
    enrol_two_factor,
    mails,
    open_link,
    page_token,
    sent_link,
    sign_in,
    signed_in,
    submit,
)
from helpers.jobs import run_jobs
from helpers.staff import STAFF_PASSWORD

from meander_site.accounts import users
from meander_site.accounts.models import AccountToken, StaffSession
from meander_site.extensions import db
from meander_site.mail.models import OutboxMessage

SUBJECT = "Velg nytt passord for Meander"
CHANGED = "Passordet ditt er endret"


def ask_for_link(client, email: str):
    return submit(client, "/glemt-passord", email=email)


def without_csrf(page: str) -> str:
    return re.sub(r'"X-CSRFToken": "[^"]+"', "", page)


def counts(app) -> tuple[int, int]:
    with app.app_context():
        return (
            db.session.scalar(sa.select(sa.func.count()).select_from(AccountToken)),
            db.session.scalar(sa.select(sa.func.count()).select_from(OutboxMessage)),
        )


def test_the_login_page_offers_forgot_password(client):
    page = client.get("/login").text
    assert '<a href="/glemt-passord">Glemt passord?</a>' in page


def test_known_and_unknown_addresses_get_the_same_answer_and_the_same_work_but_only_one_gets_mail(
    app, staff_user, smtp_server
):
    known = ask_for_link(app.test_client(), staff_user["email"])
    after_known = counts(app)
    unknown = ask_for_link(app.test_client(), "finnes.ikke@meander.no")
    after_unknown = counts(app)

    assert (known.status_code, known.headers["Location"]) == (unknown.status_code, unknown.headers["Location"])
    assert known.headers["Location"] == "/glemt-passord?sendt=1"
    first, second = app.test_client().get(known.headers["Location"]), app.test_client().get("/glemt-passord?sendt=1")
    assert without_csrf(first.text) == without_csrf(second.text)
    assert "Hvis adressen hører til en konto hos oss" in first.text
    assert after_known == (1, 1) and after_unknown == (2, 2)  # a link row and a mail row, either way

    run_jobs(app)
    [mail] = mails(smtp_server, SUBJECT)
    assert mail["To"] == staff_user["email"]
    assert "Lenken virker i 60 minutter" in mail.get_body(preferencelist=("plain",)).get_content()
    with app.app_context():
        closed = db.session.execute(sa.select(OutboxMessage.closed_reason).where(OutboxMessage.user_id.is_(None)))
        assert closed.scalar_one() == "gone"  # the unknown address's row: nothing to send
        assert "finnes.ikke" not in str(db.session.execute(sa.select(OutboxMessage.__table__)).all())


def reset_timings(app, known: str, tries: int) -> tuple[list[float], list[float]]:
    """Server time of `tries` requests each, known and unknown interleaved (so the machine's load falls on both)."""
    client = app.test_client()
    token = page_token(client, "/glemt-passord")
    timings: dict[bool, list[float]] = {True: [], False: []}
    for attempt in range(tries * 2 + 4):
        is_known = attempt % 2 == 0
        email = known if is_known else f"ukjent-{attempt}@meander.no"
        started = time.perf_counter()
        response = client.post("/glemt-passord", data={"email": email, "csrf_token": token})
        elapsed = time.perf_counter() - started
        assert response.status_code == 303
        if attempt >= 4:  # the first ones warm caches and connections
            timings[is_known].append(elapsed)
    return timings[True], timings[False]


def same_time_within_noise(a: list[float], b: list[float]) -> bool:
    """Medians within a quarter of the larger one, or 3 ms (a busy 2-core machine's scheduling noise)."""
    median_a, median_b = statistics.median(a), statistics.median(b)
    return abs(median_a - median_b) <= max(0.003, 0.25 * max(median_a, median_b))


@pytest.fixture
def unlimited_app(make_app, app):
    return make_app(PASSWORD_RESET_RATE_LIMIT="10000 per hour", PASSWORD_RESET_IP_RATE_LIMIT="10000 per hour")


def test_a_known_and_an_unknown_address_take_the_same_time_over_fifty_tries(unlimited_app, staff_user):
    known, unknown = reset_timings(unlimited_app, staff_user["email"], tries=50)

    assert len(known) == len(unknown) == 50
    assert same_time_within_noise(known, unknown), (statistics.median(known), statistics.median(unknown))


def test_the_timing_check_notices_an_answer_that_is_slower_for_a_known_address(unlimited_app, staff_user, monkeypatch):
    # The canary: were a known address to cost one argon2 hash at production's parameters, it would show.
    look_up = users.user_by_email

    def slower_when_known(email):
        user = look_up(email)
        if user is not None:
            time.sleep(0.04)
        return user

    monkeypatch.setattr(users, "user_by_email", slower_when_known)
    known, unknown = reset_timings(unlimited_app, staff_user["email"], tries=10)

    assert not same_time_within_noise(known, unknown)


def test_requests_are_limited_per_address_whatever_the_client_address(app, staff_user):
    for n in range(3):
        browser = app.test_client()
        response = browser.post(
            "/glemt-passord",
            data={"email": staff_user["email"], "csrf_token": page_token(browser, "/glemt-passord")},
            environ_overrides={"REMOTE_ADDR": f"198.51.100.{n + 1}"},
        )
        assert response.status_code == 303
    browser = app.test_client()
    token = page_token(browser, "/glemt-passord")

    limited = browser.post(
        "/glemt-passord",
        data={"email": staff_user["email"].upper(), "csrf_token": token},
        environ_overrides={"REMOTE_ADDR": "198.51.100.9"},
    )
    other = browser.post(
        "/glemt-passord",
        data={"email": "annen@meander.no", "csrf_token": token},
        environ_overrides={"REMOTE_ADDR": "198.51.100.9"},
    )

    assert limited.status_code == 429 and "Retry-After" in limited.headers
    assert "Du har bedt om mange lenker på kort tid." in limited.text
    assert other.status_code == 303


def test_requests_are_limited_per_client_address_whatever_the_address_asked_for(app):
    browser = app.test_client()
    token = page_token(browser, "/glemt-passord")
    answers = [
        browser.post("/glemt-passord", data={"email": f"person{n}@meander.no", "csrf_token": token}).status_code
        for n in range(11)
    ]

    assert answers == [303] * 10 + [429]


def test_a_completed_reset_ends_every_other_session_signs_this_browser_in_and_mails_the_change(
    app, staff_user, smtp_server
):
    elsewhere = signed_in(app, staff_user)
    ask_for_link(app.test_client(), staff_user["email"])
    url, secret = sent_link(app, smtp_server, SUBJECT, staff_user["email"])
    browser = app.test_client()

    opened = open_link(browser, url, secret)
    assert opened.status_code == 303 and opened.headers["Location"] == "/nytt-passord"
    saved = submit(browser, "/nytt-passord", password=NEW_PASSWORD)

    assert saved.status_code == 303 and saved.headers["Location"] == "/pipeline"
    assert "Passordet er endret" in browser.get("/pipeline").text
    assert elsewhere.get("/pipeline").status_code == 302  # that session ended
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(StaffSession)) == 1
    assert sign_in(app.test_client(), staff_user["email"], STAFF_PASSWORD).status_code == 401
    assert sign_in(app.test_client(), staff_user["email"], NEW_PASSWORD).status_code == 303
    run_jobs(app)
    [changed] = mails(smtp_server, CHANGED, staff_user["email"])
    assert "Var det ikke deg" in changed.get_body(preferencelist=("plain",)).get_content()
    assert ("password_reset_completed", staff_user["id"], staff_user["id"], None) in audit_actions(app)


def test_a_reset_link_works_once(app, staff_user, smtp_server):
    ask_for_link(app.test_client(), staff_user["email"])
    url, secret = sent_link(app, smtp_server, SUBJECT, staff_user["email"])
    browser = app.test_client()
    open_link(browser, url, secret)
    submit(browser, "/nytt-passord", password=NEW_PASSWORD)

    again = open_link(app.test_client(), url, secret)

    assert again.status_code == 410 and "Lenken er allerede brukt" in again.text
    assert "Be om en ny lenke" in again.text


def test_a_reset_link_expires_after_an_hour(app, staff_user, smtp_server):
    ask_for_link(app.test_client(), staff_user["email"])
    url, secret = sent_link(app, smtp_server, SUBJECT, staff_user["email"])
    with app.app_context():
        token = db.session.execute(sa.select(AccountToken)).scalar_one()
        assert (token.expires_at - token.created_at).total_seconds() == 3600
        db.session.execute(sa.update(AccountToken).values(expires_at=AccountToken.created_at))
        db.session.commit()

    response = open_link(app.test_client(), url, secret)

    assert response.status_code == 410 and "Lenken er utløpt" in response.text
    assert response.headers["Referrer-Policy"] == "no-referrer" and response.headers["Cache-Control"] == "no-store"


def test_a_tampered_reset_link_does_not_work(app, staff_user, smtp_server):
    ask_for_link(app.test_client(), staff_user["email"])
    url, secret = sent_link(app, smtp_server, SUBJECT, staff_user["email"])

    response = open_link(app.test_client(), url, secret[::-1])

    assert response.status_code == 404 and "Lenken virker ikke" in response.text


def test_an_invitation_link_is_no_reset_link(app, staff_user, smtp_server):
    ask_for_link(app.test_client(), staff_user["email"])
    url, secret = sent_link(app, smtp_server, SUBJECT, staff_user["email"])

    response = open_link(app.test_client(), url.replace("nytt-passord", "invitasjon"), secret)

    assert response.status_code == 404


def test_a_newer_password_closes_every_open_reset_link(app, staff_user, smtp_server):
    for _ in range(2):
        ask_for_link(app.test_client(), staff_user["email"])
    url, secret = sent_link(app, smtp_server, SUBJECT, staff_user["email"])
    assert len(mails(smtp_server, SUBJECT)) == 2
    browser = app.test_client()
    open_link(browser, url, secret)
    submit(browser, "/nytt-passord", password=NEW_PASSWORD)

    with app.app_context():
        open_links = db.session.scalar(
            sa.select(sa.func.count()).select_from(AccountToken).where(AccountToken.used_at.is_(None))
        )
    assert open_links == 0


def test_a_deactivated_account_gets_no_link(app, staff_user, smtp_server):
    with app.app_context():
        users.deactivate(staff_user["email"])

    response = ask_for_link(app.test_client(), staff_user["email"])
    run_jobs(app)

    assert response.status_code == 303
    assert mails(smtp_server, SUBJECT) == []


def test_with_two_factor_on_a_reset_still_asks_for_the_code(app, staff_user, staff_client, smtp_server):
    secret, _ = enrol_two_factor(staff_client)
    ask_for_link(app.test_client(), staff_user["email"])
    url, link_secret = sent_link(app, smtp_server, SUBJECT, staff_user["email"])
    browser = app.test_client()
    open_link(browser, url, link_secret)

    saved = submit(browser, "/nytt-passord", password=NEW_PASSWORD)

    assert saved.status_code == 303 and saved.headers["Location"] == "/login/kode"
    assert browser.get("/pipeline").status_code == 302  # not signed in without the code
    assert "Skriv inn koden" in browser.get("/login/kode").text


def test_a_bad_new_password_is_refused_and_the_link_still_works(app, staff_user, smtp_server):
    ask_for_link(app.test_client(), staff_user["email"])
    url, secret = sent_link(app, smtp_server, SUBJECT, staff_user["email"])
    browser = app.test_client()
    open_link(browser, url, secret)

    refused = submit(browser, "/nytt-passord", password="siri selger")

    assert refused.status_code == 422 and "Passordet må ha minst 12 tegn" in refused.text
    assert submit(browser, "/nytt-passord", password=NEW_PASSWORD).status_code == 303


@pytest.mark.parametrize("email", ["", "ingen-krøllalfa", "\x00@x.no", "a" * 5000 + "@meander.no"])
def test_hostile_or_empty_addresses_get_a_norwegian_answer_never_a_5xx(app, email):
    response = ask_for_link(app.test_client(), email)

    assert response.status_code in (303, 422)
    if response.status_code == 422:
        assert "Skriv inn e-postadressen du logger inn med" in response.text
