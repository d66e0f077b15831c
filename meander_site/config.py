"""Configuration read from the environment, with defaults that run on a fresh machine."""

import os
from pathlib import Path

from .core.redis_client import fail_fast_options

PROJECT_ROOT = Path(__file__).resolve().parent.parent
INSTANCE_DIR = PROJECT_ROOT / "instance"

# Used only when SECRET_KEY is unset outside production, so sessions still work on a fresh machine.
DEVELOPMENT_SECRET_KEY = "dev-only-not-secret"  # noqa: S105 (refused in production)


def env_flag(name: str, default: bool = False) -> bool:
    value = os.environ.get(name)
    if value is None or value.strip() == "":
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


# Settings that govern every mail once carried the confirmation's name: old name -> new name.
RENAMED_SETTINGS = {
    "CONFIRMATION_SWEEP_SECONDS": "MAIL_SWEEP_SECONDS",
    "CONFIRMATION_SWEEP_GRACE_SECONDS": "MAIL_SWEEP_GRACE_SECONDS",
    "CONFIRMATION_SEND_LEASE_SECONDS": "MAIL_SEND_LEASE_SECONDS",
    "CONFIRMATION_RETRY_INTERVALS": "MAIL_RETRY_INTERVALS",
}


def renamed_setting(name: str) -> str | None:
    """The environment's value for a renamed setting: its new name, else its old one."""
    old = next(old for old, new in RENAMED_SETTINGS.items() if new == name)
    return os.environ.get(name) or os.environ.get(old) or None


def env_int(name: str, default: int) -> int:
    value = os.environ.get(name, "").strip()
    return int(value) if value else default


def env_list(name: str, default: str) -> list[str]:
    """A comma-separated list; an empty value means an empty list."""
    value = os.environ.get(name)
    return [item.strip() for item in (default if value is None else value).split(",") if item.strip()]


