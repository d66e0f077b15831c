"""Security headers and cookies on every response, and pages the Content-Security-Policy can allow as they are."""

import re
from html.parser import HTMLParser

import pytest
from helpers.booking import VALID_BOOKING, book, csrf_token, make_lead
from helpers.paths import PROJECT_ROOT
from helpers.staff import log_in

from meander_site.config import Config
from meander_site.core.security import CONTENT_SECURITY_POLICY

TEMPLATES = PROJECT_ROOT / "templates"
HSTS = "max-age=31536000; includeSubDomains"
BASELINE = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
}


def assert_security_headers(response, referrer_policy="strict-origin-when-cross-origin"):
    for name, value in BASELINE.items():
        assert response.headers.get(name) == value, f"{name} on {response.request.path}"
    assert response.headers["Referrer-Policy"] == referrer_policy
    assert "camera=()" in response.headers["Permissions-Policy"]


def test_the_policy_allows_nothing_inline_and_no_framing():
    directives = dict(directive.split(" ", 1) for directive in CONTENT_SECURITY_POLICY.split("; "))
    assert directives["script-src"] == "'self'"
    assert directives["style-src"] == "'self'"
    assert directives["frame-ancestors"] == "'none'"
    assert directives["object-src"] == "'none'"
    assert "unsafe" not in CONTENT_SECURITY_POLICY


@pytest.mark.parametrize(
    "path",
    [
        "/",
        "/demo",
        "/demo/mottatt",
        "/login",
        "/healthz",
        "/readyz",
        "/static/css/site.css",
        "/static/vendor/htmx-2.0.11.min.js",
        "/finnes-ikke",
        "/confirm/finnes-ikke",
    ],
)
def test_public_responses_carry_the_headers(client, path):
    assert_security_headers(client.get(path))


def test_booking_answers_carry_the_headers(client):
    invalid = client.post("/demo", data={"csrf_token": csrf_token(client)}, headers={"HX-Request": "true"})
    assert invalid.status_code == 422
    assert_security_headers(invalid)

    stale = client.post("/demo", data={**VALID_BOOKING, "csrf_token": "stale"})
    assert stale.status_code == 400
    assert_security_headers(stale)

    booked = book(client)
    assert booked.status_code == 303
    assert_security_headers(booked)


def test_the_confirmation_page_keeps_no_referrer(client):
    location = book(client).headers["Location"]

    page = client.get(location)

    assert page.status_code == 200
    assert_security_headers(page, referrer_policy="no-referrer")
    assert page.headers["Cache-Control"] == "no-store"


def test_a_rate_limited_answer_carries_the_headers(client):
    for _ in range(5):
        assert book(client).status_code == 303

    refused = book(client)

    assert refused.status_code == 429
    assert_security_headers(refused)


def test_staff_pages_and_fragments_carry_the_headers(app, staff_client, token):
    lead = make_lead(app)
    htmx = {"HX-Request": "true", "X-CSRFToken": token}
    responses = [
        staff_client.get("/pipeline"),
        staff_client.get("/pipeline/columns/new", headers={"HX-Request": "true"}),
        staff_client.get(f"/pipeline/leads/{lead['id']}"),
        staff_client.get("/pipeline/leads/new"),
        staff_client.get("/pipeline/leads.csv"),
        staff_client.post(f"/pipeline/leads/{lead['id']}/status", data={"status": "contacted"}, headers=htmx),
    ]
    for response in responses:
        assert response.status_code == 200, response.request.path
        assert_security_headers(response)


def test_hsts_only_when_the_site_url_is_https(make_app):
    https = make_app(SITE_URL="https://www.meander.no", SESSION_COOKIE_SECURE=True).test_client()
    plain = make_app(SITE_URL="http://127.0.0.1:5000").test_client()

    for path in ("/demo", "/static/css/site.css", "/finnes-ikke"):
        assert https.get(path).headers["Strict-Transport-Security"] == HSTS
        assert "Strict-Transport-Security" not in plain.get(path).headers


def test_hsts_follows_the_configured_url_not_the_request(make_app):
    client = make_app(SITE_URL="http://127.0.0.1:5000").test_client()

    response = client.get("/demo", base_url="https://www.meander.no", headers={"X-Forwarded-Proto": "https"})

    assert "Strict-Transport-Security" not in response.headers


# --- cookies ---------------------------------------------------------------------------------------


