"""Where the conversion report keeps its computed figures between renders: the app's shared, fail-fast Redis.

Only infrastructure: reports.py decides what a key means and when an entry may be used. A Redis that is down,
slow (the client gives up after REDIS_SOCKET_TIMEOUT_SECONDS) or full just means "compute it": every error is
logged (no figures, no filters — they can name a campaign) and swallowed, never a failed page.
"""

import logging
from collections.abc import Callable, Mapping

from flask import current_app
from redis import Redis
from redis.exceptions import RedisError

from .redis_client import shared_redis

log = logging.getLogger(__name__)


def load(key: str) -> bytes | None:
    return _attempt(lambda redis, config: redis.get(config["REPORT_CACHE_KEY_PREFIX"] + key))


def store(key: str, value: bytes) -> None:
    _attempt(
        lambda redis, config: redis.set(
            config["REPORT_CACHE_KEY_PREFIX"] + key, value, ex=config["REPORT_CACHE_SECONDS"]
        )
    )


def _attempt(operation: Callable[[Redis, Mapping], object]) -> object:
    try:
        return operation(shared_redis(), current_app.config)
    except (RedisError, OSError) as error:
        log.warning("report cache unavailable", extra={"event": "report_cache_error", "error": type(error).__name__})
        return None
