"""Staff sign-in: fresh sessions held on the server, local-only `next`, throttling, cookies, and the
login wall in front of every /pipeline route (plain and htmx)."""

import re
import uuid
from urllib.parse import parse_qs, urlsplit

import pytest
import sqlalchemy as sa
from helpers.booking import CSRF_INPUT, make_lead
from helpers.staff import STAFF_PASSWORD, log_in, staff_csrf
from helpers.waiting import run_together

from meander_site.accounts import users
from meander_site.accounts.models import StaffSession, User
from meander_site.accounts.views import WRONG_CREDENTIALS
from meander_site.extensions import db
from meander_site.leads.models import Lead, LeadStatusChange

THROTTLED = "For mange innloggingsforsøk"
ERROR_SUMMARY = re.compile(r'<div class="error-summary"[^>]*><p>(.*?)</p></div>', re.S)


def login_token(client, ip: str = "127.0.0.1") -> str:
    page = client.get("/login", environ_overrides={"REMOTE_ADDR": ip})
    return CSRF_INPUT.search(page.get_data(as_text=True)).group(1)


def sign_in(client, email: str, password: str, next_path: str | None = None, ip: str = "127.0.0.1"):
    """Fetch the login form, then post it, from `ip`; `next` properly URL-encoded."""
    token = login_token(client, ip)
    query = {"next": next_path} if next_path is not None else {}
    return client.post(
        "/login",
        query_string=query,
        data={"csrf_token": token, "email": email, "password": password},
        environ_overrides={"REMOTE_ADDR": ip},
    )


def session_data(app, client) -> dict:
    cookie = client.get_cookie("session")
    if cookie is None:
        return {}
    return app.session_interface.get_signing_serializer(app).loads(cookie.value)


def session_set_cookie(response) -> str:
    [header] = [value for value in response.headers.getlist("Set-Cookie") if value.startswith("session=")]
    return header


def staff_sessions(app, user_id) -> list[StaffSession]:
    with app.app_context():
        return list(db.session.execute(sa.select(StaffSession).where(StaffSession.user_id == user_id)).scalars())


def error_message(response) -> str:
    match = ERROR_SUMMARY.search(response.get_data(as_text=True))
    assert match, "the login page shows an error summary"
    return match.group(1)


# --- signing in ------------------------------------------------------------------------------------


def test_signing_in_redirects_to_next_with_a_fresh_session_held_on_the_server(app, client, staff_user):
    token_before = login_token(client)
    cookie_before = client.get_cookie("session").value
    assert "_user_id" not in session_data(app, client)

    response = client.post(
        "/login",
        query_string={"next": "/pipeline/leads/new"},
        data={"csrf_token": token_before, "email": staff_user["email"], "password": staff_user["password"]},
    )

    assert response.status_code == 303
    assert response.headers["Location"] == "/pipeline/leads/new"
    assert client.get_cookie("session").value != cookie_before
    [row] = staff_sessions(app, staff_user["id"])
    # The cookie carries the server-side session's random token, not the user's id.
    assert session_data(app, client)["_user_id"] == row.token
    assert row.token != str(staff_user["id"])
    with app.app_context():
        assert db.session.get(User, staff_user["id"]).last_login_at is not None
    assert client.get("/pipeline/leads/new").status_code == 200


def test_a_csrf_token_from_before_signing_in_is_refused_afterwards(client, staff_user):
    old_token = login_token(client)
    assert sign_in(client, staff_user["email"], staff_user["password"]).status_code == 303

    response = client.post("/logout", data={"csrf_token": old_token})

    assert response.status_code == 400
    assert client.get("/pipeline").status_code == 200  # still signed in: the stale token did nothing


def test_the_cookie_from_before_signing_in_stays_anonymous(app, client, staff_user):
    login_token(client)
    planted = client.get_cookie("session").value
    assert sign_in(client, staff_user["email"], staff_user["password"]).status_code == 303

    other = app.test_client()
    other.set_cookie("session", planted)
    response = other.get("/pipeline")

    assert response.status_code == 302
    assert response.headers["Location"].startswith("/login")


def test_wrong_password_and_unknown_email_get_the_same_generic_401(app, client, staff_user):
    wrong_password = sign_in(client, staff_user["email"], "feil-passord-helt-klart")
    unknown_email = sign_in(client, "finnes.ikke@meander.no", staff_user["password"])

    assert wrong_password.status_code == unknown_email.status_code == 401
    assert error_message(wrong_password) == error_message(unknown_email)
    assert WRONG_CREDENTIALS in wrong_password.get_data(as_text=True)
    # The email typed stays in the field; the password never comes back.
    assert 'value="finnes.ikke@meander.no"' in unknown_email.get_data(as_text=True)
    assert staff_user["password"] not in unknown_email.get_data(as_text=True)
    assert staff_sessions(app, staff_user["id"]) == []
    assert client.get("/pipeline").status_code == 302


