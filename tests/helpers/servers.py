"""Servers a test starts: the app behind a real HTTP server in a thread, and the Procfile's processes."""

import contextlib
import os
import shlex
import signal
import subprocess
import threading

from werkzeug.serving import WSGIRequestHandler, make_server

from helpers.paths import PROJECT_ROOT


class QuietHandler(WSGIRequestHandler):
    def log_request(self, *args, **kwargs):  # no access log lines in the test output
        pass


@contextlib.contextmanager
def serving(app):
    """`app` behind a real, threaded HTTP server on a free port; yields its base URL."""
    server = make_server("127.0.0.1", 0, app, threaded=True, request_handler=QuietHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(timeout=5)


def procfile() -> dict[str, list[str]]:
    lines = (PROJECT_ROOT / "Procfile").read_text().splitlines()
    return {name: shlex.split(command) for name, _, command in (line.partition(": ") for line in lines if line)}


def procfile_env(**overrides) -> dict:
    env = {key: value for key, value in os.environ.items() if key not in {"WEB_CONCURRENCY", "GUNICORN_THREADS"}}
    env.update(PYTHONUNBUFFERED="1", SITE_URL="https://demo.meander.test", **overrides)
    return env


def stop(process: subprocess.Popen, timeout: float = 30) -> int:
    process.send_signal(signal.SIGTERM)
    try:
        return process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        raise
