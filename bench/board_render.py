"""Board render time at several database sizes: `python bench/board_render.py --leads 1000 20000`.

For each size: a fresh database built by the migrations (SQLite in a temp dir, or a throwaway
PostgreSQL database when DATABASE_URL points at a server), N demo leads (with values, so the column sums are
shown; where an open column would hold 50 or fewer, recent leads are added until it holds 51, so every size
shows the same 300 cards and «Vis flere» in each column), a signed-in salesperson, then GET /pipeline through the
WSGI app (no network). All sizes are open at once and their renders interleaved (one of each size per round, the
order turned each round, at least 50 rounds), so a slow moment of a shared machine hits every size alike: two
runs of one bench used to disagree (1.08× and 1.71×) when each size was timed in its own stretch. Prints the
median and p95 in milliseconds per size and their ratio to the smallest size (the target: at most 1.2× at 20,000
leads against 1,000), the SQL statements per render and the time they took (measured in separate renders), and
how many cards the page shows. `make bench` runs this too.
"""

import argparse
import contextlib
import json
import os
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from meander_site import create_app
from meander_site.accounts import users
from meander_site.config import engine_options, normalize_database_url, redis_url_for_limits
from meander_site.dev.demo_data import create_demo_leads
from meander_site.dev.embedded import EmbeddedRedis
from meander_site.extensions import db
from meander_site.pipeline.board import CARDS_PER_COLUMN

PASSWORD = "benchmark-password-123"  # noqa: S105 (a throwaway account in a throwaway database)


