"""Where a request's CPU goes: `python -m bench.hotspots post|post-slot|get|mail|board [--count N] [--sort tottime]`.

In one process, on a fresh database (SQLite in a temp dir, or a throwaway PostgreSQL database when
DATABASE_URL is set), an embedded Redis and the benchmark's SMTP sink:
- get:       GET /demo through the WSGI app
- post:      POST /demo (a valid booking, each from an address of its own as in bench/load.py) through the WSGI app
- post-slot: the same with one of the free times the form offered, after bench/slot_data.py's hosts, demos and
             calendar busy times (the `slots` phase of bench/run.py)
- mail:      the worker's job (RQ SimpleWorker, burst) sending N confirmations into the sink
- board:     GET /pipeline at --leads demo leads, signed in
Prints CPU ms per operation measured without the profiler (for post and post-slot also the SQL statements and
Redis commands per POST, counted in process and by the Redis server), then cProfile's top functions (--timer cpu:
by CPU time instead of wall time).
Not part of `make bench`; for finding what to optimize once the bench shows a cost.
"""

from __future__ import annotations

import argparse
import cProfile
import logging
import os
import pstats
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import sqlalchemy as sa

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from bench import board_render, slot_data  # noqa: E402
from bench.load import SLOT, TOKEN, booking_form, source_address  # noqa: E402
from bench.roundtrips import RedisCommands  # noqa: E402
from meander_site import create_app  # noqa: E402
from meander_site.accounts import users  # noqa: E402
from meander_site.booking import book_demo  # noqa: E402
from meander_site.config import engine_options, redis_url_for_limits  # noqa: E402
from meander_site.dev.embedded import EmbeddedRedis, find_free_port  # noqa: E402
from meander_site.extensions import db  # noqa: E402
from meander_site.leads import validation  # noqa: E402
from meander_site.mail.dispatch import mail_queue  # noqa: E402


def new_profiler(arguments) -> cProfile.Profile:
    """--timer cpu: CPU time, so waits for PostgreSQL, Redis or SMTP do not count."""
    return cProfile.Profile(time.process_time) if arguments.timer == "cpu" else cProfile.Profile()


def cpu_per_call(action, count: int) -> float:
    started = time.process_time()
    for number in range(count):
        action(number)
    return (time.process_time() - started) / count * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("what", choices=["get", "post", "post-slot", "mail", "board"])
    parser.add_argument("--count", type=int, default=300)
    parser.add_argument("--leads", type=int, default=20000, help="board: demo leads")
    parser.add_argument("--sort", default="tottime", help="pstats sort key, e.g. tottime or cumulative")
    parser.add_argument("--top", type=int, default=35)
    parser.add_argument(
        "--timer", choices=["wall", "cpu"], default="wall", help="cpu: profile this process's CPU time, not waits"
    )
    arguments = parser.parse_args()
    logging.disable(logging.INFO)

    with tempfile.TemporaryDirectory(prefix="mprof-", dir="/tmp") as workdir:
        workdir = Path(workdir)
        if arguments.what == "board":
            with EmbeddedRedis(workdir / "redis.sock") as redis_server:
                profile_board(arguments, redis_server.url, workdir)
            return
        database_url, drop = board_render.throwaway_database(workdir)
        redis_server = EmbeddedRedis(workdir / "redis.sock").start()
        sink_port = find_free_port()
        sink = subprocess.Popen(
            [sys.executable, "-m", "bench.sink", "--port", str(sink_port), "--log", str(workdir / "sink.log")],
            cwd=REPO_ROOT,
            stdout=subprocess.PIPE,
        )
        try:
            sink.stdout.readline()
            app = create_app(
                {
                    "SQLALCHEMY_DATABASE_URI": database_url,
                    "SQLALCHEMY_ENGINE_OPTIONS": engine_options(database_url),
                    "REDIS_URL": redis_server.url,
                    "RATELIMIT_STORAGE_URI": redis_url_for_limits(redis_server.url),
                    "MAIL_SERVER": "127.0.0.1",
                    "MAIL_PORT": sink_port,
                }
            )
            from flask_migrate import upgrade

            with app.app_context():
                upgrade()
                if os.environ.get("BENCH_POOL", "1") != "0":  # the team bookings are assigned to, as in run.py
                    for n in range(3):
                        users.create_user(f"selger{n}@bench.meander.no", f"Selger {n}", f"et-langt-passord-{n}-x9")
            if arguments.what == "post-slot":
                with app.app_context():
                    slot_data.seed()
            profile = {"get": profile_get, "post": profile_post, "post-slot": profile_post, "mail": profile_mail}
            profile[arguments.what](app, arguments, redis_server.url)
            with app.app_context():
                db.engine.dispose()
        finally:
            sink.terminate()
            sink.wait()
            redis_server.stop()
            if drop:
                drop()


def report(profiler: cProfile.Profile, arguments) -> None:
    pstats.Stats(profiler).sort_stats(arguments.sort).print_stats(arguments.top)


def profile_get(app, arguments, redis_url: str) -> None:
    client = app.test_client()

    def view(_number):
        client.get("/demo").get_data()

    cpu_per_call(view, 30)
    print(f"GET /demo: {cpu_per_call(view, arguments.count):.2f} ms CPU each (WSGI, no server)")
    profiler = new_profiler(arguments)
    profiler.runcall(cpu_per_call, view, arguments.count)
    report(profiler, arguments)


