"""Every mail the site sends reads on a phone, and the dev mail page shows it without trusting it.

Each kind of mail is produced for real (the booking form, the outbox jobs, the SMTP sink), with the longest
unbroken text a prospect can type, and its HTML part is rendered in Chromium as a 375 px wide phone.
"""

import re
import smtplib
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage

import pytest
import sqlalchemy as sa
from helpers.assignment import leave_the_pool
from helpers.booking import VALID_BOOKING, book
from helpers.jobs import release_scheduled_jobs, run_jobs
from helpers.mail import PHONE_WIDTH, parts, widest
from helpers.staff import STAFF_PASSWORD

from meander_site.accounts import users
from meander_site.core.clock import utcnow
from meander_site.extensions import db
from meander_site.leads.models import Lead
from meander_site.mail import dispatch
from meander_site.pipeline import digest

LONG_WORD = "Likepersonsarbeidkoordineringsverktøyanskaffelsesprosjektet" * 2
LONG_BOOKING = {
    **VALID_BOOKING,
    "email": "kari.nordmann.likepersonskoordinator.region.nord@hjerneslagforeningen-i-troms-og-finnmark.no",
    "organization_name": "Landsforeningen for hjerte- og lungesyke, avdeling " + LONG_WORD[:60],
    "notes": "Se https://www.hjerneslagforeningen-i-troms-og-finnmark.no/om-oss/likepersoner/arsrapport-2026.pdf "
    + LONG_WORD,
    "current_solution": LONG_WORD,
}


def every_kind_of_mail(app, client, smtp_server) -> dict:
    """A confirmation, a team notice for one booking and for two, and a digest, all as sent."""
    with app.app_context():
        users.create_user("anne.andersen.salgsansvarlig@meander.no", "Anne Andersen", STAFF_PASSWORD)
    leave_the_pool(app)  # the team's mails, about leads nobody owns
    book(client, **LONG_BOOKING)
    run_jobs(app)
    release_scheduled_jobs(app)
    run_jobs(app)
    book(client, **{**LONG_BOOKING, "email": "ola@fjellklubben.no"})
    book(client, **{**LONG_BOOKING, "email": "per@fjellklubben.no", "notes": "Kort."})
    run_jobs(app)
    release_scheduled_jobs(app)
    run_jobs(app)
    with app.app_context():
        db.session.execute(sa.update(Lead).values(next_step_due_at=utcnow() - timedelta(days=1)))
        db.session.commit()
        for message in digest.write_due_digests(now=datetime(2028, 5, 16, 5, 30, tzinfo=UTC)):
            dispatch.dispatch(message.id, delay=timedelta(0))
    run_jobs(app)

    mails = smtp_server.messages()
    kinds = {
        "confirmation": [mail for mail in mails if mail["Subject"].startswith("Vi har mottatt")][0],
        "one new lead": [mail for mail in mails if mail["Subject"].startswith("Ny lead:")][0],
        "two new leads": [mail for mail in mails if mail["Subject"] == "2 nye bookinger på demo"][0],
        "digest": [mail for mail in mails if mail["Subject"].startswith("Dagens oppfølging")][0],
    }
    return kinds


@pytest.mark.browser
def test_every_mail_has_a_text_part_and_an_html_part_that_fits_a_375px_phone(app, client, smtp_server, phone):
    for kind, mail in every_kind_of_mail(app, client, smtp_server).items():
        text, html = parts(mail)
        assert text.strip(), f"the {kind} mail's text part is empty"
        assert re.search(r'<meta name="viewport" content="width=device-width, initial-scale=1">', html), kind

        measured = widest(phone, html)

        assert measured["innerWidth"] == PHONE_WIDTH
        assert measured["scrollWidth"] <= PHONE_WIDTH, f"the {kind} mail scrolls sideways: {measured}"
        assert measured["offenders"] == [], f"the {kind} mail has content wider than the screen: {measured}"


@pytest.mark.browser
def test_the_width_check_notices_a_mail_that_does_not_fit(phone):
    # The check must be able to fail: a desktop-only mail (no viewport meta, a fixed 600 px table).
    html = "<html><body><table width='600'><tr><td>Meander</td></tr></table></body></html>"
    assert widest(phone, html)["scrollWidth"] > PHONE_WIDTH


@pytest.mark.browser
def test_the_confirmation_keeps_its_words_in_the_shared_layout(app, client, smtp_server, phone):
    location = book(client).headers["Location"]
    run_jobs(app)
    [mail] = [mail for mail in smtp_server.messages() if mail["Subject"].startswith("Vi har mottatt")]
    _, html = parts(mail)

    phone.set_content(html)
    words = re.sub(r"\s+", " ", phone.evaluate("document.body.innerText")).strip()

    assert phone.title() == "Vi har mottatt demoforespørselen din"
    link = "https://demo.meander.test" + location
    assert words == (
        "Meander Hei Kari, takk for at du vil se Meander! Vi har mottatt demoforespørselen fra LHL Hjerneslag. "
        "Dette skjer nå: En av oss tar kontakt innen én arbeidsdag for å avtale tidspunkt. "
        "Demoen tar omtrent 30 minutter og tilpasses det dere jobber med. Se bekreftelsen "
        f"Eller kopier lenken: {link} Vil du endre noe, kan du sende en ny forespørsel med samme e-postadresse. "
        "Har du ikke bedt om en demo, kan du se bort fra denne e-posten. Vennlig hilsen Meander"
    )
    assert phone.get_by_role("link", name="Se bekreftelsen").get_attribute("href") == link


