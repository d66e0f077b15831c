"""Hosts' calendar feeds: the private `.ics` address a host pastes (a secret: shown masked, never logged), fetched by
the worker every 5 minutes over the safe outbound client, with recurring events expanded and transparent (free) and
cancelled events ignored. A good fetch replaces the host's busy times; a failed one keeps the last good copy and
records the error for the host's settings. A feed never blocks a booking."""

import logging
import uuid
from datetime import UTC, date, datetime, time, timedelta

import recurring_ical_events
import sqlalchemy as sa
from flask import current_app
from icalendar import Calendar

from ..business_days import OSLO
from ..core import outbound_http
from ..core.clock import utcnow
from ..extensions import db
from .models import DemoHost, HostBusy

log = logging.getLogger(__name__)

FETCH_EVERY = timedelta(minutes=5)
LEASE = timedelta(minutes=2)
TIMEOUT_SECONDS = 10.0
MAX_BYTES = 2_000_000
# Busy times are kept for the booking horizon and a little more (10 business days fit in 20 calendar days).
WINDOW_DAYS = 35
MAX_URL_LENGTH = 2000


class FeedError(ValueError):
    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


# --- parsing (pure) -------------------------------------------------------------------------------------------


def _instant(value) -> datetime:
    """A DTSTART/DTEND as UTC: a date is Oslo midnight, a floating time is Oslo wall clock."""
    if isinstance(value, datetime):
        return (value if value.tzinfo else value.replace(tzinfo=OSLO)).astimezone(UTC)
    if isinstance(value, date):
        return datetime.combine(value, time(0), tzinfo=OSLO).astimezone(UTC)
    raise FeedError("Kalenderen har en hendelse uten gyldig tidspunkt.")


def parse_busy(body: bytes, window_from: datetime, window_until: datetime) -> list[tuple[datetime, datetime]]:
    """The busy stretches of an iCalendar feed between two instants: recurring events expanded, transparent
    («ledig») and cancelled events ignored, all-day events busy from Oslo midnight to midnight. Raises FeedError."""
    try:
        calendar = Calendar.from_ical(body)
        events = recurring_ical_events.of(calendar).between(window_from, window_until)
    except Exception as error:  # the parsers raise many kinds on hostile or broken input
        raise FeedError("Adressen ga ikke en kalender vi kunne lese (iCalendar, .ics).") from error
    busy = []
    for event in events:
        if str(event.get("TRANSP", "OPAQUE")).upper() == "TRANSPARENT":
            continue
        if str(event.get("STATUS", "")).upper() == "CANCELLED":
            continue
        start = event.get("DTSTART")
        if start is None:
            continue
        starts_at = _instant(start.dt)
        end = event.get("DTEND")
        if end is not None:
            ends_at = _instant(end.dt)
        elif event.get("DURATION") is not None:
            ends_at = starts_at + event["DURATION"].dt
        else:
            ends_at = _instant(start.dt + timedelta(days=1)) if not isinstance(start.dt, datetime) else starts_at
        if ends_at > starts_at:
            busy.append((starts_at, ends_at))
    return sorted(busy)


# --- the host's address -----------------------------------------------------------------------------------------


def set_feed_url(user_id: uuid.UUID, raw_url: object) -> None:
    """Save (or, empty, remove) the host's calendar address; its busy times are read on the next round. Commits;
    raises FeedError with a Norwegian message."""
    url = raw_url.strip() if isinstance(raw_url, str) else ""
    row = db.session.get(DemoHost, user_id)
    if row is None:
        row = DemoHost(user_id=user_id, takes_demos=True)
        db.session.add(row)
    if url:
        if len(url) > MAX_URL_LENGTH:
            raise FeedError(f"Adressen er for lang (høyst {MAX_URL_LENGTH} tegn).")
        if url.lower().startswith("webcal://"):
            url = "https://" + url[len("webcal://") :]
        try:
            outbound_http.check_destination(url, allow_loopback=current_app.config["OUTBOUND_ALLOW_LOOPBACK"])
        except outbound_http.OutboundRefused as refused:
            raise FeedError(refused.message) from None
    else:
        db.session.execute(sa.delete(HostBusy).where(HostBusy.user_id == user_id))
    row.feed_url = url or None
    row.feed_fetched_at = row.feed_error = row.feed_error_at = row.feed_lease_until = None
    row.updated_at = utcnow()
    db.session.commit()


