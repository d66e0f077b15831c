"""Sending mail over SMTP: Flask-Mail's connection with a timeout and verified TLS, and the session the
worker keeps open between jobs. Knows nothing of what the mails say or when they are due (confirmations.py)."""

import functools
import smtplib
import ssl
import time

from flask import current_app
from flask_mail import Connection, Message


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


class SMTPSession:
    """The worker's SMTP session, kept open between jobs: connecting (and a TLS handshake) for every
    mail costs more than the mail. A session the server dropped while idle is replaced once; any
    other failure closes it, and the job's failure path takes over."""

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
        while True:
            if self.connection is None:
                self._open(settings, key)
            try:
                self.connection.send(message)
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


# One per process: the worker runs one job at a time (SimpleWorker), and web processes never send.
smtp_session = SMTPSession()
