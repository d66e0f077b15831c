"""The rate limits hold across processes while Redis is down (issue 16, item 3): they count in the database every
web process shares (core/rate_limits.py), and a limiter that reaches neither store refuses instead of opening.

The multi-process test runs the Procfile's gunicorn with three worker processes on a real Redis it then stops, and
sends the reported attack at once: 24 bookings and 30 wrong sign-ins from one address."""

import os
import re
import shlex
import socket
import subprocess
import threading
import uuid
from pathlib import Path

import pytest
import sqlalchemy as sa
from helpers.booking import CSRF_INPUT, VALID_BOOKING, book, csrf_token, stored_counts
from helpers.gunicorn_client import Browser
from helpers.waiting import wait_until
from redis import Redis

from meander_site.config import engine_options
from meander_site.core import rate_limits
from meander_site.dev.embedded import EmbeddedRedis, find_free_port
from meander_site.extensions import db

PROJECT_ROOT = Path(__file__).resolve().parents[2]
DEAD_REDIS = "unix:///tmp/nonexistent-meander-limits.sock"
UNREACHABLE_DATABASE = "sqlite:////tmp/nonexistent-meander-dir/meander.db"


def hits_in_the_database(app) -> int:
    with app.app_context():
        return db.session.scalar(sa.select(sa.func.count()).select_from(rate_limits.rate_limit_hits))


# --- one process ------------------------------------------------------------------------------------------------


def test_with_redis_down_the_booking_limit_counts_in_the_database(app, make_app):
    limited = make_app(REDIS_URL=DEAD_REDIS)
    client = limited.test_client()

    statuses = [book(client, notes=f"forsøk {n}").status_code for n in range(6)]

    assert statuses == [303] * 5 + [429]
    # Five lead creation attempts, and six POSTs against the looser limit on every POST.
    assert hits_in_the_database(limited) == 5 + 6
    refused = book(client, notes="sjuende")
    assert refused.status_code == 429
    assert 3500 <= int(refused.headers["Retry-After"]) <= 3601, "the rolling hour, read from the database"
    assert stored_counts(limited) == (1, 5)


def test_keys_are_stored_as_digests_never_as_the_address_or_the_email(app, make_app):
    limited = make_app(REDIS_URL=DEAD_REDIS)
    client = limited.test_client()
    page = client.get("/login").get_data(as_text=True)
    token = CSRF_INPUT.search(page).group(1)
    client.post("/login", data={"csrf_token": token, "email": "ola@meander.no", "password": "feil"})

    with limited.app_context():
        keys = db.session.scalars(sa.select(rate_limits.rate_limit_hits.c.key)).all()
    assert len(keys) == 2  # per address and per account
    assert all(re.fullmatch(r"[0-9a-f]{64}", key) for key in keys)


def test_a_limiter_that_reaches_neither_store_refuses_with_a_norwegian_page(app, make_app):
    stranded = make_app(
        REDIS_URL=DEAD_REDIS,
        SQLALCHEMY_DATABASE_URI=UNREACHABLE_DATABASE,
        SQLALCHEMY_ENGINE_OPTIONS=engine_options(UNREACHABLE_DATABASE),
    )
    client = stranded.test_client()

    response = client.post(
        "/demo", data={**VALID_BOOKING, "organization_name": "Venter AS", "csrf_token": csrf_token(client)}
    )

    assert response.status_code == 503
    page = response.get_data(as_text=True)
    assert "Vi kan ikke ta imot forespørsler akkurat nå" in page
    assert 'value="Venter AS"' in page, "what they typed is kept"
    assert response.headers["Retry-After"] == "60"
    assert response.headers["Cache-Control"] == "no-store"

    token = CSRF_INPUT.search(client.get("/login").get_data(as_text=True)).group(1)
    login = client.post("/login", data={"csrf_token": token, "email": "ola@meander.no", "password": "feil"})
    assert login.status_code == 503
    assert "Innloggingen er utilgjengelig akkurat nå" in login.get_data(as_text=True)


# --- gunicorn, three processes, a Redis that stops ---------------------------------------------------------------


