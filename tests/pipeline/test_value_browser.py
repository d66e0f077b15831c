"""Issue 20 in Chromium: the value dialog on a move to «Kunde», reopening a lost lead from its page by keyboard, and
the report on a 375 px phone without sideways scrolling."""

import re

import pytest
import sqlalchemy as sa
from helpers.booking import make_lead
from playwright.sync_api import expect

from meander_site.accounts.models import User
from meander_site.dev import demo_data
from meander_site.extensions import db
from meander_site.leads.models import Lead
from meander_site.pipeline import moves

pytestmark = pytest.mark.browser


def stored(app, lead_id) -> Lead:
    with app.app_context():
        lead = db.session.get(Lead, lead_id)
        db.session.expunge(lead)
        return lead


def tab_until(page, target, limit: int = 40):
    for _ in range(limit):
        page.keyboard.press("Tab")
        if target.evaluate("element => element === document.activeElement"):
            return
    raise AssertionError(f"{target} never got focus within {limit} Tabs")


def test_the_value_dialog_asks_for_the_agreed_value_on_a_move_to_kunde(app, staff_user, board):
    page = board
    lead = make_lead(app, organization_name="Verdi AS")
    page.reload()
    card = page.locator(f"#card-{lead['id']}")
    dialog = page.locator("#move-dialog")

    card.locator("summary.card-menu-button").click()
    card.locator(".move-form").get_by_role("button", name="Kunde").click()
    expect(dialog).to_be_visible()
    value = page.get_by_label("Avtalt årsverdi i kroner")
    expect(value).to_be_focused()
    dialog.get_by_role("button", name="Flytt", exact=True).click()  # nothing typed: refused in the dialog
    expect(page.locator("#move-deal-value-error")).to_be_visible()
    expect(value).to_have_attribute("aria-invalid", "true")

    value.fill("12,5")  # not whole kroner: the server's 422, and the card stays
    dialog.get_by_role("button", name="Flytt", exact=True).click()
    expect(page.locator("#board-messages")).to_contain_text("helt antall kroner")
    expect(page.locator(f"#cards-new > #card-{lead['id']}")).to_have_count(1)
    assert stored(app, lead["id"]).status == "new"

    card.locator("summary.card-menu-button").click()
    card.locator(".move-form").get_by_role("button", name="Kunde").click()
    page.get_by_label("Avtalt årsverdi i kroner").fill("48 000")
    page.keyboard.press("Enter")

    expect(page.locator(f"#cards-converted > #card-{lead['id']}")).to_have_count(1)
    expect(page.locator(f"#card-{lead['id']} .lead-card-value")).to_contain_text("kr 48 000")
    expect(page.locator("#sum-converted")).to_contain_text("kr 48 000")
    assert (stored(app, lead["id"]).status, stored(app, lead["id"]).deal_value) == ("converted", 48000)


def test_staff_reopen_a_lost_lead_from_its_page_with_the_keyboard(app, staff_user, board):
    page = board
    lead = make_lead(app, organization_name="Tapt Før AS")
    with app.app_context():
        user = db.session.get(User, staff_user["id"])
        moves.move(lead["id"], "lost", by=user, details=moves.MoveDetails(reason="price"))
    page.goto(f"/pipeline/leads/{lead['id']}")
    reason = page.get_by_label("Hvorfor gjenåpnes leaden?")

    page.get_by_role("heading", name="Runder i pipelinen").focus()
    tab_until(page, reason)
    page.keyboard.type("Ringte og vil se demo likevel")
    page.keyboard.press("Tab")
    expect(page.get_by_role("button", name="Gjenåpne leaden")).to_be_focused()
    page.keyboard.press("Enter")

    expect(page.get_by_text("Leaden er gjenåpnet i «Ny»")).to_be_visible()
    expect(page.locator("#passes li").first).to_contain_text(
        re.compile(r"Runde 1.*endte som «Tapt» \(Pris eller budsjett\)", re.S)
    )
    expect(page.get_by_text("Gjenåpnet: runde 2 startet i «Ny»")).to_be_visible()
    after = stored(app, lead["id"])
    assert (after.status, after.pass_number) == ("new", 2)


def test_the_report_on_a_phone_never_scrolls_sideways(app, staff_user, board):
    page = board
    with app.app_context():
        demo_data.create_demo_leads(80, seed=5)
        db.session.execute(
            sa.update(Lead)
            .where(Lead.first_channel == "Direkte")
            .values(first_channel="en-svært-lang-kanal.eksempel.no / nyhetsbrev-med-langt-navn")
        )
        db.session.commit()
    page.set_viewport_size({"width": 375, "height": 740})
    page.goto("/pipeline/report?period=year")

    expect(page.get_by_role("heading", name="Hva pipelinen er verdt", exact=True)).to_be_visible()
    expect(page.get_by_role("heading", name=re.compile("Etter kanal"))).to_be_visible()
    assert page.evaluate("document.documentElement.scrollWidth") <= 375
    # Wide tables scroll inside their own box, which the keyboard can reach.
    scrollers = page.locator(".table-scroll")
    expect(scrollers.first).to_have_attribute("tabindex", "0")
    page.get_by_label("Siste kontakt").check()
    page.get_by_role("button", name="Vis rapporten").click()
    expect(page).to_have_url(re.compile(r"touch=latest"))
    assert page.evaluate("document.documentElement.scrollWidth") <= 375
