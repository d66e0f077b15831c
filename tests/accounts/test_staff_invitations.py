"""An administrator invites a colleague by mail; the colleague opens the one-time link, chooses a name and a
password, and is signed in. A link works once, for 72 hours, and only as sent."""

from datetime import timedelta

import pytest
import sqlalchemy as sa
from helpers.accounts import (  # noqa: F401  (admin_fixture, admin_client_fixture: fixtures)
    ADMIN_PASSWORD,
    NEW_PASSWORD,
    accept,
    admin_client_fixture,
    admin_fixture,
    audit_actions,
    invite,
    mails,
    make_user,
    open_link,
    page_token,
    path_of,
    sent_link,
    sign_in,
    signed_in,
    submit,
)
from helpers.jobs import run_jobs

from meander_site.accounts import tokens
from meander_site.accounts.models import AccountToken, Invitation, User
from meander_site.extensions import db
from meander_site.mail.models import OutboxMessage
from meander_site.worker import jobs as send_jobs

SUBJECT = "Du er invitert til Meanders salgsteam"


def the_user(app, email: str) -> User | None:
    with app.app_context():
        user = db.session.execute(sa.select(User).where(User.email == email)).scalar_one_or_none()
        if user is not None:
            db.session.expunge(user)
        return user


def test_an_invited_colleague_accepts_from_the_mail_and_is_signed_in_as_a_seller(app, admin, admin_client, smtp_server):
    sent = invite(admin_client, "Ny.Kollega@Meander.no", "seller")

    assert sent.status_code == 303
    assert "Invitasjonen er sendt til ny.kollega@meander.no" in admin_client.get(sent.headers["Location"]).text
    url, secret = sent_link(app, smtp_server, SUBJECT, "ny.kollega@meander.no")
    [mail] = mails(smtp_server, SUBJECT)
    text = mail.get_body(preferencelist=("plain",)).get_content()
    assert "Sara Sjef har invitert deg til Meanders salgsteam som selger." in text
    assert "Lenken virker i 72 timer" in text
    assert url == "https://demo.meander.test/invitasjon"

    newcomer = app.test_client()
    opener = newcomer.get(path_of(url))
    assert opener.status_code == 200 and "data-one-time-link" in opener.text
    opened = open_link(newcomer, url, secret)
    assert opened.status_code == 303 and opened.headers["Location"] == "/invitasjon"  # the secret stays behind
    form = newcomer.get("/invitasjon")
    assert "Sara Sjef har invitert deg" in form.text and "ny.kollega@meander.no" in form.text
    assert "Minst 12 tegn, og ikke lett å gjette" in form.text  # the rule, before anything is typed

    done = submit(newcomer, "/invitasjon", name="  Nina   Ny ", password=NEW_PASSWORD)

    assert done.status_code == 303 and done.headers["Location"] == "/pipeline"
    board = newcomer.get("/pipeline")
    assert board.status_code == 200 and "Velkommen, Nina! Kontoen din er klar." in board.text
    user = the_user(app, "ny.kollega@meander.no")
    assert (user.name, user.role, user.is_active) == ("Nina Ny", "seller", True)
    assert user.last_login_at is not None
    assert ("invitation_accepted", user.id, user.id, None) in audit_actions(app)
    assert sign_in(app.test_client(), "ny.kollega@meander.no", NEW_PASSWORD).status_code == 303


def test_an_administrator_invitation_makes_an_administrator(app, admin_client, smtp_server):
    invite(admin_client, "nestleder@meander.no", "admin")
    url, secret = sent_link(app, smtp_server, SUBJECT, "nestleder@meander.no")

    accept(app.test_client(), url, secret, "Nils Nestleder", NEW_PASSWORD)

    assert the_user(app, "nestleder@meander.no").role == "admin"


def test_the_link_is_stored_only_as_a_hash_and_never_in_the_outbox(app, admin_client, smtp_server):
    invite(admin_client, "ny@meander.no")
    _, secret = sent_link(app, smtp_server, SUBJECT, "ny@meander.no")

    with app.app_context():
        [token] = db.session.execute(sa.select(AccountToken)).scalars().all()
        rows = db.session.execute(sa.select(OutboxMessage.__table__)).mappings().all()
    assert len(secret) >= 43  # 32 random bytes, base64url: 256 bits
    assert token.token_hash == tokens.hash_token(secret) and token.token_hash != secret
    assert token.expires_at - token.created_at == timedelta(hours=72)
    assert all(secret not in str(value) for row in rows for value in row.values())


def test_inviting_an_address_that_has_an_account_is_a_clear_422(app, admin, admin_client, staff_user):
    response = invite(admin_client, " SELGER@meander.no ")

    assert response.status_code == 422
    assert "selger@meander.no har allerede en konto." in response.text
    assert 'aria-invalid="true"' in response.text
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(Invitation)) == 0


