"""Where every rate limit counts (the booking limit, the login throttle, any limit added later): Redis, and while
Redis does not answer, the database every web process shares. A limit that can reach neither refuses.

Flask-Limiter asks its storage (a `limits` Storage, chosen by the scheme of RATELIMIT_STORAGE_URI) for each
limit's moving window. `RedisWithDatabaseFallback` is that storage: Redis's own, until a call to Redis fails;
then the same moving window, counted in two tables. A process that found Redis down goes straight to the
database for REDIS_RETRY_SECONDS before it tries Redis again.

In the database a limit's key has a row (`rate_limit_keys`) and every hit a row (`rate_limit_hits`); the window
is counted in SQL. Taking a hit is one transaction whose first statement writes the key's row: PostgreSQL
then holds that row's lock (SQLite its one write lock) until the commit, so two processes counting one key
queue there, and in READ COMMITTED the count that follows sees every hit committed before the lock was
granted. Two processes never both take the last place. Keys are stored as SHA-256 digests: a limit's key
holds a client's address or the email typed at the login.

What it gives up: a window counted in Redis does not carry over to the database when Redis goes away, nor
back when it returns; each switch starts the other store's count from what that store holds.
"""

import hashlib
import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime

import sqlalchemy as sa
from limits.storage import RedisStorage
from redis.exceptions import RedisError
from sqlalchemy.dialects import postgresql, sqlite
from werkzeug.exceptions import ServiceUnavailable

from .columns import UTCDateTime
from .schema import metadata

log = logging.getLogger(__name__)

SCHEME_PREFIX = "meander+"
# After Redis failed, this process counts in the database for this long before it asks Redis again.
REDIS_RETRY_SECONDS = 1.0
# How often one process deletes hits and keys whose windows have passed.
PRUNE_EVERY_SECONDS = 60.0

rate_limit_keys = sa.Table(
    "rate_limit_keys",
    metadata,
    sa.Column("key", sa.String(64), primary_key=True),
    # The end of the key's latest window: after it, the key and its hits can go.
    sa.Column("expires_at", UTCDateTime, nullable=False),
    sa.Index("idx_rate_limit_key_expires_at", "expires_at"),
)

rate_limit_hits = sa.Table(
    "rate_limit_hits",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True),
    sa.Column("key", sa.String(64), nullable=False),
    sa.Column("at", UTCDateTime, nullable=False),
    sa.Column("expires_at", UTCDateTime, nullable=False),
    sa.Index("idx_rate_limit_hit_key_at", "key", "at"),
    sa.Index("idx_rate_limit_hit_expires_at", "expires_at"),
)


class RateLimitsUnavailable(ServiceUnavailable):
    """Neither Redis nor the database answered: the request is refused rather than let through uncounted."""


def with_database_fallback(storage_uri: str) -> str:
    """The limiter's storage URI for this storage: a Redis URI gets the database behind it; others stay."""
    if storage_uri.startswith(("redis://", "rediss://", "redis+unix://")):
        return SCHEME_PREFIX + storage_uri
    return storage_uri


