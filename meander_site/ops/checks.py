"""Does each service the site needs answer? Fast and quiet: a probe must never hang a worker or leak details."""

import logging

import sqlalchemy as sa

from ..core.redis_client import shared_redis
from ..extensions import db

log = logging.getLogger(__name__)


def database_answers() -> bool:
    # The app's own pool (with its pre-ping and connect_timeout): what the next request would get.
    with db.engine.connect() as connection:
        connection.execute(sa.text("SELECT 1"))
    return True


def redis_answers() -> bool:
    # The fail-fast client bookings use: short connect and socket timeouts, no retries.
    return bool(shared_redis().ping())


CHECKS = {"database": database_answers, "redis": redis_answers}


def readiness() -> dict[str, str]:
    """ "ok" or "unavailable" per service; the reason goes to the log, not to whoever asked."""
    results = {}
    for name, check in CHECKS.items():
        try:
            results[name] = "ok" if check() else "unavailable"
        except Exception as error:
            log.warning(
                "readiness check failed",
                extra={"event": "readiness_failed", "check": name, "error": type(error).__name__},
            )
            results[name] = "unavailable"
    return results