@pytest.mark.parametrize(
    ("email", "role", "message"),
    [
        ("", "seller", "Skriv inn e-postadressen til kollegaen du vil invitere."),
        ("ikke-en-adresse", "seller", "Skriv en gyldig e-postadresse"),
        ("ola@meander.no\x00", "seller", "Skriv en gyldig e-postadresse"),
        ("ola@meander.no", "konge", "Velg om kollegaen skal være selger eller administrator."),
    ],
)
def test_a_bad_invitation_is_refused_with_a_norwegian_message_and_keeps_what_was_typed(
    app, admin_client, email, role, message
):
    response = invite(admin_client, email, role)

    assert response.status_code == 422
    assert message in response.text
    if email.isprintable():
        assert f'value="{email}"' in response.text


def test_a_used_link_says_so_and_that_the_account_exists(app, admin_client, smtp_server):
    invite(admin_client, "ny@meander.no")
    url, secret = sent_link(app, smtp_server, SUBJECT, "ny@meander.no")
    accept(app.test_client(), url, secret, "Nina Ny", NEW_PASSWORD)

    again = open_link(app.test_client(), url, secret)

    assert again.status_code == 410
    assert "Lenken er allerede brukt" in again.text and "kontoen finnes" in again.text
    assert again.headers["Referrer-Policy"] == "no-referrer" and again.headers["Cache-Control"] == "no-store"


def test_one_link_accepted_in_two_browsers_makes_one_account(app, admin_client, smtp_server):
    invite(admin_client, "ny@meander.no")
    url, secret = sent_link(app, smtp_server, SUBJECT, "ny@meander.no")
    first, second = app.test_client(), app.test_client()
    for browser in (first, second):
        assert open_link(browser, url, secret).status_code == 303
    second_form = page_token(second, "/invitasjon")

    assert submit(first, "/invitasjon", name="Nina Ny", password=NEW_PASSWORD).status_code == 303
    late = second.post(
        "/invitasjon", data={"name": "Noen Annen", "password": NEW_PASSWORD + "x", "csrf_token": second_form}
    )

    assert late.status_code == 410 and "Lenken er allerede brukt" in late.text
    assert the_user(app, "ny@meander.no").name == "Nina Ny"


def test_an_expired_link_says_so_and_who_can_send_a_new_one(app, admin_client, smtp_server):
    invite(admin_client, "ny@meander.no")
    url, secret = sent_link(app, smtp_server, SUBJECT, "ny@meander.no")
    with app.app_context():
        db.session.execute(sa.update(AccountToken).values(expires_at=AccountToken.created_at))
        db.session.commit()

    response = open_link(app.test_client(), url, secret)

    assert response.status_code == 410
    assert "Lenken er utløpt" in response.text
    assert "be Sara Sjef, som inviterte deg, eller en annen administrator om å sende en ny invitasjon" in response.text
    assert the_user(app, "ny@meander.no") is None


def test_a_link_that_expires_between_opening_and_saving_creates_nothing(app, admin_client, smtp_server):
    invite(admin_client, "ny@meander.no")
    url, secret = sent_link(app, smtp_server, SUBJECT, "ny@meander.no")
    browser = app.test_client()
    open_link(browser, url, secret)
    form = page_token(browser, "/invitasjon")
    with app.app_context():
        db.session.execute(sa.update(AccountToken).values(expires_at=AccountToken.created_at))
        db.session.commit()

    response = browser.post("/invitasjon", data={"name": "Nina Ny", "password": NEW_PASSWORD, "csrf_token": form})

    assert response.status_code == 410 and "Lenken er utløpt" in response.text
    assert the_user(app, "ny@meander.no") is None


@pytest.mark.parametrize("tamper", ["one letter changed", "cut short", "not a token", "empty"])
def test_a_tampered_link_does_not_work_and_says_how_to_get_a_new_one(app, admin_client, smtp_server, tamper):
    invite(admin_client, "ny@meander.no")
    url, secret = sent_link(app, smtp_server, SUBJECT, "ny@meander.no")
    changed = {
        "one letter changed": secret[:-1] + ("A" if secret[-1] != "A" else "B"),
        "cut short": secret[:20],
        "not a token": "<script>alert(1)</script>' OR 1=1 --",
        "empty": "",
    }[tamper]

    response = open_link(app.test_client(), url, changed)

    assert response.status_code == 404
    assert "Lenken virker ikke" in response.text and "be en administrator" in response.text
    assert "<script>alert(1)" not in response.text
    assert the_user(app, "ny@meander.no") is None


def test_the_form_page_without_an_opened_link_is_only_the_opener(app, client):
    response = client.post("/invitasjon", data={"csrf_token": "x"})
    assert response.status_code == 400  # no CSRF token of this session

    page = client.get("/invitasjon")
    assert page.status_code == 200 and "Koden fra lenken" in page.text
    assert submit(client, "/invitasjon", name="Nina", password=NEW_PASSWORD).status_code == 404