def masked(row: DemoHost) -> str | None:
    return outbound_http.mask_url(row.feed_url) if row.feed_url else None


# --- the worker's round -------------------------------------------------------------------------------------------


def _claim(user_id: uuid.UUID, now: datetime) -> bool:
    """A lease on one host's next fetch, by compare-and-set: several workers never fetch one feed at once."""
    claimed = db.session.execute(
        sa.update(DemoHost)
        .where(
            DemoHost.user_id == user_id,
            DemoHost.feed_url.is_not(None),
            sa.or_(DemoHost.feed_lease_until.is_(None), DemoHost.feed_lease_until < now),
        )
        .values(feed_lease_until=now + LEASE)
        .execution_options(synchronize_session=False)
    ).rowcount
    db.session.commit()
    return claimed == 1


def due_feeds(now: datetime) -> list[uuid.UUID]:
    last_try = sa.func.coalesce(DemoHost.feed_error_at, DemoHost.feed_fetched_at)
    fetched_long_ago = sa.or_(DemoHost.feed_fetched_at.is_(None), DemoHost.feed_fetched_at <= now - FETCH_EVERY)
    tried_long_ago = sa.or_(last_try.is_(None), last_try <= now - FETCH_EVERY)
    return list(
        db.session.execute(
            sa.select(DemoHost.user_id).where(
                DemoHost.feed_url.is_not(None),
                fetched_long_ago,
                tried_long_ago,
                sa.or_(DemoHost.feed_lease_until.is_(None), DemoHost.feed_lease_until < now),
            )
        ).scalars()
    )


def fetch_feed(user_id: uuid.UUID, now: datetime | None = None) -> bool:
    """Fetch one host's feed (the caller holds its lease). True when its busy times were replaced."""
    now = now or utcnow()
    row = db.session.get(DemoHost, user_id)
    if row is None or not row.feed_url:
        return False
    url = row.feed_url
    try:
        response = outbound_http.get(
            url,
            timeout=TIMEOUT_SECONDS,
            max_bytes=MAX_BYTES,
            allow_loopback=current_app.config["OUTBOUND_ALLOW_LOOPBACK"],
        )
        if response.status != 200:
            raise FeedError(f"Kalenderen svarte med status {response.status}. Sjekk at adressen er riktig.")
        busy = parse_busy(response.body, now - timedelta(days=1), now + timedelta(days=WINDOW_DAYS))
    except (outbound_http.OutboundRefused, outbound_http.OutboundFailed, FeedError) as error:
        db.session.execute(
            sa.update(DemoHost)
            .where(DemoHost.user_id == user_id)
            .values(feed_error=error.message[:300], feed_error_at=now, feed_lease_until=None)
            .execution_options(synchronize_session=False)
        )
        db.session.commit()
        log.warning("calendar feed failed", extra={"event": "calendar_feed_failed", "user_id": str(user_id)})
        return False
    db.session.execute(sa.delete(HostBusy).where(HostBusy.user_id == user_id))
    if busy:
        db.session.execute(
            sa.insert(HostBusy),
            [{"id": uuid.uuid4(), "user_id": user_id, "starts_at": start, "ends_at": end} for start, end in busy],
        )
    db.session.execute(
        sa.update(DemoHost)
        .where(DemoHost.user_id == user_id)
        .values(feed_fetched_at=now, feed_error=None, feed_error_at=None, feed_lease_until=None)
        .execution_options(synchronize_session=False)
    )
    db.session.commit()
    log.info("calendar feed read", extra={"event": "calendar_feed_read", "user_id": str(user_id), "count": len(busy)})
    return True


def fetch_due_feeds(now: datetime | None = None) -> int:
    """The worker's round: every feed not read for 5 minutes, each under a lease. Returns how many were read."""
    now = now or utcnow()
    read = 0
    for user_id in due_feeds(now):
        if _claim(user_id, now):
            read += fetch_feed(user_id, now)
    return read
