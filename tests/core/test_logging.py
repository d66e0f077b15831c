"""Structured logs: events with ids, one JSON object per line when asked, and no personal data in any of it."""

import json
import logging
import os
import subprocess
import sys
from datetime import datetime

import pytest
import sqlalchemy as sa
from helpers.booking import VALID_BOOKING, book, make_lead, only_lead
from helpers.jobs import run_jobs
from helpers.paths import PROJECT_ROOT
from helpers.staff import log_in, staff_csrf

from meander_site.booking import confirmation_mail
from meander_site.core.logging_setup import JsonFormatter, TextFormatter
from meander_site.extensions import db
from meander_site.leads.models import Booking

PROSPECT_IP = "203.0.113.77"
# Everything that identifies the prospect, as typed and as stored.
PERSONAL_DATA = (
    VALID_BOOKING["email"],
    VALID_BOOKING["first_name"],
    VALID_BOOKING["last_name"],
    VALID_BOOKING["phone"],
    "+4791234567",
    "91234567",
    PROSPECT_IP,
)


@pytest.fixture
def logs(caplog):
    caplog.set_level(logging.INFO)
    return caplog


def as_json(records) -> list[dict]:
    """Every record as the JSON formatter writes it: one line each, and each line parses."""
    formatter = JsonFormatter()
    lines = [formatter.format(record) for record in records]
    assert all("\n" not in line for line in lines)
    return [json.loads(line) for line in lines]


def events(caplog, name: str) -> list[dict]:
    return [entry for entry in as_json(caplog.records) if entry.get("event") == name]


def assert_no_personal_data(caplog, *extra_secrets: str):
    # Every logger of the app, the worker and their libraries; not the test's SMTP server (aiosmtpd's
    # "mail.log"), which stands in for the prospect's mail provider.
    records = [record for record in caplog.records if record.name != "mail.log"]
    for line in (JsonFormatter().format(record) for record in records):
        for secret in (*PERSONAL_DATA, *extra_secrets):
            assert secret.lower() not in line.lower(), f"{secret!r} logged: {line}"


def book_from_prospect(client, **fields):
    return book(client, environ_overrides={"REMOTE_ADDR": PROSPECT_IP}, **fields)


# --- the formatters --------------------------------------------------------------------------------


def test_json_formatter_writes_one_object_with_the_standard_fields_and_extras():
    record = logging.LogRecord("meander_site.leads", logging.INFO, __file__, 1, "demo booked", (), None)
    record.event, record.lead_id = "booking", "0c4e…"

    [entry] = as_json([record])

    assert datetime.fromisoformat(entry["timestamp"].replace("Z", "+00:00")).utcoffset().total_seconds() == 0
    assert entry["timestamp"].endswith("Z")
    assert (entry["level"], entry["logger"], entry["message"]) == ("INFO", "meander_site.leads", "demo booked")
    assert (entry["event"], entry["lead_id"]) == ("booking", "0c4e…")


def test_json_formatter_keeps_a_traceback_on_the_same_line():
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        record = logging.LogRecord("x", logging.ERROR, __file__, 1, "failed", (), sys.exc_info())

    [entry] = as_json([record])

    assert "RuntimeError: boom" in entry["exception"]


def test_text_formatter_appends_the_extra_fields():
    record = logging.LogRecord("meander_site.sales", logging.INFO, __file__, 1, "lead moved", (), None)
    record.event = "status_moved"

    line = TextFormatter().format(record)

    assert line.endswith("INFO meander_site.sales: lead moved event=status_moved")


def run_with_log_format(log_format: str | None, tmp_path) -> str:
    """What the app itself writes to stderr when a readiness probe finds Redis gone (its one log line)."""
    env = {
        **os.environ,
        "DATABASE_URL": f"sqlite:///{tmp_path / 'x.db'}",
        "REDIS_URL": f"unix://{tmp_path / 'no-redis-here.sock'}",
    }
    env.pop("LOG_FORMAT", None)
    if log_format:
        env["LOG_FORMAT"] = log_format
    script = "from meander_site import create_app; assert create_app().test_client().get('/readyz').status_code == 503"
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    return result.stderr


@pytest.mark.subprocess
def test_log_format_json_writes_json_lines_to_stderr(tmp_path):
    [line] = run_with_log_format("json", tmp_path).splitlines()

    entry = json.loads(line)
    assert (entry["level"], entry["logger"], entry["message"]) == (
        "WARNING",
        "meander_site.ops.checks",
        "readiness check failed",
    )
    assert (entry["event"], entry["check"], entry["error"]) == ("readiness_failed", "redis", "ConnectionError")