def set_cookies(response) -> dict[str, str]:
    return {header.split("=", 1)[0]: header for header in response.headers.getlist("Set-Cookie")}


def test_session_cookie_is_secure_httponly_and_lax_under_https(make_app):
    client = make_app(SITE_URL="https://www.meander.no", SESSION_COOKIE_SECURE=True).test_client()

    cookies = set_cookies(client.get("/demo"))

    # The CSRF token lives in the session: the session cookie is the only one.
    assert list(cookies) == ["session"]
    attributes = [part.strip().lower() for part in cookies["session"].split(";")]
    assert "secure" in attributes
    assert "httponly" in attributes
    assert "samesite=lax" in attributes


def test_signing_in_sets_only_the_session_cookie(client, staff_user):
    response = log_in(client, staff_user["email"], staff_user["password"])

    assert response.status_code == 303
    cookies = set_cookies(response)
    assert list(cookies) == ["session"]  # no remember-me cookie, no separate CSRF cookie
    assert "HttpOnly" in cookies["session"] and "SameSite=Lax" in cookies["session"]


@pytest.mark.parametrize(("site_url", "secure"), [("https://www.meander.no", True), ("http://127.0.0.1:5000", False)])
def test_cookie_security_follows_site_url(monkeypatch, site_url, secure):
    monkeypatch.setenv("SITE_URL", site_url)

    config = Config()

    assert config.SESSION_COOKIE_SECURE is secure
    assert config.REMEMBER_COOKIE_SECURE is secure
    assert config.SESSION_COOKIE_HTTPONLY is config.REMEMBER_COOKIE_HTTPONLY is True
    assert config.SESSION_COOKIE_SAMESITE == config.REMEMBER_COOKIE_SAMESITE == "Lax"


# --- nothing inline for the CSP to block -----------------------------------------------------------


class InlineCodeFinder(HTMLParser):
    """Collects what a CSP without 'unsafe-inline' / 'unsafe-eval' would block, or htmx would need eval for."""

    def __init__(self):
        super().__init__()
        self.problems = []

    def handle_starttag(self, tag, attrs):
        attributes = dict(attrs)
        if tag == "style":
            self.problems.append("<style> element")
        if tag == "script" and not attributes.get("src"):
            self.problems.append("<script> without src")
        for name, value in attrs:
            if name == "style":
                self.problems.append(f"style attribute on <{tag}>")
            elif re.fullmatch(r"on[a-z]+", name):
                self.problems.append(f"{name} handler on <{tag}>")
            elif name.startswith(("hx-on", "data-hx-on")):
                self.problems.append(f"{name} on <{tag}> (htmx evaluates it)")
            elif value and value.strip().lower().startswith(("javascript:", "js:")):
                self.problems.append(f"{name}={value!r} on <{tag}>")


def inline_code(html: str) -> list[str]:
    finder = InlineCodeFinder()
    finder.feed(html)
    return finder.problems


PAGE_TEMPLATES = sorted(path for path in TEMPLATES.rglob("*.html") if "mail" not in path.relative_to(TEMPLATES).parts)


def test_the_checker_sees_inline_code():
    assert len(inline_code('<p style="x" onclick="y"><style></style><script>1</script><a href="javascript:z">')) == 5


@pytest.mark.parametrize("template", PAGE_TEMPLATES, ids=lambda path: str(path.relative_to(TEMPLATES)))
def test_no_template_has_inline_script_or_style(template):
    assert inline_code(template.read_text()) == []


def test_rendered_pages_have_no_inline_script_or_style(app, client, staff_client):
    lead = make_lead(app)
    pages = [
        client.get("/demo"),
        client.post("/demo", data={"csrf_token": csrf_token(client)}),
        client.get("/login"),
        client.get("/finnes-ikke"),
        client.get(f"/confirm/{lead['masked_ref']}"),
        staff_client.get("/pipeline"),
        staff_client.get(f"/pipeline/leads/{lead['id']}"),
        staff_client.get("/pipeline/leads/new"),
    ]
    for page in pages:
        assert inline_code(page.get_data(as_text=True)) == [], page.request.path


def test_the_dev_mail_page_has_the_headers_and_nothing_inline(make_app, tmp_path):
    client = make_app(MAIL_SINK_DIR=str(tmp_path)).test_client()

    page = client.get("/dev/mail/")

    assert page.status_code == 200
    assert_security_headers(page)
    assert inline_code(page.get_data(as_text=True)) == []
