"""`make run`: start everything the site needs on one machine, and stop all of it on Ctrl-C.

Starts an embedded Redis (unless REDIS_URL is set) and a mail sink (unless MAIL_SERVER is set),
applies migrations, then runs the web server and the worker until Ctrl-C, SIGTERM, or one of
them dies.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from ..core.processes import die_with_parent
from .embedded import EmbeddedRedis, MailSink

REPO_ROOT = Path(__file__).resolve().parents[2]
INSTANCE_DIR = REPO_ROOT / "instance"
STOP_TIMEOUT_SECONDS = 10.0
WEB_READY_TIMEOUT_SECONDS = 20.0
DEFAULT_MAIL_SINK_PORT = 8025


class _StopRequested(Exception):
    pass


# One request to stop can reach us more than once: a SIGTERM to our process group reaches us and make, our
# parent under `make run`, which forwards its own to us at once (it waits on SIGINT); IDEs and process
# managers signal the group and their child alike. Signals within this long of the first are taken as that
# same request; only a later one (a second Ctrl-C) hurries the stop up by killing what is left.
SAME_REQUEST_SECONDS = 1.0

# When shutdown began (time.monotonic()), for whatever reason; from then on signals never interrupt the
# cleanup, they can only hurry it.
_stop_began: float | None = None
_hurry = threading.Event()


def _begin_stop() -> None:
    global _stop_began
    if _stop_began is None:
        _stop_began = time.monotonic()


def _on_signal(signum: int, frame: object) -> None:
    if _stop_began is None:
        # Marked here, not where the exception lands: an echo arriving meanwhile must not raise again.
        _begin_stop()
        raise _StopRequested(signal.Signals(signum).name)
    if time.monotonic() - _stop_began >= SAME_REQUEST_SECONDS:
        _hurry.set()


def log(message: str) -> None:
    print(f"devrun: {message}", flush=True)


def redact(url: str) -> str:
    """The URL without its password, safe to print."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.netloc.rsplit("@", 1)[1]
    return urlunsplit(parts._replace(netloc=f"{parts.username}:***@{host}"))


