"""Confirmation mail: enqueue after commit, send from the worker, sweep up whatever Redis lost.

The bookings table is the source of truth. A job only nudges: it claims the booking with a
compare-and-set lease, sends, and records confirmation_sent_at, so a duplicate job, a sweep racing
a retry, or a worker killed mid-send never sends an accepted mail twice.
"""

import functools
import logging
import re
import uuid
from datetime import timedelta

import sqlalchemy as sa
from flask import current_app, has_app_context, render_template
from flask_mail import Message
from redis import Redis
from redis.exceptions import RedisError
from rq import Queue, Retry, get_current_job

from .extensions import db
from .mailer import smtp_session
from .models import Booking, Lead, utcnow
from .redis_client import shared_redis

log = logging.getLogger(__name__)

MAX_SWEEP_BACKOFF = timedelta(hours=1)
SWEEP_BATCH_SIZE = 500

# The form must not be a way to flood someone's inbox: past this, bookings are kept but mail no one.
MAX_CONFIRMATIONS_PER_RECIPIENT = 3
RECIPIENT_CAP_WINDOW = timedelta(hours=24)
# Stored as the booking's confirmation_last_error and shown to staff as is.
CAPPED = "Ikke sendt: for mange bekreftelser til denne adressen siste døgn"
# What a mail client could turn into a link: a scheme, www., an address, a domain name.
LINK_LIKE = re.compile(r"://|www\.|@|\w\.[a-z]{2,}", re.IGNORECASE)


def send_lease() -> timedelta:
    """How long a job holds a booking's mail: longer than an SMTP timeout, so a second job waits it out."""
    return timedelta(seconds=current_app.config["CONFIRMATION_SEND_LEASE_SECONDS"])


def retry_intervals() -> list[int]:
    """RQ's retry delays in seconds (the first within a minute); the sweep backs off along the same curve."""
    return current_app.config["CONFIRMATION_RETRY_INTERVALS"]


def confirmation_queue(connection: Redis | None = None) -> Queue:
    return Queue(current_app.config["RQ_QUEUE_NAME"], connection=connection or shared_redis())


def job_id_for(booking_id: uuid.UUID, attempt_marker: str = "") -> str:
    return f"confirmation-{booking_id}{attempt_marker}"


def dispatch_confirmation(booking_id: uuid.UUID) -> bool:
    """Enqueue the mail for a committed booking. Never raises: with Redis down the sweep sends it later."""
    return _enqueue(booking_id, job_id_for(booking_id), trigger="booking")


def _enqueue(booking_id: uuid.UUID, job_id: str, trigger: str) -> bool:
    fields = {"booking_id": str(booking_id), "job_id": job_id, "trigger": trigger}
    try:
        confirmation_queue().enqueue(
            send_confirmation,
            str(booking_id),
            job_id=job_id,
            retry=Retry(max=len(retry_intervals()), interval=retry_intervals()),
            result_ttl=0,  # nothing reads a job's result: the booking row records the outcome
            failure_ttl=7 * 24 * 3600,
        )
    except RedisError as error:
        log.warning(
            "confirmation not enqueued, a later sweep retries",
            extra={"event": "mail_enqueue_failed", **fields, "error": type(error).__name__},
        )
        return False
    log.info("confirmation enqueued", extra={"event": "mail_enqueued", **fields})
    return True


class ConfirmationNotSent(Exception):
    """What a failed send raises to RQ: SMTP errors can quote the recipient's address, this never does."""


def may_send_to(recipient: str, now) -> bool:
    """Whether one more confirmation may go to this address: mails due or sent for its recent bookings.

    Call inside the booking's transaction after the lead upsert, whose lock queues bookings for one
    address, so the count includes every booking committed before this one.
    """
    recent = db.session.scalar(
        sa.select(sa.func.count())
        .select_from(Booking)
        .where(
            Booking.email == recipient,
            Booking.created_at > now - RECIPIENT_CAP_WINDOW,
            sa.or_(Booking.confirmation_due_at.is_not(None), Booking.confirmation_sent_at.is_not(None)),
        )
    )
    return recent < MAX_CONFIRMATIONS_PER_RECIPIENT