def digest(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def _instant(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


class DatabaseWindows:
    """Moving windows counted in the database (see the module's docstring for why two processes never both pass)."""

    def __init__(self, engine: Callable[[], sa.Engine]):
        self.engine = engine
        self._pruned_at = 0.0

    def _lock_key(self, connection, key: str, expires_at: datetime) -> None:
        insert = {"postgresql": postgresql.insert, "sqlite": sqlite.insert}[connection.dialect.name]
        statement = insert(rate_limit_keys).values(key=key, expires_at=expires_at)
        connection.execute(
            statement.on_conflict_do_update(
                index_elements=[rate_limit_keys.c.key], set_={"expires_at": statement.excluded.expires_at}
            )
        )

    @staticmethod
    def _window(connection, key: str, since: datetime) -> tuple[int, datetime | None]:
        hits = rate_limit_hits.c
        count, oldest = connection.execute(
            sa.select(sa.func.count(), sa.func.min(hits.at)).where(hits.key == key, hits.at > since)
        ).one()
        return count, oldest

    def acquire(self, key: str, limit: int, expiry: int, amount: int) -> bool:
        now = time.time()
        at, since = _instant(now), _instant(now - expiry)
        hashed = digest(key)
        with self.engine().begin() as connection:
            self._lock_key(connection, hashed, _instant(now + expiry))
            count, _ = self._window(connection, hashed, since)
            if count + amount > limit:
                return False
            connection.execute(
                sa.insert(rate_limit_hits),
                [{"key": hashed, "at": at, "expires_at": _instant(now + expiry)} for _ in range(amount)],
            )
        self._prune_now_and_then(now)
        return True

    def window(self, key: str, expiry: int) -> tuple[float, int]:
        now = time.time()
        with self.engine().connect() as connection:
            count, oldest = self._window(connection, digest(key), _instant(now - expiry))
        return (oldest.timestamp() if oldest is not None else now), count

    def clear(self, key: str) -> None:
        hashed = digest(key)
        with self.engine().begin() as connection:
            connection.execute(sa.delete(rate_limit_hits).where(rate_limit_hits.c.key == hashed))
            connection.execute(sa.delete(rate_limit_keys).where(rate_limit_keys.c.key == hashed))

    def reset(self) -> int:
        with self.engine().begin() as connection:
            connection.execute(sa.delete(rate_limit_hits))
            return connection.execute(sa.delete(rate_limit_keys)).rowcount

    def check(self) -> bool:
        with self.engine().connect() as connection:
            connection.execute(sa.select(1))
        return True

    def _prune_now_and_then(self, now: float) -> None:
        """Hits and keys whose windows have passed go, in the order a count takes its locks (the key's row, then
        hits), so a prune and a count never wait for each other in a circle. A count only ever adds hits."""
        if now - self._pruned_at < PRUNE_EVERY_SECONDS:
            return
        self._pruned_at = now
        with self.engine().begin() as connection:
            passed = _instant(now)
            connection.execute(sa.delete(rate_limit_keys).where(rate_limit_keys.c.expires_at < passed))
            connection.execute(sa.delete(rate_limit_hits).where(rate_limit_hits.c.expires_at < passed))


class RedisWithDatabaseFallback(RedisStorage):
    """Redis's moving windows (RATELIMIT_STRATEGY = "moving-window"), with the database behind them.

    `database` (a storage option) returns the engine to count in: the app's, read when a count needs it.
    Other strategies' calls go to Redis alone, and refuse when it fails.
    """

    STORAGE_SCHEME = [SCHEME_PREFIX + scheme for scheme in ("redis", "rediss", "redis+unix")]

    def __init__(self, uri: str, database: Callable[[], sa.Engine] | None = None, **options):
        super().__init__(uri.removeprefix(SCHEME_PREFIX), **options)
        if database is None:
            raise ValueError("the rate limits' database fallback needs the `database` storage option")
        self.database = DatabaseWindows(database)
        self._redis_retry_at = 0.0

    def _from_redis_or_database(self, from_redis: Callable, from_database: Callable):
        if time.monotonic() >= self._redis_retry_at:
            try:
                return from_redis()
            except RedisError as error:
                self._redis_retry_at = time.monotonic() + REDIS_RETRY_SECONDS
                log.warning(
                    "rate limits counted in the database: redis failed",
                    extra={"event": "rate_limits_in_database", "error": type(error).__name__},
                )
        try:
            return from_database()
        except sa.exc.SQLAlchemyError as error:
            log.error(
                "rate limits unavailable: neither redis nor the database answered",
                extra={"event": "rate_limits_unavailable", "error": type(error).__name__},
            )
            raise RateLimitsUnavailable() from error

    def acquire_entry(self, key: str, limit: int, expiry: int, amount: int = 1) -> bool:
        return self._from_redis_or_database(
            lambda: super(RedisWithDatabaseFallback, self).acquire_entry(key, limit, expiry, amount),
            lambda: self.database.acquire(key, limit, expiry, amount),
        )

    def get_moving_window(self, key: str, limit: int, expiry: int) -> tuple[float, int]:
        return self._from_redis_or_database(
            lambda: super(RedisWithDatabaseFallback, self).get_moving_window(key, limit, expiry),
            lambda: self.database.window(key, expiry),
        )

    def clear(self, key: str) -> None:
        self.database.clear(key)
        super().clear(key)

    def reset(self) -> int | None:
        self.database.reset()
        return super().reset()

    def check(self) -> bool:
        if super().check():
            return True
        try:
            return self.database.check()
        except sa.exc.SQLAlchemyError:
            return False

    # The strategies this site does not use: Redis alone, and no count is no pass.
    def _redis_only(self, call: Callable):
        try:
            return call()
        except RedisError as error:
            raise RateLimitsUnavailable() from error

    def incr(self, key: str, expiry: int, amount: int = 1) -> int:
        return self._redis_only(lambda: super(RedisWithDatabaseFallback, self).incr(key, expiry, amount))

    def get(self, key: str) -> int:
        return self._redis_only(lambda: super(RedisWithDatabaseFallback, self).get(key))

    def get_expiry(self, key: str) -> float:
        return self._redis_only(lambda: super(RedisWithDatabaseFallback, self).get_expiry(key))

    def acquire_sliding_window_entry(self, key: str, limit: int, expiry: int, amount: int = 1) -> bool:
        return self._redis_only(
            lambda: super(RedisWithDatabaseFallback, self).acquire_sliding_window_entry(key, limit, expiry, amount)
        )

    def get_sliding_window(self, key: str, expiry: int) -> tuple[int, float, int, float]:
        return self._redis_only(lambda: super(RedisWithDatabaseFallback, self).get_sliding_window(key, expiry))
