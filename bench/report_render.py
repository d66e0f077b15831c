"""Report render time at several database sizes: `python bench/report_render.py --leads 1000 100000`.

For each size: a fresh database built by the migrations (SQLite in a temp dir, or a throwaway PostgreSQL
database when DATABASE_URL points at a server), N demo leads, a signed-in salesperson, then
GET /pipeline/report for "this year" through the WSGI app (no network), without filters and with each of the
board's filters. Per variant, cold: renders with the report's kept figures removed from Redis first (the
first of them is also the first read of that variant's pages), their median, SQL statements and SQL time, and
reports.build alone (the figures without the template); warm: the median and p95 of repeated renders served
from the kept figures. Then each against the targets (issue 20): on PostgreSQL, a cold render under 300 ms at
100,000 leads, and a warm one within 1.5 × the time at 1,000 (a cold one grows with the period: its figures are
exact aggregates over it).
"""

import argparse
import contextlib
import json
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.board_render import bench_redis, signed_in_on_demo_data
from meander_site.accounts.models import User
from meander_site.core.redis_client import shared_redis
from meander_site.extensions import db
from meander_site.leads.models import Lead
from meander_site.reporting import filters, queries

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


COMPUTED = "Tall beregnet kl."


def clear_cache(app) -> int:
    """Remove this run's kept report figures (its own key prefix), so the next render computes them."""
    with app.app_context():
        redis = shared_redis()
        keys = list(redis.scan_iter(match=app.config["REPORT_CACHE_KEY_PREFIX"] + "*"))
        return redis.delete(*keys) if keys else 0


def render(client, query: dict) -> tuple[float, str]:
    started = time.perf_counter()
    response = client.get("/pipeline/report", query_string=query)
    page = response.get_data(as_text=True)
    elapsed = (time.perf_counter() - started) * 1000
    assert response.status_code == 200
    return elapsed, page


@contextlib.contextmanager
def statements_recorded(engine):
    """(count, seconds) of the SQL statements executed inside the block."""
    started, seconds = [], []

    def before_execute(*args):
        started.append(time.perf_counter())

    def after_execute(*args):
        seconds.append(time.perf_counter() - started[-1])

    sa.event.listen(engine, "before_cursor_execute", before_execute)
    sa.event.listen(engine, "after_cursor_execute", after_execute)
    try:
        yield seconds
    finally:
        sa.event.remove(engine, "before_cursor_execute", before_execute)
        sa.event.remove(engine, "after_cursor_execute", after_execute)


def timed(app, client, query: dict, runs: int, cold_runs: int) -> dict:
    """Cold: the cache emptied before each render (the very first of them also the first read of this variant's
    pages since the seeding). Warm: the median of `runs` renders served from the kept figures."""
    cold, cold_sql, cold_queries, build = [], [], [], []
    for _ in range(cold_runs):
        clear_cache(app)
        with statements_recorded(db.engine) as seconds:
            elapsed, page = render(client, query)
        assert COMPUTED not in page, "a cold render must compute its figures"
        cold.append(elapsed)
        cold_sql.append(sum(seconds) * 1000)
        cold_queries.append(len(seconds))
    # The figures alone (SQL and their assembly, no template): what the cache saves.
    with app.test_request_context():
        report_filter = filters.ReportFilter.from_args(query)
        for _ in range(cold_runs):
            started = time.perf_counter()
            queries.build(report_filter)
            build.append((time.perf_counter() - started) * 1000)
        db.session.remove()
    render(client, query)  # keeps the figures
    with statements_recorded(db.engine) as seconds:
        _, page = render(client, query)
    assert COMPUTED in page, "a repeat render must be served from the kept figures"
    warm_queries, warm_sql = len(seconds), sum(seconds) * 1000
    warm = sorted(render(client, query)[0] for _ in range(runs))
    return {
        "cold_first_ms": round(cold[0], 1),
        "cold_ms": round(statistics.median(cold), 1),
        "build_ms": round(statistics.median(build), 1),
        "cold_queries": cold_queries[0],
        "cold_sql_ms": round(statistics.median(cold_sql), 1),
        "warm_ms": round(statistics.median(warm), 1),
        "warm_p95_ms": round(warm[max(0, int(len(warm) * 0.95) - 1)], 1),
        "warm_queries": warm_queries,
        "warm_sql_ms": round(warm_sql, 1),
    }