def throwaway_database(workdir: Path):
    configured = os.environ.get("DATABASE_URL", "")
    if not configured.startswith(("postgres://", "postgresql")):
        return f"sqlite:///{workdir / f'bench-{uuid.uuid4().hex[:6]}.db'}", None
    import psycopg

    server = urlsplit(normalize_database_url(configured).replace("+psycopg", ""))
    name = f"meander_bench_{uuid.uuid4().hex[:8]}"
    admin = urlunsplit(server._replace(path="/postgres"))
    with psycopg.connect(admin, autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')

    def drop():
        with psycopg.connect(admin, autocommit=True) as connection:
            connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    return normalize_database_url(urlunsplit(server._replace(path=f"/{name}"))), drop


@contextlib.contextmanager
def signed_in_on_demo_data(lead_count: int, redis_url: str, workdir: Path, open_at_least: int = 0):
    """A throwaway database built by the migrations with N demo leads (and with `open_at_least`, recent ones where an
    open column would hold fewer), and a test client signed in as a salesperson. Yields (app, client, database
    kind, seconds the seeding took); drops the database after."""
    from flask_migrate import upgrade

    database_url, drop = throwaway_database(workdir)
    try:
        app = create_app(
            {
                "SQLALCHEMY_DATABASE_URI": database_url,
                "SQLALCHEMY_ENGINE_OPTIONS": engine_options(database_url),
                "REDIS_URL": redis_url,
                "RATELIMIT_STORAGE_URI": redis_url_for_limits(redis_url),
                "RATELIMIT_KEY_PREFIX": f"bench-{uuid.uuid4().hex[:6]}",
            }
        )
        with app.app_context():
            upgrade()
            started = time.perf_counter()
            create_demo_leads(lead_count, seed=42, open_at_least=open_at_least)
            seeded_in = time.perf_counter() - started
            if db.engine.dialect.name == "postgresql":
                with db.engine.connect() as connection:
                    # VACUUM as autovacuum would after a bulk load: index-only scans need the visibility map,
                    # which a freshly loaded table does not have yet.
                    connection.execution_options(isolation_level="AUTOCOMMIT").execute(sa.text("VACUUM ANALYZE"))
            users.create_user("bench@meander.no", "Bench", PASSWORD)

        client = app.test_client()
        login_page = client.get("/login").get_data(as_text=True)
        token = login_page.split('name="csrf_token" type="hidden" value="')[1].split('"')[0]
        credentials = {"csrf_token": token, "email": "bench@meander.no", "password": PASSWORD}
        assert client.post("/login", data=credentials).status_code == 303
        database = "postgresql" if database_url.startswith("postgresql") else "sqlite"
        yield app, client, database, seeded_in
        with app.app_context():
            db.engine.dispose()
    finally:
        if drop:
            drop()


@contextlib.contextmanager
def bench_redis(workdir: Path):
    """REDIS_URL's Redis, or an embedded one for the run: yields its URL."""
    redis_url = os.environ.get("REDIS_URL")
    if redis_url:
        yield redis_url
        return
    embedded = EmbeddedRedis(workdir / "redis.sock").start()
    try:
        yield embedded.url
    finally:
        embedded.stop()


def measure(lead_count: int, runs: int, redis_url: str, workdir: Path) -> dict:
    with signed_in_on_demo_data(lead_count, redis_url, workdir) as (app, client, database, seeded_in):
        statements = []
        sql_seconds = []

        def before_execute(*args):
            statements.append(time.perf_counter())

        def after_execute(*args):
            sql_seconds.append(time.perf_counter() - statements[-1])

        with app.app_context():
            sa.event.listen(db.engine, "before_cursor_execute", before_execute)
            sa.event.listen(db.engine, "after_cursor_execute", after_execute)
        for _ in range(3):
            assert client.get("/pipeline").status_code == 200
        statements.clear()
        sql_seconds.clear()
        instrumented = 5
        for _ in range(instrumented):
            page = client.get("/pipeline")
            assert page.status_code == 200
        queries_per_render = len(statements) // instrumented
        sql_ms = sum(sql_seconds) / instrumented * 1000
        cards_shown = page.get_data(as_text=True).count('<li class="lead-card')
        with app.app_context():
            sa.event.remove(db.engine, "before_cursor_execute", before_execute)
            sa.event.remove(db.engine, "after_cursor_execute", after_execute)

        timings = []
        for _ in range(runs):
            started = time.perf_counter()
            response = client.get("/pipeline")
            response.get_data()
            timings.append((time.perf_counter() - started) * 1000)
            assert response.status_code == 200
        timings.sort()
        return {
            "leads": lead_count,
            "database": database,
            "median_ms": round(statistics.median(timings), 1),
            "p95_ms": round(timings[int(len(timings) * 0.95) - 1], 1),
            "queries_per_render": queries_per_render,
            "sql_ms": round(sql_ms, 1),
            "cards_shown": cards_shown,
            # The board's cost is its cards: this is what must not grow with the database.
            "ms_per_card": round(statistics.median(timings) / max(cards_shown, 1), 3),
            "page_kb": round(len(response.data) / 1024),
            "seed_seconds": round(seeded_in, 1),
        }


MIN_INTERLEAVED_RUNS = 50
TARGET_RATIO = 1.2


def _percentile(sorted_values: list[float], fraction: float) -> float:
    return sorted_values[max(0, int(len(sorted_values) * fraction + 0.5) - 1)]


def _render_ms(client) -> float:
    started = time.perf_counter()
    response = client.get("/pipeline")
    response.get_data()
    elapsed = (time.perf_counter() - started) * 1000
    assert response.status_code == 200
    return elapsed


def measure_interleaved(lead_counts: list[int], runs: int, redis_url: str, workdir: Path) -> list[dict]:
    """Every size's board open at once; `runs` rounds of one render per size, in a turning order."""
    runs = max(runs, MIN_INTERLEAVED_RUNS)
    with contextlib.ExitStack() as stack:
        # Every column full (one card more than it shows, so «Vis flere» too) at every size: the same cards shown.
        boards = [
            stack.enter_context(signed_in_on_demo_data(count, redis_url, workdir, CARDS_PER_COLUMN + 1)) + (count,)
            for count in lead_counts
        ]
        shape = {}
        for app, client, database, seeded_in, count in boards:
            for _ in range(5):  # warm-up: templates compiled, pages cached, connections open
                _render_ms(client)
            queries, sql_ms = _statements_per_render(app, client)
            page = client.get("/pipeline").get_data(as_text=True)
            cards = page.count('<li class="lead-card')
            shape[count] = (database, seeded_in, cards, round(len(page) / 1024), queries, sql_ms)
        timings: dict[int, list[float]] = {count: [] for count in lead_counts}
        for round_number in range(runs):
            turn = round_number % len(boards)
            for board in boards[turn:] + boards[:turn]:
                timings[board[4]].append(_render_ms(board[1]))
    base = sorted(timings[lead_counts[0]])
    rows = []
    for count in lead_counts:
        values = sorted(timings[count])
        database, seeded_in, cards, page_kb, queries, sql_ms = shape[count]
        rows.append(
            {
                "leads": count,
                "database": database,
                "renders": len(values),
                "median_ms": round(statistics.median(values), 2),
                "p95_ms": round(_percentile(values, 0.95), 2),
                "median_ratio": round(statistics.median(values) / statistics.median(base), 3),
                # The board's cost is its cards: with fewer cards shown at the smaller size (a column under 50),
                # the same cards are compared per card.
                "per_card_ratio": round(
                    (statistics.median(values) / max(cards, 1))
                    / (statistics.median(base) / max(shape[lead_counts[0]][2], 1)),
                    3,
                ),
                "p95_ratio": round(_percentile(values, 0.95) / _percentile(base, 0.95), 3),
                "queries_per_render": queries,
                "sql_ms": sql_ms,
                "cards_shown": cards,
                "ms_per_card": round(statistics.median(values) / max(cards, 1), 3),
                "page_kb": page_kb,
                "seed_seconds": round(seeded_in, 1),
            }
        )
    return rows


def _statements_per_render(app, client, renders: int = 5) -> tuple[int, float]:
    """SQL statements per board render and the milliseconds they took, from separate renders."""
    started, seconds = [], []

    def before_execute(*args):
        started.append(time.perf_counter())

    def after_execute(*args):
        seconds.append(time.perf_counter() - started[-1])

    with app.app_context():
        sa.event.listen(db.engine, "before_cursor_execute", before_execute)
        sa.event.listen(db.engine, "after_cursor_execute", after_execute)
    for _ in range(renders):
        _render_ms(client)
    with app.app_context():
        sa.event.remove(db.engine, "before_cursor_execute", before_execute)
        sa.event.remove(db.engine, "after_cursor_execute", after_execute)
    return len(seconds) // renders, round(sum(seconds) / renders * 1000, 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--leads", type=int, nargs="+", default=[1000, 20000])
    parser.add_argument("--runs", type=int, default=60, help=f"rounds of renders, at least {MIN_INTERLEAVED_RUNS}")
    parser.add_argument("--json", type=Path, help="also write the results here")
    arguments = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="mb-", dir="/tmp") as workdir:
        workdir = Path(workdir)
        with bench_redis(workdir) as redis_url:
            results = measure_interleaved(arguments.leads, arguments.runs, redis_url, workdir)

    print(
        f"{'leads':>8} {'database':>10} {'renders':>8} {'median ms':>10} {'p95 ms':>8} {'× median':>9} {'× p95':>7} "
        f"{'cards':>6} {'page kB':>8}"
    )
    for row in results:
        print(
            f"{row['leads']:>8} {row['database']:>10} {row['renders']:>8} {row['median_ms']:>10} {row['p95_ms']:>8} "
            f"{row['median_ratio']:>9} {row['p95_ratio']:>7} {row['cards_shown']:>6} {row['page_kb']:>8}"
        )
    largest = results[-1]
    same_cards = largest["cards_shown"] == results[0]["cards_shown"]
    compared = largest["median_ratio"] if same_cards else largest["per_card_ratio"]
    verdict = "within" if compared <= TARGET_RATIO else "OVER"
    print(
        f"{largest['leads']} vs {results[0]['leads']} leads: median {largest['median_ratio']}×, "
        f"p95 {largest['p95_ratio']}×, per card shown {largest['per_card_ratio']}× "
        f"({verdict} the target of {TARGET_RATIO}× {'' if same_cards else 'per card, the cards shown differ'})"
    )
    if arguments.json:
        arguments.json.parent.mkdir(parents=True, exist_ok=True)
        arguments.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
