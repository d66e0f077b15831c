"""gunicorn's settings for the web process (`gunicorn -c gunicorn.conf.py app:app`), from the environment.

PORT                 port to listen on, all interfaces (default 8000)
WEB_CONCURRENCY      worker processes (default 2 × CPU cores + 1, at most 8)
GUNICORN_THREADS     threads per worker (default 4; more than 1 selects the gthread worker)
GUNICORN_ACCESS_LOG  1: write an access log to stdout (default off: it holds client addresses; the
                     error log never does)
LOG_FORMAT           json: gunicorn's own lines as JSON too, like the app's
"""

import os

from gunicorn.glogging import Logger

from meander_site.core.logging_setup import WithoutClientAddresses


def _int_env(name: str, default: int) -> int:
    value = os.environ.get(name, "").strip()
    return int(value) if value else default


def _cores() -> int:
    # The CPUs this process may run on (a container's share), not every CPU the machine has.
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


# Every worker holds its own database pool (a connection per thread at most): the cap keeps several
# machines' workers together under PostgreSQL's max_connections. Raise it with WEB_CONCURRENCY.
MAX_DEFAULT_WORKERS = 8

bind = f"0.0.0.0:{_int_env('PORT', 8000)}"
workers = _int_env("WEB_CONCURRENCY", min(2 * _cores() + 1, MAX_DEFAULT_WORKERS))
threads = _int_env("GUNICORN_THREADS", 4)
worker_class = "gthread" if threads > 1 else "sync"

timeout = 30
graceful_timeout = 30
keepalive = 5

# The app is imported in each worker after the fork, so no database pool, Redis client or socket
# opened at start-up is ever shared between processes.
preload_app = False

# The app alone decides which proxies to believe (TRUSTED_PROXY_COUNT, through ProxyFix): gunicorn
# must not also honour X-Forwarded-* from anyone, so it trusts no address and maps no scheme header.
forwarded_allow_ips = ""
secure_scheme_headers = {}

# No control socket: its default path is shared by every gunicorn of this user on the machine, and the
# process manager (systemd, the platform) starts and stops us, not gunicornc.
control_socket_disable = True


class PrivateLogger(Logger):
    """gunicorn's logger, minus the client's address in its error lines ("Invalid request from ip=…")."""

    def setup(self, cfg):
        super().setup(cfg)  # runs again on reload, after any logconfig_dict: add the filter once, last
        if not any(isinstance(existing, WithoutClientAddresses) for existing in self.error_log.filters):
            self.error_log.addFilter(WithoutClientAddresses())


logger_class = PrivateLogger

_access_log_wanted = os.environ.get("GUNICORN_ACCESS_LOG", "").strip().lower() in {"1", "true", "yes", "on"}
errorlog = "-"
accesslog = "-" if _access_log_wanted else None

if os.environ.get("LOG_FORMAT", "").strip().lower() == "json":
    # The app's JSON formatter for gunicorn's lines too, so stderr holds nothing but JSON objects.
    # Root carries the handler create_app would otherwise add, so app logs are not written twice.
    _json_stream = {"class": "logging.StreamHandler", "formatter": "json", "stream": "ext://sys.stderr"}
    logconfig_dict = {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": "meander_site.core.logging_setup.JsonFormatter"}},
        "handlers": {
            "json_stderr": _json_stream,
            "json_stdout": {**_json_stream, "stream": "ext://sys.stdout"},
        },
        "root": {"level": os.environ.get("LOG_LEVEL", "INFO").upper(), "handlers": ["json_stderr"]},
        "loggers": {
            "gunicorn.error": {"level": "INFO", "handlers": ["json_stderr"], "propagate": False},
            # With a logconfig_dict gunicorn always emits access lines; the level drops them unless wanted.
            "gunicorn.access": {
                "level": "INFO" if _access_log_wanted else "WARNING",
                "handlers": ["json_stdout"],
                "propagate": False,
            },
        },
    }