class Children:
    """Child processes, each in its own process group so we can signal it together with its children
    (e.g. the Werkzeug reloader) and so a terminal's Ctrl-C reaches only us: we stop them in order."""

    def __init__(self) -> None:
        self.processes: dict[str, subprocess.Popen] = {}

    def spawn(self, name: str, args: list[str], env: dict[str, str]) -> subprocess.Popen:
        process = subprocess.Popen(
            args,
            cwd=REPO_ROOT,
            env=env,
            stdin=subprocess.DEVNULL,  # reading the terminal from a background group would stop them
            process_group=0,
            preexec_fn=die_with_parent,
        )
        self.processes[name] = process
        return process

    def dead(self) -> tuple[str, int] | None:
        for name, process in self.processes.items():
            if process.poll() is not None:
                return name, process.returncode
        return None

    def _signal_groups(self, sig: signal.Signals) -> None:
        for process in self.processes.values():
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(process.pid, sig)

    def stop(self, timeout: float = STOP_TIMEOUT_SECONDS) -> None:
        if not self.processes:
            return
        # SIGTERM the whole groups, even if a leader already exited: its own children may not have.
        self._signal_groups(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while any(p.poll() is None for p in self.processes.values()):
            if _hurry.is_set() or time.monotonic() > deadline:
                names = ", ".join(n for n, p in self.processes.items() if p.poll() is None)
                log(f"killing {names} ({'asked twice' if _hurry.is_set() else 'did not stop in time'})")
                break
            time.sleep(0.05)
        self._signal_groups(signal.SIGKILL)
        for process in self.processes.values():
            process.wait()
        self.processes.clear()


def start_mail_sink(directory: Path = INSTANCE_DIR / "mail") -> MailSink:
    port = int(os.environ.get("MAIL_SINK_PORT") or DEFAULT_MAIL_SINK_PORT)
    try:
        return MailSink(directory, port=port).start()
    except OSError:
        sink = MailSink(directory).start()
        # The web server and the worker get the port actually used (MAIL_PORT), /dev/mail shows it.
        log(
            f"port {port} is taken: the mail sink listens on {sink.host}:{sink.port} instead "
            "(set MAIL_SINK_PORT to choose another port)"
        )
        return sink


def web_is_up(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


def flask_command() -> str:
    """How to run `flask` from the repository with the interpreter we run on (`.venv/bin/flask` under make)."""
    flask = Path(sys.executable).parent / "flask"
    return str(flask.relative_to(REPO_ROOT)) if flask.is_relative_to(REPO_ROOT) else str(flask)


def banner(port: int, env: dict[str, str], redis_server: EmbeddedRedis | None, sink: MailSink | None) -> str:
    base = f"http://127.0.0.1:{port}"
    database = env.get("DATABASE_URL")
    rows = [
        ("Demo booking form", f"{base}/demo"),
        ("Sales board", f"{base}/pipeline"),
        ("Create a user", f"{flask_command()} --app app users create --admin you@meander.no"),
    ]
    if sink is not None:
        rows.append(("Sent mail", f"{base}/dev/mail"))
    rows.append(("Database", redact(database) if database else "SQLite in instance/ (app default)"))
    rows.append(("Redis", ("embedded, " if redis_server else "") + redact(env["REDIS_URL"])))
    if sink is not None:
        rows.append(("Mail", f"local sink on {sink.host}:{sink.port}, saved in {sink.directory}"))
    else:
        rows.append(("Mail", f"{env['MAIL_SERVER']}:{env.get('MAIL_PORT', '(app default port)')}"))
    lines = ["", "Meander sales site is running"]
    lines += [f"  {label + ':':<19} {value}" for label, value in rows]
    lines += ["Ctrl-C stops everything.", ""]
    return "\n".join(lines)


def run(stack: contextlib.ExitStack, children: Children) -> int:
    INSTANCE_DIR.mkdir(exist_ok=True)
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    port = int(env.setdefault("PORT", "5000"))
    python = sys.executable

    redis_server = None
    if not env.get("REDIS_URL"):
        # Its own process group: Ctrl-C must not take Redis away before the worker has shut down.
        redis_server = EmbeddedRedis(INSTANCE_DIR / "redis.sock", own_process_group=True)
        stack.callback(redis_server.stop)
        redis_server.start()
        env["REDIS_URL"] = redis_server.url

    sink = None
    if not env.get("MAIL_SERVER"):
        sink = start_mail_sink()
        stack.callback(sink.stop)
        env.update(
            MAIL_SERVER=sink.host,
            MAIL_PORT=str(sink.port),
            MAIL_USE_TLS="0",
            MAIL_USE_SSL="0",
            MAIL_SINK_DIR=str(sink.directory),
        )

    stack.callback(children.stop)  # registered last, so children stop before Redis and the sink

    log("applying database migrations")
    code = children.spawn("migrations", [python, "-m", "flask", "--app", "app", "db", "upgrade"], env).wait()
    if code != 0:
        log(f"database migration failed (exit code {code}), see the output above")
        return 1
    children.processes.clear()

    web = [
        python,
        "-m",
        "flask",
        "--app",
        "meander_site.dev.app:create_dev_app",
        "run",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
    ]
    children.spawn("web server", web, env)
    children.spawn("worker", [python, "worker.py"], env)

    announced = False
    started = time.monotonic()
    while True:
        dead = children.dead()
        if dead:
            log(f"the {dead[0]} exited unexpectedly (exit code {dead[1]}); stopping everything")
            return 1
        if redis_server is not None and not redis_server.running:
            log(f"the embedded Redis died unexpectedly, see {redis_server.log_path}; stopping everything")
            return 1
        if not announced and (web_is_up(port) or time.monotonic() - started > WEB_READY_TIMEOUT_SECONDS):
            print(banner(port, env, redis_server, sink), flush=True)
            announced = True
        time.sleep(0.2)


def main() -> int:
    signal.signal(signal.SIGINT, _on_signal)
    signal.signal(signal.SIGTERM, _on_signal)
    children = Children()
    stack = contextlib.ExitStack()
    try:
        return run(stack, children)
    except _StopRequested as stop:
        log(f"{stop} received, stopping")
        return 0
    except (OSError, RuntimeError, ValueError) as error:
        log(f"error: {error}")
        return 1
    finally:
        _begin_stop()
        stack.close()
        log("everything stopped")


if __name__ == "__main__":
    sys.exit(main())