def test_sending_again_replaces_the_earlier_link(app, admin_client, smtp_server):
    invite(admin_client, "ny@meander.no")
    first_url, first = sent_link(app, smtp_server, SUBJECT, "ny@meander.no")
    invite(admin_client, "ny@meander.no", "admin")  # «Send på nytt», or a second invitation
    url, second = sent_link(app, smtp_server, SUBJECT, "ny@meander.no")

    old = open_link(app.test_client(), first_url, first)
    assert old.status_code == 410 and "trukket tilbake eller erstattet" in old.text
    accept(app.test_client(), url, second, "Nina Ny", NEW_PASSWORD)
    assert the_user(app, "ny@meander.no").role == "admin"


def test_a_withdrawn_invitation_is_not_sent_and_its_link_does_not_work(app, admin_client, smtp_server):
    invite(admin_client, "ny@meander.no")
    with app.app_context():
        invitation_id = db.session.execute(sa.select(Invitation.id)).scalar_one()
    withdrawn = submit(admin_client, "/pipeline/team", f"/pipeline/team/invitations/{invitation_id}/withdraw")

    assert withdrawn.status_code == 303
    run_jobs(app)
    assert mails(smtp_server, SUBJECT) == []  # the mail's builder found it withdrawn: nothing went out
    assert "Ingen invitasjoner venter på svar." in admin_client.get("/pipeline/team").text


def test_a_password_that_breaks_the_rule_is_refused_in_norwegian_and_the_link_still_works(
    app, admin_client, smtp_server
):
    invite(admin_client, "ny@meander.no")
    url, secret = sent_link(app, smtp_server, SUBJECT, "ny@meander.no")
    browser = app.test_client()
    open_link(browser, url, secret)

    short = submit(browser, "/invitasjon", name="Nina Ny", password="kort")
    guessable = submit(browser, "/invitasjon", name="Nina Ny", password="passord12345")
    own_name = submit(browser, "/invitasjon", name="Nina Nyland", password="ninanyland2026")
    no_name = submit(browser, "/invitasjon", name="   ", password=NEW_PASSWORD)

    assert short.status_code == 422 and "Passordet må ha minst 12 tegn. Du har skrevet 4." in short.text
    assert guessable.status_code == 422 and "Passordet er for lett å gjette." in guessable.text
    assert "Dette er et svært vanlig passord" in guessable.text or "Legg til et ord eller to" in guessable.text
    assert own_name.status_code == 422 and "for lett å gjette" in own_name.text
    assert no_name.status_code == 422 and "Skriv inn navnet ditt" in no_name.text
    assert 'value="Nina Ny"' in short.text  # what was typed stays (never the password)
    assert submit(browser, "/invitasjon", name="Nina Ny", password=NEW_PASSWORD).status_code == 303


def test_the_link_pages_send_no_referer_and_are_never_stored(app, admin_client, smtp_server):
    invite(admin_client, "ny@meander.no")
    url, secret = sent_link(app, smtp_server, SUBJECT, "ny@meander.no")
    browser = app.test_client()

    answers = [browser.get("/invitasjon"), open_link(browser, url, secret), browser.get("/invitasjon")]
    answers.append(submit(browser, "/invitasjon", name="Nina Ny", password="kort"))

    for response in answers:
        assert response.headers["Referrer-Policy"] == "no-referrer", response.request.path
        assert response.headers["Cache-Control"] == "no-store"
        assert secret not in response.get_data(as_text=True)
        assert secret not in response.headers.get("Location", "")


def test_a_failed_send_is_retried_with_a_fresh_link_and_only_the_mail_that_arrived_works(
    app, admin_client, smtp_server
):
    smtp_server.fail_for.add("ny@meander.no")
    invite(admin_client, "ny@meander.no")
    run_jobs(app)
    with app.app_context():
        [row] = db.session.execute(sa.select(OutboxMessage)).scalars().all()
        first_hash = db.session.execute(sa.select(AccountToken.token_hash)).scalar_one()
    assert mails(smtp_server, SUBJECT) == [] and row.attempts == 1 and row.sent_at is None
    assert first_hash is not None  # minted for the attempt that failed

    smtp_server.fail_for.clear()
    with app.app_context():
        send_jobs.send_message(str(row.id))  # what its retry job does when its time comes
    url, secret = sent_link(app, smtp_server, SUBJECT, "ny@meander.no")

    assert len(mails(smtp_server, SUBJECT)) == 1
    with app.app_context():
        assert db.session.execute(sa.select(AccountToken.token_hash)).scalar_one() == tokens.hash_token(secret)
    assert accept(app.test_client(), url, secret, "Nina Ny", NEW_PASSWORD).status_code == 303
