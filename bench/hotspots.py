"""Where a request's CPU goes: `python -m bench.hotspots post|get|mail|board [--count N] [--sort tottime]`.

In one process, on a fresh database (SQLite in a temp dir, or a throwaway PostgreSQL database when
DATABASE_URL is set), an embedded Redis and the benchmark's SMTP sink:
- get:   GET /demo through the WSGI app
- post:  POST /demo (a valid booking, rate limit lifted) through the WSGI app
- mail:  the worker's job (RQ SimpleWorker, burst) sending N confirmations into the sink
- board: GET /pipeline at --leads demo leads, signed in
Prints CPU ms per operation measured without the profiler, then cProfile's top functions.
Not part of `make bench`; for finding what to optimize once the bench shows a cost.
"""

from __future__ import annotations

import argparse
import cProfile
import logging
import pstats
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from bench import board_render  # noqa: E402
from bench.load import TOKEN, booking_form  # noqa: E402
from meander_site import create_app  # noqa: E402
from meander_site.config import engine_options, redis_url_for_limits  # noqa: E402
from meander_site.embedded import EmbeddedRedis, find_free_port  # noqa: E402


def cpu_per_call(action, count: int) -> float:
    started = time.process_time()
    for number in range(count):
        action(number)
    return (time.process_time() - started) / count * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("what", choices=["get", "post", "mail", "board"])
    parser.add_argument("--count", type=int, default=300)
    parser.add_argument("--leads", type=int, default=20000, help="board: demo leads")
    parser.add_argument("--sort", default="tottime", help="pstats sort key, e.g. tottime or cumulative")
    parser.add_argument("--top", type=int, default=35)
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
                    "BOOKING_RATE_LIMIT": "1000000 per hour",
                    "MAIL_SERVER": "127.0.0.1",
                    "MAIL_PORT": sink_port,
                }
            )
            from flask_migrate import upgrade

            with app.app_context():
                upgrade()
            {"get": profile_get, "post": profile_post, "mail": profile_mail}[arguments.what](app, arguments)
            with app.app_context():
                from meander_site.extensions import db

                db.engine.dispose()
        finally:
            sink.terminate()
            sink.wait()
            redis_server.stop()
            if drop:
                drop()


def report(profiler: cProfile.Profile, arguments) -> None:
    pstats.Stats(profiler).sort_stats(arguments.sort).print_stats(arguments.top)


def profile_get(app, arguments) -> None:
    client = app.test_client()

    def view(_number):
        client.get("/demo").get_data()

    cpu_per_call(view, 30)
    print(f"GET /demo: {cpu_per_call(view, arguments.count):.2f} ms CPU each (WSGI, no server)")
    profiler = cProfile.Profile()
    profiler.runcall(cpu_per_call, view, arguments.count)
    report(profiler, arguments)


def profile_post(app, arguments) -> None:
    profiler = cProfile.Profile()
    run_tag = f"{time.time_ns()}"

    def booking(number, profile=False):
        client = app.test_client()
        token = TOKEN.search(client.get("/demo").get_data(as_text=True)).group(1)
        data = {**booking_form(f"profile-{run_tag}-{number}-{profile}@bench.meander.no", number), "csrf_token": token}
        started = time.process_time()
        if profile:
            profiler.enable()
        response = client.post("/demo", data=data)
        if profile:
            profiler.disable()
        assert response.status_code == 303, response.status_code
        return time.process_time() - started

    for number in range(30):
        booking(-1 - number)
    seconds = [booking(number) for number in range(arguments.count)]
    print(f"POST /demo: {sum(seconds) / len(seconds) * 1000:.2f} ms CPU each (WSGI, no server)")
    for number in range(arguments.count):
        booking(number, profile=True)
    report(profiler, arguments)


def profile_mail(app, arguments) -> None:
    from rq import SimpleWorker

    from meander_site import leads
    from meander_site.outbox import mail_queue

    def enqueue(count: int, tag: str) -> None:
        for number in range(count):
            details = leads.validate_contact_details(
                {**booking_form(f"mail-{tag}-{number}@bench.meander.no", number), "phone": "912 34 567"}
            )
            leads.book_demo(details, ip_address="127.0.0.1")  # writes the confirmation and enqueues it

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
        profiler = cProfile.Profile()
        profiler.runcall(worker.work, burst=True, logging_level="WARNING")
    report(profiler, arguments)


def profile_board(arguments, redis_url: str, workdir: Path) -> None:
    from flask.testing import FlaskClient

    profiler = cProfile.Profile()
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
