"""How long the outbox waits: the send lease, the retry schedule, and how far the sweep backs off."""

from datetime import timedelta

from flask import current_app

MAX_SWEEP_BACKOFF = timedelta(hours=1)


def send_lease() -> timedelta:
    """How long a job holds a mail: longer than an SMTP timeout, so a second job waits it out."""
    return timedelta(seconds=current_app.config["MAIL_SEND_LEASE_SECONDS"])


def retry_intervals() -> list[int]:
    """RQ's retry delays in seconds (the first within a minute); the sweep backs off along the same curve."""
    return current_app.config["MAIL_RETRY_INTERVALS"]


def retry_delay(attempts: int) -> timedelta | None:
    """After the n-th failed attempt: the n-th retry interval, or None once they are used up (the sweep)."""
    intervals = retry_intervals()
    return timedelta(seconds=intervals[attempts - 1]) if attempts <= len(intervals) else None
