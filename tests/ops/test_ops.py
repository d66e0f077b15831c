"""Serving and operations: /healthz, /readyz, gunicorn.conf.py and the Procfile, run as written."""

import json
import os
import runpy
import sqlite3
import subprocess
import time
import urllib.request

import pytest
from helpers.paths import PROJECT_ROOT
from helpers.servers import procfile, procfile_env, stop
from helpers.waiting import wait_until

from meander_site.config import engine_options
from meander_site.core.redis_client import redis_connection, shared_redis
from meander_site.dev.embedded import EmbeddedRedis, find_free_port
from meander_site.extensions import limiter

DEAD_REDIS = "unix:///tmp/nonexistent-meander.sock"


# --- /healthz and /readyz ---------------------------------------------------------------------------


def test_healthz_says_ok_and_is_never_cached(client):
    response = client.get("/healthz")

    assert response.status_code == 200
    assert response.get_json() == {"status": "ok"}
    assert response.headers["Cache-Control"] == "no-store"


def test_readyz_is_ok_when_the_database_and_redis_answer(client):
    response = client.get("/readyz")

    assert response.status_code == 200
    assert response.get_json() == {"database": "ok", "redis": "ok"}
    assert response.headers["Cache-Control"] == "no-store"


def test_readyz_names_redis_when_it_is_down(make_app):
    client = make_app(REDIS_URL=DEAD_REDIS).test_client()

    started = time.monotonic()
    response = client.get("/readyz")

    assert time.monotonic() - started < 2
    assert response.status_code == 503
    assert response.get_json() == {"database": "ok", "redis": "unavailable"}
    assert response.headers["Cache-Control"] == "no-store"


def test_every_redis_client_of_the_site_fails_fast_with_the_configured_timeouts(app):
    # One options helper (redis_client.fail_fast_options) behind them all: none may drift to redis-py's
    # defaults, which retry with backoff and stall a request for seconds when Redis is gone.
    with app.app_context():
        clients = {
            "queue and probes": shared_redis(),
            "rate limits": limiter.storage.storage,
            "worker": redis_connection(socket_timeout=60),
        }
        connect_timeout = app.config["REDIS_CONNECT_TIMEOUT_SECONDS"]
        socket_timeout = app.config["REDIS_SOCKET_TIMEOUT_SECONDS"]

    settings = {
        name: (
            client.connection_pool.connection_kwargs["socket_connect_timeout"],
            client.connection_pool.connection_kwargs["socket_timeout"],
            client.get_retry().get_retries(),
        )
        for name, client in clients.items()
    }
    assert settings == {
        "queue and probes": (connect_timeout, socket_timeout, 0),
        "rate limits": (connect_timeout, socket_timeout, 0),
        "worker": (connect_timeout, 60, 0),
    }


@pytest.mark.parametrize(
    "unreachable_url",
    [
        "sqlite:////tmp/nonexistent-meander-dir/meander.db",
        "postgresql+psycopg://postgres@127.0.0.1:1/meander",  # nothing listens on port 1
    ],
    ids=["sqlite-in-missing-directory", "postgresql-refusing"],
)
def test_readyz_names_the_database_when_it_does_not_answer(make_app, unreachable_url):
    app = make_app(SQLALCHEMY_DATABASE_URI=unreachable_url, SQLALCHEMY_ENGINE_OPTIONS=engine_options(unreachable_url))

    started = time.monotonic()
    response = app.test_client().get("/readyz")

    assert time.monotonic() - started < 3
    assert response.status_code == 503
    assert response.get_json() == {"database": "unavailable", "redis": "ok"}


def test_healthz_touches_neither_the_database_nor_redis(make_app):
    database_url = "sqlite:////tmp/nonexistent-meander-dir/meander.db"
    client = make_app(REDIS_URL=DEAD_REDIS, SQLALCHEMY_DATABASE_URI=database_url).test_client()

    assert client.get("/healthz").status_code == 200
    ready = client.get("/readyz")
    assert ready.status_code == 503
    assert ready.get_json() == {"database": "unavailable", "redis": "unavailable"}


def test_readiness_failures_are_logged_without_details_for_the_caller(make_app, caplog):
    client = make_app(REDIS_URL=DEAD_REDIS).test_client()

    with caplog.at_level("WARNING", logger="meander_site.ops"):
        body = client.get("/readyz").get_data(as_text=True)

    assert "nonexistent" not in body and "Error" not in body
    [record] = [record for record in caplog.records if getattr(record, "event", None) == "readiness_failed"]
    assert record.check == "redis"
    assert record.error == "ConnectionError"


# --- gunicorn.conf.py ------------------------------------------------------------------------------


