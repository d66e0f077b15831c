"""rate_limit_per_ip: 5 lead creation attempts (bookings that pass validation) per client IP in a rolling hour, and
30 POSTs of any kind (invalid ones, missing tokens) per client IP, on the shared Redis."""

import re
import time
from html.parser import HTMLParser

import limits.storage.memory
import limits.storage.redis
import limits.strategies
import pytest
import sqlalchemy as sa
from helpers.booking import VALID_BOOKING, book
from helpers.http import WatchedBody
from limits.storage import RedisStorage
from redis import Redis

import meander_site.errors
from meander_site.extensions import db, limiter
from meander_site.leads.models import Lead

MINUTE = 60


class FakeClock:
    """Stands in for the `time` module inside the rate-limit code; everything but time() is the real one."""

    def __init__(self, now: float):
        self.now = now

    def time(self) -> float:
        return self.now

    def set(self, minutes_after: float, base: float) -> None:
        self.now = base + minutes_after * MINUTE

    def __getattr__(self, name):
        return getattr(time, name)


@pytest.fixture
def clock(monkeypatch):
    fake = FakeClock(time.time())
    for module in (
        limits.storage.redis,
        limits.storage.memory,
        limits.strategies,
        meander_site.errors,
    ):
        monkeypatch.setattr(module, "time", fake)
    return fake


def lead_emails(app) -> set[str]:
    with app.app_context():
        return set(db.session.execute(sa.select(Lead.email)).scalars())


def typed_value(html: str, name: str) -> str | None:
    class Finder(HTMLParser):
        value = None

        def handle_starttag(self, tag, attrs):
            attributes = dict(attrs)
            if tag == "input" and attributes.get("name") == name:
                Finder.value = attributes.get("value")

    Finder().feed(html)
    return Finder.value


def five_posts(client, **request_options) -> list[int]:
    """Five bookings from one client that pass validation, with invalid ones between: only the valid ones count."""
    statuses = []
    for n in range(5):
        assert book(client, phone="+47 123", **request_options).status_code == 422
        statuses.append(book(client, notes=f"Forsøk {n}", **request_options).status_code)
    return statuses


SIXTH = {"email": "sjette@lhl.no", "organization_name": "Sjette forsøk AS"}


def test_sixth_post_in_an_hour_gets_429_with_norwegian_page_retry_after_and_the_typed_values(app, client, redis_url):
    assert five_posts(client) == [303] * 5

    response = book(client, **SIXTH)

    assert response.status_code == 429
    html = response.get_data(as_text=True)
    assert "mange forespørsler" in html
    assert 1 <= int(response.headers["Retry-After"]) <= 3601
    assert typed_value(html, "organization_name") == "Sjette forsøk AS"
    assert typed_value(html, "email") == "sjette@lhl.no"
    assert lead_emails(app) == {VALID_BOOKING["email"]}
    # The count lives in the configured Redis, so every web process shares it.
    assert isinstance(limiter.storage, RedisStorage)
    assert Redis.from_url(redis_url).keys("LIMITS*")


def test_htmx_post_over_the_limit_gets_the_form_fragment_back(app, client):
    five_posts(client)

    response = book(client, headers={"HX-Request": "true"}, **SIXTH)

    assert response.status_code == 429
    html = response.get_data(as_text=True)
    assert "<html" not in html
    assert typed_value(html, "organization_name") == "Sjette forsøk AS"
    assert "Retry-After" in response.headers


def test_another_ip_is_still_allowed_when_one_ip_is_limited(app, client):
    five_posts(client)
    assert book(client, **SIXTH).status_code == 429

    response = book(client, environ_overrides={"REMOTE_ADDR": "10.0.0.2"}, **SIXTH)

    assert response.status_code == 303
    with app.app_context():
        lead = db.session.execute(sa.select(Lead).where(Lead.email == "sjette@lhl.no")).scalar_one()
        assert lead.ip_address == "10.0.0.2"


def test_gets_are_never_limited(app, client):
    for _ in range(20):
        assert client.get("/demo").status_code == 200
    assert client.get("/").status_code == 200

    assert book(client).status_code == 303


def test_posts_refused_for_a_missing_csrf_token_count_against_the_looser_limit(app, client):
    for _ in range(29):
        assert client.post("/demo", data=VALID_BOOKING).status_code == 400
    assert book(client).status_code == 303  # the 30th POST of the hour

    assert book(client, notes="31.").status_code == 429
    assert lead_emails(app) == {VALID_BOOKING["email"]}


def test_a_prospect_who_mistypes_twice_is_not_locked_out(app, client):
    for _ in range(4):
        assert book(client, phone="+47 123").status_code == 422

    assert [book(client, notes=f"nr {n}").status_code for n in range(5)] == [303] * 5
    assert book(client, **SIXTH).status_code == 429


def test_thirty_invalid_posts_an_hour_get_their_own_limit(app, client):
    assert [book(client, phone="+47 123").status_code for _ in range(30)] == [422] * 30

    assert book(client, phone="+47 123").status_code == 429
    assert book(client).status_code == 429


