"""The real worker process (`python worker.py`) against the test database, a Redis of its own and the SMTP sink."""

import os
import signal
import subprocess
import sys

import pytest
from helpers.app import MAIL_RETRY_INTERVALS_ENV
from helpers.booking import book
from helpers.paths import PROJECT_ROOT
from helpers.waiting import wait_until
from redis import Redis
from rq import Worker

from meander_site.booking import confirmation_mail
from meander_site.dev.embedded import EmbeddedRedis
from meander_site.extensions import db
from meander_site.mail.models import OutboxMessage

pytestmark = pytest.mark.subprocess


@pytest.fixture
def own_redis(scratch_dir):
    with EmbeddedRedis(scratch_dir / "own.sock") as server:
        yield server


@pytest.fixture
def start_worker(migrated_database, smtp_server, scratch_dir):
    processes = []

    def start(redis_url: str):
        env = {
            **os.environ,
            "DATABASE_URL": migrated_database,
            "REDIS_URL": redis_url,
            "MAIL_SERVER": smtp_server.host,
            "MAIL_PORT": str(smtp_server.port),
            "SITE_URL": "https://demo.meander.test",
            "MAIL_SWEEP_SECONDS": "0.5",
            "MAIL_RETRY_INTERVALS": MAIL_RETRY_INTERVALS_ENV,
            "PYTHONUNBUFFERED": "1",
        }
        log = open(scratch_dir / f"worker-{len(processes)}.log", "w")  # closed below
        process = subprocess.Popen(
            [sys.executable, "worker.py"], cwd=PROJECT_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT
        )
        processes.append((process, log))
        return process

    yield start
    for process, log in processes:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
        log.close()


def test_worker_process_sends_the_confirmation(app, make_app, own_redis, start_worker, smtp_server):
    booking_app = make_app(REDIS_URL=own_redis.url)
    worker = start_worker(own_redis.url)

    response = book(booking_app.test_client())

    assert response.status_code == 303
    [message] = smtp_server.wait_for(1, timeout=20)
    assert message["To"] == "kari.nordmann@lhl.no"
    assert worker.poll() is None


@pytest.mark.fault
def test_booking_during_redis_outage_is_mailed_after_redis_returns_and_worker_survives(
    app, make_app, own_redis, start_worker, smtp_server
):
    worker = start_worker(own_redis.url)
    booking_app = make_app(REDIS_URL=own_redis.url, MAIL_SWEEP_GRACE_SECONDS=0)
    client = booking_app.test_client()
    assert book(client).status_code == 303
    smtp_server.wait_for(1, timeout=20)

    own_redis.stop()
    during_outage = book(client, email="ola@frivillig.no", first_name="Ola")
    assert during_outage.status_code == 303
    own_redis.start()  # a restarted Redis has lost every queue and registry

    messages = smtp_server.wait_for(2, timeout=30)
    assert messages[1]["To"] == "ola@frivillig.no"

    after_restart = book(client, email="per@frivillig.no", first_name="Per")
    assert after_restart.status_code == 303
    messages = smtp_server.wait_for(3, timeout=30)
    assert sorted(message["To"] for message in messages) == [
        "kari.nordmann@lhl.no",
        "ola@frivillig.no",
        "per@frivillig.no",
    ]
    assert worker.poll() is None, "the worker outlived the Redis restart"

    def unsent_count():
        with booking_app.app_context():
            return db.session.scalar(
                db.select(db.func.count()).where(
                    OutboxMessage.kind == confirmation_mail.KIND, OutboxMessage.sent_at.is_(None)
                )
            )

    # SMTP accepted before the worker records it: wait for the commit.
    wait_until(lambda: unsent_count() == 0, 10, "every confirmation recorded as sent")
    assert len(smtp_server.messages()) == 3, "nothing was sent twice"


def worker_log(scratch_dir) -> str:
    return "\n".join(path.read_text()[-4000:] for path in sorted(scratch_dir.glob("worker-*.log")))


def test_worker_stops_cleanly_on_sigterm(app, own_redis, start_worker, scratch_dir):
    worker = start_worker(own_redis.url)
    connection = Redis.from_url(own_redis.url, socket_timeout=2)
    wait_until(lambda: Worker.all(connection=connection), 20, "the worker to register", lambda: worker_log(scratch_dir))

    worker.send_signal(signal.SIGTERM)

    try:
        exit_code = worker.wait(timeout=15)
    except subprocess.TimeoutExpired:
        pytest.fail("the worker ignored SIGTERM; its log:\n" + worker_log(scratch_dir))
    assert exit_code == 0
    assert Worker.all(connection=connection) == []
