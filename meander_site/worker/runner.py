"""The worker process (`python worker.py`): RQ's worker and the periodic jobs.

Runs jobs in this process (SimpleWorker: sending a mail costs less than a fork), with RQ's scheduler
for retry intervals, and runs the periodic jobs below, each on its own clock: the sweep for mail that Redis
lost, and the morning digests. It outlives Redis restarts: when RQ's loop gives up on a dead connection we
wait and start a fresh worker.
"""

import logging
import os
import signal
import threading
from collections.abc import Callable
from dataclasses import dataclass

from redis.exceptions import RedisError
from rq import SimpleWorker
from rq.exceptions import StopRequested

from .. import create_app
from ..assignment import escalation
from ..core.processes import die_with_parent
from ..core.redis_client import redis_connection
from ..extensions import db
from ..mail import dispatch, sweep
from ..pipeline import digest
from ..slots import feeds
from .jobs import MailJob

log = logging.getLogger("meander.worker")
RECONNECT_DELAY_SECONDS = 2
# RQ blocks on BLPOP for worker_ttl - 15 seconds and sets its socket timeout to outlast that.
WORKER_TTL_SECONDS = 60


class Stop:
    def __init__(self) -> None:
        self.event = threading.Event()

    def request(self, *_args) -> None:
        self.event.set()


@dataclass(frozen=True)
class Periodic:
    """A job the worker runs every `interval_setting` seconds. Several workers may run it at once: each job is
    safe to (the sweep takes each row by compare-and-set, a digest row has a unique key per person and day)."""

    name: str
    interval_setting: str
    run: Callable[[], None]


def sweep_outbox() -> None:
    """Whatever mail in the outbox Redis lost (or whose retries ran out) goes back on the queue."""
    count = sweep.sweep_due()
    if count:
        log.info("sweep re-enqueued mail", extra={"event": "mail_sweep_requeued", "count": count})


def write_morning_digests() -> None:
    """On a business-day morning, each staff member's digest, once."""
    for message in digest.write_due_digests():
        dispatch.dispatch(message)


def read_calendar_feeds() -> None:
    """Each host's calendar feed, every 5 minutes, under a lease per host (safe with several workers)."""
    feeds.fetch_due_feeds()


def escalate_first_contacts() -> None:
    """Reminders at half the first-contact time, and the mails (and hand-overs) once it has passed; each once."""
    for message in escalation.escalate_due():
        dispatch.dispatch(message)


PERIODIC_JOBS = (
    Periodic("mail sweep", "MAIL_SWEEP_SECONDS", sweep_outbox),
    Periodic("morning digest", "DIGEST_CHECK_SECONDS", write_morning_digests),
    Periodic("calendar feeds", "CALENDAR_FEED_CHECK_SECONDS", read_calendar_feeds),
    Periodic("first-contact escalation", "ESCALATION_CHECK_SECONDS", escalate_first_contacts),
)


def run_every(app, job: Periodic, stop: Stop) -> None:
    while not stop.event.wait(app.config[job.interval_setting]):
        with app.app_context():
            try:
                job.run()
            except Exception:
                # A database or Redis outage must not end the schedule; the next round tries again.
                log.exception("%s failed", job.name, extra={"event": "periodic_job_failed", "job": job.name})


class MailWorker(SimpleWorker):
    """RQ's worker, telling our loop when a signal asked it to stop (so we do not start a new one)."""

    stop: Stop

    def request_stop(self, signum, frame):
        self.stop.request()
        # An idle RQ worker stops by raising StopRequested from this handler. A signal that lands while the garbage
        # collector runs a __del__ (redis-py's parsers have one) has that exception swallowed ("Exception ignored
        # in __del__"), and the worker would block in BLMOVE for most of a minute: the flag stops the loop anyway.
        self._stop_requested = True
        super().request_stop(signum, frame)

    def _install_signal_handlers(self):
        super()._install_signal_handlers()
        # A signal that came while RQ was still starting up reached our handler, not RQ's.
        if self.stop.event.is_set():
            self._stop_requested = True


def install_signal_handlers(stop: Stop) -> None:
    # RQ installs its own while a worker runs; these cover the pauses between workers.
    signal.signal(signal.SIGTERM, stop.request)
    signal.signal(signal.SIGINT, stop.request)


def run_worker(app, stop: Stop) -> None:
    while not stop.event.is_set():
        with app.app_context():
            connection = redis_connection(socket_timeout=WORKER_TTL_SECONDS)
            worker = MailWorker(
                [dispatch.mail_queue(connection)],
                connection=connection,
                worker_ttl=WORKER_TTL_SECONDS,
                job_class=MailJob,
            )
            worker.stop = stop
            try:
                worker.work(with_scheduler=True, logging_level="INFO")
            except (RedisError, StopRequested) as error:
                log.warning("worker loop ended (%s)", type(error).__name__)
        install_signal_handlers(stop)
        if not stop.event.is_set():
            log.warning("redis unavailable; starting a new worker in %ss", RECONNECT_DELAY_SECONDS)
            stop.event.wait(RECONNECT_DELAY_SECONDS)


def prepare_forks(app) -> None:
    """RQ's scheduler runs in a forked process. It must never use (or close) the parent's pooled sockets,
    and a SIGTERM that reaches it before RQ installs its handlers must end it, not run the handlers it
    inherited from us (the parent waits for it to exit). So the stop signals stay blocked across the fork:
    the child restores the default handlers before it can receive one."""
    with app.app_context():
        engine = db.engine
    stop_signals = {signal.SIGTERM, signal.SIGINT}

    def before_fork():
        signal.pthread_sigmask(signal.SIG_BLOCK, stop_signals)

    def in_parent():
        signal.pthread_sigmask(signal.SIG_UNBLOCK, stop_signals)

    def in_child():
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, stop_signals)  # a SIGTERM sent meanwhile ends us now
        die_with_parent()  # a SIGKILLed worker must not leave its scheduler holding the lock forever
        engine.dispose(close=False)

    os.register_at_fork(before=before_fork, after_in_parent=in_parent, after_in_child=in_child)


def main() -> None:
    app = create_app()
    prepare_forks(app)
    stop = Stop()
    install_signal_handlers(stop)
    for job in PERIODIC_JOBS:
        threading.Thread(target=run_every, args=(app, job, stop), name=job.name, daemon=True).start()
    log.info("worker started: queue=%s", app.config["RQ_QUEUE_NAME"])
    run_worker(app, stop)
    log.info("worker stopped")
