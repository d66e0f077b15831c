"""Property-based tests: random sessions against the site, through its HTTP interface only.

A hypothesis state machine books demos (valid, invalid and hostile: very long, arbitrary Unicode, NUL and
control characters, CR/LF, HTML/JS and SQL-looking text), rebooks with the same email in another case and
with whitespace around it, bursts from one address into the rate limit, moves leads on the board (forward,
backward, unknown statuses, lost with and without a reason) and reads every page that shows a lead. Each
request goes through the Flask test client with real CSRF tokens, on the real database and Redis of the
fixtures. After every step the invariants below must hold; a model of what the site was told predicts
each answer code.

- never a 5xx;
- one lead per normalized email, and exactly the emails the model saw accepted;
- booking_count of each lead == the submissions accepted for its email == its rows in `bookings`;
- the lead holds the latest accepted submission's contact fields;
- the status history only moves forward (`leads.can_move`) and chains from «new» to the lead's status;
- the board's counts (kept by triggers) match the leads;
- masked_ref is set once: every rebooking redirects to the same reference, and the row never changes;
- nothing unescaped reaches a page: no element or event-handler attribute that the site did not write
  itself, no raw payload; a 422 (and a 429) shows what was typed, escaped; CSV cells cannot be formulas.

A third property walks the app's url_map: every route with each of its methods, signed in and not, with
hostile text in every query parameter and form field the site reads (found in the source and in the form
classes, so a new route or field is covered without editing the test). Never a 5xx, nothing raw.

A body over MAX_CONTENT_LENGTH (a hostile text can be 70 KB once percent-encoded) is a 413, stored nowhere.

A second property sends any text (NUL and other controls always among it) in each place a request
carries free text: a confirmation reference, the board's search (board, poll, more cards, CSV), a move's
note, the login email. Never a 5xx; a note comes back escaped on the lead page.

With REDIS_URL, each test process claims a Redis database no concurrent run uses (conftest's redis_url):
another run's limiter.reset() or FLUSHDB on the same database would wipe the rate-limit counts a burst
relies on.

Runs are reproducible (derandomize, no example database). For a longer, random exploration:
MEANDER_PROPERTY_RANDOM=1 MEANDER_PROPERTY_EXAMPLES=300 pytest tests/core/test_properties.py
"""

import csv
import io
import itertools
import logging
import os
import re
import unicodedata
import uuid
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import quote, urlsplit
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa
from flask_wtf import FlaskForm
from helpers.booking import CSRF_INPUT, csrf_token, make_lead
from helpers.jobs import lose_queued_jobs
from helpers.staff import staff_csrf
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule, run_state_machine_as_test
from markupsafe import escape
from werkzeug.routing import Rule
from wtforms.fields.core import UnboundField

from meander_site.accounts.models import AuditEvent
from meander_site.extensions import db, limiter
from meander_site.leads.models import (
    CONTACT_FIELDS,
    MAX_NOTE_LENGTH,
    Booking,
    Lead,
    LeadStatusChange,
    LeadStatusCount,
    OrganizationSize,
)
from meander_site.leads.statuses import LOST_REASONS, LeadStatus, can_move
from meander_site.leads.validation import MAX_LENGTHS, MULTILINE_FIELDS, REQUIRED_FIELDS
from meander_site.reporting.csv_export import would_be_formula
from meander_site.reporting.exports import LEAD_HEADER

