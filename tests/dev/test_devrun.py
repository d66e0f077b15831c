"""`make run`: what it shows, a mail sink port that is already taken, and stopping it as a terminal does."""

import contextlib
import os
import shutil
import signal
import smtplib
import socket
import subprocess
import sys
import tempfile
import threading
from email.message import EmailMessage
from pathlib import Path

import pytest
from helpers.waiting import wait_until

from meander_site.dev import devrun
from meander_site.dev.embedded import find_free_port


@pytest.fixture
def mail_dir():
    path = Path(tempfile.mkdtemp(prefix="mt-devrun-", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def busy_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        yield taken.getsockname()[1]


def test_a_taken_mail_sink_port_is_replaced_by_a_free_one_and_make_run_says_which(
    monkeypatch, capsys, mail_dir, busy_port
):
    monkeypatch.setenv("MAIL_SINK_PORT", str(busy_port))

    sink = devrun.start_mail_sink(mail_dir)
    try:
        said = capsys.readouterr().out
        assert sink.port != busy_port
        assert f"port {busy_port} is taken" in said
        assert f"the mail sink listens on 127.0.0.1:{sink.port} instead" in said
        banner = devrun.banner(5000, {"REDIS_URL": "unix:///tmp/r.sock"}, None, sink)
        assert f"local sink on 127.0.0.1:{sink.port}" in banner
        assert "http://127.0.0.1:5000/dev/mail" in banner

        message = EmailMessage()
        message["From"], message["To"], message["Subject"] = "demo@meander.no", "kari@lhl.no", "Bekreftelse"
        message.set_content("Hei")
        with smtplib.SMTP(sink.host, sink.port, timeout=5) as smtp:
            smtp.send_message(message)
        assert [m["Subject"] for m in sink.wait_for(1)] == ["Bekreftelse"]
    finally:
        sink.stop()


def test_a_free_mail_sink_port_is_used_as_configured_without_a_word(monkeypatch, capsys, mail_dir):
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        free_port = probe.getsockname()[1]
    monkeypatch.setenv("MAIL_SINK_PORT", str(free_port))

    sink = devrun.start_mail_sink(mail_dir)
    try:
        assert sink.port == free_port
        assert "taken" not in capsys.readouterr().out
    finally:
        sink.stop()


def test_the_dev_mail_page_names_the_sink_the_site_sends_to(make_app, smtp_server, mail_dir):
    client = make_app(MAIL_SINK_DIR=str(mail_dir)).test_client()

    page = client.get("/dev/mail/").get_data(as_text=True)

    assert f"<code>{smtp_server.host}:{smtp_server.port}</code>" in page


def test_the_banner_gives_the_booking_form_the_board_and_the_command_that_creates_a_user_to_sign_in_with():
    banner = devrun.banner(5077, {"REDIS_URL": "unix:///tmp/r.sock", "MAIL_SERVER": "smtp.example.net"}, None, None)

    assert "Demo booking form:  http://127.0.0.1:5077/demo\n" in banner
    assert "Sales board:        http://127.0.0.1:5077/pipeline\n" in banner
    create = next(line for line in banner.splitlines() if line.startswith("  Create a user:"))
    command = create.split(":", 1)[1].split()
    assert command[1:] == ["--app", "app", "users", "create", "--admin", "you@meander.no"]
    assert os.access(devrun.REPO_ROOT / command[0], os.X_OK), command[0]  # `.venv/bin/flask` under make
    assert "/dev/mail" not in banner  # no local sink, no mail page


# --- stopping as a terminal does ----------------------------------------------------------------------


@pytest.fixture
def site_copy():
    """The repository without its venv, git and instance/: `make run` there gets a database, a Redis socket and
    a mail folder of its own, never the developer's (whose own `make run` may be running)."""
    parent = Path(tempfile.mkdtemp(prefix="mt-run-", dir="/tmp"))  # short: the Redis socket's path has a limit
    ignore = shutil.ignore_patterns(".git", ".venv", "instance", "node_modules", "__pycache__", ".*_cache", "tests")
    shutil.copytree(devrun.REPO_ROOT, parent / "site", ignore=ignore)
    yield parent / "site"
    shutil.rmtree(parent, ignore_errors=True)


def processes_in_session(session_id: int) -> set[int]:
    """Every process still in the session, whatever its process group: devrun puts each child in its own."""
    found = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if os.getsid(int(entry.name)) == session_id:
                    found.add(int(entry.name))
            except (ProcessLookupError, PermissionError):
                pass
    return found


@pytest.mark.subprocess
@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
@pytest.mark.parametrize("signal_name", ["SIGINT", "SIGTERM"])
def test_one_signal_to_make_runs_process_group_stops_every_child_in_order_without_killing_any(site_copy, signal_name):
    # As a terminal has it: make and devrun in one foreground process group, the signal sent to the group
    # (Ctrl-C's SIGINT, or `kill -TERM -<group>`), and make forwarding the SIGTERM it gets to devrun.
    port, sink_port = find_free_port(), find_free_port()
    unset = {"DATABASE_URL", "REDIS_URL", "MAIL_SERVER", "MAIL_PORT", "MAIL_SINK_DIR", "SITE_URL", "MEANDER_ENV"}
    unset |= {"MAKEFLAGS", "MFLAGS", "MAKELEVEL"}  # when the suite itself runs under `make test`
    env = {name: value for name, value in os.environ.items() if name not in unset}
    env.update(PORT=str(port), MAIL_SINK_PORT=str(sink_port))
    # INSTALLED= : the copy must never reinstall into the venv this suite runs from.
    make = subprocess.Popen(
        ["make", "run", "INSTALLED=", f"VENV_PYTHON={sys.executable}"],
        cwd=site_copy,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    lines: list[str] = []

    def read_output():
        for line in make.stdout:
            lines.append(line)

    def said() -> str:
        return "".join(lines)

    reader = threading.Thread(target=read_output, daemon=True)
    reader.start()
    try:
        wait_until(lambda: "Ctrl-C stops everything." in said(), 120, "make run's banner", said)
        # The banner waits for the web server only; a worker still importing would just die of the signal.
        wait_until(lambda: "Listening on" in said(), 60, "the worker to listen on its queue", said)
        assert f"Sales board:        http://127.0.0.1:{port}/pipeline\n" in said()
        assert "--app app users create --admin you@meander.no\n" in said()
        assert f"Sent mail:          http://127.0.0.1:{port}/dev/mail\n" in said()
        assert f"saved in {site_copy / 'instance' / 'mail'}" in said()
        started = processes_in_session(make.pid)
        assert len(started) >= 5, said()  # make, devrun, web server, worker, Redis (and RQ's scheduler)

        os.killpg(make.pid, getattr(signal, signal_name))
        make.wait(timeout=60)
        reader.join(timeout=10)

        output = said()
        assert f"devrun: {signal_name} received, stopping" in output
        assert "killing" not in output
        assert "meander.worker: worker stopped" in output  # a warm shutdown, not a SIGKILL
        assert "devrun: everything stopped" in output
        assert processes_in_session(make.pid) == set()
    finally:
        for pid in processes_in_session(make.pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        make.wait(timeout=10)
