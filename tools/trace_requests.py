"""Which of the site's Python files each of five requests runs: `python tools/trace_requests.py [ROOT]`.

A profiler records every file under ROOT in which a function ran while the request or job was handled (app
start-up excluded). The hooks every request passes (what GET /healthz runs, and for staff what a signed-in
GET of the settings page runs) are counted apart, so what remains is what a reader follows for that request.
It drives HTTP and the RQ queue on the embedded stack, so it also runs on an older checkout (ROOT) to compare
(ARCHITECTURE.md lists today's traces).
"""

import importlib
import os
import pkgutil
import re
import sys
import tempfile
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(sys.argv[1] if len(sys.argv) > 1 else Path(__file__).resolve().parents[1]).resolve()
sys.path.insert(0, str(ROOT))
os.chdir(ROOT)

import sqlalchemy as sa  # noqa: E402
from flask_migrate import upgrade  # noqa: E402
from redis import Redis  # noqa: E402
from rq import Queue, SimpleWorker  # noqa: E402

from meander_site import create_app  # noqa: E402
from meander_site.config import engine_options, redis_url_for_limits  # noqa: E402
from meander_site.extensions import db  # noqa: E402

try:
    from meander_site.dev.embedded import EmbeddedRedis, MailSink
except ImportError:  # a checkout from before the house by area
    from meander_site.embedded import EmbeddedRedis, MailSink

PASSWORD = "riktig-hest-batteri-stift"  # noqa: S105 (a throwaway account in a throwaway database)
CSRF_INPUT = re.compile(r'name="csrf_token"[^>]*value="([^"]+)"')
# A Friday morning in the past, 07:45 in Oslo: the digest is due, and its mail may go at once.
DIGEST_MORNING = datetime(2026, 12, 4, 6, 45, tzinfo=UTC)


class Trace:
    def __init__(self) -> None:
        self.files: set[str] = set()
        self.sql_from: set[str] = set()
        self.on_the_way: set[str] = set()

    def record_sql(self, *_args) -> None:
        """For a statement: the site's file that issued it (the innermost frame of ours on the stack), and every
        file of ours on the stack, from the view or job down to it (what a reader follows to that SQL)."""
        frame, innermost = sys._getframe(1), None
        while frame is not None:
            name = frame.f_code.co_filename
            if name.startswith(str(ROOT / "meander_site")):
                relative = os.path.relpath(name, ROOT)
                innermost = innermost or relative
                self.on_the_way.add(relative)
            frame = frame.f_back
        if innermost:
            self.sql_from.add(innermost)

    def _profile(self, frame, event, _arg):
        # A module's own code runs once, when it is first imported: that is start-up, not the request's work.
        if event == "call" and frame.f_code.co_name != "<module>":
            name = frame.f_code.co_filename
            if name.startswith(str(ROOT / "meander_site")) and name.endswith(".py"):
                self.files.add(os.path.relpath(name, ROOT))

    def run(self, action) -> tuple[set[str], object]:
        self.files = set()
        self.sql_from = set()
        self.on_the_way = set()
        threading.setprofile(self._profile)
        sys.setprofile(self._profile)
        try:
            result = action()
        finally:
            sys.setprofile(None)
            threading.setprofile(None)
        return set(self.files), result


def import_every_module() -> None:
    """Everything imported up front, so a lazily imported module never shows up as part of a request."""
    for module in pkgutil.walk_packages([str(ROOT / "meander_site")], prefix="meander_site."):
        if ".dev." not in module.name:
            importlib.import_module(module.name)