def quotable(text: str | None) -> str | None:
    """A stored name fit to greet someone with, or None: a mail from us never carries a link someone typed."""
    if not text or LINK_LIKE.search(text):
        return None
    return text


def build_confirmation(lead: Lead, booking: Booking) -> Message:
    """The mail quotes none of the booking's text: whoever knows an address can book with it. The greeting
    uses the lead's stored name and organization, which a stranger's rebooking does not overwrite."""
    confirm_url = f"{current_app.config['SITE_URL']}/confirm/{lead.masked_ref}"
    context = {
        "first_name": quotable(lead.first_name),
        "organization_name": quotable(lead.organization_name),
        "confirm_url": confirm_url,
    }
    return Message(
        subject="Vi har mottatt demoforespørselen din – Meander",
        recipients=[booking.email],
        body=render_template("mail/confirmation.txt", **context),
        html=render_template("mail/confirmation.html", **context),
    )


def _claim(booking_id: uuid.UUID) -> bool:
    now = utcnow()
    claimed = db.session.execute(
        sa.update(Booking)
        .where(
            Booking.id == booking_id,
            Booking.confirmation_sent_at.is_(None),
            # A booking whose mail was never due (staff-typed, or past the recipient cap) is never sent.
            Booking.confirmation_due_at.is_not(None),
            sa.or_(Booking.confirmation_claimed_until.is_(None), Booking.confirmation_claimed_until < now),
        )
        .values(confirmation_claimed_until=now + send_lease(), confirmation_attempts=Booking.confirmation_attempts + 1)
    ).rowcount
    db.session.commit()
    return claimed == 1


def _record_sent(booking_id: uuid.UUID, lead_id: uuid.UUID) -> None:
    now = utcnow()
    db.session.execute(
        sa.update(Booking)
        .where(Booking.id == booking_id)
        .values(
            confirmation_sent_at=now,
            confirmation_due_at=None,
            confirmation_claimed_until=None,
            confirmation_last_error=None,
        )
    )
    # The lead counts as confirmed once none of its bookings waits for a mail (one never due waits for none).
    other_unsent = (
        sa.select(Booking.id)
        .where(
            Booking.lead_id == lead_id,
            Booking.id != booking_id,
            Booking.confirmation_sent_at.is_(None),
            Booking.confirmation_due_at.is_not(None),
        )
        .exists()
    )
    db.session.execute(sa.update(Lead).where(Lead.id == lead_id, ~other_unsent).values(confirmation_sent_at=now))
    db.session.commit()


def _record_failure(booking_id: uuid.UUID, attempts: int, error: Exception) -> None:
    intervals = retry_intervals()
    backoff_index = min(attempts, len(intervals)) - 1
    backoff = min(timedelta(seconds=intervals[max(backoff_index, 0)]), MAX_SWEEP_BACKOFF)
    db.session.rollback()
    db.session.execute(
        sa.update(Booking)
        .where(Booking.id == booking_id)
        .values(
            confirmation_claimed_until=None,
            # Leave room for RQ's own retry to come first; the sweep only catches what RQ dropped.
            confirmation_due_at=utcnow() + backoff + timedelta(seconds=30),
            confirmation_last_error=f"{type(error).__name__}: {error}"[:500],
        )
    )
    db.session.commit()


def send_confirmation(booking_id: str) -> str:
    """The RQ job. Safe to run twice: it sends only while it holds the booking's lease."""
    app = current_app._get_current_object() if has_app_context() else _job_app()
    with app.app_context():
        return _send_confirmation(uuid.UUID(booking_id))


@functools.cache
def _job_app():
    # Jobs open their own app context when the worker did not push one.
    from . import create_app

    return create_app()


