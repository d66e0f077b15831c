"""Two-factor sign-in with an authenticator app: setup (QR code as SVG, the secret as text, confirmed by one code,
ten recovery codes), sign-in as password then code, a code never accepted twice, recovery codes used once, a
throttle of its own, an administrator's requirement for everyone, and an administrator's reset."""

import re
from datetime import timedelta
from urllib.parse import unquote

import pyotp
import pytest
import sqlalchemy as sa
from helpers.accounts import (  # noqa: F401  (admin_fixture, admin_client_fixture: fixtures)
    ADMIN_PASSWORD,
    TOTP_SECRET,
    admin_client_fixture,
    admin_fixture,
    audit_actions,
    code_at,
    enrol_two_factor,
    make_user,
    page_token,
    sign_in,
    signed_in,
    stored_user,
    submit,
)
from helpers.staff import STAFF_PASSWORD
from helpers.waiting import run_together

from meander_site.accounts import two_factor
from meander_site.accounts.models import RecoveryCode, User
from meander_site.core.clock import utcnow
from meander_site.extensions import db


def enter_code(client, code: str):
    return submit(client, "/login/kode", code=code)


def password_step(app, person) -> object:
    client = app.test_client()
    response = sign_in(client, person["email"], person["password"])
    assert response.status_code == 303 and response.headers["Location"] == "/login/kode"
    return client


def test_setup_shows_a_qr_code_drawn_as_svg_and_the_secret_as_text(app, staff_user, staff_client):
    page = staff_client.get("/pipeline/settings/two-factor")

    assert page.status_code == 200 and page.headers["Cache-Control"] == "no-store"
    secret = TOTP_SECRET.search(page.text).group(1).replace(" ", "")
    assert len(secret) == 32  # 160 bits, base32
    image = re.search(r'<img class="qr-code" src="(data:image/svg\+xml[^"]+)"[^>]*alt="([^"]+)"', page.text)
    assert image and "QR-kode" in image.group(2)
    svg = unquote(image.group(1).split(",", 1)[1])
    assert svg.startswith("<svg") and "<script" not in svg
    assert stored_user(app, staff_user["id"]).totp_secret is None  # not on until a code confirms it
    again = staff_client.get("/pipeline/settings/two-factor").text
    assert TOTP_SECRET.search(again).group(1).replace(" ", "") == secret  # the same one until confirmed


def test_a_wrong_code_does_not_turn_it_on(app, staff_user, staff_client):
    staff_client.get("/pipeline/settings/two-factor")

    response = submit(staff_client, "/pipeline/settings/two-factor", code="000000")

    assert response.status_code == 422 and "Koden stemmer ikke" in response.text
    assert stored_user(app, staff_user["id"]).totp_secret is None


def test_one_valid_code_turns_it_on_and_hands_out_ten_single_use_recovery_codes_stored_hashed(
    app, staff_user, staff_client
):
    secret, codes = enrol_two_factor(staff_client)

    user = stored_user(app, staff_user["id"])
    assert user.totp_secret == secret and user.two_factor_enabled_at is not None
    assert len(set(codes)) == 10
    with app.app_context():
        hashes = db.session.execute(sa.select(RecoveryCode.code_hash)).scalars().all()
    assert len(hashes) == 10 and not set(codes) & set(hashes)
    assert ("two_factor_enabled", staff_user["id"], staff_user["id"], None) in audit_actions(app)
    assert "Tofaktor-innlogging</h2>" in staff_client.get("/pipeline/settings").text
    assert "Du har 10 ubrukte reservekoder" in staff_client.get("/pipeline/settings").text


def test_sign_in_is_password_then_code(app, staff_user, staff_client):
    secret, _ = enrol_two_factor(staff_client)
    browser = password_step(app, staff_user)

    assert browser.get("/pipeline").status_code == 302  # the password alone is not a session
    with app.app_context():
        assert stored_user(app, staff_user["id"]).last_login_at is not None  # from staff_client's sign-in
    later = utcnow() + timedelta(seconds=30)  # the enrolment used this step's code
    done = enter_code(browser, code_at(secret, later))

    assert done.status_code == 303 and done.headers["Location"] == "/pipeline"
    assert browser.get("/pipeline").status_code == 200


