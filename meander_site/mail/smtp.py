"""Sending mail over SMTP: Flask-Mail's connection with a timeout and verified TLS, the session the worker
keeps open between jobs, and the message's bytes. Knows nothing of what the mails say or when they are due
(mail/outbox.py, worker/jobs.py)."""

import base64
import functools
import secrets
import smtplib
import ssl
import threading
import time
from email.header import Header
from email.utils import formatdate

from flask import current_app
from flask_mail import BadHeaderError, Connection, Message
from flask_mail import sanitize_address as encode_address

CRLF = "\r\n"


@functools.cache
def tls_context() -> ssl.SSLContext:
    # Built once per process: loading the CA bundle costs more CPU than sending a mail.
    return ssl.create_default_context()


class SMTPConnection(Connection):
    """Flask-Mail's connection with what it lacks: a timeout, and verified certificates for TLS."""

    def configure_host(self):
        settings = self.mail
        timeout = current_app.config["MAIL_TIMEOUT_SECONDS"]
        if settings.use_ssl:
            host = smtplib.SMTP_SSL(settings.server, settings.port, timeout=timeout, context=tls_context())
        else:
            host = smtplib.SMTP(settings.server, settings.port, timeout=timeout)
        if settings.use_tls:
            host.starttls(context=tls_context())
        if settings.username and settings.password:
            host.login(settings.username, settings.password)
        return host

    def __exit__(self, exc_type, exc_value, traceback):
        host, self.host = self.host, None
        if host is None:
            return
        try:
            host.quit()
        except (smtplib.SMTPException, OSError):
            # The server has the mail once DATA was accepted: a failed goodbye must not make it a failed
            # send (and be sent again), nor hide the real error of a send that did fail.
            host.close()


class SMTPSession(threading.local):
    """The worker's SMTP session, kept open between jobs: connecting (and a TLS handshake) for every
    mail costs more than the mail. One per thread: two jobs running at once never share a conversation.
    A session the server dropped while idle is replaced once; any other failure closes it, and the job's
    failure path takes over."""

    IDLE_SECONDS = 20  # servers commonly drop idle sessions after 30–300 s

    def __init__(self) -> None:
        self.connection: SMTPConnection | None = None
        self.settings: tuple | None = None
        self.last_used = 0.0

    def send(self, message: Message) -> None:
        settings = current_app.extensions["mail"]
        key = (settings.server, settings.port, settings.username, settings.use_tls, settings.use_ssl)
        if self.connection is not None and (key != self.settings or self._idle_too_long()):
            self.close()
        may_reconnect = self.connection is not None
        data = message_bytes(message)
        while True:
            if self.connection is None:
                self._open(settings, key)
            try:
                self.connection.host.sendmail(
                    sanitize_address(message.sender), [sanitize_address(to) for to in message.send_to], data
                )
            except smtplib.SMTPServerDisconnected:
                self.close()
                if not may_reconnect:
                    raise
                may_reconnect = False  # the server hung up while we idled; nothing was sent yet
                continue
            except BaseException:
                self.close()
                raise
            self.last_used = time.monotonic()
            return

    def _open(self, settings, key) -> None:
        connection = SMTPConnection(settings)
        connection.host = connection.configure_host()
        self.connection, self.settings = connection, key

    def _idle_too_long(self) -> bool:
        return time.monotonic() - self.last_used > self.IDLE_SECONDS

    def close(self) -> None:
        connection, self.connection = self.connection, None
        if connection is not None:
            connection.__exit__(None, None, None)