def test_email_is_matched_case_and_space_insensitively(client, staff_user):
    response = sign_in(client, "  SELGER@Meander.NO ", staff_user["password"])
    assert response.status_code == 303


@pytest.mark.parametrize(
    "target",
    [
        "https://evil.example/x",
        "//evil.example",
        "/\\evil",
        "\\\\evil.example",
        "javascript:alert(1)",
        "evil.example/pipeline",
        "",
    ],
)
def test_next_pointing_off_site_sends_you_to_the_board(client, staff_user, target):
    response = sign_in(client, staff_user["email"], staff_user["password"], next_path=target)

    assert response.status_code == 303
    assert response.headers["Location"] == "/pipeline"


@pytest.mark.parametrize(
    "target",
    [
        "/pipeline\r\nSet-Cookie: x=1",
        "/pipeline\n",
        "/\r\n/evil.example",
        "/\t/evil.example",
        "/pipeline\x00",
        "/pipeline\u2028",
        "/pipeline\x85",
    ],
    ids=["crlf_header", "lf", "crlf_slash", "tab_slash", "nul", "line_separator", "next_line"],
)
def test_control_characters_in_next_send_you_to_the_board_and_sign_you_in(app, client, staff_user, target):
    response = sign_in(client, staff_user["email"], staff_user["password"], next_path=target)

    assert response.status_code == 303
    assert response.headers["Location"] == "/pipeline"
    assert "Set-Cookie: x" not in str(response.headers)
    assert client.get("/pipeline").status_code == 200
    assert len(staff_sessions(app, staff_user["id"])) == 1


def test_a_local_next_with_letters_outside_ascii_is_sent_encoded(client, staff_user):
    response = sign_in(client, staff_user["email"], staff_user["password"], next_path="/pipeline?q=Ødegård")

    assert response.status_code == 303
    assert response.headers["Location"] == "/pipeline?q=%C3%98deg%C3%A5rd"


@pytest.mark.parametrize("target", ["/pipeline/leads/new", "/pipeline?q=kari&source=phone"])
def test_next_pointing_to_a_local_page_is_kept(client, staff_user, target):
    response = sign_in(client, staff_user["email"], staff_user["password"], next_path=target)

    assert response.status_code == 303
    assert response.headers["Location"] == target


def test_login_form_posts_back_to_a_safe_next(client):
    kept = client.get("/login", query_string={"next": "/pipeline/leads/new"}).get_data(as_text=True)
    dropped = client.get("/login", query_string={"next": "//evil.example"}).get_data(as_text=True)

    assert 'action="/login?next=/pipeline/leads/new"' in kept
    assert "evil.example" not in dropped
    assert 'action="/login?next=/pipeline"' in dropped


def test_visiting_the_login_page_when_signed_in_goes_to_a_safe_next(staff_client):
    response = staff_client.get("/login", query_string={"next": "https://evil.example/x"})

    assert response.status_code == 302
    assert response.headers["Location"] == "/pipeline"


# --- signing out and deactivation ------------------------------------------------------------------


def test_logout_without_csrf_is_refused_and_keeps_you_signed_in(app, staff_client, staff_user):
    response = staff_client.post("/logout")

    assert response.status_code == 400
    assert staff_client.get("/pipeline").status_code == 200
    assert len(staff_sessions(app, staff_user["id"])) == 1


def test_logout_ends_the_session_on_the_server_so_a_copied_cookie_no_longer_works(app, staff_client, staff_user):
    stolen = staff_client.get_cookie("session").value
    token = staff_csrf(staff_client)

    response = staff_client.post("/logout", data={"csrf_token": token})

    assert response.status_code == 303
    assert response.headers["Location"] == "/login?logged_out=1"
    assert "Du er logget ut." in staff_client.get(response.headers["Location"]).get_data(as_text=True)
    assert staff_sessions(app, staff_user["id"]) == []
    replay = app.test_client()
    replay.set_cookie("session", stolen)
    replayed = replay.get("/pipeline")
    assert replayed.status_code == 302
    assert replayed.headers["Location"] == "/login?next=/pipeline"


def test_logout_ends_only_this_browsers_session(app, staff_user):
    laptop, phone = app.test_client(), app.test_client()
    assert log_in(laptop, staff_user["email"], STAFF_PASSWORD).status_code == 303
    assert log_in(phone, staff_user["email"], STAFF_PASSWORD).status_code == 303

    assert laptop.post("/logout", data={"csrf_token": staff_csrf(laptop)}).status_code == 303

    assert laptop.get("/pipeline").status_code == 302
    assert phone.get("/pipeline").status_code == 200