def main() -> None:
    import_every_module()
    scratch = Path(tempfile.mkdtemp(prefix="trace-", dir="/tmp"))
    redis_server = EmbeddedRedis(scratch / "redis.sock").start()
    sink = MailSink(scratch / "mail").start()
    database_url = f"sqlite:///{scratch / 'trace.db'}"
    app = create_app(
        {
            "TESTING": True,
            "SECRET_KEY": "x" * 40,
            "SQLALCHEMY_DATABASE_URI": database_url,
            "SQLALCHEMY_ENGINE_OPTIONS": engine_options(database_url),
            "REDIS_URL": redis_server.url,
            "RATELIMIT_STORAGE_URI": redis_url_for_limits(redis_server.url),
            "MAIL_SERVER": sink.host,
            "MAIL_PORT": sink.port,
            "MAIL_SINK_DIR": None,
            "SITE_URL": "https://demo.meander.test",
        }
    )
    trace = Trace()
    with app.app_context():
        upgrade()
        sa.event.listen(db.engine, "before_cursor_execute", trace.record_sql)
    traces: dict[str, set[str]] = {}
    sql: dict[str, set[str]] = {}
    paths: dict[str, set[str]] = {}

    def record(label: str, action):
        traces[label], result = trace.run(action)
        sql[label] = set(trace.sql_from)
        paths[label] = set(trace.on_the_way)
        return result

    def run_jobs() -> int:
        with app.app_context():
            connection = Redis.from_url(redis_server.url)
            queue = Queue(app.config["RQ_QUEUE_NAME"], connection=connection)
            worker = SimpleWorker([queue], connection=connection)
            ran = 0
            while (job := queue.dequeue_any([queue], timeout=None, connection=connection)) is not None:
                worker.execute_job(job[0], queue)
                ran += 1
            return ran

    prospect = app.test_client()
    token = CSRF_INPUT.search(prospect.get("/demo").get_data(as_text=True)).group(1)
    booking = {
        "first_name": "Kari",
        "last_name": "Nordmann",
        "email": "kari@lhl.no",
        "phone": "912 34 567",
        "organization_name": "LHL",
        "role_title": "Koordinator",
        "csrf_token": token,
    }
    response = record("the booking POST", lambda: prospect.post("/demo", data=booking))
    assert response.status_code == 303, response.status_code
    record("the worker sending a confirmation", run_jobs)

    created = app.test_cli_runner().invoke(
        args=["users", "create", "siri@meander.no", "--name", "Siri Selger"], input=PASSWORD + "\n"
    )
    assert created.exit_code == 0, created.output
    staff = app.test_client()
    token = CSRF_INPUT.search(staff.get("/login").get_data(as_text=True)).group(1)
    signed_in = staff.post(
        "/login?next=/pipeline", data={"csrf_token": token, "email": "siri@meander.no", "password": PASSWORD}
    )
    assert signed_in.status_code == 303
    board = staff.get("/pipeline").get_data(as_text=True)
    htmx_token = re.search(r'"X-CSRFToken": "([^"]+)"', board).group(1)
    lead_id = re.search(r"/pipeline/leads/([0-9a-f-]{36})", board).group(1)
    demo_at = (datetime.now(UTC) + timedelta(days=3)).strftime("%Y-%m-%dT10:00")
    move = {"status": "demo_scheduled", "demo_at": demo_at, "demo_minutes": "30", "demo_location": "https://meet.no/a"}
    response = record(
        "a move to «Demo avtalt»",
        lambda: staff.post(
            f"/pipeline/leads/{lead_id}/status", data=move, headers={"X-CSRFToken": htmx_token, "HX-Request": "true"}
        ),
    )
    assert response.status_code == 200, response.status_code
    run_jobs()  # the invitations the move queued, before the digest is traced
    response = record("the report GET", lambda: staff.get("/pipeline/report"))
    assert response.status_code == 200

    with app.app_context():
        db.session.execute(sa.text("UPDATE leads SET next_step_due_at = :due"), {"due": DIGEST_MORNING - timedelta(7)})
        db.session.commit()

    def digest() -> int:
        with app.app_context():
            try:
                from meander_site.mail.dispatch import dispatch
                from meander_site.pipeline.digest import write_due_digests
            except ImportError:  # before the house by area
                from meander_site.notifications import write_due_digests
                from meander_site.outbox import dispatch
            for message in write_due_digests(now=DIGEST_MORNING):
                dispatch(message)
        return run_jobs()

    record("the morning digest (written, then sent)", digest)
    anonymous_hooks, _ = trace.run(lambda: prospect.get("/healthz"))
    staff_hooks, _ = trace.run(lambda: staff.get("/pipeline/settings"))
    staff_hooks = {name for name in staff_hooks if "views" not in name and "follow_up" not in name}
    hooks = anonymous_hooks - {name for name in anonymous_hooks if "ops/" in name} | staff_hooks
    sink.stop()
    redis_server.stop()

    print(f"Hooks every request passes ({len(hooks)}): {', '.join(sorted(hooks))}\n")
    for label, files in traces.items():
        own = sorted(files - hooks)
        print(f"- **{label}**: {len(own)} files ({len(files)} with the hooks): {', '.join(f'`{f}`' for f in own)}")
        print(f"  - its SQL is issued from {len(sql[label])}: {', '.join(f'`{f}`' for f in sorted(sql[label]))}")
        way = sorted(paths[label] - hooks)
        print(f"  - on the way to its SQL, {len(way)}: {', '.join(f'`{f}`' for f in way)}")


if __name__ == "__main__":
    main()
