"""The report in Chromium: reached from the staff menu, filtered with the keyboard, under the site's CSP, printable.

Uses conftest's browser fixtures (a real server, Chromium, CSP violations collected and asserted on).
"""

import re

import pytest
from helpers.booking import make_lead
from playwright.sync_api import expect

pytestmark = pytest.mark.browser


def test_the_report_is_reached_from_the_menu_filtered_by_keyboard_and_prints_without_controls(
    app,
    board,
):
    make_lead(app)
    make_lead(app, email="ola@bymisjon.no", organization_name="Kirkens Bymisjon", organization_size="1-10")
    tab = board

    tab.get_by_role("link", name="Rapport").click()
    expect(tab.get_by_role("heading", level=1)).to_contain_text("Rapport")
    funnel = tab.get_by_role("table").filter(has_text="Av steget før")
    expect(funnel.get_by_role("row", name=re.compile(r"^Ny 2"))).to_be_visible()
    expect(tab.locator("svg.chart")).to_have_count(3)

    tab.get_by_label("Størrelse").focus()
    tab.get_by_label("Størrelse").select_option("1-10")
    tab.get_by_role("button", name="Vis rapporten").press("Enter")
    expect(tab).to_have_url(re.compile(r"organization_size=1-10"))
    expect(tab.get_by_text(re.compile(r"Leads som kom inn .*: 1\."))).to_be_visible()

    tab.emulate_media(media="print")
    expect(tab.locator(".report-filters")).to_be_hidden()
    expect(tab.locator(".staff-header")).to_be_hidden()
    expect(tab.locator("svg.chart").first).to_be_visible()