def test_deactivating_a_user_signs_them_out_at_once_and_keeps_them_out(app, staff_client, staff_user):
    lead = make_lead(app)
    token = staff_csrf(staff_client)

    result = app.test_cli_runner().invoke(args=["users", "deactivate", staff_user["email"]])

    assert result.exit_code == 0, result.output
    assert staff_client.get("/pipeline").status_code == 302
    moved = staff_client.post(
        f"/pipeline/leads/{lead['id']}/status",
        data={"status": "contacted"},
        headers={"X-CSRFToken": token, "HX-Request": "true"},
    )
    assert moved.status_code == 401
    with app.app_context():
        assert db.session.get(Lead, lead["id"]).status == "new"
        assert db.session.scalar(sa.select(sa.func.count()).select_from(LeadStatusChange)) == 0
    again = sign_in(app.test_client(), staff_user["email"], staff_user["password"])
    assert again.status_code == 401
    assert WRONG_CREDENTIALS in again.get_data(as_text=True)


# --- throttling ------------------------------------------------------------------------------------


def test_ten_failures_from_one_ip_lock_that_ip_out_even_with_the_right_password(app, client, staff_user):
    ip = "203.0.113.10"
    for n in range(10):
        assert sign_in(client, f"gjetning{n}@meander.no", "feil-passord-nr-{n}", ip=ip).status_code == 401

    response = sign_in(client, staff_user["email"], staff_user["password"], ip=ip)

    assert response.status_code == 429
    assert THROTTLED in response.get_data(as_text=True)
    assert int(response.headers["Retry-After"]) > 0
    assert staff_sessions(app, staff_user["id"]) == []
    # Another address is not affected: the failures were spread over other accounts.
    other = sign_in(app.test_client(), staff_user["email"], staff_user["password"], ip="203.0.113.11")
    assert other.status_code == 303


def test_ten_failures_against_one_account_from_many_ips_lock_the_account(app, staff_user):
    for n in range(10):
        spelled = staff_user["email"].upper() if n % 2 else f"  {staff_user['email']}"
        response = sign_in(app.test_client(), spelled, f"feil-passord-{n}", ip=f"198.51.100.{n + 1}")
        assert response.status_code == 401

    response = sign_in(app.test_client(), staff_user["email"], staff_user["password"], ip="198.51.100.200")

    assert response.status_code == 429
    assert THROTTLED in response.get_data(as_text=True)
    # A colleague signing in from that same fresh address is not locked out.
    with app.app_context():
        users.create_user("kollega@meander.no", "Kari Kollega", "et-annet-langt-passord")
    colleague = sign_in(app.test_client(), "kollega@meander.no", "et-annet-langt-passord", ip="198.51.100.200")
    assert colleague.status_code == 303


def test_successful_sign_ins_count_as_attempts_too(app, staff_user):
    # Counted before the password is known, and never given back (see auth/views.py).
    for _ in range(10):
        client = app.test_client()
        assert sign_in(client, staff_user["email"], staff_user["password"]).status_code == 303

    response = sign_in(app.test_client(), staff_user["email"], staff_user["password"])  # the 11th

    assert response.status_code == 429
    assert THROTTLED in response.get_data(as_text=True)


BURST = 30


@pytest.mark.parametrize("aimed_at", ["one_account_from_many_addresses", "many_accounts_from_one_address"])
def test_a_burst_of_wrong_passwords_gets_at_most_the_limit_of_password_checks(app, staff_user, aimed_at):
    """Thirty simultaneous wrong passwords: ten are checked (401), every other one is refused (429)."""
    one_account = aimed_at == "one_account_from_many_addresses"
    prepared = []
    for n in range(BURST):
        ip = f"198.51.100.{n + 1}" if one_account else "203.0.113.50"
        client = app.test_client()
        email = staff_user["email"] if one_account else f"gjetning{n}@meander.no"
        prepared.append((client, login_token(client, ip), email, ip))

    def attempt(n, barrier):
        client, token, email, ip = prepared[n]
        barrier.wait()
        return client.post(
            "/login",
            data={"csrf_token": token, "email": email, "password": f"feil-passord-nr-{n}"},
            environ_overrides={"REMOTE_ADDR": ip},
        ).status_code

    statuses = run_together(BURST, attempt)

    assert set(statuses) <= {401, 429}, statuses
    assert 1 <= statuses.count(401) <= 10, statuses
    assert statuses.count(429) >= BURST - 10