def _send_confirmation(booking_id: uuid.UUID) -> str:
    try:
        if not _claim(booking_id):
            return "skipped"
        booking = db.session.get(Booking, booking_id)
        if booking is None:  # erased between enqueue and run
            return "gone"
        lead = booking.lead
        # Ids and counts only: SMTP errors can quote the recipient's address, so only their class is logged.
        fields = {"lead_id": str(lead.id), "booking_id": str(booking.id), "attempt": booking.confirmation_attempts}
        lead_id, attempts = lead.id, booking.confirmation_attempts
        if attempts > 1:
            log.info("confirmation retried", extra={"event": "mail_retried", **fields})
        try:
            message = build_confirmation(lead, booking)
            db.session.rollback()  # no transaction stays open while SMTP talks (the claim is committed)
            smtp_session.send(message)
        except Exception as error:
            log.error(
                "confirmation failed",
                extra={
                    "event": "mail_failed",
                    **fields,
                    "error": type(error).__name__,
                    "smtp_code": getattr(error, "smtp_code", None),
                    **_retry_plan(),
                },
            )
            _record_failure(booking_id, attempts, error)
            # RQ logs and stores what the job raised: give it the class, not the text (kept on the booking).
            raise ConfirmationNotSent(f"{type(error).__name__} (lead {lead_id}, attempt {attempts})") from None
        _record_sent(booking_id, lead_id)
        log.info("confirmation sent", extra={"event": "mail_sent", **fields})
        return "sent"
    finally:
        db.session.remove()


def _retry_plan() -> dict:
    """Who tries again after a failure: RQ while the job has retries left, the sweep after that."""
    job = get_current_job()
    retries_left = job.retries_left if job is not None else None
    return {"retries_left": retries_left, "retry_by": "rq" if retries_left else "sweep"}


def sweep_due_confirmations(limit: int = SWEEP_BATCH_SIZE) -> int:
    """Re-enqueue unsent confirmations whose time has come. Concurrent sweeps enqueue each one once:
    each row is taken by a compare-and-set on confirmation_due_at."""
    now = utcnow()
    due_ids = db.session.execute(
        sa.select(Booking.id)
        .where(Booking.confirmation_sent_at.is_(None), Booking.confirmation_due_at <= now)
        .order_by(Booking.confirmation_due_at)
        .limit(limit)
    ).scalars().all()
    db.session.rollback()
    enqueued = 0
    for booking_id in due_ids:
        enqueued += _take_and_enqueue(booking_id, due_before=now, trigger="sweep")
    return enqueued


def retry_pending() -> int:
    """Re-enqueue every unsent confirmation now (the CLI's `mail retry-pending`)."""
    far_future = utcnow() + timedelta(days=36500)
    pending_ids = db.session.execute(
        sa.select(Booking.id).where(Booking.confirmation_sent_at.is_(None))
    ).scalars().all()
    db.session.rollback()
    return sum(
        _take_and_enqueue(booking_id, due_before=far_future, trigger="retry_pending") for booking_id in pending_ids
    )


def send_now(booking_id: uuid.UUID) -> bool:
    """Staff asked to (re)send an unsent confirmation: enqueue it now, whatever its backoff says."""
    db.session.execute(
        sa.update(Booking)
        .where(Booking.id == booking_id, Booking.confirmation_sent_at.is_(None))
        .values(confirmation_due_at=utcnow())
    )
    db.session.commit()
    return _take_and_enqueue(booking_id, due_before=utcnow(), trigger="staff") == 1


def _take_and_enqueue(booking_id: uuid.UUID, due_before, trigger: str) -> int:
    taken = db.session.execute(
        sa.update(Booking)
        .where(
            Booking.id == booking_id,
            Booking.confirmation_sent_at.is_(None),
            Booking.confirmation_due_at <= due_before,
        )
        # Until the job has had its chance, no other sweep takes this booking; a lost job is taken again later.
        .values(confirmation_due_at=utcnow() + send_lease() + timedelta(seconds=retry_intervals()[0]))
    ).rowcount
    db.session.commit()
    if taken != 1:
        return 0
    # A fresh job id: the original job may still sit in RQ's failed registry.
    if not _enqueue(booking_id, job_id_for(booking_id, f"-sweep-{uuid.uuid4().hex[:8]}"), trigger=trigger):
        # Give it back so the next sweep tries again once Redis answers.
        db.session.execute(sa.update(Booking).where(Booking.id == booking_id).values(confirmation_due_at=utcnow()))
        db.session.commit()
        return 0
    return 1
