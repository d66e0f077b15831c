"""`make run` on a machine where the mail sink's port is already taken."""

import shutil
import smtplib
import socket
import tempfile
from email.message import EmailMessage
from pathlib import Path

import pytest

from meander_site import devrun


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
