"""The embedded Redis and SMTP sink, exercised for real (no app needed)."""

import shutil
import smtplib
import socket
import subprocess
import tempfile
import time
from email.message import EmailMessage
from pathlib import Path

import pytest
import redis

from meander_site.dev.embedded import EmbeddedRedis, MailSink, read_mailbox

pytestmark = pytest.mark.subprocess  # redis-server, and pgrep to look for it


@pytest.fixture
def short_tmp():
    # Unix socket paths must stay under ~107 bytes, so avoid pytest's long tmp_path.
    path = Path(tempfile.mkdtemp(dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def processes_mentioning(text: str) -> str:
    return subprocess.run(["pgrep", "-af", text], capture_output=True, text=True).stdout


def test_redis_starts_answers_and_leaves_nothing_behind(short_tmp):
    sock = short_tmp / "r.sock"
    with EmbeddedRedis(sock) as server:
        assert server.url == f"unix://{sock}"
        client = redis.Redis.from_url(server.url)
        assert client.ping()
        client.set("k", "v")
        assert client.get("k") == b"v"
        client.close()
        assert str(sock) in processes_mentioning(str(sock))
    assert processes_mentioning(str(sock)) == ""
    assert not sock.exists()


def test_redis_replaces_a_stale_socket_but_not_a_live_server(short_tmp):
    sock = short_tmp / "r.sock"
    stale = socket.socket(socket.AF_UNIX)
    stale.bind(str(sock))
    stale.close()  # the file stays, nobody listens
    with EmbeddedRedis(sock) as server:
        with pytest.raises(RuntimeError, match="already running"):
            EmbeddedRedis(sock).start()
        assert server.running


@pytest.mark.fault
def test_redis_stop_cleans_up_after_a_killed_server(short_tmp):
    sock = short_tmp / "r.sock"
    server = EmbeddedRedis(sock).start()
    server.process.kill()
    server.process.wait()
    assert sock.exists()  # a killed redis can't remove its socket
    server.stop()
    assert not sock.exists()


def make_message(subject: str) -> EmailMessage:
    message = EmailMessage()
    message["From"] = "demo@meander.no"
    message["To"] = "prospect@example.com"
    message["Subject"] = subject
    message.set_content("Hei!")
    return message


def test_mail_sink_stores_what_it_receives(short_tmp):
    with MailSink(short_tmp / "mail") as sink:
        with smtplib.SMTP(sink.host, sink.port, timeout=5) as smtp:
            smtp.send_message(make_message("first"), to_addrs=["prospect@example.com", "sales@meander.no"])
            smtp.send_message(make_message("second"))
        received = sink.wait_for(2)
    assert [m["Subject"] for m in received] == ["first", "second"]
    assert received[0]["X-RcptTo"] == "prospect@example.com, sales@meander.no"
    assert received[0].get_content().strip() == "Hei!"

    stored = read_mailbox(short_tmp / "mail")
    assert [entry["message"]["Subject"] for entry in stored] == ["second", "first"]
    assert all(entry["filename"].endswith(".eml") for entry in stored)
    assert stored[0]["received_at"] >= stored[1]["received_at"]


def test_mail_sink_wait_for_and_clear(short_tmp):
    with MailSink(short_tmp / "mail") as sink:
        started = time.monotonic()
        with pytest.raises(TimeoutError):
            sink.wait_for(1, timeout=0.2)
        assert time.monotonic() - started < 2
        with smtplib.SMTP(sink.host, sink.port, timeout=5) as smtp:
            smtp.send_message(make_message("hello"))
        assert len(sink.wait_for(1)) == 1
        sink.clear()
        assert sink.messages() == []
    assert len(read_mailbox(short_tmp / "mail")) == 1  # clear() only forgets the in-memory copies


def test_mail_sink_can_refuse_mail(short_tmp):
    with MailSink(short_tmp / "mail") as sink:
        sink.fail_with = "451 4.3.0 Try again later"
        with smtplib.SMTP(sink.host, sink.port, timeout=5) as smtp:
            with pytest.raises(smtplib.SMTPDataError) as refused:
                smtp.send_message(make_message("refused"))
        assert refused.value.smtp_code == 451
        assert sink.messages() == []

        sink.fail_with = None
        with smtplib.SMTP(sink.host, sink.port, timeout=5) as smtp:
            smtp.send_message(make_message("accepted"))
        assert [m["Subject"] for m in sink.wait_for(1)] == ["accepted"]
    assert len(read_mailbox(short_tmp / "mail")) == 1


def test_mail_sink_reports_a_busy_port_at_once(short_tmp):
    with MailSink(short_tmp / "a") as first:
        started = time.monotonic()
        with pytest.raises(OSError, match="in use"):
            MailSink(short_tmp / "b", port=first.port).start()
        assert time.monotonic() - started < 1


def test_read_mailbox_of_a_missing_directory_is_empty(short_tmp):
    assert read_mailbox(short_tmp / "nothing-here") == []