def load_gunicorn_conf(monkeypatch, **env) -> dict:
    for name in ("PORT", "WEB_CONCURRENCY", "GUNICORN_THREADS", "GUNICORN_ACCESS_LOG", "LOG_FORMAT"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return runpy.run_path(str(PROJECT_ROOT / "gunicorn.conf.py"))


def test_gunicorn_conf_reads_port_workers_and_threads_from_the_environment(monkeypatch):
    conf = load_gunicorn_conf(monkeypatch, PORT="9123", WEB_CONCURRENCY="3", GUNICORN_THREADS="6")

    assert conf["bind"] == "0.0.0.0:9123"
    assert conf["workers"] == 3
    assert conf["threads"] == 6
    assert conf["worker_class"] == "gthread"


def test_gunicorn_conf_defaults(monkeypatch):
    conf = load_gunicorn_conf(monkeypatch)

    assert conf["bind"] == "0.0.0.0:8000"
    assert conf["workers"] == min(2 * len(os.sched_getaffinity(0)) + 1, 8)
    assert conf["threads"] == 4
    assert conf["worker_class"] == "gthread"
    assert (conf["timeout"], conf["graceful_timeout"], conf["keepalive"]) == (30, 30, 5)
    assert conf["preload_app"] is False  # no pool opened before the fork
    # Only the app (TRUSTED_PROXY_COUNT) decides whom to believe about forwarded headers.
    assert conf["forwarded_allow_ips"] == ""
    assert conf["secure_scheme_headers"] == {}
    assert conf["accesslog"] is None
    assert "logconfig_dict" not in conf


def test_gunicorn_conf_single_thread_uses_the_sync_worker_and_access_log_is_optional(monkeypatch):
    conf = load_gunicorn_conf(monkeypatch, GUNICORN_THREADS="1", GUNICORN_ACCESS_LOG="1")

    assert conf["worker_class"] == "sync"
    assert conf["accesslog"] == "-"


def test_gunicorn_settings_are_ones_gunicorn_knows(monkeypatch):
    from gunicorn.config import Config

    conf = load_gunicorn_conf(monkeypatch, LOG_FORMAT="json")
    known = Config().settings
    settings = {name: value for name, value in conf.items() if not name.startswith("_") and name.islower()}
    unknown = set(settings) - set(known) - {"os"}
    assert not unknown, f"not gunicorn settings: {unknown}"
    config = Config()
    for name, value in settings.items():
        if name in known:
            config.set(name, value)  # runs gunicorn's own validators
    assert config.forwarded_allow_ips == []


# --- the Procfile, run as written ------------------------------------------------------------------


def test_procfile_has_release_web_and_worker_naming_existing_commands():
    processes = procfile()

    assert set(processes) == {"release", "web", "worker"}
    for name, argv in processes.items():
        executable = PROJECT_ROOT / argv[0]
        assert executable.is_file() and os.access(executable, os.X_OK), f"{name}: {argv[0]} is not executable"
    assert processes["release"][1:] == ["--app", "app", "db", "upgrade"]
    assert (PROJECT_ROOT / processes["web"][processes["web"].index("-c") + 1]).is_file()
    assert (PROJECT_ROOT / processes["worker"][1]).is_file()


@pytest.mark.subprocess
def test_procfile_release_applies_the_migrations(tmp_path):
    database = tmp_path / "release.db"

    result = subprocess.run(
        procfile()["release"],
        cwd=PROJECT_ROOT,
        env=procfile_env(DATABASE_URL=f"sqlite:///{database}"),
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert result.returncode == 0, result.stderr
    with sqlite3.connect(database) as connection:
        tables = {row[0] for row in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert {"alembic_version", "leads", "bookings", "users"} <= tables


def get(url: str) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310 (our own server)
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


@pytest.mark.subprocess
def test_procfile_web_serves_health_and_readiness_with_json_logs(migrated_database, redis_url, scratch_dir):
    port = find_free_port()
    log_path = scratch_dir / "procfile-web.log"
    env = procfile_env(
        PORT=str(port),
        WEB_CONCURRENCY="1",
        GUNICORN_THREADS="2",
        LOG_FORMAT="json",
        DATABASE_URL=migrated_database,
        REDIS_URL=redis_url,
    )
    with open(log_path, "w") as log:
        process = subprocess.Popen(procfile()["web"], cwd=PROJECT_ROOT, env=env, stdout=log, stderr=log)
        try:

            def health_answer():
                try:
                    return get(f"http://127.0.0.1:{port}/healthz")
                except OSError:
                    assert process.poll() is None, log_path.read_text()
                    return None

            health = wait_until(health_answer, 60, "gunicorn to answer /healthz", log_path.read_text, interval=0.2)
            ready = get(f"http://127.0.0.1:{port}/readyz")
        finally:
            returncode = stop(process)

    assert health == (200, {"status": "ok"})
    assert ready == (200, {"database": "ok", "redis": "ok"})
    assert returncode == 0
    lines = log_path.read_text().splitlines()
    assert lines, "gunicorn logged nothing"
    records = [json.loads(line) for line in lines]  # every line, gunicorn's own included, is JSON
    assert any(record["logger"] == "gunicorn.error" and "gthread" in record["message"] for record in records)


@pytest.mark.subprocess
def test_procfile_worker_starts_and_stops_on_sigterm(migrated_database, scratch_dir, smtp_server):
    log_path = scratch_dir / "procfile-worker.log"
    with EmbeddedRedis(scratch_dir / "procfile.sock") as redis, open(log_path, "w") as log:
        env = procfile_env(
            LOG_FORMAT="json",
            DATABASE_URL=migrated_database,
            REDIS_URL=redis.url,
            MAIL_SERVER=smtp_server.host,
            MAIL_PORT=str(smtp_server.port),
        )
        process = subprocess.Popen(procfile()["worker"], cwd=PROJECT_ROOT, env=env, stdout=log, stderr=log)
        try:

            def started() -> bool:
                assert process.poll() is None, log_path.read_text()
                return "worker started" in log_path.read_text()

            wait_until(started, 60, "the worker to log that it started", log_path.read_text, interval=0.2)
        finally:
            returncode = stop(process)

    assert returncode == 0
    messages = [json.loads(line)["message"] for line in log_path.read_text().splitlines()]
    assert "worker stopped" in messages