# --- the dev mail page -------------------------------------------------------------------------------------


def test_the_dev_mail_page_shows_the_confirmation_and_the_team_notice_with_html_in_a_sandbox(dev_mail):
    dev_app, sink = dev_mail
    with dev_app.app_context():
        users.create_user("anne@meander.no", "Anne Andersen", STAFF_PASSWORD)
    client = dev_app.test_client()
    book(client, notes='<script>alert("mail")</script><img src=x onerror="alert(2)">')
    run_jobs(dev_app)
    release_scheduled_jobs(dev_app)
    run_jobs(dev_app)
    sink.wait_for(2)

    page = client.get("/dev/mail/")
    body = page.get_data(as_text=True)

    assert page.status_code == 200
    assert "Vi har mottatt demoforespørselen din – Meander" in body
    assert "Ny lead: LHL Hjerneslag" in body  # staff notifications show like every other mail
    assert "Svar til kari.nordmann@lhl.no" in body
    assert '<script>alert("mail")' not in body and "<img src=x" not in body  # never the mail's markup inline
    frames = re.findall(r'<iframe class="mail-frame" sandbox src="([^"]+)" title="([^"]+)"', body)
    assert len(frames) == 2 and all(title.startswith("HTML-versjonen av") for _, title in frames)

    for src, _ in frames:
        framed = client.get(src)
        assert framed.status_code == 200 and framed.mimetype == "text/html"
        policy = framed.headers["Content-Security-Policy"]
        assert "default-src 'none'" in policy and "sandbox" in policy and "script-src" not in policy
        assert "frame-ancestors 'self'" in policy and framed.headers["X-Frame-Options"] == "SAMEORIGIN"
    notice = [client.get(src).get_data(as_text=True) for src, _ in frames if "Ny lead" in client.get(src).text]
    assert notice and "&lt;script&gt;alert" in notice[0]  # the mail escaped it; the frame would not run it anyway


def test_the_dev_mail_page_lists_attachments_and_serves_them_as_downloads(dev_mail):
    dev_app, sink = dev_mail
    message = EmailMessage()
    message["From"], message["To"], message["Subject"] = "demo@meander.no", "kari@lhl.no", "Demo tirsdag"
    message.set_content("Velkommen til demo.")
    message.add_alternative("<p>Velkommen til demo.</p>", subtype="html")
    invite = b"BEGIN:VCALENDAR\r\nVERSION:2.0\r\nEND:VCALENDAR\r\n"
    message.add_attachment(invite, maintype="text", subtype="calendar", filename="invitasjon.ics")
    with smtplib.SMTP(sink.host, sink.port, timeout=5) as smtp:
        smtp.send_message(message)
    sink.wait_for(1)
    client = dev_app.test_client()

    body = client.get("/dev/mail/").get_data(as_text=True)

    assert "Vedlegg" in body
    [href] = re.findall(r'<a href="([^"]+)" download="invitasjon.ics">invitasjon.ics</a> \(text/calendar', body)
    download = client.get(href)
    assert download.status_code == 200
    assert download.data == invite
    assert download.headers["Content-Disposition"] == "attachment"
    assert client.get(href.replace("/attachments/0", "/attachments/1")).status_code == 404


def test_the_dev_mail_routes_refuse_paths_outside_the_mailbox(dev_mail):
    client = dev_mail[0].test_client()

    for path in ("/dev/mail/..%2F..%2Fetc%2Fpasswd.eml/html", "/dev/mail/missing.eml/html", "/dev/mail/x.txt/html"):
        assert client.get(path).status_code == 404, path


@pytest.mark.browser
def test_a_mail_in_the_dev_page_frame_runs_no_script(dev_mail, dev_server, phone):
    sink = dev_mail[1]
    message = EmailMessage()
    message["From"], message["To"], message["Subject"] = "demo@meander.no", "kari@lhl.no", "Fiendtlig HTML"
    message.set_content("Tekst")
    message.add_alternative(
        "<p id='said'>Ufarlig tekst</p><script>parent.document.title='overtatt';"
        "document.getElementById('said').textContent='skript kjørte'</script>",
        subtype="html",
    )
    with smtplib.SMTP(sink.host, sink.port, timeout=5) as smtp:
        smtp.send_message(message)
    sink.wait_for(1)
    context = phone.context.browser.new_context()
    try:
        page = context.new_page()
        page.goto(f"{dev_server}/dev/mail/")

        said = page.frame_locator("iframe.mail-frame").locator("#said")
        pytest.importorskip("playwright.sync_api").expect(said).to_be_visible()
        assert said.text_content() == "Ufarlig tekst"  # the script did not run
        assert "overtatt" not in page.title()
    finally:
        context.close()
