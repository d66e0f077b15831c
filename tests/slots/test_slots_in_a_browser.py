"""Picking a time in Chromium: on a 375 px phone by tapping, and by keyboard alone (Tab to the times, arrow keys
between them, Space, Tab on to the button), with «Flere tider» loading later days by htmx, under the site's CSP."""

import re

import pytest
import sqlalchemy as sa
from helpers.booking import VALID_BOOKING
from helpers.browser import TIMEOUT_MS
from playwright.sync_api import expect

from meander_site.extensions import db
from meander_site.leads.models import Lead

pytestmark = pytest.mark.browser
PHONE = {"width": 375, "height": 740}


def fill_contact(page) -> None:
    for name in ("first_name", "last_name", "email", "organization_name", "role_title"):
        page.locator(f"#{name}").fill(VALID_BOOKING[name])


def stored_demo(app):
    with app.app_context():
        return db.session.execute(sa.select(Lead.status, Lead.demo_at)).one()


def test_picking_a_time_on_a_phone(app, browser, live_server, staff_user):
    context = browser.new_context(base_url=live_server, viewport=PHONE, is_mobile=True, has_touch=True)
    context.set_default_timeout(TIMEOUT_MS)
    phone = context.new_page()
    errors = []
    phone.on("pageerror", lambda error: errors.append(str(error)))
    try:
        phone.goto("/demo")
        expect(phone.get_by_role("group", name="Velg et tidspunkt")).to_be_visible()
        assert phone.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
        days_before = phone.locator(".slot-day").count()
        phone.get_by_role("link", name="Flere tider").first.click()
        expect(phone.locator(".slot-day")).to_have_count(days_before + 3)
        fill_contact(phone)
        choice = phone.locator('input[name="slot"]').nth(2)
        chosen = choice.get_attribute("value")
        phone.locator(f'label[for="{choice.get_attribute("id")}"]').tap()
        expect(choice).to_be_checked()
        phone.get_by_role("button", name="Send forespørsel").tap()
        expect(phone.get_by_role("heading", name="Demoen er avtalt")).to_be_visible()
        assert phone.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    finally:
        context.close()
    assert not errors
    status, demo_at = stored_demo(app)
    assert status == "demo_scheduled" and chosen.startswith(f"{demo_at:%Y-%m}")


def test_picking_a_time_by_keyboard(app, page, staff_user):
    page.goto("/demo")
    fill_contact(page)
    page.locator("#preferred_demo_timing").focus()
    page.keyboard.press("Shift+Tab")  # back through the picker: the checked choice («Ingen av tidene passer»)
    focused = page.evaluate("document.activeElement.id")
    assert focused == "slot-none"
    page.keyboard.press("ArrowUp")  # the radio group: arrow keys move to the last time offered
    page.keyboard.press("Space")
    chosen = page.evaluate("document.activeElement.value")
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d", chosen)
    expect(page.locator(f'input[name="slot"][value="{chosen}"]')).to_be_checked()
    page.get_by_role("button", name="Send forespørsel").focus()
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", name="Demoen er avtalt")).to_be_visible()
    assert stored_demo(app)[0] == "demo_scheduled"
    assert not page.csp_violations
