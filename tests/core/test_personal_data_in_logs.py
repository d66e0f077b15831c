"""No log stream carries a name, email, phone or client address: not the app's, not the worker's, not
gunicorn's own, and not a database error's."""

import json
import logging
import re
import socket
import subprocess
import sys

import pytest
import sqlalchemy as sa
from helpers.booking import VALID_BOOKING, make_lead
from helpers.gunicorn_client import CLIENT_IP, Browser, wait_until_serving
from helpers.paths import PROJECT_ROOT
from helpers.servers import procfile, procfile_env, stop

from meander_site.core.logging_setup import HIDDEN_DETAIL, JsonFormatter, TextFormatter
from meander_site.dev.embedded import find_free_port
from meander_site.extensions import db
from meander_site.leads.models import Lead

# A loopback address of its own, so finding it in a log means the client's address was written.
ZELDA = {
    **VALID_BOOKING,
    "first_name": "Zelda",
    "last_name": "Quoxworth",
    "email": "Zelda.Quoxworth@ørkenvik.no",
    "phone": "412 34 987",
}
BJARNHILD = {
    **VALID_BOOKING,
    "first_name": "Bjarnhild",
    "last_name": "Yttervik",
    "email": "bjarnhild.yttervik@ｆｊｅｌｌｌａｇ.no",
    "phone": "+46 70 765 43 21",
}
# Everything the run submits, as typed, as stored, and as the mailer spells it.
PERSONAL_DATA = (
    "Zelda",
    "Quoxworth",
    "zelda.quoxworth@",
    "ørkenvik",
    "xn--rkenvik-p1a",
    "412 34 987",
    "41234987",
    "+4741234987",
    "Bjarnhild",
    "Yttervik",
    "bjarnhild.yttervik@",
    "fjelllag",
    "ｆｊｅｌｌｌａｇ",
    "70 765 43 21",
    "707654321",
    "+46707654321",
    CLIENT_IP,
)


def readable(line: str) -> str:
    """A JSON line with its \\u escapes decoded (ø is \\u00f8 there), any other line as it is."""
    try:
        return json.dumps(json.loads(line), ensure_ascii=False)
    except ValueError:
        return line


def assert_free_of_personal_data(name: str, text: str) -> None:
    for line in text.splitlines():
        for secret in PERSONAL_DATA:
            assert secret.lower() not in readable(line).lower(), f"{secret!r} in the {name} log: {line}"


# --- a database error, logged ----------------------------------------------------------------------


def test_a_logged_database_error_quotes_neither_the_statement_parameters_nor_the_row(app, caplog):
    make_lead(app, email="zelda.quoxworth@ørkenvik.no")
    other = make_lead(app, email="bjarnhild.yttervik@fjelllag.no")
    with app.app_context(), caplog.at_level(logging.ERROR):
        try:
            db.session.execute(
                sa.update(Lead)
                .where(Lead.id == other["id"])
                .values(email="zelda.quoxworth@ørkenvik.no", first_name="Zelda", phone="+4741234987")
            )
            pytest.fail("the unique index let a second lead have the address")
        except sa.exc.IntegrityError:
            db.session.rollback()
            logging.getLogger("meander_site.sales").exception("lead update failed")
        # PostgreSQL's error quotes the clashing row itself ("DETAIL: Key (email)=(…) already exists").
        quotes_the_row = db.engine.dialect.name == "postgresql"

    [record] = [record for record in caplog.records if record.getMessage() == "lead update failed"]
    for formatter in (JsonFormatter(), TextFormatter()):
        line = formatter.format(record)
        assert "IntegrityError" in line, "the error itself is still logged"
        assert (HIDDEN_DETAIL in line) == quotes_the_row
        assert_free_of_personal_data(type(formatter).__name__, line)


# --- a full run: gunicorn, the worker, bookings, a staff edit and a malformed request ----------------


def send_malformed_request(port: int) -> None:
    """A request line gunicorn cannot parse, carrying a name and a phone number, from CLIENT_IP."""
    with socket.create_connection(("127.0.0.1", port), timeout=10, source_address=(CLIENT_IP, 0)) as connection:
        connection.sendall(b"HELLO Zelda.Quoxworth 41234987\r\n\r\n")
        assert connection.recv(1024).startswith(b"HTTP/1.1 400")


@pytest.mark.subprocess
@pytest.mark.parametrize("log_format", ["text", "json"])
def test_a_full_run_writes_no_personal_data_to_any_log(
    app, staff_user, migrated_database, redis_url, smtp_server, scratch_dir, log_format
):
    port = find_free_port()
    env = procfile_env(
        PORT=str(port),
        WEB_CONCURRENCY="1",
        GUNICORN_THREADS="4",
        LOG_FORMAT=log_format,
        DATABASE_URL=migrated_database,
        REDIS_URL=redis_url,
        MAIL_SERVER=smtp_server.host,
        MAIL_PORT=str(smtp_server.port),
        MAIL_SWEEP_SECONDS="0.5",
    )
    env["SITE_URL"] = f"http://127.0.0.1:{port}"  # the host the browser asks for
    web_log = scratch_dir / f"privacy-web-{log_format}.log"
    worker_log = scratch_dir / f"privacy-worker-{log_format}.log"
    with open(web_log, "w") as web_out, open(worker_log, "w") as worker_out:
        web = subprocess.Popen(procfile()["web"], cwd=PROJECT_ROOT, env=env, stdout=web_out, stderr=web_out)
        worker = subprocess.Popen(
            [sys.executable, "worker.py"], cwd=PROJECT_ROOT, env=env, stdout=worker_out, stderr=worker_out
        )
        try:
            wait_until_serving(port, web, web_log)
            prospect = Browser(port, CLIENT_IP)
            for booking in (ZELDA, BJARNHILD, {**ZELDA, "phone": "+46 70 765 43 21"}):
                status, page = prospect.submit("/demo", "/demo", booking)
                assert status == 303, page
            smtp_server.wait_for(3, timeout=30)

            staff = Browser(port, CLIENT_IP)
            status, page = staff.submit(
                "/login", "/login?next=/pipeline", {"email": staff_user["email"], "password": staff_user["password"]}
            )
            assert status == 303, page
            with app.app_context():
                bjarnhild = db.session.execute(
                    sa.select(Lead.id).where(Lead.email == "bjarnhild.yttervik@fjelllag.no")
                ).scalar_one()
            lead_page = f"/pipeline/leads/{bjarnhild}"
            collision = {**BJARNHILD, "email": "ZELDA.QUOXWORTH@xn--rkenvik-p1a.no"}  # Zelda's, in punycode
            status, page = staff.submit(lead_page, lead_page, collision)
            assert status == 422 and "En annen lead har allerede denne e-postadressen" in page

            send_malformed_request(port)
            status, _ = prospect.request("GET", "/pipeline/leads/not-a-lead")  # a 404 for the access log, if on
        finally:
            web_exit, worker_exit = stop(web), stop(worker)

    assert (web_exit, worker_exit) == (0, 0)
    web_text, worker_text = web_log.read_text(), worker_log.read_text()
    # The run did log what it should: otherwise finding nothing would prove nothing.
    assert "Invalid request" in web_text, "gunicorn logged the malformed request"
    assert re.search(r"demo (re)?booked", web_text), "the app logged the bookings"
    assert worker_text.count("mail sent (confirmation)") == 3, "the worker logged the mails"
    assert_free_of_personal_data("web and gunicorn", web_text)
    assert_free_of_personal_data("worker", worker_text)
