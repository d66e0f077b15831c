"""Hosts' calendar feeds: parsing (recurring, all-day, transparent, cancelled, time zones), and the worker's fetch
over a real local HTTP server (a good feed replaces the busy times, a slow or oversized one keeps the last good copy
and shows the error), and the form leaving busy times out."""

import contextlib
import re
import threading
import time
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import sqlalchemy as sa
from helpers.staff import post, staff_csrf

from meander_site.business_days import OSLO
from meander_site.core.clock import utcnow
from meander_site.extensions import db
from meander_site.slots import feeds
from meander_site.slots.models import DemoHost, HostBusy

WINDOW = (datetime(2027, 1, 1, tzinfo=UTC), datetime(2027, 2, 1, tzinfo=UTC))


def calendar(*events: str) -> bytes:
    body = "\r\n".join(["BEGIN:VCALENDAR", "VERSION:2.0", "PRODID:-//Test//NB", *events, "END:VCALENDAR"])
    return body.encode()


def event(uid: str, *lines: str) -> str:
    return "\r\n".join(["BEGIN:VEVENT", f"UID:{uid}", "DTSTAMP:20261201T000000Z", *lines, "END:VEVENT"])


def test_a_weekly_meeting_is_busy_every_week():
    feed = calendar(
        event(
            "w",
            "DTSTART;TZID=Europe/Oslo:20270104T100000",
            "DTEND;TZID=Europe/Oslo:20270104T110000",
            "RRULE:FREQ=WEEKLY;COUNT=3",
        )
    )
    busy = feeds.parse_busy(feed, *WINDOW)
    assert [start.astimezone(OSLO).strftime("%d %H:%M") for start, _ in busy] == ["04 10:00", "11 10:00", "18 10:00"]


def test_transparent_and_cancelled_events_are_free():
    feed = calendar(
        event("t", "DTSTART:20270105T090000Z", "DTEND:20270105T100000Z", "TRANSP:TRANSPARENT"),
        event("c", "DTSTART:20270105T110000Z", "DTEND:20270105T120000Z", "STATUS:CANCELLED"),
        event("o", "DTSTART:20270105T130000Z", "DTEND:20270105T140000Z", "TRANSP:OPAQUE"),
    )
    assert feeds.parse_busy(feed, *WINDOW) == [
        (datetime(2027, 1, 5, 13, tzinfo=UTC), datetime(2027, 1, 5, 14, tzinfo=UTC))
    ]


def test_an_all_day_event_is_busy_from_oslo_midnight_to_midnight():
    feed = calendar(event("a", "DTSTART;VALUE=DATE:20270106", "DTEND;VALUE=DATE:20270107"))
    assert feeds.parse_busy(feed, *WINDOW) == [
        (datetime(2027, 1, 5, 23, tzinfo=UTC), datetime(2027, 1, 6, 23, tzinfo=UTC))
    ]


def test_time_zones_utc_named_zones_and_floating_times_read_alike():
    feed = calendar(
        event("z", "DTSTART:20270107T090000Z", "DTEND:20270107T093000Z"),
        event("ny", "DTSTART;TZID=America/New_York:20270107T040000", "DTEND;TZID=America/New_York:20270107T043000"),
        event("f", "DTSTART:20270107T100000", "DURATION:PT30M"),
    )
    busy = feeds.parse_busy(feed, *WINDOW)
    assert busy == [(datetime(2027, 1, 7, 9, tzinfo=UTC), datetime(2027, 1, 7, 9, 30, tzinfo=UTC))] * 3


@pytest.mark.parametrize("body", [b"", b"not a calendar", b"BEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\n"])
def test_a_broken_feed_is_a_norwegian_error(body):
    with pytest.raises(feeds.FeedError) as error:
        feeds.parse_busy(body, *WINDOW)
    assert "kalender" in error.value.message


# --- fetching -------------------------------------------------------------------------------------------------

SERVED = {"body": b"", "delay": 0.0}