def wait_until_settled(app, client, timeout: float = 30) -> None:
    """Figures are kept once the newest change is a few seconds old (REPORT_CACHE_SETTLE_SECONDS)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        clear_cache(app)
        render(client, {"period": "year"})
        if COMPUTED in render(client, {"period": "year"})[1]:
            return
        time.sleep(1)
    raise RuntimeError("the report's figures were never kept")


def measure(lead_count: int, runs: int, cold_runs: int, redis_url: str, workdir: Path) -> dict:
    with signed_in_on_demo_data(lead_count, redis_url, workdir) as (app, client, database, seeded_in):
        app.config["REPORT_CACHE_KEY_PREFIX"] = f"bench-report-{uuid.uuid4().hex[:8]}:"
        results = {}
        with app.app_context():
            wait_until_settled(app, client)
            for name, query in variants(app).items():
                results[name] = timed(app, client, query, runs, cold_runs)
            clear_cache(app)
        return {
            "leads": lead_count,
            "database": database,
            "seed_seconds": round(seeded_in, 1),
            "variants": results,
        }


def print_table(results: list[dict]) -> None:
    print(
        f"{'leads':>8} {'database':>10} {'filter':>10} {'cold 1st':>9} {'cold ms':>8} {'build ms':>9} "
        f"{'queries':>8} {'SQL ms':>7} {'warm ms':>8} {'warm p95':>9} {'queries':>8} {'SQL ms':>7}"
    )
    for row in results:
        for name, figures in row["variants"].items():
            print(
                f"{row['leads']:>8} {row['database']:>10} {name:>10} {figures['cold_first_ms']:>9} "
                f"{figures['cold_ms']:>8} {figures['build_ms']:>9} {figures['cold_queries']:>8} "
                f"{figures['cold_sql_ms']:>7} {figures['warm_ms']:>8} {figures['warm_p95_ms']:>9} "
                f"{figures['warm_queries']:>8} {figures['warm_sql_ms']:>7}"
            )
    if len(results) > 1:
        smallest, largest = results[0], results[-1]
        print(
            f"\n{largest['leads']} against {smallest['leads']} leads (targets, issue 20: cold under {TARGET_MS} ms, "
            f"warm within {TARGET_RATIO} ×)"
        )
        for name in largest["variants"]:
            small, large = smallest["variants"][name], largest["variants"][name]
            warm_ratio = large["warm_ms"] / small["warm_ms"]
            cold_ratio = large["cold_ms"] / small["cold_ms"]
            warm_verdict = "ok" if warm_ratio <= TARGET_RATIO else "MISSED"
            cold_verdict = "ok" if large["cold_ms"] < TARGET_MS else "MISSED"
            warm = f"warm {warm_ratio:.2f} × ({warm_verdict}, {large['warm_ms']} ms)"
            cold = f"cold {large['cold_ms']} ms ({cold_verdict}, {cold_ratio:.2f} ×)"
            print(f"{name:>10}: {warm}; {cold}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--leads", type=int, nargs="+", default=[1000, 100000])
    parser.add_argument("--runs", type=int, default=100, help="warm renders per variant (a few ms each)")
    parser.add_argument("--cold-runs", type=int, default=5, help="renders per variant with the cache emptied")
    parser.add_argument("--json", type=Path, help="also write the results here")
    arguments = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="mb-", dir="/tmp") as workdir:
        workdir = Path(workdir)
        with bench_redis(workdir) as redis_url:
            results = [
                measure(count, arguments.runs, arguments.cold_runs, redis_url, workdir) for count in arguments.leads
            ]
    print_table(results)
    if arguments.json:
        arguments.json.parent.mkdir(parents=True, exist_ok=True)
        arguments.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
