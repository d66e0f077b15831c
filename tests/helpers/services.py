"""The services a test process runs on, none of them shared with another process.

`make test` runs the suite in pytest-xdist workers (gw0, gw1, …), and another checkout's suite may run on the
same machine at the same time. So every test process has its own
- SQLite file, in its own scratch directory (conftest's scratch_dir), or throwaway PostgreSQL database, with a
  unique name, dropped at the end;
- Redis: with REDIS_URL, a database number it claims on that server for as long as it runs (below); otherwise
  a redis-server of its own on a unix socket in its scratch directory;
- SMTP sink, HTTP servers and subprocess servers, each on a port the kernel picked.

The one thing that cannot be had alone is the PostgreSQL server itself: a test that restarts it takes it
with PostgresServerLock.alone(), while every other test holds it shared.
"""

import contextlib
import fcntl
import os
import tempfile
import threading
import uuid
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import psycopg
from redis import Redis
from redis.exceptions import RedisError, ResponseError

from meander_site.config import normalize_database_url


def worker_name() -> str:
    """pytest-xdist's name for this process ("gw0", "gw1", …), or "main" when the suite runs in one process."""
    return os.environ.get("PYTEST_XDIST_WORKER", "main")


def worker_index() -> int:
    """0 for gw0 and for a run without xdist, 1 for gw1, …"""
    name = worker_name()
    return int(name.removeprefix("gw")) if name.startswith("gw") else 0


def is_postgresql(url: str | None) -> bool:
    return bool(url) and url.startswith(("postgres://", "postgresql"))


# --- PostgreSQL ---------------------------------------------------------------------------------------------


def _admin_url(database_url: str) -> str:
    server = urlsplit(normalize_database_url(database_url).replace("+psycopg", ""))
    return urlunsplit(server._replace(path="/postgres"))


def create_database(server_url: str, prefix: str) -> str:
    """A new, empty database on the server of `server_url`, named for this worker plus a random part (so no
    other worker or checkout picks the same name); returns its SQLAlchemy URL."""
    name = f"{prefix}_{worker_name()}_{uuid.uuid4().hex[:10]}".lower()
    with psycopg.connect(_admin_url(server_url), autocommit=True, connect_timeout=5) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    server = urlsplit(normalize_database_url(server_url))
    return urlunsplit(server._replace(path=f"/{name}"))


def drop_database(database_url: str) -> None:
    name = urlsplit(database_url).path.lstrip("/")
    with psycopg.connect(_admin_url(database_url), autocommit=True, connect_timeout=5) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


class PostgresServerLock:
    """Every test holds the PostgreSQL server shared; a test that restarts it holds it alone, so that no test
    of another worker, or of another checkout's run on this machine, loses its connection halfway.

    Two flock(2) files under the temp directory, named for the server: the lock itself, and a gate that a
    test waiting to be alone holds, so that new shared holders queue behind it instead of starving it.
    The kernel drops both when a process dies, so a killed run leaves nothing held.
    """

    def __init__(self, database_url: str) -> None:
        address = urlsplit(database_url)
        name = f"meander-tests-postgresql-{address.hostname or 'local'}-{address.port or 5432}"
        self._lock_path = Path(tempfile.gettempdir()) / f"{name}.lock"
        self._gate_path = Path(tempfile.gettempdir()) / f"{name}.gate"
        self._shared_depth = 0  # a fixture that needs the server inside a test already holding it

    @staticmethod
    def _open(path: Path) -> int:
        return os.open(path, os.O_RDWR | os.O_CREAT, 0o666)

    @contextlib.contextmanager
    def _held(self, path: Path, operation: int):
        descriptor = self._open(path)
        try:
            fcntl.flock(descriptor, operation)
            yield
        finally:
            os.close(descriptor)  # releases the lock

    @contextlib.contextmanager
    def shared(self):
        if self._shared_depth:
            self._shared_depth += 1
            try:
                yield
            finally:
                self._shared_depth -= 1
            return
        with self._held(self._gate_path, fcntl.LOCK_EX):  # waits while a restart is queued
            descriptor = self._open(self._lock_path)
            fcntl.flock(descriptor, fcntl.LOCK_SH)
        self._shared_depth = 1
        try:
            yield
        finally:
            self._shared_depth = 0
            os.close(descriptor)

    @contextlib.contextmanager
    def alone(self):
        with self._held(self._gate_path, fcntl.LOCK_EX), self._held(self._lock_path, fcntl.LOCK_EX):
            yield


