"""Requests this site makes to addresses someone typed in: chat webhooks, calendar feeds.

An administrator's or a host's URL must never turn the server into a way in to its own network, so:
- HTTPS only, and the host is resolved once: every address it resolves to must be a public one (no loopback,
  private, link-local and cloud metadata, multicast or reserved ranges), and the connection goes to that checked
  address, so a second DNS answer cannot swap in another (DNS rebinding). The certificate is checked for the name.
- Redirects are never followed: a 3xx comes back as the response, for the caller to report.
- One deadline covers connecting, sending and reading, and the body read is capped.
- A URL is a secret (a webhook's or a private calendar's address carries its key): it is never logged, and pages
  show it through `mask_url`.

`allow_loopback` is the tests' hook (the app setting OUTBOUND_ALLOW_LOOPBACK, off unless a test config sets it):
it lets a request reach 127.0.0.1 or ::1, over plain HTTP too, and nothing else that is not public.
"""

import http.client
import ipaddress
import json
import socket
import ssl
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit

DEFAULT_TIMEOUT = 10.0
DEFAULT_MAX_BYTES = 1_000_000
MAX_URL_LENGTH = 2000
USER_AGENT = "Meander-salgsside/1.0"
_READ_CHUNK = 64 * 1024


class OutboundRefused(ValueError):
    """The URL may not be requested at all; `message` says in Norwegian what to change."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class OutboundFailed(OSError):
    """The request was allowed but did not complete: timeout, connection, TLS, or a body over the cap."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True)
class Response:
    status: int
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes = b""

    @property
    def is_redirect(self) -> bool:
        return 300 <= self.status < 400


@dataclass(frozen=True)
class Destination:
    scheme: str
    host: str
    port: int
    target: str  # path and query, as sent in the request line
    address: str  # the checked address the connection goes to


def mask_url(url: str) -> str:
    """How a page shows a secret URL: scheme and host, and the last four characters to tell two apart."""
    parts = urlsplit(url)
    tail = url[-4:] if len(url) > 12 else ""
    return f"{parts.scheme}://{parts.hostname or ''}/…{tail}"


