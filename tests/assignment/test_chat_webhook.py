"""Chat notifications through an incoming webhook, against a local HTTP server: each post once, retried after a 5xx
or a timeout, closed with the error shown after a 4xx, a redirect not followed, private addresses refused, and no
email or phone in the text."""

import contextlib
import json
import threading
import time
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import sqlalchemy as sa
from helpers.accounts import admin_client_fixture, admin_fixture  # noqa: F401 (fixtures)
from helpers.assignment import leave_the_pool
from helpers.booking import VALID_BOOKING, make_lead
from helpers.jobs import release_scheduled_jobs, run_jobs
from helpers.staff import staff_csrf
from helpers.waiting import wait_until

from meander_site.accounts import team_settings
from meander_site.assignment import chat, escalation
from meander_site.core.clock import utcnow
from meander_site.extensions import db
from meander_site.leads.models import Lead
from meander_site.mail import dispatch
from meander_site.mail.models import OutboxMessage


class Webhook(BaseHTTPRequestHandler):
    """Answers each POST with the next of `answers` (a status, or "slow"), then 200; records every body."""

    answers: list
    received: list

    def log_message(self, *args):
        pass

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.received.append((self.path, json.loads(body)))
        answer = self.answers.pop(0) if self.answers else 200
        if answer == "slow":
            time.sleep(2)
            answer = 200
        self.send_response(answer)
        if 300 <= answer < 400:
            self.send_header("Location", "/elsewhere")
        self.send_header("Content-Length", "2")
        self.end_headers()
        with contextlib.suppress(OSError):
            self.wfile.write(b"ok")


@pytest.fixture
def webhook(app):
    handler = type("Handler", (Webhook,), {"answers": [], "received": []})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_port}/hooks/secret-key-123"
    with app.app_context():
        team_settings.set_chat_webhook(url, by_id=None, allow_loopback=True)
    yield handler
    server.shutdown()


def chat_rows(app) -> list[OutboxMessage]:
    with app.app_context():
        return list(db.session.scalars(sa.select(OutboxMessage).where(OutboxMessage.kind == chat.CHAT_KIND)))


def deliver_all(app, rounds: int = 6) -> None:
    """Run the worker's jobs, releasing each retry as its time comes, until nothing is left."""
    for _ in range(rounds):
        run_jobs(app)
        time.sleep(1.1)  # the tests' retry interval is one second (helpers/app.py)
        if not release_scheduled_jobs(app):
            break


def test_a_new_lead_is_posted_once_with_organization_role_and_link_only(app, webhook):
    lead = make_lead(app, organization_name="Hjerteforeningen", role_title="Daglig leder")
    make_lead(app, email="ola@fjellklubben.no")  # a second new lead
    make_lead(app, email="ola@fjellklubben.no")  # its rebooking: no new post
    run_jobs(app)
    run_jobs(app)
    texts = [body["text"] for _, body in webhook.received]
    assert len(texts) == 2
    [text] = [text for text in texts if "Hjerteforeningen" in text]
    assert "Ny lead: Hjerteforeningen (Daglig leder)." in text
    assert f"https://demo.meander.test/pipeline/leads/{lead['id']}" in text
    for personal in (VALID_BOOKING["email"], VALID_BOOKING["first_name"], VALID_BOOKING["last_name"], "4791234567"):
        assert personal not in text
    assert all(row.sent_at is not None for row in chat_rows(app))


@pytest.mark.slow
def test_a_5xx_is_retried_and_then_delivered_once(app, webhook):
    webhook.answers[:] = [503, 502]
    make_lead(app)
    deliver_all(app)
    assert len(webhook.received) == 3
    [row] = chat_rows(app)
    assert row.sent_at is not None and row.attempts == 3


@pytest.mark.slow
def test_a_timeout_is_retried(app, webhook):
    app.config["CHAT_WEBHOOK_TIMEOUT_SECONDS"] = 0.5
    webhook.answers[:] = ["slow"]
    make_lead(app)
    deliver_all(app)
    [row] = chat_rows(app)
    assert row.sent_at is not None and row.attempts == 2


@pytest.mark.slow
def test_a_4xx_closes_the_post_and_the_team_page_shows_why(app, webhook, admin_client):
    webhook.answers[:] = [404]
    make_lead(app)
    deliver_all(app)
    assert len(webhook.received) == 1  # never retried
    [row] = chat_rows(app)
    assert row.sent_at is None and row.closed_reason == "refused"
    page = admin_client.get("/pipeline/team").get_data(as_text=True)
    assert "Chatten avviste meldingen (404)" in page
    assert "secret-key-123" not in page  # the address is a secret: shown masked


@pytest.mark.slow
def test_a_redirect_is_not_followed(app, webhook):
    webhook.answers[:] = [301]
    make_lead(app)
    deliver_all(app)
    assert [path for path, _ in webhook.received] == ["/hooks/secret-key-123"]
    [row] = chat_rows(app)
    assert row.closed_reason == "refused"
    with app.app_context():
        assert "videresending" in team_settings.current().chat_webhook_error


def test_an_expired_first_contact_is_posted_too(app, webhook):
    leave_the_pool(app)
    lead = make_lead(app, organization_name="Hjerteforeningen")
    run_jobs(app)
    with app.app_context():
        db.session.execute(
            sa.update(Lead).where(Lead.id == lead["id"]).values(first_contact_due_at=utcnow() - timedelta(minutes=1))
        )
        db.session.commit()
        for message in escalation.escalate_due():
            dispatch.dispatch(message)
    run_jobs(app)
    wait_until(lambda: len(webhook.received) == 2, what="the expiry's post")
    assert "Svarfristen er gått ut for Hjerteforeningen" in webhook.received[1][1]["text"]


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://example.com/hook", "https://"),
        ("https://10.0.0.5/hook", "internt eller privat nett"),
        ("https://169.254.169.254/latest/meta-data", "internt eller privat nett"),
        ("https://[::1]/hook", "internt eller privat nett"),
        ("ikke en adresse", "https://"),
    ],
)
def test_private_or_plain_addresses_are_refused_on_the_settings_page(app, admin_client, url, reason):
    app.config["OUTBOUND_ALLOW_LOOPBACK"] = False
    token = staff_csrf(admin_client)
    response = admin_client.post("/pipeline/team/chat-webhook", data={"chat_webhook_url": url, "csrf_token": token})
    assert response.status_code == 422
    assert reason in response.get_data(as_text=True)
    with app.app_context():
        assert team_settings.current().chat_webhook_url is None


@pytest.mark.slow
def test_an_address_that_resolves_privately_later_is_refused_at_delivery(app, webhook):
    make_lead(app)
    app.config["OUTBOUND_ALLOW_LOOPBACK"] = False  # as in production: 127.0.0.1 may not be posted to
    deliver_all(app)
    assert webhook.received == []
    [row] = chat_rows(app)
    assert row.closed_reason == "refused"
