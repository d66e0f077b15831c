"""Requests to addresses someone typed in (webhooks, calendar feeds) reach only public HTTPS servers, follow no
redirect, give up at a deadline and read no more than a cap. The tests' servers are on 127.0.0.1, which only
the tests' hook (allow_loopback) lets a request reach."""

import contextlib
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from meander_site.core import outbound_http
from meander_site.core.outbound_http import OutboundFailed, OutboundRefused


class Recorder(BaseHTTPRequestHandler):
    """Answers by path: /ok 200, /redirect 302 to /ok, /slow after 3 s, /big 2 MB; records what arrived."""

    received: list

    def log_message(self, *args):  # no access log lines in the test output
        pass

    def do_GET(self):
        self._answer()

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.received.append((self.path, self.headers.get("Content-Type"), body))
        self._answer()

    def _answer(self):
        if self.path == "/redirect":
            self.send_response(302)
            self.send_header("Location", "/ok")
            self.end_headers()
            return
        if self.path == "/slow":
            time.sleep(3)
        body = b"x" * 2_000_000 if self.path == "/big" else b"ok"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        with contextlib.suppress(OSError):
            self.wfile.write(body)


@pytest.fixture
def local_server():
    handler = type("Handler", (Recorder,), {"received": []})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}", handler.received
    server.shutdown()


def test_a_json_post_reaches_a_loopback_server_only_through_the_tests_hook(local_server):
    base, received = local_server

    with pytest.raises(OutboundRefused):
        outbound_http.post_json(f"{base}/ok", {"text": "Ny lead"})
    response = outbound_http.post_json(f"{base}/ok", {"text": "Ny lead: LHL"}, allow_loopback=True)

    assert response.status == 200 and response.body == b"ok"
    [(path, content_type, body)] = received
    assert path == "/ok" and content_type.startswith("application/json")
    assert json.loads(body) == {"text": "Ny lead: LHL"}


def test_a_redirect_is_answered_not_followed(local_server):
    base, received = local_server

    response = outbound_http.post_json(f"{base}/redirect", {"text": "x"}, allow_loopback=True)

    assert response.status == 302 and response.is_redirect
    assert response.headers["location"] == "/ok"
    assert [path for path, _, _ in received] == ["/redirect"]


def test_a_server_that_does_not_answer_in_time_fails_the_request_at_the_deadline(local_server):
    base, _ = local_server

    started = time.monotonic()
    with pytest.raises(OutboundFailed) as failed:
        outbound_http.get(f"{base}/slow", timeout=0.5, allow_loopback=True)

    assert "Ingen svar" in failed.value.message
    assert time.monotonic() - started < 2.5  # well before the server's 3 s answer


def test_a_body_over_the_cap_is_not_read_to_the_end(local_server):
    base, _ = local_server

    with pytest.raises(OutboundFailed) as failed:
        outbound_http.get(f"{base}/big", max_bytes=100_000, allow_loopback=True)

    assert "større enn" in failed.value.message


@pytest.mark.parametrize(
    "url",
    [
        "https://127.0.0.1/hook",
        "https://[::1]/hook",
        "https://localhost/hook",
        "https://10.0.0.5/hook",
        "https://172.16.3.4/hook",
        "https://192.168.1.1/hook",
        "https://169.254.169.254/latest/meta-data/",  # the cloud metadata address
        "https://[fd00::1]/hook",
        "https://[::ffff:10.0.0.1]/hook",
        "https://100.64.0.1/hook",
        "https://0.0.0.0/hook",
        "https://224.0.0.1/hook",
    ],
)
def test_loopback_private_link_local_and_metadata_addresses_are_refused(url):
    with pytest.raises(OutboundRefused) as refused:
        outbound_http.check_destination(url)

    assert "internt eller privat nett" in refused.value.message


@pytest.mark.parametrize(
    "url",
    [
        "https://10.0.0.5/hook",
        "https://169.254.169.254/latest/meta-data/",
        "http://8.8.8.8/hook",  # public, but plain HTTP
    ],
)
def test_the_tests_hook_opens_loopback_and_nothing_else(url):
    with pytest.raises(OutboundRefused):
        outbound_http.check_destination(url, allow_loopback=True)


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("http://8.8.8.8/hook", "https://"),
        ("ftp://8.8.8.8/hook", "https://"),
        ("https://user:secret@8.8.8.8/hook", "brukernavn eller passord"),
        ("https://8.8.8.8:99999/hook", "ikke gyldig"),
        ("", "hel adresse"),
        ("https://" + "a" * 2100, "hel adresse"),
        ("https://finnes-ikke.invalid/hook", "Fant ikke adressen"),
    ],
)
def test_an_address_that_cannot_be_used_is_refused_with_what_to_do(url, says):
    with pytest.raises(OutboundRefused) as refused:
        outbound_http.check_destination(url)

    assert says in refused.value.message


def test_a_public_https_address_is_allowed_and_pinned_to_the_checked_address():
    destination = outbound_http.check_destination("https://8.8.8.8:8443/services/T1/B2?x=1")

    assert (destination.host, destination.port, destination.address) == ("8.8.8.8", 8443, "8.8.8.8")
    assert destination.target == "/services/T1/B2?x=1"


def test_a_secret_url_is_shown_masked():
    masked = outbound_http.mask_url("https://hooks.slack.com/services/T000/B000/XXXXXXXXabcd")

    assert masked == "https://hooks.slack.com/…abcd"
    assert "T000" not in masked