def _is_loopback(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    return address.is_loopback or (
        isinstance(address, ipaddress.IPv6Address)
        and address.ipv4_mapped is not None
        and address.ipv4_mapped.is_loopback
    )


def _is_public(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    # is_global is False for private, loopback, link-local (169.254.169.254, the cloud metadata address),
    # shared (100.64/10), reserved and documentation ranges; multicast is checked on its own.
    return address.is_global and not address.is_multicast


def _resolve(host: str, port: int, timeout: float) -> list[str]:
    try:
        literal = ipaddress.ip_address(host)
    except ValueError:
        pass
    else:
        return [str(literal)]
    # getaddrinfo has no timeout of its own; the resolver's (a few seconds) bounds it.
    try:
        answers = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as error:
        raise OutboundRefused("Fant ikke adressen. Sjekk at den er skrevet riktig.") from error
    return list(dict.fromkeys(answer[4][0] for answer in answers))


def check_destination(url: str, *, allow_loopback: bool = False, timeout: float = DEFAULT_TIMEOUT) -> Destination:
    """Where a request to `url` would go, or OutboundRefused saying why it may not."""
    if not isinstance(url, str) or not url.strip() or len(url) > MAX_URL_LENGTH:
        raise OutboundRefused(f"Skriv en hel adresse som begynner med https:// (høyst {MAX_URL_LENGTH} tegn).")
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError as error:
        raise OutboundRefused("Adressen er ikke gyldig. Kopier den på nytt fra tjenesten og lim den inn.") from error
    host = (parts.hostname or "").rstrip(".")
    if parts.scheme not in ("https", "http") or not host:
        raise OutboundRefused("Adressen må begynne med https://. Kopier den på nytt fra tjenesten og lim den inn.")
    if parts.username or parts.password:
        raise OutboundRefused("Adressen kan ikke inneholde brukernavn eller passord.")
    port = port or (443 if parts.scheme == "https" else 80)
    addresses = [ipaddress.ip_address(answer.split("%")[0]) for answer in _resolve(host, port, timeout)]
    loopback_only = allow_loopback and addresses and all(_is_loopback(address) for address in addresses)
    if parts.scheme != "https" and not loopback_only:
        raise OutboundRefused("Adressen må begynne med https://, så det vi sender er kryptert.")
    if not loopback_only and not all(_is_public(address) for address in addresses):
        raise OutboundRefused(
            "Adressen peker til et internt eller privat nett, og dit sender vi ikke. Bruk en offentlig https-adresse."
        )
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return Destination(parts.scheme, host, port, target, str(addresses[0]))


class _PinnedHTTPSConnection(http.client.HTTPSConnection):
    """HTTPS to a checked address, with the certificate and SNI for the URL's host name."""

    def __init__(self, destination: Destination, timeout: float) -> None:
        super().__init__(destination.host, destination.port, timeout=timeout, context=ssl.create_default_context())
        self._address = destination.address

    def connect(self) -> None:
        raw = socket.create_connection((self._address, self.port), self.timeout)
        self.sock = self._context.wrap_socket(raw, server_hostname=self.host)


class _PinnedHTTPConnection(http.client.HTTPConnection):
    def __init__(self, destination: Destination, timeout: float) -> None:
        super().__init__(destination.host, destination.port, timeout=timeout)
        self._address = destination.address

    def connect(self) -> None:
        self.sock = socket.create_connection((self._address, self.port), self.timeout)


def request(
    method: str,
    url: str,
    *,
    body: bytes | None = None,
    headers: Mapping[str, str] | None = None,
    timeout: float = DEFAULT_TIMEOUT,
    max_bytes: int = DEFAULT_MAX_BYTES,
    allow_loopback: bool = False,
) -> Response:
    """One request, no redirects followed. OutboundRefused before any connection; OutboundFailed after."""
    deadline = time.monotonic() + timeout
    destination = check_destination(url, allow_loopback=allow_loopback, timeout=timeout)
    connection_class = _PinnedHTTPSConnection if destination.scheme == "https" else _PinnedHTTPConnection
    connection = connection_class(destination, timeout=_time_left(deadline))
    try:
        connection.request(method, destination.target, body=body, headers={"User-Agent": USER_AGENT, **(headers or {})})
        # The socket itself: http.client lets go of it once the response is to end the connection.
        sock = connection.sock
        answer = connection.getresponse()
        chunks, size = [], 0
        while not answer.isclosed():  # closed once the body has been read to its end
            sock.settimeout(_time_left(deadline))
            chunk = answer.read(_READ_CHUNK)
            if not chunk:
                break
            size += len(chunk)
            if size > max_bytes:
                raise OutboundFailed(f"Svaret var større enn {max_bytes // 1_000_000 or 1} MB og ble ikke lest ferdig.")
            chunks.append(chunk)
        return Response(answer.status, {key.lower(): value for key, value in answer.getheaders()}, b"".join(chunks))
    except TimeoutError as error:
        raise OutboundFailed(f"Ingen svar innen {timeout:g} sekunder.") from error
    except ssl.SSLError as error:
        raise OutboundFailed("Sikker forbindelse feilet (sertifikatet kunne ikke bekreftes).") from error
    except (OSError, http.client.HTTPException) as error:
        if isinstance(error, OutboundFailed):
            raise
        raise OutboundFailed("Fikk ikke kontakt med adressen.") from error
    finally:
        connection.close()


def _time_left(deadline: float) -> float:
    left = deadline - time.monotonic()
    if left <= 0:
        raise OutboundFailed("Ingen svar innen tidsfristen.")
    return left


def post_json(url: str, payload: object, **options) -> Response:
    body = json.dumps(payload, ensure_ascii=False).encode()
    return request("POST", url, body=body, headers={"Content-Type": "application/json; charset=utf-8"}, **options)


def get(url: str, **options) -> Response:
    return request("GET", url, **options)