def burst(port: int, count: int, form_path: str, post_path: str, fields) -> list[int]:
    """`count` visitors each fetch the form, then all post at once; returns the answers' status codes."""
    browsers = [Browser(port) for _ in range(count)]
    tokens = [browser.token(form_path) for browser in browsers]
    barrier = threading.Barrier(count, timeout=30)
    statuses: list[int | None] = [None] * count

    def post(n: int) -> None:
        barrier.wait()
        statuses[n] = browsers[n].request("POST", post_path, {**fields(n), "csrf_token": tokens[n]})[0]

    threads = [threading.Thread(target=post, args=(n,)) for n in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    return statuses


@pytest.fixture
def redis_to_stop(scratch_dir):
    server = EmbeddedRedis(scratch_dir / f"lim-{uuid.uuid4().hex[:6]}.sock").start()
    yield server
    server.stop()


@pytest.fixture
def web(app, migrated_database, redis_to_stop, smtp_server, scratch_dir):
    """The Procfile's gunicorn: three sync worker processes, on the test database and the Redis to stop."""
    port = find_free_port()
    env = {key: value for key, value in os.environ.items() if key not in {"WEB_CONCURRENCY", "GUNICORN_THREADS"}}
    env.update(
        PYTHONUNBUFFERED="1",
        PORT=str(port),
        WEB_CONCURRENCY="3",
        GUNICORN_THREADS="1",
        DATABASE_URL=migrated_database,
        REDIS_URL=redis_to_stop.url,
        MAIL_SERVER=smtp_server.host,
        MAIL_PORT=str(smtp_server.port),
        SITE_URL=f"http://127.0.0.1:{port}",
    )
    web_command = next(
        line.partition(": ")[2]
        for line in (PROJECT_ROOT / "Procfile").read_text().splitlines()
        if line.startswith("web: ")
    )
    log_path = scratch_dir / f"limits-web-{port}.log"
    with open(log_path, "w") as log:
        process = subprocess.Popen(shlex.split(web_command), cwd=PROJECT_ROOT, env=env, stdout=log, stderr=log)
    try:
        wait_until(lambda: serving(port, process), 60, "gunicorn to serve", log_path.read_text)
        wait_until(lambda: workers_of(process) >= 3, 30, "three gunicorn workers", log_path.read_text)
        yield port, log_path
    finally:
        process.terminate()
        process.wait(timeout=30)


def serving(port: int, process: subprocess.Popen) -> bool:
    assert process.poll() is None, "gunicorn exited"
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def workers_of(process: subprocess.Popen) -> int:
    children = Path(f"/proc/{process.pid}/task/{process.pid}/children")
    return len(children.read_text().split()) if children.exists() else 0


@pytest.mark.subprocess
@pytest.mark.fault
def test_with_redis_stopped_three_processes_share_the_booking_and_login_limits(app, web, redis_to_stop, staff_user):
    port, log_path = web
    assert Browser(port).token("/demo")  # the site answers with Redis up
    redis_to_stop.stop()

    bookings = burst(port, 24, "/demo", "/demo", lambda n: {**VALID_BOOKING, "email": f"angrep{n}@eksempel.no"})
    logins = burst(
        port, 30, "/login", "/login", lambda n: {"email": staff_user["email"], "password": f"feil-passord-{n}"}
    )

    assert sorted(bookings) == [303] * 5 + [429] * 19, log_path.read_text()[-3000:]
    assert stored_counts(app) == (5, 5)
    # Every 401 is a password checked; the limit is 10 per 15 minutes, per address and per account.
    assert sorted(logins) == [401] * 10 + [429] * 20, log_path.read_text()[-3000:]
    assert "rate limits counted in the database" in log_path.read_text()

    # Redis back: each process asks it again within REDIS_RETRY_SECONDS, and the limits count there (the
    # database's count for this address is not carried over).
    redis_to_stop.start()
    wait_until(
        lambda: burst(port, 1, "/demo", "/demo", lambda n: {**VALID_BOOKING, "email": "etterpa@eksempel.no"}) == [303],
        10,
        "a booking counted in Redis again",
        log_path.read_text,
    )
    assert Redis(unix_socket_path=str(redis_to_stop.socket_path)).keys("LIMITS*")