# --- Redis --------------------------------------------------------------------------------------------------

# Takes the database for ARGV[1] if nobody holds it and it holds nobody else's data: it is empty, or all it
# holds was left by a run of this suite that died (the scratch marker says so). Empties it, then marks it.
_TAKE = """
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
if redis.call('DBSIZE') > 0 and redis.call('EXISTS', KEYS[2]) == 0 then return 0 end
redis.call('FLUSHDB')
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
redis.call('SET', KEYS[2], '1')
return 1
"""
# Renews the claim (and the marker, should a test have emptied the database) while it is still ours.
_RENEW = """
local holder = redis.call('GET', KEYS[1])
if holder and holder ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
redis.call('SET', KEYS[2], '1')
return 1
"""
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('FLUSHDB') return 1 end
return 0
"""


class RedisDatabaseClaim:
    """A database number on the Redis server of REDIS_URL, this process's alone for as long as it runs.

    Worker gwN asks for `base - N` first (REDIS_TEST_DB=15: gw0 gets 15, gw1 gets 14, …), then any lower
    number, never the one REDIS_URL itself names. A number is taken only when no live run holds it and it
    holds nobody else's data, so a concurrent run of another checkout (or anyone's keys) is never flushed.
    The claim is a key that expires unless renewed: a run that dies frees its number within CLAIM_SECONDS.
    """

    CLAIM_KEY = "meander-tests:claimed-by"
    MARKER_KEY = "meander-tests:scratch"
    CLAIM_SECONDS = 60

    def __init__(self, server_url: str, base: int, preferred: int) -> None:
        self.server_url = server_url
        self.base = base
        self.preferred = preferred
        self.owner = f"{os.uname().nodename}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.number: int | None = None
        self._stop = threading.Event()
        self._renewer: threading.Thread | None = None

    @property
    def url(self) -> str:
        return self._url_for(self.number)

    def _url_for(self, number: int) -> str:
        parts = urlsplit(self.server_url)
        if parts.scheme == "unix":  # unix:///path/to/redis.sock?db=N: the path is the socket's
            query = [(key, value) for key, value in parse_qsl(parts.query) if key != "db"]
            return f"unix://{parts.path}?{urlencode([*query, ('db', str(number))])}"  # urlunsplit drops the //
        return urlunsplit(parts._replace(path=f"/{number}"))

    def _client(self, number: int) -> Redis:
        return Redis.from_url(self._url_for(number), socket_timeout=5, socket_connect_timeout=5)

    def _candidates(self) -> list[int]:
        parts = urlsplit(self.server_url)
        configured = dict(parse_qsl(parts.query)).get("db", "") if parts.scheme == "unix" else parts.path.lstrip("/")
        own = int(configured) if configured.isdigit() else 0
        numbers = [self.preferred, *range(self.base, -1, -1)]
        return [number for number in dict.fromkeys(numbers) if number >= 0 and number != own]

    def _run(self, script: str, number: int) -> int:
        with self._client(number) as client:
            return client.eval(script, 2, self.CLAIM_KEY, self.MARKER_KEY, self.owner, self.CLAIM_SECONDS)

    def acquire(self) -> "RedisDatabaseClaim":
        for number in self._candidates():
            try:
                taken = self._run(_TAKE, number)
            except ResponseError:  # a number past the server's `databases`
                continue
            if taken:
                self.number = number
                self._renewer = threading.Thread(target=self._renew_until_released, daemon=True)
                self._renewer.start()
                return self
        raise RuntimeError(
            f"no free Redis database at or below {self.base} on {self.server_url}: each is held by another run "
            "or holds data that is not this suite's (set REDIS_TEST_DB to another base)"
        )

    def _renew_until_released(self) -> None:
        while not self._stop.wait(self.CLAIM_SECONDS / 4):
            try:
                self._run(_RENEW, self.number)
            except RedisError:
                pass  # tried again shortly; the claim outlives a few misses

    def release(self) -> None:
        self._stop.set()
        if self._renewer is not None:
            self._renewer.join(timeout=10)
        if self.number is not None:
            self._run(_RELEASE, self.number)

    def __enter__(self) -> "RedisDatabaseClaim":
        return self.acquire()

    def __exit__(self, *exc_info) -> None:
        self.release()
