"""The demo in Chromium: the invitation mails fit a 375 px phone, and a demo moves from the card menu by
keyboard through the scheduling dialog (under the site's CSP, with no JavaScript errors)."""

import re
from datetime import timedelta

import pytest
import sqlalchemy as sa
from helpers.booking import make_lead
from helpers.browser import TIMEOUT_MS
from helpers.jobs import run_jobs
from playwright.sync_api import expect

from meander_site import business_days
from meander_site.accounts.models import User
from meander_site.core.clock import utcnow
from meander_site.extensions import db
from meander_site.leads.models import Lead
from meander_site.pipeline import moves
from meander_site.scheduling import demos

pytestmark = pytest.mark.browser
PHONE = {"width": 375, "height": 740}


def schedule_in_domain(app, staff_user, lead_id, days_ahead=7):
    with app.app_context():
        user = db.session.get(User, staff_user["id"])
        starts = (utcnow() + timedelta(days=days_ahead)).replace(hour=11, minute=0, second=0, microsecond=0)
        plan = demos.DemoPlan(starts, 30, "https://meet.meander.no/" + "lang-lenke-" * 12, user.id)
        moves.move(lead_id, "demo_scheduled", by=user, details=moves.MoveDetails(demo=plan))


def test_every_demo_mail_fits_a_375_px_phone_without_sideways_scrolling(app, browser, staff_user, smtp_server):
    lead = make_lead(app, organization_name="Landsforeningen for hjerte- og lungesyke, avdeling Nordre Follo")
    schedule_in_domain(app, staff_user, lead["id"])
    run_jobs(app)
    with app.app_context():
        user = db.session.get(User, staff_user["id"])
        db.session.execute(sa.update(Lead).where(Lead.id == lead["id"]).values(owner_id=user.id))
        db.session.commit()
        demos.request_other_time(db.session.get(Lead, lead["id"]), "Torsdag formiddag, " + "gjerne " * 30)
        run_jobs(app)
        later = (utcnow() + timedelta(days=9)).replace(hour=12, minute=0, second=0, microsecond=0)
        demos.reschedule(lead["id"], demos.DemoPlan(later, 45, "Storgata 1, 0155 Oslo", user.id), by=user)
        run_jobs(app)
        moves.move(lead["id"], "lost", by=user, details=moves.MoveDetails(reason="price"))
        run_jobs(app)
    mails = [mail for mail in smtp_server.messages() if mail["Subject"].startswith(("Demoen", "Ønsker"))]
    # Invitation, update and cancellation to the prospect and the host, and the wish to the owner.
    assert sorted(mail["Subject"].split(":")[0] for mail in mails) == sorted(
        ["Demoen er avtalt"] * 2 + ["Demoen er flyttet"] * 2 + ["Demoen er avlyst"] * 2 + ["Ønsker ny tid for demoen"]
    )

    context = browser.new_context(viewport=PHONE)
    context.set_default_timeout(TIMEOUT_MS)
    phone = context.new_page()
    try:
        for mail in mails:
            html = mail.get_body(("html",)).get_content()
            assert '<meta name="viewport" content="width=device-width, initial-scale=1">' in html
            phone.set_content(html)
            width = phone.evaluate("document.documentElement.scrollWidth")
            assert width <= PHONE["width"], (mail["Subject"], width)
    finally:
        context.close()


def test_a_demo_moves_from_the_card_menu_by_keyboard_through_the_scheduling_dialog(app, board, staff_user):
    lead = make_lead(app, organization_name="Tastatur AS", email="tastatur@eksempel.no")
    schedule_in_domain(app, staff_user, lead["id"])
    board.reload()
    card = board.locator(f"#card-{lead['id']}")
    expect(card.locator(".demo-time")).to_contain_text("Demo")

    card.locator("summary.card-menu-button").focus()
    board.keyboard.press("Enter")
    move_link = card.get_by_role("link", name=re.compile("Flytt demoen"))
    expect(move_link).to_be_visible()
    move_link.focus()
    board.keyboard.press("Enter")

    dialog = board.locator("#demo-dialog")
    expect(dialog).to_be_visible()
    expect(board.get_by_role("heading", name="Flytt demoen")).to_be_visible()
    expect(board.locator("#demo-dialog-location")).to_have_value(re.compile("^https://meet.meander.no/"))
    when = (utcnow() + timedelta(days=10)).astimezone(business_days.OSLO).strftime("%Y-%m-%dT14:30")
    board.locator("#demo-dialog-at").fill(when)
    board.locator("#demo-dialog-minutes").fill("60")
    board.get_by_role("button", name="Lagre og send invitasjon").focus()
    board.keyboard.press("Enter")

    expect(board.locator("#board-messages")).to_contain_text("Demoen med «Tastatur AS» er flyttet")
    with app.app_context():
        stored = db.session.get(Lead, lead["id"])
        assert stored.demo_sequence == 1 and stored.demo_minutes == 60
        assert business_days.to_oslo(stored.demo_at).strftime("%Y-%m-%dT%H:%M") == when


def test_the_confirmation_page_offers_the_calendar_file_and_a_wish_form_on_a_phone(
    app,
    browser,
    live_server,
    staff_user,
):
    lead = make_lead(app)
    schedule_in_domain(app, staff_user, lead["id"])
    context = browser.new_context(base_url=live_server, viewport=PHONE, accept_downloads=True)
    context.set_default_timeout(TIMEOUT_MS)
    phone = context.new_page()
    try:
        phone.goto(f"/confirm/{lead['masked_ref']}")
        expect(phone.get_by_role("heading", name="Demoen er avtalt")).to_be_visible()
        assert phone.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
        with phone.expect_download() as download:
            phone.get_by_role("link", name="Legg til i kalenderen").click()
        assert download.value.suggested_filename == "meander-demo.ics"
        assert b"BEGIN:VEVENT" in open(download.value.path(), "rb").read()

        phone.get_by_label("Når passer det bedre?").fill("Torsdag formiddag")
        phone.get_by_role("button", name="Send ønsket").click()
        expect(phone.get_by_role("status")).to_contain_text("Vi har fått beskjed")
    finally:
        context.close()
    with app.app_context():
        assert db.session.execute(sa.select(Lead.demo_change_request)).scalar_one() == "Torsdag formiddag"
