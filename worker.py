"""The RQ worker: `python worker.py`.

Runs jobs in this process (SimpleWorker: sending a mail costs less than a fork), with RQ's scheduler
for retry intervals, and sweeps the outbox for mail that Redis lost (and writes the morning digests). It outlives Redis
restarts: when RQ's loop gives up on a dead connection we wait and start a fresh worker.
"""

import logging
import os
import signal
import threading

from redis.exceptions import RedisError
from rq import SimpleWorker
from rq.exceptions import StopRequested

from meander_site import create_app, notifications, outbox
from meander_site.extensions import db
from meander_site.processes import die_with_parent
from meander_site.redis_client import redis_connection

log = logging.getLogger("meander.worker")
RECONNECT_DELAY_SECONDS = 2
# RQ blocks on BLPOP for worker_ttl - 15 seconds and sets its socket timeout to outlast that.
WORKER_TTL_SECONDS = 60


class Stop:
    def __init__(self) -> None:
        self.event = threading.Event()

    def request(self, *_args) -> None:
        self.event.set()


def sweep_forever(app, stop: Stop) -> None:
    interval = app.config["CONFIRMATION_SWEEP_SECONDS"]
    while not stop.event.wait(interval):
        with app.app_context():
            try:
                sweep_outbox()
            except Exception:
                # A database or Redis outage must not end the sweep; the next round tries again.
                log.exception("mail sweep failed", extra={"event": "mail_sweep_failed"})


def sweep_outbox() -> None:
    """The morning digests, once they are due, and whatever mail in the outbox Redis lost."""
    for message in notifications.write_due_digests():
        outbox.dispatch(message)
    count = outbox.sweep_due()
    if count:
        log.info("sweep re-enqueued mail", extra={"event": "mail_sweep_requeued", "count": count})


class MailWorker(SimpleWorker):
    """RQ's worker, telling our loop when a signal asked it to stop (so we do not start a new one)."""

    stop: Stop

    def request_stop(self, signum, frame):
        self.stop.request()
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
            worker = MailWorker([outbox.mail_queue(connection)], connection=connection, worker_ttl=WORKER_TTL_SECONDS)
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
    sweeper = threading.Thread(target=sweep_forever, args=(app, stop), name="mail-sweep", daemon=True)
    sweeper.start()
    log.info("worker started: queue=%s", app.config["RQ_QUEUE_NAME"])
    run_worker(app, stop)
    log.info("worker stopped")


if __name__ == "__main__":
    main()