# --- cookies ---------------------------------------------------------------------------------------


def test_session_cookie_is_httponly_and_samesite_lax(client, staff_user):
    response = sign_in(client, staff_user["email"], staff_user["password"])

    cookie = session_set_cookie(response)
    assert "HttpOnly" in cookie
    assert "SameSite=Lax" in cookie


def test_session_cookie_is_secure_when_the_site_url_is_https(app, make_app, monkeypatch):
    monkeypatch.setenv("SITE_URL", "https://salg.meander.no")
    https_app = make_app()
    assert https_app.config["SESSION_COOKIE_SECURE"] is True
    with https_app.app_context():
        users.create_user("selger@meander.no", "Siri Selger", STAFF_PASSWORD)
    client = https_app.test_client()
    page = client.get("/login", base_url="https://localhost")
    token = CSRF_INPUT.search(page.get_data(as_text=True)).group(1)

    # Flask-WTF checks the Referer on HTTPS, as a browser sends it.
    response = client.post(
        "/login",
        base_url="https://localhost",
        headers={"Referer": "https://localhost/login"},
        data={"csrf_token": token, "email": "selger@meander.no", "password": STAFF_PASSWORD},
    )

    assert response.status_code == 303
    cookie = session_set_cookie(response)
    assert "Secure" in cookie and "HttpOnly" in cookie and "SameSite=Lax" in cookie
    assert client.get("/pipeline", base_url="https://localhost").status_code == 200


def test_session_cookie_is_not_secure_on_a_plain_http_site(make_app, monkeypatch):
    monkeypatch.setenv("SITE_URL", "http://127.0.0.1:5000")
    http_app = make_app()

    assert http_app.config["SESSION_COOKIE_SECURE"] is False
    assert "Secure" not in http_app.test_client().get("/login").headers.get("Set-Cookie", "")


# --- the login wall in front of /pipeline ---------------------------------------------------------

SOME_ID = uuid.UUID("00000000-0000-4000-8000-000000000001")
PROTECTED_PAGES = [
    "/pipeline",
    "/pipeline?q=kari&source=phone",
    "/pipeline/columns/new?cursor=x",
    "/pipeline/changes?since=2024-01-01T00:00:00%2B00:00",
    "/pipeline/leads.csv",
    f"/pipeline/leads/{SOME_ID}",
    "/pipeline/leads/new",
]
PROTECTED_POSTS = [
    ("/pipeline/leads/{id}/status", {"status": "contacted"}),
    ("/pipeline/leads/{id}", {"first_name": "Endret"}),
    ("/pipeline/leads/{id}/resend", {}),
    ("/pipeline/leads/{id}/delete", {}),
    ("/pipeline/leads/new", {"source": "phone", "email": "ny@eksempel.no"}),
]


@pytest.mark.parametrize("path", PROTECTED_PAGES)
def test_a_plain_request_without_login_is_sent_to_the_login_page_with_next(client, path):
    response = client.get(path)

    assert response.status_code == 302
    location = urlsplit(response.headers["Location"])
    assert location.path == "/login"
    assert parse_qs(location.query)["next"] == [path]


@pytest.mark.parametrize("path", PROTECTED_PAGES)
def test_an_htmx_request_without_login_gets_401_and_hx_redirect_not_the_login_page(client, path):
    response = client.get(path, headers={"HX-Request": "true"})

    assert response.status_code == 401
    assert urlsplit(response.headers["HX-Redirect"]).path == "/login"
    body = response.get_data(as_text=True)
    assert "Logg inn" not in body and "<form" not in body


@pytest.mark.parametrize("htmx", [False, True], ids=["plain", "htmx"])
@pytest.mark.parametrize("path, data", PROTECTED_POSTS, ids=[p for p, _ in PROTECTED_POSTS])
def test_a_state_change_without_login_is_refused_and_changes_nothing(app, client, path, data, htmx):
    lead = make_lead(app)
    token = CSRF_INPUT.search(client.get("/demo").get_data(as_text=True)).group(1)  # a valid anonymous token
    headers = {"X-CSRFToken": token, **({"HX-Request": "true"} if htmx else {})}

    response = client.post(path.format(id=lead["id"]), data=data, headers=headers)

    if htmx:
        assert response.status_code == 401
        assert urlsplit(response.headers["HX-Redirect"]).path == "/login"
    else:
        assert response.status_code == 302
        assert urlsplit(response.headers["Location"]).path == "/login"
    with app.app_context():
        [only] = db.session.execute(sa.select(Lead)).scalars().all()
        assert (only.id, only.status, only.first_name) == (lead["id"], "new", "Kari")