def test_a_code_is_never_accepted_twice(app, staff_user, staff_client):
    secret, _ = enrol_two_factor(staff_client)
    code = code_at(secret, utcnow() + timedelta(seconds=30))
    first = password_step(app, staff_user)
    assert enter_code(first, code).status_code == 303

    second = password_step(app, staff_user)
    replayed = enter_code(second, code)

    assert replayed.status_code == 401 and "Koden stemmer ikke" in replayed.text
    assert second.get("/pipeline").status_code == 302


def test_a_code_older_than_the_last_accepted_one_is_refused(app, staff_user, staff_client):
    secret, _ = enrol_two_factor(staff_client)  # accepted the current step's code
    earlier = code_at(secret, utcnow() - timedelta(seconds=30))

    with app.app_context():
        with pytest.raises(two_factor.CodeRefused):
            two_factor.accept_code(staff_user["id"], earlier)


def test_two_browsers_racing_with_one_code_get_one_session(app, staff_user, staff_client):
    secret, _ = enrol_two_factor(staff_client)
    code = code_at(secret, utcnow() + timedelta(seconds=30))
    browsers = [password_step(app, staff_user) for _ in range(4)]
    tokens = [page_token(browser, "/login/kode") for browser in browsers]

    def race(n, barrier):
        barrier.wait()
        return browsers[n].post("/login/kode", data={"code": code, "csrf_token": tokens[n]}).status_code

    assert sorted(run_together(4, race)) == [303, 401, 401, 401]


def test_a_recovery_code_signs_in_once(app, staff_user, staff_client):
    _, codes = enrol_two_factor(staff_client)
    browser = password_step(app, staff_user)

    done = enter_code(browser, codes[3].upper().replace("-", " "))  # as someone might type it

    assert done.status_code == 303
    assert "Du har 9 igjen" in browser.get("/pipeline").text
    again = enter_code(password_step(app, staff_user), codes[3])
    assert again.status_code == 401


def test_new_recovery_codes_need_the_password_and_replace_the_old_ones(app, staff_user, staff_client):
    _, old = enrol_two_factor(staff_client)

    refused = submit(
        staff_client, "/pipeline/settings", "/pipeline/settings/two-factor/recovery-codes", current_password="feil"
    )
    renewed = submit(
        staff_client,
        "/pipeline/settings",
        "/pipeline/settings/two-factor/recovery-codes",
        current_password=STAFF_PASSWORD,
    )

    assert refused.status_code == 422 and "Passordet stemmer ikke" in refused.text
    new = re.findall(r"<li><code>([a-z2-7-]{19})</code></li>", renewed.text)
    assert len(new) == 10 and not set(new) & set(old)
    assert enter_code(password_step(app, staff_user), old[0]).status_code == 401
    assert enter_code(password_step(app, staff_user), new[0]).status_code == 303


def test_the_second_step_has_its_own_throttle(app, staff_user, staff_client):
    enrol_two_factor(staff_client)
    browser = password_step(app, staff_user)
    token = page_token(browser, "/login/kode")

    answers = [browser.post("/login/kode", data={"code": "123456", "csrf_token": token}).status_code for _ in range(6)]

    assert answers == [401] * 5 + [429]
    limited = browser.post("/login/kode", data={"code": "123456", "csrf_token": token})
    assert "For mange forsøk med kode på kort tid." in limited.text and "Retry-After" in limited.headers


