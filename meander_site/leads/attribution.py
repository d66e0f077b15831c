"""Where a booking came from: the campaign parameters of the URL and the referring site. No cookies, no trackers.

GET /demo reads `utm_*` from its query string and the host of its Referer; the form carries them in hidden
fields to the POST, which stores them on the booking and on the lead (first touch kept, latest updated;
see leads/upsert.py). Nothing here ever refuses a booking: a value that is not short and printable is
dropped, because the prospect never typed it.
"""

import re
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from urllib.parse import urlsplit

UTM_FIELDS = ("utm_source", "utm_medium", "utm_campaign", "utm_term", "utm_content")
REFERRER_FIELD = "referrer_host"
TOUCH_FIELDS = (*UTM_FIELDS, REFERRER_FIELD)
MAX_UTM_LENGTH = 100
MAX_HOST_LENGTH = 253
HOST_SHAPE = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)*")

LABELS = {
    "utm_source": "Kilde (utm_source)",
    "utm_medium": "Medium (utm_medium)",
    "utm_campaign": "Kampanje (utm_campaign)",
    "utm_term": "Søkeord (utm_term)",
    "utm_content": "Innhold (utm_content)",
    "referrer_host": "Henvisende nettsted",
}


@dataclass(frozen=True)
class Touch:
    utm_source: str | None = None
    utm_medium: str | None = None
    utm_campaign: str | None = None
    utm_term: str | None = None
    utm_content: str | None = None
    referrer_host: str | None = None

    @property
    def is_empty(self) -> bool:
        return not any(self.as_dict().values())

    def as_dict(self) -> dict[str, str | None]:
        return asdict(self)

    def prefixed(self, prefix: str) -> dict[str, str | None]:
        """The columns of a lead's touch: first_utm_source, latest_referrer_host, …"""
        return {f"{prefix}{name}": value for name, value in self.as_dict().items()}


NO_TOUCH = Touch()


def clean_value(value: object, limit: int = MAX_UTM_LENGTH) -> str | None:
    """Trimmed and whitespace-collapsed; None unless it is short and every character printable."""
    if not isinstance(value, str):
        return None
    text = " ".join(value.split())
    if not text or len(text) > limit:
        return None
    if any(unicodedata.category(character)[0] in ("C", "Z") and character != " " for character in text):
        return None
    return text


def clean_host(value: object) -> str | None:
    """A host name as DNS spells it (lower case, IDNA): anything else is no host."""
    if not isinstance(value, str):
        return None
    host = value.strip().rstrip(".").lower()
    if not host or len(host) > MAX_HOST_LENGTH:
        return None
    if not host.isascii():
        try:
            host = host.encode("idna").decode("ascii")
        except UnicodeError:
            return None
    return host if HOST_SHAPE.fullmatch(host) else None


def referrer_host(referrer: str | None, own_hosts: Iterable[str]) -> str | None:
    """The host of the page that linked here; None for our own pages (a reload, the form after an error)."""
    if not referrer:
        return None
    try:
        parts = urlsplit(referrer)
        hostname = parts.hostname
    except ValueError:
        return None
    if parts.scheme not in ("http", "https"):
        return None
    host = clean_host(hostname)
    own = {name.strip("[]").lower() for name in own_hosts}
    return None if host is None or host in own else host


def from_values(values: Mapping[str, object]) -> Touch:
    """The touch in a query string or in the form's hidden fields, each value checked."""
    cleaned = {name: clean_value(values.get(name)) for name in UTM_FIELDS}
    return Touch(**cleaned, referrer_host=clean_host(values.get(REFERRER_FIELD)))


def arrival_touch(args: Mapping[str, object], referrer: str | None, own_hosts: Iterable[str]) -> Touch:
    """GET /demo: the URL's parameters, and the referring site unless the URL already names one we carried."""
    touch = from_values(args)
    if touch.referrer_host is None:
        touch = Touch(**{**touch.as_dict(), REFERRER_FIELD: referrer_host(referrer, own_hosts)})
    return touch


def describe(touch: Touch) -> str:
    """One line for people: «nyhetsbrev / e-post · vinter», or «Direkte» when nothing is known."""
    if touch.is_empty:
        return "Direkte eller ukjent"
    parts = [" / ".join(value for value in (touch.utm_source, touch.utm_medium) if value)]
    if touch.utm_campaign:
        parts.append(touch.utm_campaign)
    if touch.referrer_host and not touch.utm_source:
        parts.append(f"via {touch.referrer_host}")
    return " · ".join(part for part in parts if part)


def lead_touch(lead, prefix: str) -> Touch:
    """A lead's first (prefix "first_") or latest ("latest_") touch as a Touch."""
    return Touch(**{name: getattr(lead, f"{prefix}{name}") for name in TOUCH_FIELDS})
