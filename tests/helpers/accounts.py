"""What the account tests do again and again, as a person would: sign in through the forms, post a form with the
CSRF token its page carries, read a link out of a mail the SMTP sink caught, open it, and type a code from an
authenticator app (computed from the secret the page shows, with pyotp)."""

import re
import uuid
from datetime import datetime

import pyotp
import pytest
import sqlalchemy as sa

from helpers.booking import CSRF_INPUT
from helpers.jobs import run_jobs
from meander_site.accounts import users
from meander_site.accounts.models import AuditEvent, User
from meander_site.extensions import db

ADMIN_PASSWORD = "styrer-teamet-med-glede-42"
NEW_PASSWORD = "fjord-lampe-sykkel-vinter-7"
LINK = re.compile(r"(https?://[^\s\"'<>]+/(invitasjon|nytt-passord))#([A-Za-z0-9_-]+)")
TOTP_SECRET = re.compile(r'<code id="totp-secret">([A-Z2-7 ]+)</code>')
RECOVERY_CODE = re.compile(r"<li><code>([a-z2-7]{4}(?:-[a-z2-7]{4}){3})</code></li>")


def make_user(app, email: str, name: str, password: str, admin: bool = False) -> dict:
    with app.app_context():
        user = users.create_user(email, name, password, admin=admin)
        return {"id": user.id, "email": user.email, "name": user.name, "password": password}


def page_token(client, path: str) -> str:
    page = client.get(path)
    match = CSRF_INPUT.search(page.get_data(as_text=True))
    assert match, f"{path} carries a CSRF token ({page.status_code})"
    return match.group(1)


def submit(client, form_path: str, post_path: str | None = None, **fields):
    """Fetch the page for its CSRF token, then post the form as a browser would."""
    return client.post(post_path or form_path, data={**fields, "csrf_token": page_token(client, form_path)})


def sign_in(client, email: str, password: str, next_path: str = "/pipeline"):
    return submit(client, "/login", f"/login?next={next_path}", email=email, password=password)


def signed_in(app, person: dict):
    client = app.test_client()
    response = sign_in(client, person["email"], person["password"])
    assert response.status_code == 303, response.get_data(as_text=True)
    return client


def mails(smtp_server, subject_start: str, to: str | None = None) -> list:
    return [
        mail
        for mail in smtp_server.messages()
        if mail["Subject"].startswith(subject_start) and (to is None or to in mail["To"])
    ]


def sent_link(app, smtp_server, subject_start: str, to: str) -> tuple[str, str]:
    """Run the worker's jobs, then the (page URL, secret) of the newest such mail to `to`; the text part and the
    HTML part carry the same link."""
    run_jobs(app)
    found = mails(smtp_server, subject_start, to)
    assert found, f"no mail «{subject_start}…» to {to}: {[mail['Subject'] for mail in smtp_server.messages()]}"
    mail = found[-1]
    text = mail.get_body(preferencelist=("plain",)).get_content()
    html = mail.get_body(preferencelist=("html",)).get_content()
    url, _, secret = LINK.search(text).groups()
    assert f"{url}#{secret}" in html
    return url, secret


def path_of(url: str) -> str:
    return "/" + url.split("/", 3)[3]


def open_link(client, url: str, secret: str):
    """What the page's script does: post the fragment's secret; the answer sends the browser on."""
    path = path_of(url)
    return submit(client, path, f"{path}/lenke", secret=secret)


def invite(admin_client, email: str, role: str = "seller"):
    return submit(admin_client, "/pipeline/team", "/pipeline/team/invitations", email=email, role=role)


def accept(client, url: str, secret: str, name: str, password: str):
    opened = open_link(client, url, secret)
    assert opened.status_code == 303, opened.get_data(as_text=True)
    return submit(client, path_of(url), name=name, password=password)


def code_at(secret: str, moment: datetime) -> str:
    return pyotp.TOTP(secret.replace(" ", "")).at(moment)


def enrol_two_factor(client) -> tuple[str, list[str]]:
    """Turn on two-factor from the setup page: the secret it shows, and the recovery codes it hands out."""
    page = client.get("/pipeline/settings/two-factor").get_data(as_text=True)
    secret = TOTP_SECRET.search(page).group(1).replace(" ", "")
    done = submit(client, "/pipeline/settings/two-factor", code=pyotp.TOTP(secret).now())
    assert done.status_code == 200, done.get_data(as_text=True)
    codes = RECOVERY_CODE.findall(done.get_data(as_text=True))
    assert len(codes) == 10
    return secret, codes


def stored_user(app, user_id: uuid.UUID) -> User:
    with app.app_context():
        user = db.session.get(User, user_id)
        db.session.expunge(user)
        return user


def audit_actions(app) -> list[tuple]:
    with app.app_context():
        rows = db.session.execute(
            sa.select(AuditEvent.action, AuditEvent.actor_id, AuditEvent.subject_id, AuditEvent.detail).order_by(
                AuditEvent.at
            )
        ).all()
        return [tuple(row) for row in rows]


@pytest.fixture(name="admin")
def admin_fixture(app):
    """An administrator besides the salesperson of conftest's staff_user."""
    return make_user(app, "sjef@meander.no", "Sara Sjef", ADMIN_PASSWORD, admin=True)


@pytest.fixture(name="admin_client")
def admin_client_fixture(app, admin):
    return signed_in(app, admin)