def test_the_second_step_runs_out_after_five_minutes(app, staff_user, staff_client, monkeypatch):
    secret, _ = enrol_two_factor(staff_client)
    browser = password_step(app, staff_user)
    token = page_token(browser, "/login/kode")
    with browser.session_transaction() as session:
        session["second_step"] = {**session["second_step"], "until": 0}

    response = browser.post("/login/kode", data={"code": pyotp.TOTP(secret).now(), "csrf_token": token})

    assert response.status_code == 303 and response.headers["Location"] == "/login"
    assert "Innloggingen tok for lang tid" in browser.get("/login").text


def test_turning_it_off_needs_the_password(app, staff_user, staff_client):
    enrol_two_factor(staff_client)

    wrong = submit(staff_client, "/pipeline/settings", "/pipeline/settings/two-factor/off", current_password="feil")
    right = submit(
        staff_client, "/pipeline/settings", "/pipeline/settings/two-factor/off", current_password=STAFF_PASSWORD
    )

    assert wrong.status_code == 422
    assert right.status_code == 303
    assert stored_user(app, staff_user["id"]).totp_secret is None
    assert sign_in(app.test_client(), staff_user["email"], STAFF_PASSWORD).headers["Location"] == "/pipeline"


# --- the administrator's side -------------------------------------------------------------------------


def test_when_the_team_requires_it_a_user_without_it_sees_only_the_setup_until_done(app, admin, staff_user):
    admin_client = signed_in(app, admin)
    saved = submit(admin_client, "/pipeline/team", "/pipeline/team/settings", require_two_factor="on")
    assert saved.status_code == 303
    assert admin_client.get("/pipeline").headers["Location"] == "/pipeline/settings/two-factor"  # the admin too
    browser = signed_in(app, staff_user)

    for path in ("/pipeline", "/pipeline/report", "/pipeline/settings", "/pipeline/leads/new"):
        response = browser.get(path)
        assert response.status_code == 302 and response.headers["Location"] == "/pipeline/settings/two-factor"
    htmx = browser.get("/pipeline", headers={"HX-Request": "true"})
    assert htmx.status_code == 401 and htmx.headers["HX-Redirect"] == "/pipeline/settings/two-factor"
    setup = browser.get("/pipeline/settings/two-factor")
    assert "En administrator krever tofaktor-innlogging for alle" in setup.text

    enrol_two_factor(browser)

    assert browser.get("/pipeline").status_code == 200
    off = submit(browser, "/pipeline/settings", "/pipeline/settings/two-factor/off", current_password=STAFF_PASSWORD)
    assert "kan ikke slås av" in browser.get(off.headers["Location"]).text
    assert stored_user(app, staff_user["id"]).totp_secret is not None
    assert ("team_settings_changed", admin["id"], None, "tofaktor-innlogging kreves") in audit_actions(app)


def test_an_administrator_resets_a_colleagues_two_factor_and_it_is_audited(app, admin, staff_user, staff_client):
    enrol_two_factor(staff_client)
    admin_client = signed_in(app, admin)

    response = submit(admin_client, "/pipeline/team", f"/pipeline/team/{staff_user['id']}/two-factor/reset")

    assert response.status_code == 303
    assert "er nullstilt" in admin_client.get(response.headers["Location"]).text
    user = stored_user(app, staff_user["id"])
    assert (user.totp_secret, user.two_factor_enabled_at, user.totp_last_step) == (None, None, None)
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(RecoveryCode)) == 0
    assert ("two_factor_reset", admin["id"], staff_user["id"], None) in audit_actions(app)
    assert "Sara Sjef nullstilte tofaktor-innloggingen til Siri Selger" in admin_client.get("/pipeline/team").text
    assert sign_in(app.test_client(), staff_user["email"], STAFF_PASSWORD).headers["Location"] == "/pipeline"


def test_the_command_line_resets_two_factor_too(app, staff_user, staff_client):
    enrol_two_factor(staff_client)

    result = app.test_cli_runner().invoke(args=["users", "reset-two-factor", staff_user["email"]])

    assert result.exit_code == 0 and "is reset" in result.output
    with app.app_context():
        assert db.session.get(User, staff_user["id"]).totp_secret is None