def message_bytes(message: Message) -> bytes:
    """The RFC 5322 message Flask-Mail would send (CRLF line ends, RFC 2047 encoded words, the text part and
    its alternatives, attachments), written directly. Flask-Mail serializes under `policy.SMTP`, which parses
    and re-folds every header it has just built; that cost more than everything else a mail takes.

    Alternatives may carry Content-Type parameters (`message.alt_parameters`, e.g. a calendar's method)."""
    if message.has_bad_headers():
        raise BadHeaderError  # a CR or LF in a header would let its text add headers of its own
    alt_parameters = getattr(message, "alt_parameters", {})
    body = _text_part("plain", message.body or "")
    if message.alts:
        alternatives = [
            _text_part(subtype, text, alt_parameters.get(subtype)) for subtype, text in message.alts.items()
        ]
        body = _multipart("alternative", [body, *alternatives])
    if message.attachments:
        body = _multipart("mixed", [body, *(_attachment_part(attachment) for attachment in message.attachments)])
    headers = [
        ("From", sanitize_address(message.sender)),
        ("To", ", ".join(dict.fromkeys(sanitize_address(to) for to in message.recipients))),
    ]
    if message.cc:
        headers.append(("Cc", ", ".join(dict.fromkeys(sanitize_address(to) for to in message.cc))))
    if message.reply_to:
        headers.append(("Reply-To", sanitize_address(message.reply_to)))
    headers += [
        ("Subject", _encoded_words(message.subject, "Subject")),
        ("Date", formatdate(message.date or time.time(), localtime=True)),
        ("Message-ID", message.msgId),
        ("MIME-Version", "1.0"),
        *(message.extra_headers or {}).items(),
    ]
    return (_header_lines(headers) + body).encode("ascii")


# Senders, subjects and often recipients repeat from mail to mail; encoding them is most of a header's cost.
@functools.lru_cache(maxsize=4096)
def sanitize_address(address: str) -> str:
    return encode_address(address)


@functools.lru_cache(maxsize=1024)
def _encoded_words(text: str, name: str) -> str:
    if text.isascii() and len(text) + len(name) < 76:
        return text
    return Header(text, "us-ascii" if text.isascii() else "utf-8", header_name=name).encode(linesep=CRLF)


def _header_lines(headers) -> str:
    return "".join(f"{name}: {value}{CRLF}" for name, value in headers)


def _base64_lines(data: bytes) -> str:
    return base64.encodebytes(data).decode("ascii").replace("\n", CRLF)


def _text_part(subtype: str, text: str, parameters: dict | None = None) -> str:
    extra = "".join(f'; {key}="{value}"' for key, value in (parameters or {}).items())
    content_type = f'text/{subtype}; charset="utf-8"{extra}'
    return (
        _header_lines([("Content-Type", content_type), ("Content-Transfer-Encoding", "base64")])
        + CRLF
        # Text travels in canonical form: CRLF line ends, whatever the template wrote.
        + _base64_lines(text.replace("\r\n", "\n").replace("\n", CRLF).encode("utf-8"))
    )


def _attachment_part(attachment) -> str:
    data = attachment.data.encode("utf-8") if isinstance(attachment.data, str) else attachment.data
    content_type, disposition = attachment.content_type, attachment.disposition
    if attachment.filename:
        filename = _encoded_words(attachment.filename, "filename").replace('"', "")
        content_type += f'; name="{filename}"'
        disposition += f'; filename="{filename}"'
    headers = [
        ("Content-Type", content_type),
        ("Content-Transfer-Encoding", "base64"),
        ("Content-Disposition", disposition),
        *attachment.headers.items(),
    ]
    return _header_lines(headers) + CRLF + _base64_lines(data)


def _multipart(subtype: str, parts: list[str]) -> str:
    # Every part is base64, whose alphabet has no run of "=" like this one: the boundary never occurs inside.
    boundary = f"==============={secrets.token_hex(10)}=="
    lines = _header_lines([("Content-Type", f'multipart/{subtype}; boundary="{boundary}"')]) + CRLF
    for part in parts:
        lines += f"--{boundary}{CRLF}{part}"
    return lines + f"--{boundary}--{CRLF}"


# The worker runs one job at a time (SimpleWorker); web processes never send.
smtp_session = SMTPSession()
