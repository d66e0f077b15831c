"""The account pages are valid HTML (the Nu Html Checker, as for the other pages): sign-in's second step,
«Glemt passord?», the pages one-time links lead to, Innstillinger, two-factor setup, and the team page."""

from helpers.accounts import (
    ADMIN_PASSWORD,
    NEW_PASSWORD,
    enrol_two_factor,
    invite,
    make_user,
    open_link,
    sent_link,
    sign_in,
    signed_in,
    submit,
)
from helpers.html import NEEDS_THE_CHECKER, check_html

pytestmark = NEEDS_THE_CHECKER


def page(client, path: str, status: int = 200) -> str:
    response = client.get(path)
    assert response.status_code == status, path
    return response.get_data(as_text=True)


def test_the_account_pages_are_valid_html(app, staff_user, staff_client, smtp_server, tmp_path):
    admin = make_user(app, "sjef@meander.no", "Sara Sjef", ADMIN_PASSWORD, admin=True)
    admin_client = signed_in(app, admin)
    pages = {
        "login": page(app.test_client(), "/login"),
        "forgot_password": page(app.test_client(), "/glemt-passord"),
        "forgot_password_sent": page(app.test_client(), "/glemt-passord?sendt=1"),
        "invitation_opener": page(app.test_client(), "/invitasjon"),
        "reset_opener": page(app.test_client(), "/nytt-passord"),
        "settings": page(staff_client, "/pipeline/settings"),
        "two_factor_setup": page(staff_client, "/pipeline/settings/two-factor"),
        "not_allowed": page(staff_client, "/pipeline/team", status=403),
    }
    pages["settings_with_errors"] = submit(
        staff_client, "/pipeline/settings", "/pipeline/settings/password", current_password="x", password="kort"
    ).text
    pages["invite_with_errors"] = invite(admin_client, "ikke-en-adresse").text
    invite(admin_client, "ny@meander.no")
    pages["team"] = page(admin_client, "/pipeline/team")
    url, secret = sent_link(app, smtp_server, "Du er invitert", "ny@meander.no")
    newcomer = app.test_client()
    open_link(newcomer, url, secret)
    pages["accept_invitation"] = page(newcomer, "/invitasjon")
    pages["accept_with_errors"] = submit(newcomer, "/invitasjon", name="", password="kort").text
    pages["link_unknown"] = open_link(app.test_client(), url, "feil").text
    submit(newcomer, "/invitasjon", name="Nina Ny", password=NEW_PASSWORD)
    pages["link_used"] = open_link(app.test_client(), url, secret).text
    _, codes = enrol_two_factor(staff_client)
    pages["settings_two_factor_refused"] = submit(
        staff_client, "/pipeline/settings", "/pipeline/settings/two-factor/recovery-codes", current_password="x"
    ).text
    pages["recovery_codes"] = submit(
        staff_client,
        "/pipeline/settings",
        "/pipeline/settings/two-factor/recovery-codes",
        current_password=staff_user["password"],
    ).text
    browser = app.test_client()
    sign_in(browser, staff_user["email"], staff_user["password"])
    pages["code_step"] = page(browser, "/login/kode")
    pages["code_step_refused"] = submit(browser, "/login/kode", code="000000").text
    submit(app.test_client(), "/glemt-passord", email=staff_user["email"])
    reset_url, reset_secret = sent_link(app, smtp_server, "Velg nytt passord", staff_user["email"])
    resetting = app.test_client()
    open_link(resetting, reset_url, reset_secret)
    pages["new_password"] = page(resetting, "/nytt-passord")
    pages["new_password_refused"] = submit(resetting, "/nytt-passord", password="kort").text

    errors = check_html(pages, tmp_path)
    assert errors == [], "\n".join(errors)