class Feed(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_GET(self):
        time.sleep(SERVED["delay"])
        self.send_response(200)
        self.send_header("Content-Type", "text/calendar")
        self.send_header("Content-Length", str(len(SERVED["body"])))
        self.end_headers()
        with contextlib.suppress(OSError):
            self.wfile.write(SERVED["body"])


@pytest.fixture
def feed_server():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Feed)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    SERVED.update(body=b"", delay=0.0)
    yield f"http://127.0.0.1:{server.server_port}/kalender.ics"
    server.shutdown()
    server.server_close()


def tomorrow_at(hour: int) -> datetime:
    day = (utcnow() + timedelta(days=1)).astimezone(OSLO).date()
    return datetime(day.year, day.month, day.day, hour, tzinfo=OSLO).astimezone(UTC)


def busy_rows(app, user_id) -> list:
    with app.app_context():
        return db.session.execute(sa.select(HostBusy.starts_at).where(HostBusy.user_id == user_id)).scalars().all()


def test_the_worker_reads_a_feed_keeps_the_last_good_copy_and_shows_the_error(
    app, staff_client, staff_user, feed_server
):
    start = tomorrow_at(10)
    SERVED["body"] = calendar(
        event("m", f"DTSTART:{start:%Y%m%dT%H%M%SZ}", f"DTEND:{start + timedelta(hours=1):%Y%m%dT%H%M%SZ}")
    )
    response = post(staff_client, "/pipeline/demoer/kalender", staff_csrf(staff_client), feed_url=feed_server)
    assert response.status_code == 303
    page = staff_client.get("/pipeline/demoer").get_data(as_text=True)
    assert feed_server not in page and "kalender.ics" not in page  # shown masked, never in full
    with app.app_context():
        stored = db.session.execute(sa.select(sa.type_coerce(DemoHost.feed_url, sa.String))).scalar_one()
        assert stored.startswith("sealed1:") and "kalender.ics" not in stored  # a database copy does not reveal it
        assert feeds.fetch_due_feeds() == 1
        assert feeds.fetch_due_feeds() == 0  # read less than 5 minutes ago
    assert busy_rows(app, staff_user["id"]) == [start]
    # Too large, then too slow: the busy times stay, the error shows.
    SERVED["body"] = b"X" * (feeds.MAX_BYTES + 10)
    with app.app_context():
        assert feeds.fetch_feed(staff_user["id"]) is False
    assert busy_rows(app, staff_user["id"]) == [start]
    assert "større enn" in staff_client.get("/pipeline/demoer").get_data(as_text=True)
    SERVED.update(body=b"", delay=2.0)
    with app.app_context():
        original, feeds.TIMEOUT_SECONDS = feeds.TIMEOUT_SECONDS, 0.5
        try:
            assert feeds.fetch_feed(staff_user["id"]) is False
        finally:
            feeds.TIMEOUT_SECONDS = original
        assert db.session.get(DemoHost, staff_user["id"]).feed_error
    assert busy_rows(app, staff_user["id"]) == [start]


def test_a_busy_time_from_the_feed_is_not_offered(app, client, staff_user):
    start = tomorrow_at(10)
    with app.app_context():
        db.session.add(HostBusy(user_id=staff_user["id"], starts_at=start, ends_at=start + timedelta(hours=2)))
        db.session.commit()
    values = set(re.findall(r'name="slot" value="([0-9T:-]{16})"', client.get("/demo").get_data(as_text=True)))
    day = start.astimezone(OSLO).strftime("%Y-%m-%d")
    assert not {f"{day}T{t}" for t in ("10:00", "11:00", "11:30", "12:00")} & values
    if any(value.startswith(day) for value in values):
        assert f"{day}T12:30" in values


def test_an_address_to_a_private_network_is_refused(app, make_app, staff_user):
    strict = make_app(OUTBOUND_ALLOW_LOOPBACK=False)
    with strict.app_context():
        with pytest.raises(feeds.FeedError):
            feeds.set_feed_url(staff_user["id"], "https://127.0.0.1/kalender.ics")
