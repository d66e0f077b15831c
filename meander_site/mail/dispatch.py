"""Making sure a job will send a committed mail: RQ only nudges, the outbox rows are the truth.

The job is named by its path (SEND_JOB), as RQ stores it: the web process queues it without importing the
worker's side (worker/jobs.py imports this module, for its successors and retries).
"""

import logging
import math
import time
import uuid
from datetime import timedelta

from flask import current_app
from redis.exceptions import RedisError
from rq import Queue

from ..core.clock import utcnow
from ..core.redis_client import shared_redis

log = logging.getLogger(__name__)

SEND_JOB = "meander_site.worker.jobs.send_message"
JOB_TIMEOUT_SECONDS = 180  # RQ ends a job that runs longer: far above the budget plus one SMTP timeout


def mail_queue(connection=None) -> Queue:
    return Queue(current_app.config["RQ_QUEUE_NAME"], connection=connection or shared_redis())


def job_id_for(message_id: uuid.UUID, attempt_marker: str = "") -> str:
    return f"mail-{message_id}{attempt_marker}"


# A job serves every due mail (see worker/jobs.py), so the web needs one only when none is waiting. The flag says one
# is queued; the job deletes it before it claims anything, so a mail committed before that is found by its
# claims, and one committed after it queues the next job. A lost flag or job leaves the mail to the sweep.
PENDING_FLAG_SECONDS = 30
# Mails due later (a team notice collects bookings for a minute) share one delayed job per few seconds.
DELAYED_JOB_SECONDS = 5


def job_flag_prefix() -> str:
    return f"meander:{current_app.config['RQ_QUEUE_NAME']}:mail-job-"


def job_flag(run_at_slot: int | None = None) -> str:
    return job_flag_prefix() + ("pending" if run_at_slot is None else f"at:{run_at_slot}")


def forget_waiting_jobs() -> None:
    """Drop the flags of queued jobs (after emptying the queue, as tests and benchmarks do): the next mail
    queues a job of its own instead of counting on one that is gone."""
    connection = shared_redis()
    flags = list(connection.scan_iter(match=job_flag_prefix() + "*", count=1000))
    if flags:
        connection.delete(*flags)


def dispatch(message, delay: timedelta | None = None, asked: dict | None = None) -> bool:
    """Make sure a job will send a committed mail (an OutboxMessage, what outbox.write returned, or a bare id). Never
    raises: with Redis down the sweep sends it later. A mail added closed (never to be sent) needs no job."""
    kind_name = None
    if not isinstance(message, uuid.UUID):
        message_id, kind_name, send_after, closed = getattr(message, "dispatch_plan", None) or (
            message.id,
            message.kind,
            message.send_after,
            message.closed_at is not None,
        )
        if closed:
            return False
        if delay is None:
            delay = max(send_after - utcnow(), timedelta(0))
    else:
        # A bare id (an operator's nudge, or one already tried): a job of its own. A waiting job's claims
        # take only mail nobody has tried, so it might not send this one.
        return enqueue(message, job_id_for(message, f"-nudge-{uuid.uuid4().hex[:8]}"), "nudge", delay or timedelta(0))
    return request_job(message_id, kind_name, delay or timedelta(0), trigger="new", asked=asked)


def request_job(
    message_id: uuid.UUID, kind_name: str | None, delay: timedelta, trigger: str, asked: dict | None = None
) -> bool:
    """Queue a job that will find this mail, unless one that will is already waiting. `asked`: the flags this
    caller has asked for already (dispatch_all), each with its answer: mails committed together that one job
    will find ask Redis once."""
    fields = {"kind": kind_name, "message_id": str(message_id), "trigger": trigger}
    if delay > timedelta(0):
        # The slot's job runs at the end of the slot, so it finds every mail due within it.
        slot = math.ceil((time.time() + delay.total_seconds()) / DELAYED_JOB_SECONDS)
        delay = timedelta(seconds=max(slot * DELAYED_JOB_SECONDS - time.time(), 0))
        flag, flag_seconds = job_flag(slot), int(delay.total_seconds()) + DELAYED_JOB_SECONDS
    else:
        flag, flag_seconds = job_flag(), PENDING_FLAG_SECONDS
    if asked is not None and flag in asked:
        log.info("mail waits for a queued job", extra={"event": "mail_enqueued", **fields, "job": "asked"})
        return asked[flag]
    queued = _queue_unless_waiting(message_id, kind_name, delay, trigger, flag, flag_seconds, fields)
    if asked is not None:
        asked[flag] = queued
    return queued


def _queue_unless_waiting(
    message_id: uuid.UUID, kind_name: str | None, delay: timedelta, trigger: str, flag: str, flag_seconds: int, fields
) -> bool:
    # A job queued from inside a job gets an id of its own: the running job's id would be overwritten, and
    # deleted with it when it ends.
    job_id = job_id_for(message_id, "" if trigger == "new" else f"-{trigger}-{uuid.uuid4().hex[:8]}")
    try:
        if not shared_redis().set(flag, job_id, nx=True, ex=flag_seconds):
            log.info("mail waits for a queued job", extra={"event": "mail_enqueued", **fields, "job": "pending"})
            return True
    except RedisError as error:
        log.warning(
            "mail not enqueued, a later sweep retries",
            extra={"event": "mail_enqueue_failed", **fields, "error": type(error).__name__},
        )
        return False
    if enqueue(message_id, job_id, trigger=trigger, delay=delay, kind_name=kind_name):
        return True
    try:
        shared_redis().delete(flag)  # no job behind it: let the next mail try again
    except RedisError:
        pass  # it expires
    return False


def enqueue(
    message_id: uuid.UUID, job_id: str, trigger: str, delay: timedelta = timedelta(0), kind_name: str | None = None
) -> bool:
    fields = {"kind": kind_name, "message_id": str(message_id), "job_id": job_id, "trigger": trigger}
    options = {
        "job_id": job_id,
        "result_ttl": 0,  # nothing reads a job's result: the outbox rows record the outcome
        "failure_ttl": 7 * 24 * 3600,
        "job_timeout": JOB_TIMEOUT_SECONDS,
    }
    try:
        queue = mail_queue()
        if delay > timedelta(0):
            queue.enqueue_in(delay, SEND_JOB, str(message_id), **options)
        else:
            queue.enqueue(SEND_JOB, str(message_id), **options)
    except RedisError as error:
        log.warning(
            "mail not enqueued, a later sweep retries",
            extra={"event": "mail_enqueue_failed", **fields, "error": type(error).__name__},
        )
        return False
    log.info("mail enqueued", extra={"event": "mail_enqueued", **fields, "job": "new"})
    return True


def dispatch_all(messages: list) -> None:
    """dispatch() each committed mail (a booking's, a move's). They were committed together, so the job one of them
    queued (or found waiting) finds every other due by then: Redis is asked once per flag, not once per mail."""
    asked: dict[str, bool] = {}
    for message in messages:
        dispatch(message, asked=asked)
