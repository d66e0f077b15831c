"""The team built from the browser, as `make run` serves it (the dev app, with /dev/mail): an administrator invites a
colleague; the colleague opens the invitation from the mail in /dev/mail, chooses a name and a password, turns on
two-factor sign-in (the code computed from the secret the page shows), signs out and back in with a code. axe
(axe-core, run by Playwright in Chromium) finds no violation on any of the account pages on the way."""

import re
import threading
import time

import pyotp
import pytest
from helpers.accounts import ADMIN_PASSWORD, NEW_PASSWORD, make_user
from helpers.browser import CSP_VIOLATION_LISTENER, flush_csp_reports
from helpers.jobs import run_jobs
from helpers.servers import QuietHandler
from werkzeug.serving import make_server

axe_playwright = pytest.importorskip("axe_playwright_python.sync_playwright", reason="axe-playwright-python missing")
expect = pytest.importorskip("playwright.sync_api", reason="Playwright for Python not installed").expect


@pytest.fixture
def site(dev_mail):
    """The dev app behind a real HTTP server; its SITE_URL is that server, so the mails link back to it."""
    dev_app, sink = dev_mail
    server = make_server("127.0.0.1", 0, dev_app, threaded=True, request_handler=QuietHandler)
    dev_app.config["SITE_URL"] = f"http://127.0.0.1:{server.server_port}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield dev_app, sink, dev_app.config["SITE_URL"]
    server.shutdown()
    thread.join(timeout=5)


@pytest.fixture
def new_page(browser):
    """Pages in contexts of their own (one person each), every one checked for script errors and anything the
    Content-Security-Policy blocked."""
    opened = []

    def open_page(base_url: str):
        context = browser.new_context(base_url=base_url, viewport={"width": 1280, "height": 900}, locale="nb-NO")
        context.set_default_timeout(5_000)
        page = context.new_page()
        page.errors = []
        page.on("pageerror", lambda error: page.errors.append(str(error)))
        page.csp_violations = violations = []
        context.expose_function("reportCspViolation", lambda violation: violations.append(violation))
        context.add_init_script(CSP_VIOLATION_LISTENER)
        opened.append(page)
        return page

    yield open_page
    for page in opened:
        flush_csp_reports(page)
        page.context.close()
        assert not page.errors, f"JavaScript errors: {page.errors}"
        assert not page.csp_violations, f"blocked by the Content-Security-Policy: {page.csp_violations}"


AXE = axe_playwright.Axe()


def assert_accessible(page, what: str) -> None:
    page.wait_for_load_state()
    results = AXE.run(page)
    violations = [
        f"{violation['id']}: {violation['help']} ({[node['target'] for node in violation['nodes']]})"
        for violation in results.response["violations"]
    ]
    assert violations == [], f"axe on {what} ({page.url}): {violations}"


def sign_in(page, email: str, password: str) -> None:
    page.goto("/login")
    page.get_by_label("E-post").fill(email)
    page.get_by_label("Passord").fill(password)
    page.get_by_role("button", name="Logg inn").click()