@pytest.mark.subprocess
def test_the_default_log_format_is_readable_text(tmp_path):
    [line] = run_with_log_format(None, tmp_path).splitlines()

    assert line.endswith(
        "WARNING meander_site.ops.checks: readiness check failed"
        " event=readiness_failed check=redis error=ConnectionError"
    )


# --- the events ------------------------------------------------------------------------------------


def test_a_booking_and_a_rebooking_log_the_lead_id_and_nothing_personal(app, client, logs):
    assert book_from_prospect(client).status_code == 303
    lead = only_lead(app)
    assert book_from_prospect(client, notes="Vi har nå 140 likepersoner.").status_code == 303

    [booking] = events(logs, "booking")
    [rebooking] = events(logs, "rebooking")
    assert booking["lead_id"] == rebooking["lead_id"] == str(lead.id)
    assert (booking["booking_count"], rebooking["booking_count"]) == (1, 2)
    assert booking["logger"] == "meander_site.booking.book_demo"
    enqueued = [(entry["kind"], entry["trigger"]) for entry in events(logs, "mail_enqueued")]
    # Each booking enqueues its confirmation after the commit (the team's new-lead mail too).
    assert [entry for entry in enqueued if entry[0] == "confirmation"] == [("confirmation", "new")] * 2
    assert_no_personal_data(logs, VALID_BOOKING["organization_name"])


def test_a_sent_confirmation_logs_mail_sent_with_ids(app, client, logs, smtp_server):
    book_from_prospect(client)
    lead = only_lead(app)

    run_jobs(app)

    assert len(smtp_server.messages()) == 1
    [sent] = events(logs, "mail_sent")
    assert sent["lead_id"] == str(lead.id) and sent["attempt"] == 1 and sent["booking_id"]
    assert_no_personal_data(logs)


def test_a_refused_confirmation_logs_the_error_class_not_the_smtp_text(app, client, logs, smtp_server):
    # The server's reply quotes the address, as real servers do; neither our log nor RQ's may repeat it.
    smtp_server.fail_with = f"550 5.1.1 <{VALID_BOOKING['email']}>: Recipient address rejected"
    book_from_prospect(client)

    run_jobs(app)

    [failed] = events(logs, "mail_failed")
    assert failed["level"] == "ERROR"
    assert failed["error"] == "SMTPDataError" and failed["smtp_code"] == 550
    assert failed["attempt"] == 1 and failed["retry_by"] == "rq" and failed["retries_left"] > 0
    assert failed["lead_id"] == str(only_lead(app).id)
    assert any(record.name.startswith("rq.") for record in logs.records), "RQ's own lines are checked too"
    assert_no_personal_data(logs)


def test_a_retried_confirmation_logs_mail_retried(app, client, logs, smtp_server):
    smtp_server.fail_with = "451 4.3.0 Try again later"
    book_from_prospect(client)
    run_jobs(app)
    smtp_server.fail_with = None
    with app.app_context():
        booking_id = db.session.execute(sa.select(Booking.id)).scalar_one()
        assert confirmation_mail.send_now(booking_id)

    run_jobs(app)

    [retried] = events(logs, "mail_retried")
    assert retried["attempt"] == 2
    enqueued = [(entry["kind"], entry["trigger"]) for entry in events(logs, "mail_enqueued")]
    # The failure queued its own retry (RQ's schedule); staff then asked for it now.
    assert [trigger for kind, trigger in enqueued if kind == "confirmation"] == ["new", "retry", "staff"]
    assert len(events(logs, "mail_sent")) == 1
    assert_no_personal_data(logs)


def test_a_status_move_logs_who_moved_which_lead_where(app, client, staff_user, logs):
    lead = make_lead(app)
    log_in(client, staff_user["email"], staff_user["password"])
    token = staff_csrf(client)

    response = client.post(
        f"/pipeline/leads/{lead['id']}/status",
        data={"status": "contacted"},
        headers={"HX-Request": "true", "X-CSRFToken": token},
    )

    assert response.status_code == 200
    [moved] = events(logs, "status_moved")
    assert moved["lead_id"] == str(lead["id"])
    assert (moved["from_status"], moved["to_status"]) == ("new", "contacted")
    assert moved["user_id"] == str(staff_user["id"])
    assert_no_personal_data(logs, staff_user["email"], staff_user["name"])


def test_a_rate_limit_rejection_logs_the_endpoint_not_the_address(client, logs):
    for _ in range(5):
        assert book_from_prospect(client).status_code == 303

    assert book_from_prospect(client).status_code == 429

    [limited] = events(logs, "rate_limited")
    assert limited["endpoint"] == "booking.submit_booking"
    assert limited["level"] == "WARNING"
    assert "per" in limited["limit"]
    assert_no_personal_data(logs)
