"""Talking to a site served by gunicorn in a test: a visitor that keeps its cookies (and connects from a chosen
address), and waiting until the server answers."""

import http.client
import socket
import subprocess
import time
from urllib.parse import urlencode

from helpers.booking import CSRF_INPUT

# An address of the loopback network that is not 127.0.0.1: what the logs must never show.
CLIENT_IP = "127.0.0.77"


class Browser:
    """A visitor of a server on this machine: keeps its cookies, and connects from `source_ip` if given."""

    def __init__(self, port: int, source_ip: str | None = None):
        self.port = port
        self.source_address = (source_ip, 0) if source_ip else None
        self.cookies: dict[str, str] = {}

    def request(self, method: str, path: str, form: dict | None = None) -> tuple[int, str]:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30, source_address=self.source_address)
        headers = {"Cookie": "; ".join(f"{name}={value}" for name, value in self.cookies.items())}
        body = None
        if form is not None:
            body = urlencode(form)
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        try:
            connection.request(method, path, body=body, headers=headers)
            response = connection.getresponse()
            text = response.read().decode()
            for cookie in response.headers.get_all("Set-Cookie") or []:
                name, _, rest = cookie.partition("=")
                self.cookies[name] = rest.split(";")[0]
            return response.status, text
        finally:
            connection.close()

    def token(self, form_path: str) -> str:
        """The CSRF token of the form at `form_path` (and the session cookie it belongs to)."""
        status, page = self.request("GET", form_path)
        assert status == 200, page
        return CSRF_INPUT.search(page).group(1)

    def submit(self, form_path: str, post_path: str, fields: dict) -> tuple[int, str]:
        return self.request("POST", post_path, {**fields, "csrf_token": self.token(form_path)})


def wait_until_serving(port: int, process: subprocess.Popen, log_path) -> None:
    deadline = time.monotonic() + 60
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            assert process.poll() is None, log_path.read_text()
            assert time.monotonic() < deadline, "gunicorn did not answer within 60 s"
            time.sleep(0.2)