class StatementCounter:
    """SQL statements the app sends, by their first word, while `counting` is on (an engine event)."""

    def __init__(self, engine) -> None:
        self.counts: Counter[str] = Counter()
        self.counting = False
        sa.event.listen(engine, "before_cursor_execute", self._count)

    def _count(self, connection, cursor, statement, parameters, context, executemany) -> None:
        if self.counting:
            self.counts[statement.split(None, 1)[0].upper()] += 1


def profile_post(app, arguments, redis_url: str) -> None:
    """POST /demo, each booking from an address of its own (the 5-per-hour limit as in production); with
    post-slot, one of the free times its form offered (spread as bench/load.py spreads them)."""
    profiler = new_profiler(arguments)
    run_tag = f"{time.time_ns()}"
    with_slot = arguments.what == "post-slot"
    with app.app_context():
        statements = StatementCounter(db.engine)
    commands = RedisCommands(redis_url)
    outcomes: Counter[str] = Counter()

    redis_counts: Counter[str] = Counter()

    def booking(number, profile=False, count=False):
        client = app.test_client()
        address = {"REMOTE_ADDR": source_address(number + (arguments.count if profile else 0) + 100)}
        body = client.get("/demo", environ_base=address).get_data(as_text=True)
        data = {**booking_form(f"profile-{run_tag}-{number}-{profile}@bench.meander.no", number)}
        data["csrf_token"] = TOKEN.search(body).group(1)
        if with_slot:
            slots = SLOT.findall(body)
            assert slots, "the form offered no free times"
            data["slot"] = slots[(number * 7) % len(slots)]
        if count:
            redis_before, statements.counting = commands.read(), True
        started = time.process_time()
        if profile:
            profiler.enable()
        response = client.post("/demo", data=data, environ_base=address)
        if profile:
            profiler.disable()
        elapsed = time.process_time() - started
        if count:
            statements.counting = False
            redis_counts.update(commands.read() - redis_before - Counter({"info": 1}))
        assert response.status_code == 303, response.status_code
        outcomes["taken" if "tatt=1" in response.headers["Location"] else "booked"] += 1
        return elapsed

    if with_slot:
        # The hosts have about 220 free demo times in all (bench/slot_data.py: 10 hosts, 4 a day, 2 booked): the
        # warm-up, the timed, the counted and the profiled bookings share them.
        arguments.count = min(arguments.count, 60)
    for number in range(10 if with_slot else 30):
        booking(-1000 - number)
    outcomes.clear()
    seconds = [booking(number) for number in range(arguments.count)]
    for number in range(arguments.count):
        booking(number + 10 * arguments.count, count=True)
    what = "POST /demo with a free time" if with_slot else "POST /demo"
    print(f"{what}: {sum(seconds) / len(seconds) * 1000:.2f} ms CPU each (WSGI, no server); {dict(outcomes)}")
    print(
        f"  SQL statements per POST: {statements.counts.total() / arguments.count:.2f} "
        + str({word: round(count / arguments.count, 2) for word, count in statements.counts.most_common()})
    )
    print(
        f"  Redis commands per POST (INFO commandstats): {redis_counts.total() / arguments.count:.2f} "
        + str({name: round(count / arguments.count, 2) for name, count in redis_counts.most_common()})
    )
    for number in range(arguments.count):
        booking(number, profile=True)
    report(profiler, arguments)


def profile_mail(app, arguments, redis_url: str) -> None:
    from rq import SimpleWorker

    def enqueue(count: int, tag: str) -> None:
        for number in range(count):
            details = validation.validate_contact_details(
                {**booking_form(f"mail-{tag}-{number}@bench.meander.no", number), "phone": "912 34 567"}
            )
            book_demo.book_demo(details, ip_address="127.0.0.1")  # writes the confirmation and enqueues it

    with app.app_context():
        queue = mail_queue()
        worker = SimpleWorker([queue], connection=queue.connection)
        enqueue(arguments.count, "plain")
        started = time.process_time()
        worker.work(burst=True, logging_level="WARNING")
        print(
            f"confirmation job: {(time.process_time() - started) / arguments.count * 1000:.2f} ms CPU each "
            "(worker process only; RQ SimpleWorker, SMTP into the sink)"
        )
        enqueue(arguments.count, "profiled")
        worker = SimpleWorker([queue], connection=queue.connection)
        profiler = new_profiler(arguments)
        profiler.runcall(worker.work, burst=True, logging_level="WARNING")
    report(profiler, arguments)


def profile_board(arguments, redis_url: str, workdir: Path) -> None:
    from flask.testing import FlaskClient

    profiler = new_profiler(arguments)
    original_get = FlaskClient.get

    def get(self, *args, **kwargs):
        if not (args and args[0] == "/pipeline"):
            return original_get(self, *args, **kwargs)
        profiler.enable()
        try:
            response = original_get(self, *args, **kwargs)
            response.get_data()
        finally:
            profiler.disable()
        return response

    FlaskClient.get = get
    try:
        row = board_render.measure(arguments.leads, 20, redis_url, workdir)
    finally:
        FlaskClient.get = original_get
    print(f"GET /pipeline at {arguments.leads} leads (times include the profiler): {row}")
    report(profiler, arguments)


if __name__ == "__main__":
    main()
