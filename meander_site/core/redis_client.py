"""The fail-fast Redis client: every connection the site opens (queue, rate limits, probes, worker) has
short timeouts and no retries, so a dead Redis costs a request a fraction of a second, never many."""

from flask import current_app
from redis import Redis
from redis.backoff import NoBackoff
from redis.retry import Retry


def fail_fast_options(connect_timeout: float, socket_timeout: float) -> dict:
    """redis-py's keyword arguments for a client that gives up at once (also the limiter's storage options)."""
    return {
        "socket_connect_timeout": connect_timeout,
        "socket_timeout": socket_timeout,
        # redis-py retries with backoff by default: seconds of stall per request when Redis is gone.
        "retry": Retry(NoBackoff(), 0),
    }


def redis_connection(socket_timeout: float | None = None) -> Redis:
    """A new client on REDIS_URL with the configured timeouts (the worker passes a longer socket timeout)."""
    config = current_app.config
    return Redis.from_url(
        config["REDIS_URL"],
        health_check_interval=30,
        **fail_fast_options(
            config["REDIS_CONNECT_TIMEOUT_SECONDS"], socket_timeout or config["REDIS_SOCKET_TIMEOUT_SECONDS"]
        ),
    )


def shared_redis() -> Redis:
    """This app's fail-fast client, made once: requests and readiness probes reuse its connection pool."""
    extension = current_app.extensions.setdefault("meander_redis", {})
    if extension.get("connection") is None:
        extension["connection"] = redis_connection()
    return extension["connection"]
