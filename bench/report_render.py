"""Report render time at several database sizes: `python bench/report_render.py --leads 1000 100000`.

For each size: a fresh database built by the migrations (SQLite in a temp dir, or a throwaway PostgreSQL
database when DATABASE_URL points at a server), N demo leads, a signed-in salesperson, then
GET /pipeline/report for "this year" through the WSGI app (no network), without filters and with each of the
board's filters, timed over many runs after a warm-up. Prints the median and p95 in milliseconds and the SQL
statements per render with the time they took. Target (issue 10): on PostgreSQL, under 300 ms at 100,000
leads and within 1.5 × the time at 1,000.
"""

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.board_render import bench_redis, signed_in_on_demo_data
from meander_site.extensions import db
from meander_site.models import Lead, User

TARGET_MS = 300
TARGET_RATIO = 1.5


def variants(app) -> dict[str, dict]:
    """The report for this year without filters, and with each of the board's filters (real values)."""
    with app.app_context():
        campaign = db.session.execute(
            sa.select(Lead.first_utm_campaign)
            .where(Lead.first_utm_campaign.is_not(None))
            .group_by(Lead.first_utm_campaign)
            .order_by(sa.func.count().desc())
            .limit(1)
        ).scalar_one()
        owner = db.session.execute(sa.select(User.id).where(User.email.like("kari.salg@%"))).scalar_one()
    return {
        "no filter": {"period": "year"},
        "source": {"period": "year", "source": "website"},
        "campaign": {"period": "year", "campaign": campaign},
        "size": {"period": "year", "organization_size": "11-50"},
        "owner": {"period": "year", "owner": str(owner)},
        "all four": {
            "period": "year",
            "source": "website",
            "campaign": campaign,
            "organization_size": "11-50",
            "owner": str(owner),
        },
    }


def timed(client, query: dict, runs: int) -> dict:
    statements, sql_seconds = [], []

    def before_execute(*args):
        statements.append(time.perf_counter())

    def after_execute(*args):
        sql_seconds.append(time.perf_counter() - statements[-1])

    for _ in range(3):
        assert client.get("/pipeline/report", query_string=query).status_code == 200
    engine = db.engine
    sa.event.listen(engine, "before_cursor_execute", before_execute)
    sa.event.listen(engine, "after_cursor_execute", after_execute)
    instrumented = 3
    for _ in range(instrumented):
        assert client.get("/pipeline/report", query_string=query).status_code == 200
    sa.event.remove(engine, "before_cursor_execute", before_execute)
    sa.event.remove(engine, "after_cursor_execute", after_execute)
    timings = []
    for _ in range(runs):
        started = time.perf_counter()
        response = client.get("/pipeline/report", query_string=query)
        response.get_data()
        timings.append((time.perf_counter() - started) * 1000)
        assert response.status_code == 200
    timings.sort()
    return {
        "median_ms": round(statistics.median(timings), 1),
        "p95_ms": round(timings[max(0, int(len(timings) * 0.95) - 1)], 1),
        "queries_per_render": len(statements) // instrumented,
        "sql_ms": round(sum(sql_seconds) / instrumented * 1000, 1),
    }


def measure(lead_count: int, runs: int, redis_url: str, workdir: Path) -> dict:
    with signed_in_on_demo_data(lead_count, redis_url, workdir) as (app, client, database, seeded_in):
        results = {}
        with app.app_context():
            for name, query in variants(app).items():
                results[name] = timed(client, query, runs)
        return {
            "leads": lead_count,
            "database": database,
            "seed_seconds": round(seeded_in, 1),
            "variants": results,
        }


def print_table(results: list[dict]) -> None:
    print(f"{'leads':>8} {'database':>10} {'filter':>10} {'median ms':>10} {'p95 ms':>8} {'queries':>8} {'SQL ms':>7}")
    for row in results:
        for name, figures in row["variants"].items():
            print(
                f"{row['leads']:>8} {row['database']:>10} {name:>10} {figures['median_ms']:>10} {figures['p95_ms']:>8} "
                f"{figures['queries_per_render']:>8} {figures['sql_ms']:>7}"
            )
    if len(results) > 1:
        smallest, largest = results[0], results[-1]
        for name in largest["variants"]:
            ratio = largest["variants"][name]["median_ms"] / smallest["variants"][name]["median_ms"]
            verdict = "ok" if ratio <= TARGET_RATIO and largest["variants"][name]["median_ms"] < TARGET_MS else "MISSED"
            print(f"{name:>10}: {largest['leads']} / {smallest['leads']} leads = {ratio:.2f} × ({verdict})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--leads", type=int, nargs="+", default=[1000, 100000])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--json", type=Path, help="also write the results here")
    arguments = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="mb-", dir="/tmp") as workdir:
        workdir = Path(workdir)
        with bench_redis(workdir) as redis_url:
            results = [measure(count, arguments.runs, redis_url, workdir) for count in arguments.leads]
    print_table(results)
    if arguments.json:
        arguments.json.parent.mkdir(parents=True, exist_ok=True)
        arguments.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