def test_an_administrator_builds_the_team_from_the_browser(app, site, new_page):
    dev_app, sink, base_url = site
    make_user(dev_app, "sjef@meander.no", "Sara Sjef", ADMIN_PASSWORD, admin=True)

    admin = new_page(base_url)
    sign_in(admin, "sjef@meander.no", ADMIN_PASSWORD)
    expect(admin.get_by_role("heading", name="Salgstavle", level=1)).to_be_visible()
    admin.get_by_role("link", name="Team").click()
    expect(admin.get_by_role("heading", name="Team", level=1)).to_be_visible()
    assert_accessible(admin, "the team page")
    invite_form = admin.locator("form.invite-form")
    invite_form.get_by_label("E-post").fill("kollega@meander.no")
    invite_form.get_by_label("Rolle").select_option(label="Selger")
    admin.get_by_role("button", name="Send invitasjon").click()
    expect(admin.locator(".flash")).to_contain_text("Invitasjonen er sendt til kollega@meander.no")
    expect(admin.locator(".invitation")).to_contain_text("kollega@meander.no")

    run_jobs(dev_app)  # the worker's part
    sink.wait_for(1)
    colleague = new_page(base_url)
    colleague.goto("/dev/mail/")
    mail = colleague.locator("article.mail", has_text="Du er invitert til Meanders salgsteam")
    link = mail.frame_locator("iframe.mail-frame").get_by_role("link", name="Bli med i teamet")
    href = link.get_attribute("href")
    assert re.fullmatch(rf"{re.escape(base_url)}/invitasjon#[A-Za-z0-9_-]{{43,}}", href)

    colleague.goto(href)  # the page's script posts the secret and lands on the form, secret-free
    expect(colleague.get_by_role("heading", name="Bli med i salgsteamet")).to_be_visible()
    assert colleague.url == f"{base_url}/invitasjon"
    assert "#" not in colleague.url
    assert_accessible(colleague, "the invitation form")
    colleague.get_by_label("Navn").fill("Kari Kollega")
    colleague.get_by_label("Passord").fill("kort")
    colleague.get_by_role("button", name="Lag kontoen").click()
    expect(colleague.locator(".error-summary")).to_contain_text("Passordet må ha minst 12 tegn")
    assert_accessible(colleague, "the invitation form with an error")
    colleague.get_by_label("Passord").fill(NEW_PASSWORD)
    colleague.get_by_role("button", name="Lag kontoen").click()
    expect(colleague.locator(".flash")).to_contain_text("Velkommen, Kari! Kontoen din er klar.")

    colleague.get_by_role("link", name=re.compile(r"Kari Kollega.*innstillinger")).click()
    expect(colleague.get_by_role("heading", name="Innstillinger for Kari Kollega")).to_be_visible()
    assert_accessible(colleague, "Innstillinger")
    colleague.get_by_role("link", name="Slå på tofaktor-innlogging").click()
    expect(colleague.get_by_role("img", name=re.compile("QR-kode"))).to_be_visible()
    assert_accessible(colleague, "the two-factor setup")
    secret = colleague.locator("#totp-secret").inner_text().replace(" ", "")
    colleague.get_by_label("Kode fra appen").fill(pyotp.TOTP(secret).now())
    colleague.get_by_role("button", name="Slå på").click()
    expect(colleague.get_by_role("heading", name="Tofaktor-innlogging er på")).to_be_visible()
    expect(colleague.get_by_role("list", name="Reservekoder").get_by_role("listitem")).to_have_count(10)
    assert_accessible(colleague, "the recovery codes")
    colleague.get_by_role("link", name="Jeg har tatt vare på kodene").click()

    colleague.get_by_role("button", name="Logg ut").click()
    expect(colleague.get_by_text("Du er logget ut.")).to_be_visible()
    sign_in(colleague, "kollega@meander.no", NEW_PASSWORD)
    expect(colleague.get_by_role("heading", name="Skriv inn koden")).to_be_visible()
    assert_accessible(colleague, "the code step")
    # The enrolment used this 30-second step's code, and a code is never accepted twice: the app's next one.
    colleague.get_by_role("textbox", name="Kode").fill(pyotp.TOTP(secret).at(time.time() + 30))
    colleague.get_by_role("button", name="Logg inn").click()
    expect(colleague.get_by_role("heading", name="Salgstavle", level=1)).to_be_visible()

    admin.reload()
    row = admin.locator("tr", has_text="kollega@meander.no")
    expect(row).to_contain_text("Selger")
    expect(row.locator("td").nth(4)).to_have_text("På")  # the two-factor column


def test_the_forgotten_password_pages_and_the_seller_refusal_are_accessible(app, site, new_page):
    dev_app, sink, base_url = site
    make_user(dev_app, "sjef@meander.no", "Sara Sjef", ADMIN_PASSWORD, admin=True)
    make_user(dev_app, "selger@meander.no", "Siri Selger", NEW_PASSWORD)
    page = new_page(base_url)

    page.goto("/login")
    assert_accessible(page, "the login page")
    page.get_by_role("link", name="Glemt passord?").click()
    # axe reads the document: wait for the new page, not the one being left.
    expect(page.get_by_role("heading", name="Glemt passord?")).to_be_visible()
    assert_accessible(page, "«Glemt passord?»")
    page.get_by_label("E-post").fill("selger@meander.no")
    page.get_by_role("button", name="Send lenke").click()
    expect(page.get_by_role("status")).to_contain_text("Hvis adressen hører til en konto hos oss")
    assert_accessible(page, "the answer to «Glemt passord?»")

    run_jobs(dev_app)
    [mail] = [mail for mail in sink.wait_for(1) if mail["Subject"].startswith("Velg nytt passord")]
    href = re.search(r"http://\S+/nytt-passord#\S+", mail.get_body(preferencelist=("plain",)).get_content()).group(0)
    page.goto(href.replace("#", "#x"))  # a link cut or changed
    expect(page.get_by_role("heading", name="Lenken virker ikke")).to_be_visible()
    assert_accessible(page, "a link that does not work")
    page.goto("/nytt-passord")
    assert_accessible(page, "the link opener without a secret")
    page.goto(href)
    expect(page.get_by_role("heading", name="Velg nytt passord")).to_be_visible()
    assert_accessible(page, "the new password form")
    page.get_by_role("textbox", name="Nytt passord").fill("fjellvann-sommer-regn-52")
    page.get_by_role("button", name="Lagre passordet").click()
    expect(page.locator(".flash")).to_contain_text("Passordet er endret")

    page.goto("/pipeline/team")
    expect(page.get_by_role("heading", name="Bare for administratorer")).to_be_visible()
    assert_accessible(page, "the administrators-only refusal")


def test_the_one_time_link_script_takes_the_secret_out_of_the_address_bar(app, site, new_page):
    dev_app, _, base_url = site
    page = new_page(base_url)
    requests = []
    page.on("request", lambda request: requests.append((request.url, request.headers.get("referer", ""))))

    page.goto("/invitasjon#ikke-en-ekte-hemmelighet-men-lang-nok-til-a-se-ut-som-en")

    expect(page.get_by_role("heading", name="Lenken virker ikke")).to_be_visible()
    assert all("ikke-en-ekte" not in url and "ikke-en-ekte" not in referer for url, referer in requests)
    assert "#" not in page.url
    assert page.evaluate("document.referrer") == ""
