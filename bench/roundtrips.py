"""Round trips counted on the server side: Redis commands (`INFO commandstats`) and SQL statements (PostgreSQL's
statement log, `log_statement = 'all'` set on the throwaway database only).

Both are cumulative counters read before and after a window; `per_unit` turns two readings into counts per
booking (or per GET), in total and by kind: the Redis command name, or the first word of the SQL statement.
The bench runs its own Redis server and its own database, so nobody else's traffic lands in these counts.
"""

from __future__ import annotations

import glob
import os
import re
from collections import Counter
from pathlib import Path

# log_line_prefix must hold %d (the database); with the default Debian prefix "%m [%p] %q%u@%d " a statement
# reads `… [pid] user@db LOG:  statement: BEGIN` or `… LOG:  execute <unnamed>: SELECT …` (psycopg 3's
# extended protocol; a prepared statement shows its name instead of <unnamed>).
_STATEMENT = re.compile(r"@(?P<db>\S+) LOG:  (?:statement|execute [^:]*): (?P<sql>.*)")


class RedisCommands:
    """Cumulative calls per command from INFO commandstats, on a connection of its own."""

    def __init__(self, redis_url: str) -> None:
        from redis import Redis

        self.client = Redis.from_url(redis_url, socket_timeout=5)

    def read(self) -> Counter[str]:
        stats = self.client.info("commandstats")
        return Counter({name.removeprefix("cmdstat_"): int(value["calls"]) for name, value in stats.items()})


class StatementLog:
    """Statements of one database in PostgreSQL's server log, read by byte offset."""

    def __init__(self, path: Path, database: str) -> None:
        self.path = path
        self.database = database

    @classmethod
    def enable(cls, admin, database: str) -> StatementLog:
        """Turns the statement log on for `database` (new sessions) and finds the file the server writes.

        Raises RuntimeError when the log cannot be read here (no %d in the prefix, a file we cannot open).
        """
        prefix = admin.execute("SHOW log_line_prefix").fetchone()[0]
        if "%d" not in prefix:
            raise RuntimeError(f"log_line_prefix {prefix!r} has no %d: statements cannot be told apart by database")
        path = cls._find_log(admin)
        # Parameters stay out of the shared server log; the statements are all we count.
        admin.execute(f"ALTER DATABASE \"{database}\" SET log_statement = 'all'")
        admin.execute(f'ALTER DATABASE "{database}" SET log_parameter_max_length = 0')
        return cls(path, database)

    @staticmethod
    def _find_log(admin) -> Path:
        configured = os.environ.get("BENCH_PG_LOG", "").strip()
        if configured:
            return Path(configured)
        current = admin.execute("SELECT pg_current_logfile()").fetchone()[0]
        if current:
            data = admin.execute("SHOW data_directory").fetchone()[0]
            return Path(data) / current if not current.startswith("/") else Path(current)
        # Without the logging collector a backend writes to the stderr it inherited from the postmaster.
        backend = admin.execute("SELECT pg_backend_pid()").fetchone()[0]
        try:
            target = os.readlink(f"/proc/{backend}/fd/2")
            if target.startswith("/"):
                return Path(target)
        except OSError:
            pass
        candidates = sorted(glob.glob("/var/log/postgresql/*.log"), key=os.path.getmtime)
        if not candidates:
            raise RuntimeError("PostgreSQL's log file was not found; set BENCH_PG_LOG")
        return Path(candidates[-1])

    def read(self) -> int:
        return self.path.stat().st_size

    def statements(self, start: int, end: int) -> Counter[str]:
        with open(self.path, "rb") as handle:
            handle.seek(start)
            chunk = handle.read(max(end - start, 0)).decode("utf-8", "replace")
        kinds: Counter[str] = Counter()
        for line in chunk.splitlines():
            match = _STATEMENT.search(line)
            if match and match["db"] == self.database:
                sql = match["sql"].strip()
                # SQLAlchemy's pool pre-ping sends an empty statement.
                kinds["; (pre-ping)" if sql == ";" else (sql.split(None, 1) or ["?"])[0].upper().rstrip(";")] += 1
        return kinds


class RoundTrips:
    """Readings of both counters together; `delta` gives the counts in between, by kind."""

    def __init__(self, redis: RedisCommands | None, sql: StatementLog | None) -> None:
        self.redis = redis
        self.sql = sql

    def read(self) -> dict:
        return {
            "redis": self.redis.read() if self.redis else None,
            "sql": self.sql.read() if self.sql else None,
        }

    def delta(self, before: dict, after: dict) -> dict:
        result: dict = {"redis": None, "sql": None}
        if self.redis:
            calls = Counter(after["redis"])
            calls.subtract(before["redis"])
            calls["info"] -= 1  # the first reading's own INFO, counted in the second
            result["redis"] = +calls
        if self.sql:
            result["sql"] = self.sql.statements(before["sql"], after["sql"])
        return result


def per_unit(counts: Counter[str] | None, units: int, idle: Counter[str] | None = None) -> dict | None:
    """Counts per unit (booking, GET), in total and by kind, largest first; `idle` (counts over the same wall
    time when nothing ran) is taken off each kind first."""
    if counts is None or not units:
        return None
    net = Counter(counts)
    if idle:
        net.subtract(idle)
    net = Counter({kind: value for kind, value in net.items() if value > 0})
    return {
        "per_unit": round(sum(net.values()) / units, 2),
        "raw_per_unit": round(sum(counts.values()) / units, 2),
        "by_kind": {kind: round(value / units, 2) for kind, value in net.most_common() if value / units >= 0.005},
    }


def scaled(rates: Counter[str] | None, seconds: float) -> Counter[str] | None:
    return None if rates is None else Counter({kind: rate * seconds for kind, rate in rates.items()})