def normalize_database_url(url: str) -> str:
    """Let operators paste a plain postgres URL; SQLAlchemy needs the psycopg (v3) driver named."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def default_redis_url() -> str:
    # `make run` starts the embedded Redis on this socket when REDIS_URL is unset.
    return f"unix://{INSTANCE_DIR / 'redis.sock'}"


class Config:
    def __init__(self) -> None:
        self.ENV_NAME = os.environ.get("MEANDER_ENV", "development")
        self.SECRET_KEY = os.environ.get("SECRET_KEY") or DEVELOPMENT_SECRET_KEY
        self.SQLALCHEMY_DATABASE_URI = normalize_database_url(
            os.environ.get("DATABASE_URL") or f"sqlite:///{INSTANCE_DIR / 'meander.db'}"
        )
        self.REDIS_URL = os.environ.get("REDIS_URL") or default_redis_url()
        self.SITE_URL = (os.environ.get("SITE_URL") or "http://127.0.0.1:{}".format(env_int("PORT", 5000))).rstrip("/")
        self.TRUSTED_PROXY_COUNT = env_int("TRUSTED_PROXY_COUNT", 0)
        # Host names served besides SITE_URL's (hosts.py): what health probes and the local machine send.
        self.EXTRA_TRUSTED_HOSTS = env_list("EXTRA_TRUSTED_HOSTS", "localhost,127.0.0.1")
        # Every form fits in a few KB (the longest booking, percent-encoded, stays under 48 KB): anything
        # bigger is refused with a 413 before it is read.
        self.MAX_CONTENT_LENGTH = env_int("MAX_CONTENT_LENGTH", 64 * 1024)
        # "json": one JSON object per line on stderr, for a log pipeline; anything else: readable lines.
        self.LOG_FORMAT = (os.environ.get("LOG_FORMAT") or "text").strip().lower()
        self.LOG_LEVEL = (os.environ.get("LOG_LEVEL") or "INFO").strip().upper()

        self.MAIL_SERVER = os.environ.get("MAIL_SERVER") or "127.0.0.1"
        self.MAIL_PORT = env_int("MAIL_PORT", 8025)
        self.MAIL_USE_TLS = env_flag("MAIL_USE_TLS")
        self.MAIL_USE_SSL = env_flag("MAIL_USE_SSL")
        self.MAIL_USERNAME = os.environ.get("MAIL_USERNAME") or None
        self.MAIL_PASSWORD = os.environ.get("MAIL_PASSWORD") or None
        self.MAIL_DEFAULT_SENDER = os.environ.get("MAIL_DEFAULT_SENDER") or "Meander <demo@meander.no>"
        self.MAIL_TIMEOUT_SECONDS = float(os.environ.get("MAIL_TIMEOUT_SECONDS") or 10)
        self.MAIL_SUPPRESS_SEND = False  # tests send real mail to their own SMTP server
        self.MAIL_SINK_DIR = os.environ.get("MAIL_SINK_DIR") or None

        # Network clients never wait long: a slow Redis must not stall a booking.
        self.REDIS_CONNECT_TIMEOUT_SECONDS = float(os.environ.get("REDIS_CONNECT_TIMEOUT_SECONDS") or 0.25)
        self.REDIS_SOCKET_TIMEOUT_SECONDS = float(os.environ.get("REDIS_SOCKET_TIMEOUT_SECONDS") or 0.25)
        # The report's computed figures stay in Redis this long at most (reporting/cache.py): a backstop, since
        # their key already changes with the data. Figures computed while the newest change is younger than the
        # settle time are not kept (a transaction that began earlier may still be committing).
        self.REPORT_CACHE_SECONDS = env_int("REPORT_CACHE_SECONDS", 600)
        self.REPORT_CACHE_SETTLE_SECONDS = float(os.environ.get("REPORT_CACHE_SETTLE_SECONDS") or 5)
        self.REPORT_CACHE_KEY_PREFIX = os.environ.get("REPORT_CACHE_KEY_PREFIX") or "meander:report:"
        self.RQ_QUEUE_NAME = os.environ.get("RQ_QUEUE_NAME") or "confirmations"
        # These govern every mail, not only confirmations: the old CONFIRMATION_* names are still read (with a
        # warning in the log at start-up), the MAIL_* name wins when both are set.
        self.DEPRECATED_SETTINGS = {old: new for old, new in RENAMED_SETTINGS.items() if os.environ.get(old)}
        # How often the worker looks for mail that is due and unsent.
        self.MAIL_SWEEP_SECONDS = float(renamed_setting("MAIL_SWEEP_SECONDS") or 30)
        # A mail becomes the sweep's business this long after it was due, if still unsent.
        self.MAIL_SWEEP_GRACE_SECONDS = float(renamed_setting("MAIL_SWEEP_GRACE_SECONDS") or 60)
        # RQ's delays in seconds before each retry of a failed mail; then the sweep takes over. From the environment
        # too, so a worker started by the tests retries within seconds as the tests' own app does.
        self.MAIL_RETRY_INTERVALS = [
            int(seconds) for seconds in (renamed_setting("MAIL_RETRY_INTERVALS") or "15,60,300,900,3600").split(",")
        ]
        # A worker killed mid-send releases the mail after this; keep it above MAIL_TIMEOUT_SECONDS.
        self.MAIL_SEND_LEASE_SECONDS = float(renamed_setting("MAIL_SEND_LEASE_SECONDS") or 90)
        # How often the worker checks whether the morning digests are due (they go out from DIGEST_AT).
        self.DIGEST_CHECK_SECONDS = float(os.environ.get("DIGEST_CHECK_SECONDS") or 60)
        # How often the worker looks for hosts' calendar feeds due a fetch (each is read every 5 minutes).
        self.CALENDAR_FEED_CHECK_SECONDS = float(os.environ.get("CALENDAR_FEED_CHECK_SECONDS") or 60)
        # How often the worker looks for first-contact clocks at their halfway point or past their time.
        self.ESCALATION_CHECK_SECONDS = float(os.environ.get("ESCALATION_CHECK_SECONDS") or 30)

        # Webhooks and calendar feeds (core/outbound_http.py) never reach loopback, private or metadata addresses.
        # The tests' local HTTP servers are on 127.0.0.1: "1" lets requests reach loopback (only). Never in production.
        self.OUTBOUND_ALLOW_LOOPBACK = os.environ.get("OUTBOUND_ALLOW_LOOPBACK") == "1"
        # A chat webhook that has not answered by then is tried again later.
        self.CHAT_WEBHOOK_TIMEOUT_SECONDS = float(os.environ.get("CHAT_WEBHOOK_TIMEOUT_SECONDS") or 10)
        self.OUTBOUND_TIMEOUT_SECONDS = float(os.environ.get("OUTBOUND_TIMEOUT_SECONDS") or 10)

        self.LOGIN_RATE_LIMIT = os.environ.get("LOGIN_RATE_LIMIT") or "10 per 15 minutes"
        self.STAFF_SESSION_HOURS = float(os.environ.get("STAFF_SESSION_HOURS") or 12)
        # The second sign-in step (two-factor code): per account whose password was right, and per client address.
        self.TWO_FACTOR_RATE_LIMIT = os.environ.get("TWO_FACTOR_RATE_LIMIT") or "5 per 15 minutes"
        self.TWO_FACTOR_IP_RATE_LIMIT = os.environ.get("TWO_FACTOR_IP_RATE_LIMIT") or "20 per 15 minutes"
        # «Glemt passord?»: per address asked for, and per client address.
        self.PASSWORD_RESET_RATE_LIMIT = os.environ.get("PASSWORD_RESET_RATE_LIMIT") or "3 per hour"
        self.PASSWORD_RESET_IP_RATE_LIMIT = os.environ.get("PASSWORD_RESET_IP_RATE_LIMIT") or "10 per hour"
        # Lead creation attempts: bookings that passed validation, per client address (the seed's limit).
        self.BOOKING_RATE_LIMIT = os.environ.get("BOOKING_RATE_LIMIT") or "5 per hour"
        # Every POST on the public site, refused ones too (invalid, no CSRF token), per client address: looser, so a
        # prospect who mistypes a phone number twice is not locked out.
        self.BOOKING_ATTEMPT_RATE_LIMIT = os.environ.get("BOOKING_ATTEMPT_RATE_LIMIT") or "30 per hour"
        # «Be om et annet tidspunkt» per confirmation link, whichever addresses post it (besides the per-address
        # booking limit): the link travels in every calendar invitation.
        self.WISH_RATE_LIMIT = os.environ.get("WISH_RATE_LIMIT") or "3 per hour"
        # Picking, moving and cancelling a self-booked demo, per confirmation link (the rules allow 3 moves).
        self.DEMO_CHANGE_RATE_LIMIT = os.environ.get("DEMO_CHANGE_RATE_LIMIT") or "6 per hour"
        self.RATELIMIT_STORAGE_URI = redis_url_for_limits(self.REDIS_URL)
        self.RATELIMIT_STORAGE_OPTIONS = fail_fast_options(
            self.REDIS_CONNECT_TIMEOUT_SECONDS, self.REDIS_SOCKET_TIMEOUT_SECONDS
        )
        self.RATELIMIT_STRATEGY = "moving-window"
        # No per-process memory fallback: it would multiply every limit by the number of processes. While Redis
        # is down the limits count in the database (core/rate_limits.py); a limiter that can reach neither
        # refuses with a 503 instead of letting requests through uncounted.
        self.RATELIMIT_IN_MEMORY_FALLBACK_ENABLED = False
        self.RATELIMIT_SWALLOW_ERRORS = False
        self.RATELIMIT_KEY_PREFIX = os.environ.get("RATELIMIT_KEY_PREFIX") or "meander"

        self.SQLALCHEMY_ENGINE_OPTIONS = engine_options(self.SQLALCHEMY_DATABASE_URI)
        # A pooled PostgreSQL connection idle longer than this is pinged before use (see database.py).
        self.DATABASE_PING_AFTER_IDLE_SECONDS = float(os.environ.get("DATABASE_PING_AFTER_IDLE_SECONDS") or 5)
        self.WTF_CSRF_TIME_LIMIT = None  # a prospect may leave the form open for hours
        self.SESSION_COOKIE_HTTPONLY = True
        self.SESSION_COOKIE_SAMESITE = "Lax"
        self.SESSION_COOKIE_SECURE = self.SITE_URL.startswith("https://")
        # Flask-Login's remember-me cookie (not used today) gets the same protection should it ever be.
        self.REMEMBER_COOKIE_HTTPONLY = True
        self.REMEMBER_COOKIE_SAMESITE = "Lax"
        self.REMEMBER_COOKIE_SECURE = self.SESSION_COOKIE_SECURE

    def as_dict(self) -> dict:
        return {key: getattr(self, key) for key in vars(self) if key.isupper()}


def refuse_unsafe_production(config) -> None:
    """Production never runs on a guessable secret."""
    if config["ENV_NAME"] != "production":
        return
    secret = config.get("SECRET_KEY") or ""
    if secret == DEVELOPMENT_SECRET_KEY or len(secret) < 32:
        raise RuntimeError("MEANDER_ENV=production needs SECRET_KEY set to at least 32 random characters.")


def redis_url_for_limits(redis_url: str) -> str:
    """The `limits` library names unix sockets `redis+unix://`."""
    if redis_url.startswith("unix://"):
        return "redis+unix://" + redis_url[len("unix://") :]
    return redis_url


def engine_options(database_url: str) -> dict:
    # A failed statement's parameters are names, emails and phones: SQLAlchemy must not quote them in errors.
    if database_url.startswith("sqlite"):
        # Threads of one process share the file; WAL and busy_timeout are set on connect (see tune_sqlite).
        return {"connect_args": {"timeout": 15}, "hide_parameters": True}
    # No pool_pre_ping: it costs a round trip per checkout. ping_stale_connections() checks instead.
    return {
        "hide_parameters": True,
        "pool_recycle": 1800,
        "connect_args": {"connect_timeout": 5},
    }