def test_x_forwarded_for_is_ignored_without_trusted_proxies(app, client):
    statuses = [
        book(client, headers={"X-Forwarded-For": f"203.0.113.{n}"}, notes=f"forsøk {n}").status_code
        for n in range(1, 7)
    ]

    assert statuses == [303] * 5 + [429]
    with app.app_context():
        assert db.session.execute(sa.select(Lead.ip_address)).scalar_one() == "127.0.0.1"


def test_x_forwarded_for_decides_the_client_behind_a_trusted_proxy(app, make_app):
    proxied = make_app(TRUSTED_PROXY_COUNT=1)
    limiter.reset()
    client = proxied.test_client()
    behind = {"X-Forwarded-For": "203.0.113.7"}

    assert five_posts(client, headers=behind) == [303] * 5
    assert book(client, headers=behind, **SIXTH).status_code == 429
    other = book(client, headers={"X-Forwarded-For": "203.0.113.8"}, **SIXTH)

    assert other.status_code == 303
    with proxied.app_context():
        lead = db.session.execute(sa.select(Lead).where(Lead.email == "sjette@lhl.no")).scalar_one()
        assert lead.ip_address == "203.0.113.8"
        first = db.session.execute(sa.select(Lead).where(Lead.email == VALID_BOOKING["email"])).scalar_one()
        assert first.ip_address == "203.0.113.7"


# --- the rolling hour, on a controlled clock ---------------------------------------------------------


def test_limit_lifts_an_hour_after_the_posts(app, client, clock):
    start = clock.now
    assert five_posts(client) == [303] * 5

    clock.set(30, base=start)
    refused = book(client, **SIXTH)
    assert refused.status_code == 429
    assert 1799 <= int(refused.headers["Retry-After"]) <= 1801  # the oldest post leaves the window at +60 min

    clock.set(61, base=start)
    assert book(client, **SIXTH).status_code == 303
    assert "sjette@lhl.no" in lead_emails(app)


def test_window_rolls_with_the_clock_instead_of_resetting_on_the_hour(app, client, clock):
    hour = (int(clock.now) // 3600 + 1) * 3600  # 00:00 of a fixed clock hour
    clock.set(50, base=hour)  # 00:50
    assert [book(client, notes=f"00:50 nr {n}").status_code for n in range(3)] == [303] * 3
    clock.set(70, base=hour)  # 01:10
    assert [book(client, notes=f"01:10 nr {n}").status_code for n in range(2)] == [303] * 2

    clock.set(80, base=hour)  # 01:20: only two posts this clock hour, but five in the last 60 minutes
    refused = book(client, **SIXTH)
    assert refused.status_code == 429
    assert 1799 <= int(refused.headers["Retry-After"]) <= 1801  # until 01:50

    clock.set(111, base=hour)  # 01:51: the 00:50 posts have left the window
    assert book(client, **SIXTH).status_code == 303


# --- what the 429 page tells the person waiting -----------------------------------------------------


def wait_notice(html: str) -> str:
    match = re.search(r"Prøv igjen om (\d+) (minutter|minutt)\b", html)
    assert match, "the page says how long to wait"
    return match.group(0)


def test_the_429_page_says_how_many_minutes_to_wait_and_whom_to_write_to(app, client, clock):
    start = clock.now
    five_posts(client)

    clock.set(48.5, base=start)  # the oldest post leaves the window in 11.5 minutes
    refused = book(client, **SIXTH)

    assert refused.status_code == 429
    assert 689 <= int(refused.headers["Retry-After"]) <= 691
    html = refused.get_data(as_text=True)
    assert wait_notice(html) == "Prøv igjen om 12 minutter"
    assert '<a href="mailto:demo@meander.no">demo@meander.no</a>' in html
    assert typed_value(html, "organization_name") == "Sjette forsøk AS"
    assert refused.headers["Cache-Control"] == "no-store"  # it shows what they typed

    clock.set(59.5, base=start)
    assert wait_notice(book(client, **SIXTH).get_data(as_text=True)) == "Prøv igjen om 1 minutt"


def test_a_limited_booking_with_an_oversize_multipart_body_gets_429_without_the_body_being_read(app, client):
    five_posts(client)
    boundary = "grense"
    body = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="notes"\r\n\r\n'.encode()
        + b"x" * (5 * 1024 * 1024)
        + f"\r\n--{boundary}--\r\n".encode()
    )
    stream = WatchedBody(body)

    response = client.post(
        "/demo",
        input_stream=stream,
        content_type=f"multipart/form-data; boundary={boundary}",
        content_length=len(body),
    )

    assert response.status_code == 429
    assert not stream.was_read
    html = response.get_data(as_text=True)
    assert wait_notice(html)
    assert "mailto:demo@meander.no" in html
    assert 'name="first_name"' in html  # an empty form to start again on
    assert lead_emails(app) == {VALID_BOOKING["email"]}