SETTINGS = settings(
    max_examples=int(os.environ.get("MEANDER_PROPERTY_EXAMPLES", "40")),
    stateful_step_count=25,
    deadline=None,
    derandomize=not os.environ.get("MEANDER_PROPERTY_RANDOM"),
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

HTMX = {"HX-Request": "true"}
STATUSES = LeadStatus.values()
TEXT_FIELDS = ("first_name", "last_name", "organization_name", "role_title", *sorted(MULTILINE_FIELDS))
BOOKING_LIMIT = 5  # BOOKING_RATE_LIMIT's default: 5 per hour per address

# --- what a prospect types ------------------------------------------------------------------------

# A small pool, so that independent bookings often share an email (a rebooking by chance).
EMAIL_LOCALS = ("kari", "ola.nordmann", "per-olav", "anne_b", "k.n+demo")
EMAIL_DOMAINS = ("lhl.no", "mental-helse.no", "bø.no", "eksempel.org")
VALID_EMAILS = tuple(f"{local}@{domain}" for local in EMAIL_LOCALS for domain in EMAIL_DOMAINS)
INVALID_EMAILS = (
    "ikke-en-adresse",
    "kari@",
    "@lhl.no",
    "kari@@lhl.no",
    "kari@lhl",
    "a..b@lhl.no",
    "æøå@lhl.no",
    "<script>alert(1)</script>@lhl.no",
    "'; DROP TABLE leads; --@lhl.no",
    "kari@lhl.no\r\nBcc: alle@eksempel.no",
    "kari\x00@lhl.no",
    "kari@lhl.no" + "o" * 260,
)
# Raw phone input -> what is stored (None: refused).
PHONES = {
    "912 34 567": "+4791234567",
    "+47 912 34 567": "+4791234567",
    "0047 22 22 22 22": "+4722222222",
    "+46 70 123 45 67": "+46701234567",
    "+47 123": None,
    "ring meg": None,
    "912 34 567\n": "+4791234567",
    "+47 912\r\n34 567": None,
}
SIZES = ("", *OrganizationSize.values())

NAMES = ("Kari", "Åse", "Øyvind", "Ærlig", "Zoë", "José", "محمد", "שרה", "李雷", "Siri 👩‍⚕️", "O'Brien", "Ngũgĩ")
ORGANIZATIONS = ("LHL Hjerneslag", "Mental Helse", "Kreftforeningen", "Røde Kors & Co", "Blå Kors «Sør»")

XSS_PAYLOADS = (
    "<script>alert(1)</script>",
    '"><img src=x onerror=alert(1)>',
    "'><svg/onload=alert(1)>",
    "</textarea><script>alert(2)</script>",
    "</title><script>alert(3)</script>",
    "<a href=javascript:alert(4)>klikk</a>",
    # A template that evaluated this would print «ssti49»; a number would be no marker, since the
    # board's poll timestamps carry microseconds that can hold any five digits.
    "{{ 'ssti' ~ 7*7 }}",
    "&lt;b&gt;allerede escapet&lt;/b&gt;",
)
OTHER_PAYLOADS = (
    "'; DROP TABLE leads; --",
    "1' OR '1'='1",
    'Robert"); DROP TABLE bookings;--',
    "%s%s%n%x",
    '=HYPERLINK("http://x.example")',
    "=cmd|' /C calc'!A0",
    "@SUM(A1:A9)",
    "-2+3",
    "+47 SUM(1)",
    "\u202eexe.txt\u202c",  # right-to-left override
    "مرحبا بكم שלום",
    "e\u0301\u0302\u0303\u0304\u0305 Z\u0351\u0352\u0353",  # combining marks
    "🙂👩‍👩‍👧‍👦🇳🇴",
    "\ufeffBOM\u200b\u200d",
)
CONTROLS = ("\x00", "\x07", "\x1b[31m", "\x7f", "\x85", "\r\n", "\n", "\r", "\t", "\u2028", "\x0b", "\x0c")
PAYLOADS = XSS_PAYLOADS + OTHER_PAYLOADS
# What must never appear raw in an HTML page (their escaped forms may).
RAW_MARKERS = ("<script>alert", "<img src=x", "<svg/onload", "<a href=javascript", "ssti49")

unicode_line = st.text(st.characters(blacklist_categories=("Cc", "Cs")), min_size=1, max_size=20).filter(str.strip)
multiline_text = st.text(st.characters(blacklist_categories=("Cc", "Cs")) | st.sampled_from("\n\r\t"), max_size=40)
long_text = st.builds(
    lambda pad, piece, count: pad + piece * count + pad,
    st.sampled_from(("", " ", "\n ")),
    st.sampled_from(("x", "ø", "🙂", "e\u0301", "<")),
    st.sampled_from((99, 100, 101, 199, 200, 201, 499, 500, 501, 999, 1000, 1001, 1999, 2000, 2001, 6000)),
)
hostile_text = st.one_of(
    st.sampled_from(PAYLOADS),
    st.builds(
        lambda a, control, b: a + control + b,
        st.sampled_from(("", *PAYLOADS)),
        st.sampled_from(("", *CONTROLS)),
        st.sampled_from(("", *PAYLOADS)),
    ),
    st.text(max_size=40),  # anything but surrogates: NUL, controls, emoji, unassigned code points
    long_text,
)


def decorated(email: str):
    """The same address as typed another time: another case, whitespace around it."""
    return st.builds(
        lambda case, before, after: before + case(email) + after,
        st.sampled_from((str.lower, str.upper, str.title, str.swapcase, lambda text: text)),
        st.sampled_from(("", " ", "\t", "  \n", "\u00a0")),
        st.sampled_from(("", " ", "\t", "\r\n", "\u3000")),
    )


@st.composite
def valid_submissions(draw, email: str | None = None):
    email = email or draw(st.sampled_from(VALID_EMAILS))
    return {
        "first_name": draw(st.sampled_from(NAMES) | unicode_line),
        "last_name": draw(st.sampled_from(("Nordmann", "Hansen", "Ødegård", "Lie-Ås")) | unicode_line),
        "email": draw(decorated(email)),
        "phone": draw(st.sampled_from(("", *(raw for raw, stored in PHONES.items() if stored))) | st.none()),
        "organization_name": draw(st.sampled_from(ORGANIZATIONS) | unicode_line),
        "role_title": draw(st.sampled_from(("Koordinator", "IT-ansvarlig", "Daglig leder")) | unicode_line),
        "organization_size": draw(st.sampled_from(SIZES) | st.none()),
        "current_solution": draw(st.none() | multiline_text),
        "preferred_demo_timing": draw(st.none() | multiline_text),
        "notes": draw(st.none() | multiline_text),
    }


@st.composite
def invalid_submissions(draw):
    """A valid submission with one thing wrong."""
    submission = draw(valid_submissions())
    fault = draw(st.sampled_from(("missing", "email", "too_long", "line_break", "control", "phone", "size")))
    if fault == "missing":
        submission[draw(st.sampled_from(REQUIRED_FIELDS))] = draw(st.sampled_from((None, "", "   ", "\t\n")))
    elif fault == "email":
        submission["email"] = draw(st.sampled_from(INVALID_EMAILS))
    elif fault == "too_long":
        field = draw(st.sampled_from(TEXT_FIELDS))
        submission[field] = " " + draw(st.sampled_from(("x", "å", "🙂"))) * (MAX_LENGTHS[field] + 1) + " "
    elif fault == "line_break":
        field = draw(st.sampled_from(("first_name", "last_name", "organization_name", "role_title")))
        line_break = draw(st.sampled_from(("\r\n", "\n", "\r", "\u2028", "\u2029")))
        submission[field] = "Kari" + line_break + "Bcc: alle@eksempel.no"
    elif fault == "control":
        field = draw(st.sampled_from(TEXT_FIELDS))
        submission[field] = "Kari" + draw(st.sampled_from(("\x00", "\x07", "\x1b", "\x7f", "\x85"))) + "Nordmann"
    elif fault == "phone":
        submission["phone"] = draw(st.sampled_from([raw for raw, stored in PHONES.items() if stored is None]))
    else:
        submission["organization_size"] = draw(st.sampled_from(("huge", "51 - 200", "<script>alert(1)</script>")))
    return submission


# --- the oracle: what the site must do with a submission -------------------------------------------


def text_field_ok(field: str, raw: str | None) -> bool:
    """The README's rules: required fields, lengths, no line breaks in single-line fields, no controls."""
    text = raw.strip() if isinstance(raw, str) else ""
    if not text:
        return field not in REQUIRED_FIELDS
    multiline = field in MULTILINE_FIELDS
    allowed = "\n\r\t\u2028\u2029" if multiline else ""
    for position, character in enumerate(text):
        if character in allowed:
            continue
        if character in "\r\n\u2028\u2029" or unicodedata.category(character) in ("Cc", "Cs"):
            return False
        if character in BIDI_AND_BOM or (
            not multiline and unicodedata.category(character) == "Cf" and not joins_emoji(text, position)
        ):
            return False
    return len(text) <= MAX_LENGTHS[field]


# Invisible characters refused in every field (bidi embeddings, overrides, isolates; the byte-order mark); other
# format characters (Cf) are refused in single-line fields, except a joiner between two emoji.
BIDI_AND_BOM = {chr(code) for code in (*range(0x202A, 0x202F), *range(0x2066, 0x206A), 0xFEFF)}


def joins_emoji(text: str, position: int) -> bool:
    if text[position] != "\u200d":
        return False
    before = position - 1
    while before >= 0 and (text[before] == "\ufe0f" or 0x1F3FB <= ord(text[before]) <= 0x1F3FF):
        before -= 1
    after = position + 1
    return (
        before >= 0
        and after < len(text)
        and all(unicodedata.category(text[index]) == "So" for index in (before, after))
    )


def normalized_email(raw: str) -> str:
    return raw.strip().lower()


def expected_details(submission: dict) -> dict | None:
    """What the lead will hold after this submission, or None when the site must refuse it (422)."""
    if not all(text_field_ok(field, submission.get(field)) for field in TEXT_FIELDS):
        return None
    email = normalized_email(submission.get("email") or "")
    if email not in VALID_EMAILS:
        assert submission.get("email") in INVALID_EMAILS or not email, f"oracle has no verdict on {email!r}"
        return None
    phone = (submission.get("phone") or "").strip()
    if phone and PHONES[submission["phone"]] is None:
        return None
    size = (submission.get("organization_size") or "").strip()
    if size and size not in OrganizationSize.values():
        return None
    details = {field: (submission.get(field) or "").strip() or None for field in CONTACT_FIELDS}
    details.update(email=email, phone=PHONES[submission["phone"]] if phone else None)
    return details


def expected_move(current: str, form: dict) -> int | None:
    """The answer code a move must get (None: it succeeds), in the order the view checks."""
    target = form.get("status")
    if target not in STATUSES:
        return 422
    reason = (form.get("reason") or "").strip() or None
    note = (form.get("note") or "").strip() or None
    if target == "lost" and reason not in LOST_REASONS:
        return 422
    if note and (len(note) > MAX_NOTE_LENGTH or has_controls(note) or any(c in BIDI_AND_BOM for c in note)):
        return 422  # a note with control characters is refused like a multi-line contact field
    if target == "demo_scheduled" and not (form.get("demo_at") and form.get("demo_location")):
        return 422  # a move to «Demo avtalt» carries its demo
    if target == "converted" and not (form.get("deal_value") or "").isdigit():
        return 422  # a move to «Kunde» carries the agreed annual value
    if not can_move(current, target):
        return 409
    return None


# --- reading pages --------------------------------------------------------------------------------


class PageAudit(HTMLParser):
    """Everything in a page that could run script, and the value each form control shows."""

    FOREIGN_TAGS = {"img", "svg", "iframe", "object", "embed", "math", "video", "audio", "base", "frame"}

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.problems: list[str] = []
        self.values: dict[str, str] = {}

    def handle_starttag(self, tag, attrs):
        attributes = dict(attrs)
        # The report draws its own charts as <svg class="chart">; any other foreign element came from input.
        own_chart = tag == "svg" and attributes.get("class") == "chart"
        if tag in self.FOREIGN_TAGS and not own_chart:
            self.problems.append(f"<{tag}> element {attrs}")
        if tag == "script" and not attributes.get("src"):
            self.problems.append("inline <script>")
        for name, value in attrs:
            if name.startswith("on"):
                self.problems.append(f"event handler attribute {name}={value!r} on <{tag}>")
            if name in ("href", "src", "action", "formaction") and (value or "").strip().lower().startswith(
                ("javascript:", "data:", "vbscript:")
            ):
                self.problems.append(f"{name}={value!r} on <{tag}>")
        if tag == "input" and attributes.get("name"):
            self.values.setdefault(attributes["name"], attributes.get("value") or "")

    handle_startendtag = handle_starttag


def audit(response) -> PageAudit | None:
    """Never a 5xx; an HTML page carries nothing the site did not write itself."""
    assert response.status_code < 500, f"{response.request.method} {response.request.path}: {response.status_code}"
    if not response.content_type.startswith("text/html"):
        return None
    body = response.get_data(as_text=True)
    page = PageAudit()
    page.feed(body)
    page.close()
    raw = [marker for marker in RAW_MARKERS if marker in body]
    assert not page.problems and not raw, f"unescaped content in {response.request.path}: {page.problems} {raw}"
    return page


def redirect_target(response) -> str | None:
    """Where an accepted post sends the browser: 303 Location, or HX-Redirect for htmx."""
    if response.status_code == 303:
        return urlsplit(response.headers["Location"]).path
    if response.status_code == 200 and "HX-Redirect" in response.headers:
        return urlsplit(response.headers["HX-Redirect"]).path
    return None


def assert_shows_typed(page: PageAudit, submission: dict, response):
    """The form comes back with what was typed in its single-line fields, escaped (the parser unescapes)."""
    body = response.get_data(as_text=True)
    for field in ("first_name", "organization_name", "email"):
        typed = submission.get(field)
        if typed is not None:
            assert page.values.get(field) == typed, (
                f"{response.status_code} page shows {field}={page.values.get(field)!r}, typed {typed!r}"
            )
            assert f'value="{escape(typed)}"' in body


COUNT = re.compile(
    r'<span id="count-([a-z_]+)" class="count"[^>]*><span class="visually-hidden">[^<]*</span>(\d+)</span>'
)


def neutralized(value: str) -> str:
    return "'" + value if would_be_formula(value) else value


class LimiterTrouble(logging.Handler):
    """Counts Flask-Limiter's warnings: Redis unreachable (falling back to memory), errors swallowed."""

    def __init__(self):
        super().__init__(logging.WARNING)
        self.count = 0

    def emit(self, record):
        self.count += 1


LIMITER_TROUBLE = LimiterTrouble()


def too_big(app, response) -> bool:
    """The request's body is over MAX_CONTENT_LENGTH: refused with a 413 before anything reads it."""
    return (response.request.content_length or 0) > app.config["MAX_CONTENT_LENGTH"]


def has_controls(text: str | None) -> bool:
    """Control characters other than tab and line breaks (NUL among them)."""
    return any(unicodedata.category(c) in ("Cc", "Cs") and c not in "\n\r\t" for c in text or "")


# Addresses never repeat within a run, so only the bursts meet the rate limit.
_addresses = itertools.count(1)


def fresh_address() -> str:
    n = next(_addresses)
    if n % 5 == 0:
        return f"2001:db8::{n:x}"
    return f"10.{(n >> 16) & 255}.{(n >> 8) & 255}.{n & 255}"


# --- the state machine ----------------------------------------------------------------------------


class KnownLead:
    def __init__(self, lead_id: uuid.UUID, masked_ref: str):
        self.id = lead_id
        self.ref = masked_ref
        self.accepted = 0
        self.status = "new"
        self.history: list[tuple] = []  # (from, to, reason, note)
        self.details: dict = {}
        self.ip: str | None = None
        self.worked = False  # staff moved it: a public booking no longer overwrites its details


class SiteMachine(RuleBasedStateMachine):
    # Set per test function (the fixtures are function-scoped); the state is rebuilt per example.
    app = None
    staff = None
    staff_token = None

    def __init__(self):
        super().__init__()
        with self.app.app_context():
            for model in (LeadStatusChange, Booking, Lead, AuditEvent):
                db.session.execute(sa.delete(model))
            db.session.commit()
            limiter.reset()
            lose_queued_jobs()
        limiter._storage_dead = False  # as the app fixture does: start on Redis, not on a memory fallback
        self.limiter_trouble_before = LIMITER_TROUBLE.count
        self.public = self.app.test_client()
        self.public_token = csrf_token(self.public)
        self.leads: dict[str, KnownLead] = {}  # normalized email -> what the site was told

    # --- helpers ---

    def post_booking(self, submission: dict, address: str, htmx: bool = False, **extra):
        form = {key: value for key, value in submission.items() if value is not None}
        form["csrf_token"] = self.public_token
        form.update(extra)
        return self.public.post(
            "/demo", data=form, headers=HTMX if htmx else {}, environ_overrides={"REMOTE_ADDR": address}
        )

    def submit(self, submission: dict, address: str, htmx: bool) -> bool:
        """Post one submission that the limit lets through; check the answer against the oracle. True: accepted."""
        response = self.post_booking(submission, address, htmx)
        page = audit(response)
        event(f"booking answered {response.status_code}")
        if too_big(self.app, response):
            assert response.status_code == 413, response.status_code
            return False
        details = expected_details(submission)
        if details is None:
            assert response.status_code == 422, (response.status_code, submission)
            assert_shows_typed(page, submission, response)
            assert 'class="error"' in response.get_data(as_text=True)
            return False
        self.accepted(details, redirect_target(response), address)
        return True

    def accepted(self, details: dict, target: str | None, address: str):
        """A first booking goes to its lead's page; a rebooking to the neutral one, and changes the lead's
        details only while the lead is new (no staff edits happen here)."""
        known = self.leads.get(details["email"])
        if known is not None:
            assert target == "/demo/mottatt", ("a rebooking reveals nothing stored", target)
        if known is None:
            assert target and target.startswith("/confirm/"), (target, details)
            masked_ref = target.removeprefix("/confirm/")
            with self.app.app_context():
                lead_id, email = db.session.execute(
                    sa.select(Lead.id, Lead.email).where(Lead.masked_ref == masked_ref)
                ).one()
            assert email == details["email"]
            assert masked_ref not in {other.ref for other in self.leads.values()}
            known = self.leads[details["email"]] = KnownLead(lead_id, masked_ref)
        known.accepted += 1
        if known.status == "new" and not known.worked:
            known.details = details
            known.ip = address
        if known.status == "lost":
            # A booking from a lost lead's address starts a new pass in «Ny» (leads/passes.py).
            known.history.append(("lost", "new", "reopened", None))
            known.status = "new"

    def staff_get(self, path: str, **kwargs):
        response = self.staff.get(path, **kwargs)
        return response, audit(response)

    # --- bookings ---

    @rule(submission=valid_submissions(), htmx=st.booleans())
    def book(self, submission, htmx):
        self.submit(submission, fresh_address(), htmx)

    @rule(submission=invalid_submissions(), htmx=st.booleans())
    def book_invalid(self, submission, htmx):
        self.submit(submission, fresh_address(), htmx)

    @rule(
        submission=valid_submissions(),
        hostile=st.dictionaries(st.sampled_from(TEXT_FIELDS), hostile_text, min_size=1, max_size=3),
        htmx=st.booleans(),
    )
    def book_hostile(self, submission, hostile, htmx):
        self.submit({**submission, **hostile}, fresh_address(), htmx)

    @precondition(lambda self: self.leads)
    @rule(data=st.data(), htmx=st.booleans())
    def rebook(self, data, htmx):
        """The same prospect again, typing the address another way and changing what they wrote."""
        email = data.draw(st.sampled_from(sorted(self.leads)))
        submission = data.draw(valid_submissions(email=email))
        self.submit(submission, fresh_address(), htmx)

    @rule(data=st.data(), over=st.integers(1, 2))
    def burst_from_one_address(self, data, over):
        """Five bookings that pass validation from one address count (invalid ones between do not); the next get
        429, keep what was typed, store nothing."""
        address = fresh_address()
        accepted = 0
        for _ in range(3 * BOOKING_LIMIT):  # well under the 30 POSTs of any kind an hour
            if accepted == BOOKING_LIMIT:
                break
            if data.draw(st.booleans()):
                self.submit(data.draw(invalid_submissions()), address, htmx=False)
            accepted += self.submit(data.draw(valid_submissions()), address, htmx=False)
        if accepted < BOOKING_LIMIT:
            return
        for _ in range(over):
            submission = data.draw(valid_submissions())
            response = self.post_booking(submission, address, htmx=data.draw(st.booleans()))
            page = audit(response)
            if response.status_code != 429 and LIMITER_TROUBLE.count > self.limiter_trouble_before:
                # Documented fail-open: Redis did not answer within its timeout (a loaded machine), so the
                # limiter counted in memory from zero, or swallowed the error. The post was an ordinary one.
                event("the rate limiter failed open")
                self.accepted(expected_details(submission), redirect_target(response), address)
                continue
            assert response.status_code == 429, f"post {BOOKING_LIMIT + 1} from one address: {response.status_code}"
            assert int(response.headers["Retry-After"]) >= 1
            assert_shows_typed(page, submission, response)

    @rule(
        submission=valid_submissions() | invalid_submissions(),
        trick=st.sampled_from(("no_token", "bad_token", "long_token", "honeypot")),
        htmx=st.booleans(),
    )
    def post_that_stores_nothing(self, submission, trick, htmx):
        """A stale or forged CSRF token gets 400 and the form back as typed; a filled honeypot a fake thank-you."""
        if trick == "honeypot":
            response = self.post_booking(submission, fresh_address(), htmx, website_url="http://spam.example")
            audit(response)
            assert redirect_target(response) == "/demo/mottatt"
            return
        token = {"no_token": "", "bad_token": "feil", "long_token": "x" * 300}[trick]
        response = self.post_booking(submission, fresh_address(), htmx, csrf_token=token)
        page = audit(response)
        assert response.status_code == 400
        assert_shows_typed(page, submission, response)

    # --- staff moves ---

    def post_move(self, lead_id, form: dict, htmx: bool, token_in_form: bool):
        data = {key: value for key, value in form.items() if value is not None}
        headers = dict(HTMX) if htmx else {}
        if token_in_form:
            data["csrf_token"] = self.staff_token
        else:
            headers["X-CSRFToken"] = self.staff_token
        return self.staff.post(f"/pipeline/leads/{lead_id}/status", data=data, headers=headers)

    @precondition(lambda self: self.leads)
    @rule(
        data=st.data(),
        status=st.sampled_from(STATUSES)
        | st.sampled_from(("", "NEW", "won", "lost ", "<script>alert(1)</script>"))
        | st.none(),
        reason=st.sampled_from(sorted(LOST_REASONS))
        | st.sampled_from(("", " price ", "bogus", '"><img src=x onerror=alert(1)>'))
        | st.none(),
        note=st.none() | st.sampled_from(("", "Ringte tirsdag.")) | hostile_text,
        htmx=st.booleans(),
        token_in_form=st.booleans(),
    )
    def move(self, data, status, reason, note, htmx, token_in_form):
        known = self.leads[data.draw(st.sampled_from(sorted(self.leads)))]
        self.do_move(known, {"status": status, "reason": reason, "note": note}, htmx, token_in_form)

    @precondition(lambda self: self.leads)
    @rule(data=st.data(), status=st.sampled_from(STATUSES), reason=st.sampled_from(sorted(LOST_REASONS)))
    def move_well_formed(self, data, status, reason):
        """A move with a real status and, for «lost», a real reason: forward ones succeed, backward ones 409."""
        known = self.leads[data.draw(st.sampled_from(sorted(self.leads)))]
        form = {"status": status, "reason": reason, "deal_value": "48000"}
        self.do_move(known, form, htmx=data.draw(st.booleans()), token_in_form=False)

    def do_move(self, known: KnownLead, form: dict, htmx: bool, token_in_form: bool):
        refusal = expected_move(known.status, form)
        event(f"move {known.status} -> {form.get('status')!r}: {refusal or 'moved'}")
        response = self.post_move(known.id, form, htmx, token_in_form)
        audit(response)
        if refusal is not None:
            assert response.status_code == refusal, (response.status_code, known.status, form)
            return
        if htmx:
            assert response.status_code == 200, (response.status_code, known.status, form)
        else:
            assert response.status_code == 303, (response.status_code, known.status, form)
            self.staff_get(response.headers["Location"])  # the board, with the flash message
        reason = ((form.get("reason") or "").strip() or None) if form["status"] == "lost" else None
        note = (form.get("note") or "").strip() or None
        known.history.append((known.status, form["status"], reason, note))
        known.status = form["status"]
        known.worked = True

    @precondition(lambda self: any(can_move(known.status, "lost") for known in self.leads.values()))
    @rule(data=st.data(), note=st.none() | st.sampled_from(("Ringte tirsdag.", *XSS_PAYLOADS)))
    def advance(self, data, note):
        """A move the pipeline allows (so leads get deep into it), with a note now and then."""
        open_leads = sorted(email for email, known in self.leads.items() if can_move(known.status, "lost"))
        known = self.leads[data.draw(st.sampled_from(open_leads))]
        target = data.draw(st.sampled_from([status for status in STATUSES if can_move(known.status, status)]))
        form = {"status": target, "reason": data.draw(st.sampled_from(sorted(LOST_REASONS))), "note": note}
        form["deal_value"] = "48000"  # a move to «Kunde» carries the agreed annual value
        if target == "demo_scheduled":
            # A move to «Demo avtalt» carries its demo (scheduling.validate_demo): a week ahead, Oslo time.
            in_a_week = (datetime.now(UTC) + timedelta(days=7)).astimezone(ZoneInfo("Europe/Oslo"))
            form.update(demo_at=in_a_week.strftime("%Y-%m-%dT10:00"), demo_location="https://meet.meander.no/demo")
        self.do_move(known, form, htmx=data.draw(st.booleans()), token_in_form=data.draw(st.booleans()))

    # --- reads ---

    @precondition(lambda self: self.leads)
    @rule(data=st.data())
    def read_confirmation(self, data):
        known = self.leads[data.draw(st.sampled_from(sorted(self.leads)))]
        response = self.public.get(f"/confirm/{known.ref}")
        audit(response)
        assert response.status_code == 200
        body = response.get_data(as_text=True)
        assert str(escape(known.details["first_name"])) in body
        assert str(escape(known.details["organization_name"])) in body
        assert response.headers["Cache-Control"] == "no-store"

    @rule(
        q=st.sampled_from(VALID_EMAILS) | st.sampled_from(NAMES) | hostile_text,
        filtered=st.booleans(),
        source=st.sampled_from(("", "website", "phone", "bogus")),
        size=st.sampled_from(("", "51-200", "<b>")),
        period=st.sampled_from(("", "7d", "365d", "forever")),
        htmx=st.booleans(),
    )
    def read_board(self, q, filtered, source, size, period, htmx):
        query = {"q": q, "source": source, "organization_size": size, "period": period} if filtered else {}
        query = {key: value for key, value in query.items() if value}
        response, _ = self.staff_get("/pipeline", query_string=query, headers=HTMX if htmx else {})
        if response.status_code in (400, 422) and has_controls(query.get("q")):
            return  # refusing a search with NUL or other control characters is fine
        assert response.status_code == 200
        counts = {status: int(count) for status, count in COUNT.findall(response.get_data(as_text=True))}
        assert set(counts) == set(STATUSES)
        if not query:
            assert counts == self.status_counts()
        if filtered and q in self.leads and not size and source != "phone":  # a search for a lead's email finds it
            known = self.leads[q]
            assert counts[known.status] >= 1 and f'data-lead-id="{known.id}"' in response.get_data(as_text=True)

    @precondition(lambda self: self.leads)
    @rule(data=st.data())
    def read_lead_page(self, data):
        known = self.leads[data.draw(st.sampled_from(sorted(self.leads)))]
        response, _ = self.staff_get(f"/pipeline/leads/{known.id}")
        assert response.status_code == 200
        body = response.get_data(as_text=True)
        assert f"<code>{known.ref}</code>" in body
        assert f"<dt>Bookinger</dt><dd>{known.accepted}</dd>" in body
        for field in TEXT_FIELDS:  # what was typed is on the page, escaped (hostile payloads included)
            value = known.details[field]
            assert value is None or str(escape(value)) in body, (field, value)
        for _, _, _, note in known.history:
            assert note is None or str(escape(note)) in body

    @rule(
        which=st.sampled_from(("confirmation", "lead_page", "move", "more_cards")),
        text=st.text(max_size=70) | st.sampled_from(PAYLOADS) | st.just("x" * 100) | st.uuids().map(str),
        status=st.sampled_from(STATUSES) | st.just("bogus"),
    )
    def odd_urls(self, which, text, status):
        """Unknown references, lead ids, columns and cursors: 404 (or an empty page), never a 5xx."""
        known_ids = {str(known.id) for known in self.leads.values()}
        # An encoded slash makes "//" in the path: Werkzeug answers 308 to the merged path first.
        if which == "confirmation":
            response = self.public.get("/confirm/" + quote(text, safe=""), follow_redirects=True)
            audit(response)
            assert (
                response.status_code == 404
                or text in {known.ref for known in self.leads.values()}
                or (response.status_code == 400 and has_controls(text))
            )
        elif which == "lead_page":
            response, _ = self.staff_get("/pipeline/leads/" + quote(text, safe=""), follow_redirects=True)
            assert response.status_code == 404 or text in known_ids
        elif which == "move":
            response = self.staff.post(
                "/pipeline/leads/" + quote(text, safe="") + "/status",
                data={"status": status, "reason": "price"},
                headers={**HTMX, "X-CSRFToken": self.staff_token},
                follow_redirects=True,
            )
            audit(response)
            assert response.status_code == 404 or text in known_ids
        else:
            response, _ = self.staff_get(f"/pipeline/columns/{status}", query_string={"cursor": text})
            assert response.status_code == 404 if status == "bogus" else response.status_code in (200, 400)

    @precondition(lambda self: self.leads)
    @rule()
    def read_csv(self):
        response = self.staff.get("/pipeline/leads.csv")
        audit(response)
        assert response.status_code == 200 and response.content_type.startswith("text/csv")
        text = response.get_data(as_text=True)
        assert text.startswith("\ufeff")
        header, *rows = list(csv.reader(io.StringIO(text[1:], newline=""), delimiter=";"))
        assert header == LEAD_HEADER
        assert len(rows) == len(self.leads)
        exported = {row[LEAD_HEADER.index("Referanse")]: dict(zip(LEAD_HEADER, row, strict=True)) for row in rows}
        for email, known in self.leads.items():
            row = exported[neutralized(known.ref)]
            assert row["E-post"] == neutralized(email)
            assert row["Bookinger"] == str(known.accepted)
            assert row["Status"] == LeadStatus(known.status).label
        for row in rows:
            for cell in row:
                assert not would_be_formula(cell), f"a CSV cell a spreadsheet runs: {cell!r}"

    # --- invariants ---

    def status_counts(self) -> dict[str, int]:
        counts = dict.fromkeys(STATUSES, 0)
        for known in self.leads.values():
            counts[known.status] += 1
        return counts

    @invariant()
    def database_agrees_with_the_model(self):
        with self.app.app_context():
            rows = db.session.execute(sa.select(Lead)).scalars().all()
            booking_rows = dict(
                db.session.execute(sa.select(Booking.lead_id, sa.func.count()).group_by(Booking.lead_id)).all()
            )
            changes = db.session.execute(
                sa.select(
                    LeadStatusChange.lead_id,
                    LeadStatusChange.from_status,
                    LeadStatusChange.to_status,
                    LeadStatusChange.reason,
                    LeadStatusChange.note,
                ).order_by(LeadStatusChange.changed_at)
            ).all()
            kept_counts = dict(db.session.execute(sa.select(LeadStatusCount.status, LeadStatusCount.lead_count)).all())

        # One lead per normalized email, and exactly the emails accepted.
        emails = [normalized_email(lead.email) for lead in rows]
        assert len(set(emails)) == len(rows), f"two leads share a normalized email: {sorted(emails)}"
        assert set(emails) == set(self.leads)
        assert sum(booking_rows.values()) == sum(known.accepted for known in self.leads.values())

        history: dict[uuid.UUID, list[tuple]] = {}
        for lead_id, *change in changes:
            history.setdefault(lead_id, []).append(tuple(change))

        for lead in rows:
            known = self.leads[normalized_email(lead.email)]
            assert lead.id == known.id
            assert lead.masked_ref == known.ref, "masked_ref changed"
            assert lead.booking_count == known.accepted == booking_rows.get(lead.id, 0), (
                f"{lead.email}: booking_count {lead.booking_count}, accepted {known.accepted}, "
                f"booking rows {booking_rows.get(lead.id, 0)}"
            )
            assert {field: getattr(lead, field) for field in CONTACT_FIELDS} == known.details
            assert lead.ip_address == known.ip
            assert lead.status == known.status
            moves = history.get(lead.id, [])
            assert moves == known.history
            current = "new"
            for from_status, to_status, _, _ in moves:
                reopened = (from_status, to_status) == ("lost", "new")  # a new pass (leads/passes.py)
                assert from_status == current and (can_move(from_status, to_status) or reopened), moves
                current = to_status
            assert current == lead.status

        assert {status: kept_counts.get(status, 0) for status in STATUSES} == self.status_counts()


@pytest.mark.slow
def test_random_sessions_keep_every_invariant(app, staff_client):
    """Bookings, rebookings, bursts, moves and reads in random order; the invariants after each step."""

    class Site(SiteMachine):
        pass

    Site.app, Site.staff, Site.staff_token = app, staff_client, staff_csrf(staff_client)
    limiter_log = logging.getLogger("flask-limiter")
    limiter_log.addHandler(LIMITER_TROUBLE)
    try:
        run_state_machine_as_test(Site, settings=SETTINGS)
    finally:
        limiter_log.removeHandler(LIMITER_TROUBLE)


# --- one request at a time: any text wherever a request carries text ----------------------------------

FREE_TEXT = st.sampled_from(("\x00", "a\x00b", "ref\x00", *CONTROLS, *PAYLOADS)) | hostile_text
_note_leads = itertools.count(1)


@pytest.mark.parametrize(
    "where", ["confirmation_ref", "board_search", "board_poll", "csv_search", "cursor", "move_note", "login_email"]
)
def test_any_text_anywhere_is_answered_without_a_5xx_and_shown_escaped(app, staff_client, where):
    """NUL, controls, payloads and long text in each place a request carries text: never a 5xx, nothing raw."""
    token = staff_csrf(staff_client)
    public = app.test_client()

    def book_a_lead() -> uuid.UUID:
        email = f"notat{next(_note_leads)}@lhl.no"
        response = public.post(
            "/demo",
            data={
                "first_name": "Kari",
                "last_name": "Nordmann",
                "email": email,
                "organization_name": "LHL",
                "role_title": "Koordinator",
                "csrf_token": csrf_token(public),
            },
            environ_overrides={"REMOTE_ADDR": fresh_address()},
        )
        assert response.status_code == 303
        with app.app_context():
            return db.session.execute(sa.select(Lead.id).where(Lead.email == email)).scalar_one()

    @settings(SETTINGS, max_examples=15)
    @example(text="a\x00b")
    @given(text=FREE_TEXT)
    def check(text):
        with app.app_context():
            limiter.reset()
        if where == "confirmation_ref":
            response = public.get("/confirm/" + quote(text, safe=""), follow_redirects=True)
            audit(response)
            assert response.status_code == 404 or (response.status_code == 400 and has_controls(text))
        elif where in ("board_search", "board_poll", "cursor"):
            path = {"board_search": "/pipeline", "board_poll": "/pipeline/changes", "cursor": "/pipeline/columns/new"}
            query = {"q": text, "since": text, "cursor": text}
            response = staff_client.get(path[where], query_string=query, headers=HTMX)
            audit(response)
            assert response.status_code == 200 or (response.status_code in (400, 422) and has_controls(text))
        elif where == "csv_search":
            response = staff_client.get("/pipeline/leads.csv", query_string={"q": text})
            assert response.status_code < 500
            body = response.get_data(as_text=True)  # streamed: a failure shows up only while reading
            assert response.status_code != 200 or body.startswith("\ufeffId;")
        elif where == "move_note":
            lead_id = book_a_lead()
            response = staff_client.post(
                f"/pipeline/leads/{lead_id}/status",
                data={"status": "lost", "reason": "price", "note": text},
                headers={**HTMX, "X-CSRFToken": token},
            )
            audit(response)
            note = text.strip()
            if too_big(app, response):
                assert response.status_code == 413
                return
            if response.status_code in (400, 422) and (has_controls(note) or any(c in BIDI_AND_BOM for c in note)):
                return  # refusing a note with NUL, other controls or a bidi override is fine; storing it is too
            if len(note) > MAX_NOTE_LENGTH:
                assert response.status_code == 422
                return
            assert response.status_code == 200, response.status_code
            page = staff_client.get(f"/pipeline/leads/{lead_id}")
            audit(page)
            assert str(escape(note)) in page.get_data(as_text=True)
        else:
            login = app.test_client()
            form_token = CSRF_INPUT.search(login.get("/login").get_data(as_text=True)).group(1)
            response = login.post(
                "/login",
                data={"csrf_token": form_token, "email": text, "password": "feil-passord-123"},
                environ_overrides={"REMOTE_ADDR": fresh_address()},
            )
            audit(response)
            assert response.status_code in (401, 422, 400) or (response.status_code == 413 and too_big(app, response))

    check()


# --- timestamps at the edge of what a datetime holds ------------------------------------------------

EXTREME_MOMENTS = ("0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00", "0001-01-01T00:00:00-00:01")


@pytest.mark.parametrize("moment", EXTREME_MOMENTS)
def test_a_since_or_cursor_beyond_the_calendar_is_ignored_not_a_5xx(app, staff_client, moment):
    lead_id = uuid.UUID("00000000-0000-4000-8000-000000000001")

    poll = staff_client.get("/pipeline/changes", query_string={"since": moment}, headers=HTMX)
    more = staff_client.get("/pipeline/columns/new", query_string={"cursor": f"{moment}|{lead_id}"}, headers=HTMX)

    assert poll.status_code == 200
    assert more.status_code == 200


# --- every route, every parameter, hostile text -----------------------------------------------------


def parameter_names() -> list[str]:
    """Every query parameter or form field a view reads by name, found in the source (so a new one is
    covered without touching this test), and every field of every form class."""
    import meander_site

    # Lower-case names read with .get("…") anywhere (request.args, request.form, a raw mapping); a few more
    # than the views read only add hostile parameters.
    read_by_name = re.compile(r"""\.get\(\s*["']([a-z][a-z_]*)["']""")
    names = set()
    for source in Path(meander_site.__file__).parent.rglob("*.py"):
        names |= set(read_by_name.findall(source.read_text(encoding="utf-8")))
    forms = [FlaskForm]
    while forms:
        form = forms.pop()
        forms.extend(form.__subclasses__())
        names |= {name for name in dir(form) if isinstance(getattr(form, name, None), UnboundField)}
    return sorted(names - {"csrf_token"})


# Run last: after these the staff client is signed out, or the known lead is gone.
ENDS_THE_SESSION_OR_THE_LEAD = ("auth.logout", "pipeline.erase_lead")


def routes(app) -> list[tuple[Rule, str]]:
    """Every rule of the app's url_map with each method it answers (but static files)."""
    in_order = sorted(
        app.url_map.iter_rules(), key=lambda route: (route.endpoint in ENDS_THE_SESSION_OR_THE_LEAD, route.rule)
    )
    return [
        (route, method)
        for route in in_order
        if route.endpoint != "static"
        for method in sorted(route.methods - {"HEAD", "OPTIONS"})
    ]


ROUTE_ARGUMENT = re.compile(r"<(?:([a-z]+)(?:\([^)]*\))?:)?(\w+)>")


def hostile_path(route: Rule, draw, known: dict[str, list[str]]) -> str:
    """The rule's path with each argument a known value (a lead's id or ref, a status) or hostile text."""

    def argument(match: re.Match) -> str:
        converter, name = match.groups()
        if converter == "uuid":
            value = draw(st.sampled_from(known["uuid"]) | st.uuids().map(str))
        else:
            value = draw(st.sampled_from(known["text"]) | FREE_TEXT)
        return quote(value, safe="")

    return ROUTE_ARGUMENT.sub(argument, route.rule)


@pytest.mark.slow
def test_every_route_answers_hostile_text_in_every_parameter_without_a_5xx(app, staff_client):
    """Each route of the url_map, with each of its methods, signed in and not, plain and htmx: every query
    parameter and form field the site knows carries hostile text (or is left out). Never a 5xx, nothing raw."""
    names = parameter_names()
    assert {"q", "since", "cursor", "next", "email", "notes", "status", "reason", "note"} <= set(names)
    staff_token = staff_csrf(staff_client)
    public = app.test_client()
    public_token = csrf_token(public)
    lead = make_lead(app)
    known = {"uuid": [str(lead["id"])], "text": [lead["masked_ref"], *STATUSES]}
    edge_of_time = st.sampled_from([*EXTREME_MOMENTS, *(f"{moment}|{lead['id']}" for moment in EXTREME_MOMENTS)])
    # A path on this site with a control character in it, for the parameters that hold a path (`next`).
    local_path = st.sampled_from(CONTROLS).map(lambda control: f"/pipeline{control}x")
    hostile_parameters = st.fixed_dictionaries({}, optional=dict.fromkeys(names, FREE_TEXT | edge_of_time | local_path))
    every_route = routes(app)
    assert len(every_route) >= 15, every_route

    def check_route(route: Rule, method: str):
        @settings(SETTINGS, max_examples=5)
        @given(
            data=st.data(),
            query=hostile_parameters,
            form=hostile_parameters,
            signed_in=st.booleans(),
            htmx=st.booleans(),
        )
        def check(data, query, form, signed_in, htmx):
            client, token = (staff_client, staff_token) if signed_in else (public, public_token)
            headers = {"X-CSRFToken": token, **(HTMX if htmx else {})}
            response = client.open(
                hostile_path(route, data.draw, known),
                method=method,
                query_string=query,
                data={**form, "csrf_token": token} if method == "POST" else None,
                headers=headers,
                environ_overrides={"REMOTE_ADDR": fresh_address()},
            )
            response.get_data()  # a streamed body (the CSV) fails only while it is read
            event(f"{method} {route.rule}: {response.status_code}")
            assert response.status_code < 500, f"{method} {route.rule}: {response.status_code}"
            audit(response)

        check()

    for route, method in every_route:
        check_route(route, method)
