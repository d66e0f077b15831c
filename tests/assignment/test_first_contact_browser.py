"""The first-contact clock in a real browser: the countdown on a new card, and «Logg kontaktforsøk» from the card menu
with the keyboard alone."""

import re
from datetime import timedelta

import pytest
import sqlalchemy as sa
from helpers.booking import make_lead
from helpers.browser import CHROMIUM, CHROMIUM_MISSING

from meander_site.core.clock import utcnow
from meander_site.extensions import db
from meander_site.leads.models import Lead, LeadEvent

if not CHROMIUM:
    pytest.skip(CHROMIUM_MISSING, allow_module_level=True)
playwright_api = pytest.importorskip(
    "playwright.sync_api", reason="Playwright for Python not installed: browser tests skipped"
)
expect = playwright_api.expect
pytestmark = pytest.mark.browser


def press_tab_until(page, target, limit: int = 25):
    for _ in range(limit):
        page.keyboard.press("Tab")
        if target.evaluate("element => element === document.activeElement"):
            return
    raise AssertionError(f"{target} never got focus within {limit} Tabs")


def test_the_poll_moves_a_cards_clock_on_without_a_reload(app, staff_user, board):
    page = board
    lead = make_lead(app, email="klokke@lhl.no", organization_name="Klokke AS")
    page.reload()
    clock = page.locator(f"#card-{lead['id']} .clock")
    expect(clock).to_have_text(re.compile(r"Svar innen"))
    with app.app_context():  # its time runs out while nothing about the lead changes
        long_ago = utcnow() - timedelta(days=1)
        db.session.execute(
            sa.update(Lead).where(Lead.id == lead["id"]).values(first_contact_due_at=long_ago, updated_at=long_ago)
        )
        db.session.commit()

    page.evaluate(
        """() => htmx.ajax("GET", document.getElementById("board-poll").getAttribute("hx-get"),
                          {target: "#board-inbox", swap: "innerHTML"})"""
    )

    expect(clock).to_have_text(re.compile(r"^Svarfristen"))


def test_a_new_card_counts_down_and_a_contact_attempt_is_logged_by_keyboard(app, staff_user, board):
    page = board
    lead = make_lead(app, email="klokke@lhl.no", organization_name="Klokke AS")
    page.reload()
    card = page.locator(f"#card-{lead['id']}")
    expect(card.locator(".clock")).to_have_text(re.compile(r"Svar innen (\d+ t( \d+ min)?|\d+ min)"))

    card.locator("summary.card-menu-button").focus()
    page.keyboard.press("Enter")  # opens the menu; its actions load
    called = card.get_by_label("Ringte")
    expect(called).to_be_visible()
    press_tab_until(page, called)
    page.keyboard.press("ArrowDown")  # Ringte → Sendte e-post
    expect(card.get_by_label("Sendte e-post")).to_be_checked()
    press_tab_until(page, card.get_by_label("Notat (valgfritt)"))
    page.keyboard.type("Sendte tilbud på e-post")
    press_tab_until(page, card.get_by_role("button", name="Logg forsøket"))
    page.keyboard.press("Enter")

    expect(page.locator("#board-messages")).to_contain_text("logget som første kontakt")
    expect(page.locator(f"#card-{lead['id']} .clock")).to_have_count(0)  # the clock has stopped
    with app.app_context():
        assert db.session.get(Lead, lead["id"]).first_contact_at is not None
        details = [
            event.detail for event in db.session.query(LeadEvent).filter_by(lead_id=lead["id"], kind="contact_attempt")
        ]
    assert details == ["Kontaktforsøk: Sendte e-post – Sendte tilbud på e-post"]
