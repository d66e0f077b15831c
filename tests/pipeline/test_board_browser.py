"""The board in a real browser: Playwright for Python driving Debian's Chromium against a real HTTP server.

Skipped (with a plain message) where Chromium is not installed; Playwright's own browser download is not used.
"""

import re
from datetime import timedelta

import pytest
import sqlalchemy as sa
from helpers.assignment import leave_the_pool
from helpers.booking import make_lead
from helpers.browser import CHROMIUM, CHROMIUM_MISSING, flush_csp_reports

from meander_site.accounts.models import User
from meander_site.core.clock import utcnow
from meander_site.dev import demo_data
from meander_site.extensions import db
from meander_site.leads.models import Lead, LeadStatusChange
from meander_site.pipeline import board as board_model
from meander_site.pipeline import moves
from meander_site.scheduling import demos

if not CHROMIUM:
    pytest.skip(CHROMIUM_MISSING, allow_module_level=True)
playwright_api = pytest.importorskip(
    "playwright.sync_api", reason="Playwright for Python not installed: browser tests skipped"
)
expect = playwright_api.expect
pytestmark = pytest.mark.browser


def has_class(name):
    return re.compile(rf"(^|\s){re.escape(name)}(\s|$)")


def lead_with_status(app, staff_user, status, **fields):
    """A booked lead, moved along the pipeline through the domain layer (so counts and history stay right)."""
    lead = make_lead(app, **fields)
    if status != "new":
        with app.app_context():
            user = db.session.get(User, staff_user["id"])
            details = moves.MoveDetails(deal_value=48000 if status == "converted" else None)
            if status == "demo_scheduled":
                in_a_week = (utcnow() + timedelta(days=7)).replace(second=0, microsecond=0)
                plan = demos.DemoPlan(in_a_week, 30, "https://meet.meander.no/demo", user.id)
                details = moves.MoveDetails(demo=plan)
            moves.move(lead["id"], status, by=user, details=details)
    return lead


def status_of(app, lead_id):
    with app.app_context():
        return db.session.get(Lead, lead_id).status


def changes_of(app, lead_id):
    with app.app_context():
        rows = db.session.execute(
            sa.select(LeadStatusChange).where(LeadStatusChange.lead_id == lead_id).order_by(LeadStatusChange.changed_at)
        ).scalars()
        return [(row.from_status, row.to_status, row.reason, row.note) for row in rows]


def card(page, lead_id):
    return page.locator(f"#card-{lead_id}")


def in_column(page, status, lead_id):
    return page.locator(f'section.column[data-status="{status}"] ol#cards-{status} > li#card-{lead_id}')


def drag(page, lead_id, to_status, while_dragging=None, refused=False):
    """Drag a card with the mouse (native HTML5 drag, as Sortable uses it) onto another column's list.

    The card is grabbed by its contact line. With refused=True the column must refuse it: the card never
    enters the list, and the drop happens once the column is marked as closed to it.
    """
    handle = card(page, lead_id).locator(".lead-card-contact")
    handle.scroll_into_view_if_needed()
    start = handle.bounding_box()
    target = page.locator(f"#cards-{to_status}").bounding_box()
    assert start and target
    x, y = start["x"] + start["width"] / 2, start["y"] + start["height"] / 2
    page.mouse.move(x, y)
    page.mouse.down()
    page.mouse.move(x + 8, y + 8, steps=4)  # far enough for the browser to start the drag
    tx, ty = target["x"] + target["width"] / 2, target["y"] + min(40, target["height"] / 2)
    page.mouse.move(tx, ty, steps=15)
    if refused:
        column = page.locator(f'section.column[data-status="{to_status}"]')
        expect(column).to_have_class(has_class("column--forbidden"))
        for nudge in range(3):  # held over the column a while: it still does not take the card
            page.mouse.move(tx, ty + nudge + 1)
        assert page.locator(f"#cards-{to_status} > #card-{lead_id}").count() == 0
        if while_dragging:
            while_dragging()
        page.mouse.up()
        return
    # Sortable ignores dragover events for 30 ms after each move of the dragged card; nudge the pointer
    # until the card (which Sortable moves along as its ghost) sits in the target list.
    arrived = page.locator(f"#cards-{to_status} > #card-{lead_id}")
    for nudge in range(20):
        try:
            arrived.wait_for(state="attached", timeout=40)  # done as soon as it is there
            break
        except playwright_api.TimeoutError:
            page.mouse.move(tx, ty + (nudge % 2) * 2 + 1)
    assert arrived.count() == 1, f"the dragged card never reached the {to_status} column"
    if while_dragging:
        while_dragging()
    page.mouse.up()


def test_drag_forward_moves_the_card_and_saves_the_status(app, staff_user, board):
    page = board
    lead = make_lead(app, email="forover@lhl.no", organization_name="Forover AS")
    page.reload()
    expect(in_column(page, "new", lead["id"])).to_have_count(1)

    def columns_marked():
        expect(page.locator("body")).to_have_class(has_class("is-dragging"))
        expect(page.locator('section.column[data-status="contacted"]')).to_have_class(has_class("column--allowed"))
        expect(page.locator('section.column[data-status="new"]')).not_to_have_class(has_class("column--forbidden"))

    drag(page, lead["id"], "contacted", while_dragging=columns_marked)

    expect(in_column(page, "contacted", lead["id"])).to_have_count(1)
    expect(card(page, lead["id"])).to_have_count(1)
    expect(page.locator("#board-messages")).to_contain_text("Forover AS")
    expect(page.locator("#count-contacted")).to_contain_text("1")
    expect(page.locator("#count-new")).to_contain_text("0")
    expect(page.locator(".column--forbidden, .column--allowed")).to_have_count(0)  # cleared after the drop
    assert status_of(app, lead["id"]) == "contacted"
    assert changes_of(app, lead["id"]) == [("new", "contacted", None, None)]


def posts_of(page) -> list[str]:
    """Every POST the page sends from now on."""
    posts: list[str] = []
    page.on("request", lambda request: posts.append(request.url) if request.method == "POST" else None)
    return posts


def test_a_backward_drag_is_refused_by_the_column_without_a_request_and_says_why(app, staff_user, board):
    page = board
    lead = lead_with_status(app, staff_user, "qualified", email="bakover@lhl.no", organization_name="Bakover AS")
    page.reload()
    expect(in_column(page, "qualified", lead["id"])).to_have_count(1)
    posts = posts_of(page)

    def columns_marked():
        # While dragging, the columns behind the card are visibly disabled; those ahead are open.
        for status in ("new", "contacted"):
            column = page.locator(f'section.column[data-status="{status}"]')
            expect(column).to_have_class(has_class("column--forbidden"))
            expect(column).to_have_attribute("aria-disabled", "true")
        for status in ("demo_scheduled", "converted", "lost"):
            expect(page.locator(f'section.column[data-status="{status}"]')).not_to_have_class(
                has_class("column--forbidden")
            )

    drag(page, lead["id"], "new", while_dragging=columns_marked, refused=True)

    message = page.locator("#board-messages")
    expect(message).to_contain_text("«Ny» tar ikke imot kortet herfra: kort flyttes bare fremover.")
    expect(page.locator("#move-dialog")).to_be_hidden()
    expect(message.locator(".board-message--error")).to_have_count(1)
    expect(in_column(page, "qualified", lead["id"])).to_have_count(1)
    expect(page.locator("#cards-new > li.lead-card")).to_have_count(0)
    expect(card(page, lead["id"])).not_to_have_class(has_class("is-saving"))
    assert posts == []
    assert status_of(app, lead["id"]) == "qualified"
    assert changes_of(app, lead["id"]) == [("new", "qualified", None, None)]


def test_a_card_in_a_final_status_cannot_be_dragged(app, staff_user, board):
    page = board
    lead = lead_with_status(app, staff_user, "converted", email="kunde@lhl.no", organization_name="Kunde AS")
    page.reload()
    expect(card(page, lead["id"])).to_have_attribute("data-final", "")
    posts = posts_of(page)

    handle = card(page, lead["id"]).locator(".lead-card-contact")
    box = handle.bounding_box()
    target = page.locator("#cards-lost").bounding_box()
    page.mouse.move(box["x"] + 20, box["y"] + 5)
    page.mouse.down()
    page.mouse.move(box["x"] + 30, box["y"] + 15, steps=4)
    page.mouse.move(target["x"] + 40, target["y"] + 30, steps=10)
    page.mouse.move(target["x"] + 42, target["y"] + 32)
    expect(page.locator("body")).not_to_have_class(has_class("is-dragging"))  # Sortable never started a drag
    page.mouse.up()

    expect(in_column(page, "converted", lead["id"])).to_have_count(1)
    expect(page.locator("#move-dialog")).to_be_hidden()
    assert posts == []
    assert status_of(app, lead["id"]) == "converted"


def press_tab_until(page, target, limit: int = 25):
    """Tab forward (keyboard only) until `target` (a locator) has focus."""
    for _ in range(limit):
        page.keyboard.press("Tab")
        if target.evaluate("element => element === document.activeElement"):
            return
    raise AssertionError(f"{target} never got focus within {limit} Tabs")


def menu_button(page, lead_id):
    return card(page, lead_id).locator("summary.card-menu-button")


def test_keyboard_only_move_through_the_card_menu_returns_focus_to_the_cards_menu_button(app, staff_user, board):
    page = board
    lead = make_lead(app, email="tastatur@lhl.no", organization_name="Tastatur AS")
    page.reload()
    expect(in_column(page, "new", lead["id"])).to_have_count(1)

    page.locator("#filter-overdue").focus()  # the last control before the board: Tab goes on from here
    press_tab_until(page, menu_button(page, lead["id"]))
    page.keyboard.press("Enter")  # opens the menu; its actions load
    menu = card(page, lead["id"]).locator(".move-form")
    expect(menu.get_by_role("button")).to_have_text(["Kontaktet", "Kvalifisert", "Demo avtalt", "Kunde", "Tapt"])
    press_tab_until(page, menu.get_by_role("button", name="Kvalifisert"))
    page.keyboard.press("Enter")

    expect(in_column(page, "qualified", lead["id"])).to_have_count(1)
    expect(card(page, lead["id"])).to_have_count(1)
    expect(menu_button(page, lead["id"])).to_be_focused()
    expect(page.locator("#board-messages")).to_contain_text("Neste steg: «Avtal demo»")
    assert status_of(app, lead["id"]) == "qualified"
    assert changes_of(app, lead["id"]) == [("new", "qualified", None, None)]


def test_keyboard_only_assignment_through_the_card_menu(app, staff_user, board):
    page = board
    leave_the_pool(app)  # the lead arrives «Ufordelt» (tests/assignment: owners in rotation)
    lead = make_lead(app, email="eier@lhl.no", organization_name="Eier AS")
    page.reload()

    menu_button(page, lead["id"]).focus()
    page.keyboard.press("Enter")
    owner = card(page, lead["id"]).get_by_label("Eier", exact=True)
    expect(owner).to_be_visible()
    press_tab_until(page, owner)
    page.keyboard.press("ArrowDown")  # Ufordelt → Siri Selger (meg)
    expect(owner).to_have_value(str(staff_user["id"]))
    press_tab_until(page, card(page, lead["id"]).get_by_role("button", name="Lagre eier"))
    page.keyboard.press("Enter")

    expect(card(page, lead["id"]).locator(".owner")).to_have_text("SSEier: Siri Selger")
    expect(menu_button(page, lead["id"])).to_be_focused()
    expect(page.locator("#board-messages")).to_contain_text("er gitt til Siri Selger")
    with app.app_context():
        assert db.session.get(Lead, lead["id"]).owner_id == staff_user["id"]


def test_each_card_is_one_tab_stop_and_arrow_keys_move_between_cards_and_columns(app, staff_user, board):
    page = board
    top = make_lead(app, email="a@lhl.no", organization_name="Øverst AS")
    below = make_lead(app, email="b@lhl.no", organization_name="Under AS")
    beside = lead_with_status(app, staff_user, "contacted", email="c@lhl.no", organization_name="Ved siden AS")
    page.reload()
    first, second = page.locator("#cards-new > .lead-card").evaluate_all("cards => cards.map(c => c.dataset.leadId)")
    assert {first, second} == {str(top["id"]), str(below["id"])}

    menu_button(page, first).focus()
    page.keyboard.press("Tab")
    expect(menu_button(page, second)).to_be_focused()  # no other stop inside the first card
    page.keyboard.press("ArrowUp")
    expect(menu_button(page, first)).to_be_focused()
    page.keyboard.press("ArrowDown")
    expect(menu_button(page, second)).to_be_focused()
    page.keyboard.press("ArrowRight")
    expect(menu_button(page, beside["id"])).to_be_focused()
    page.keyboard.press("ArrowLeft")
    expect(menu_button(page, first)).to_be_focused()


def test_vis_flere_puts_focus_on_the_first_card_it_brought(app, staff_user, board):
    page = board
    for n in range(board_model.CARDS_PER_COLUMN + 3):
        make_lead(app, email=f"mange{n:02d}@lhl.no", organization_name=f"Forening {n:02d}")
    page.reload()
    expect(page.locator("#cards-new > .lead-card")).to_have_count(board_model.CARDS_PER_COLUMN)

    more = page.locator("#cards-new .load-more button")
    more.focus()
    page.keyboard.press("Enter")

    expect(page.locator("#cards-new > .lead-card")).to_have_count(board_model.CARDS_PER_COLUMN + 3)
    first_new = page.locator("#cards-new > .lead-card").nth(board_model.CARDS_PER_COLUMN)
    expect(first_new.locator("summary.card-menu-button")).to_be_focused()
    expect(page.locator("#cards-new .load-more")).to_have_count(0)


def test_a_failed_save_on_the_lead_page_starts_at_its_error_summary(app, staff_user, board):
    page = board
    lead = make_lead(app)
    page.goto(f"/pipeline/leads/{lead['id']}")
    page.get_by_label("Fornavn").fill("")
    page.get_by_role("button", name="Lagre endringer").click()

    summary = page.locator(".error-summary")
    expect(summary).to_be_focused()
    expect(summary).to_contain_text("Skriv inn kontaktens fornavn.")
    assert summary.evaluate("element => element.getBoundingClientRect().top < innerHeight")


def test_a_move_to_lost_can_be_cancelled_or_confirmed_with_a_reason(app, staff_user, board):
    page = board
    kept = lead_with_status(app, staff_user, "contacted", email="angret@lhl.no", organization_name="Angret AS")
    lost = lead_with_status(app, staff_user, "demo_scheduled", email="tapt@lhl.no", organization_name="Tapt AS")
    page.reload()
    dialog = page.locator("#move-dialog")

    # Cancelled: the card goes back where it was, nothing saved.
    drag(page, kept["id"], "lost")
    expect(dialog).to_be_visible()
    expect(page.locator("#move-dialog-lead")).to_have_text("Angret AS")
    dialog.get_by_role("button", name="Avbryt").click()
    expect(dialog).to_be_hidden()
    expect(in_column(page, "contacted", kept["id"])).to_have_count(1)
    expect(page.locator("#cards-lost > li.lead-card")).to_have_count(0)
    expect(page.locator("#board-messages")).to_contain_text("avbrutt")
    assert status_of(app, kept["id"]) == "contacted"

    # Confirmed with a reason and a note: saved, the card is in «Tapt», the history carries both.
    drag(page, lost["id"], "lost")
    expect(dialog).to_be_visible()
    expect(page.locator("#move-dialog-lead")).to_have_text("Tapt AS")
    expect(page.locator("#move-reason")).to_be_focused()
    page.locator("#move-reason").select_option("price")
    page.locator("#move-note").fill("For dyrt i år, ta kontakt i august.")
    dialog.get_by_role("button", name="Flytt", exact=True).click()
    expect(dialog).to_be_hidden()
    expect(in_column(page, "lost", lost["id"])).to_have_count(1)
    expect(page.locator("#board-messages")).to_contain_text("Tapt AS")
    expect(card(page, lost["id"])).to_have_attribute("data-final", "")
    expect(page.locator("#count-lost")).to_contain_text("1")
    assert status_of(app, lost["id"]) == "lost"
    assert changes_of(app, lost["id"])[-1] == ("demo_scheduled", "lost", "price", "For dyrt i år, ta kontakt i august.")
    assert status_of(app, kept["id"]) == "contacted"


def test_a_move_to_lost_without_a_reason_is_refused_in_the_dialog(app, staff_user, board):
    page = board
    lead = make_lead(app, email="grunnlos@lhl.no", organization_name="Grunnløs AS")
    page.reload()
    dialog = page.locator("#move-dialog")
    posts = []
    page.on("request", lambda request: posts.append(request.url) if request.method == "POST" else None)

    # The keyboard path to «Tapt» (the card menu) opens the same dialog.
    menu_button(page, lead["id"]).focus()
    page.keyboard.press("Enter")
    lost_button = card(page, lead["id"]).get_by_role("button", name="Tapt")
    expect(lost_button).to_be_visible()  # the menu's actions have loaded
    press_tab_until(page, lost_button)
    page.keyboard.press("Enter")
    expect(dialog).to_be_visible()
    reason = page.locator("#move-reason")
    expect(reason).to_be_focused()

    dialog.get_by_role("button", name="Flytt", exact=True).click()
    # The page's own Norwegian error, tied to the field, and the dialog stays open.
    expect(page.locator("#move-reason-error")).to_be_visible()
    expect(page.locator("#move-reason-error")).to_contain_text("Velg en grunn")
    expect(reason).to_have_attribute("aria-invalid", "true")
    expect(reason).to_be_focused()
    expect(dialog).to_be_visible()
    assert posts == []
    assert status_of(app, lead["id"]) == "new"

    reason.select_option("no_need")
    dialog.get_by_role("button", name="Flytt", exact=True).click()
    expect(dialog).to_be_hidden()
    expect(in_column(page, "lost", lead["id"])).to_have_count(1)
    assert changes_of(app, lead["id"]) == [("new", "lost", "no_need", None)]


def test_the_csp_blocks_inline_style_and_the_check_notices(page):
    page.goto("/demo")
    expect(page.get_by_role("heading", level=1)).to_be_visible()

    page.evaluate("document.body.setAttribute('style', 'outline: 1px solid red')")

    flush_csp_reports(page)  # the report arrives asynchronously, after evaluate() has returned
    assert [violation.split(":")[0] for violation in page.csp_violations] == ["style-src-attr"]
    page.csp_violations.clear()  # seen: the fixture's own check must not fail on it


def test_the_booking_form_answers_in_place_under_the_csp(app, page):
    page.goto("/demo")
    page.get_by_role("button", name="Send forespørsel").click()

    summary = page.locator("form .error-summary")
    expect(summary).to_be_visible()
    expect(summary).to_be_focused()  # site.js moved focus after htmx swapped the 422 form in
    expect(page).to_have_url(re.compile(r"/demo$"))

    page.get_by_label("Fornavn").fill("Kari")
    page.get_by_label("Etternavn").fill("Nordmann")
    page.get_by_label("E-post").fill("kari.nordmann@lhl.no")
    page.get_by_label("Organisasjon").fill("LHL Hjerneslag")
    page.get_by_label("Rolle").fill("Koordinator")
    page.get_by_role("button", name="Send forespørsel").click()

    expect(page).to_have_url(re.compile(r"/confirm/"))
    expect(page.get_by_text("LHL Hjerneslag")).to_be_visible()


@pytest.mark.parametrize("path", ["/demo", "/login"])
def test_a_first_visit_to_a_public_page_loads_everything_without_a_console_error(page, path):
    console_errors, failed = [], []
    page.on("console", lambda message: message.type == "error" and console_errors.append(message.text))
    page.on("response", lambda response: response.status >= 400 and failed.append(f"{response.status} {response.url}"))

    page.goto(path)
    page.wait_for_load_state("networkidle")
    # Headless Chromium does not fetch icons itself; fetch each the way a browser's tab bar would.
    icons = page.evaluate(
        "Promise.all([...document.querySelectorAll('link[rel=icon]'), {href: '/favicon.ico'}]"
        ".map(link => fetch(link.href).then(response => `${response.status} ${response.headers.get('content-type')}`)))"
    )

    assert not console_errors and not failed, (console_errors, failed)
    assert [icon.split(" ")[0] for icon in icons] == ["200", "200", "200"], icons
    assert all(icon.split(" ")[1].startswith("image/") for icon in icons), icons


WHOLE_CARDS_PER_COLUMN = """() => [...document.querySelectorAll("section.column")].map((column) => {
  const list = column.querySelector("ol.cards").getBoundingClientRect();
  const box = column.getBoundingClientRect();
  const whole = [...column.querySelectorAll("ol.cards > .lead-card")].filter((card) => {
    const r = card.getBoundingClientRect();
    return r.height > 0 && r.top >= list.top - 1 && r.bottom <= Math.min(list.bottom, innerHeight) + 1
      && r.left >= 0 && r.right <= innerWidth + 1;
  }).length;
  return {status: column.dataset.status, whole, left: box.left, right: box.right};
})"""


def test_a_thousand_demo_leads_show_whole_cards_in_every_column_at_laptop_sizes(app, staff_user, board):
    page = board
    with app.app_context():
        demo_data.create_demo_leads(1000, seed=8)

    measured = {}
    for (width, height), at_least in {(1440, 900): 5, (1280, 800): 4}.items():
        page.set_viewport_size({"width": width, "height": height})
        page.reload()
        expect(page.locator("ol.cards[data-sortable-ready]")).to_have_count(6)
        columns = page.evaluate(WHOLE_CARDS_PER_COLUMN)
        measured[width] = {column["status"]: column["whole"] for column in columns}
        assert all(0 <= column["left"] and column["right"] <= width for column in columns), columns  # all six
        assert min(measured[width].values()) >= at_least, measured
        assert page.evaluate("document.documentElement.scrollWidth") <= width
        assert page.evaluate("document.documentElement.scrollHeight") <= height  # the columns scroll, not the page
    print(f"whole cards per column: {measured}")


def test_a_phone_shows_one_column_at_a_time_with_a_switcher_and_never_scrolls_sideways(app, staff_user, board):
    page = board
    with app.app_context():
        demo_data.create_demo_leads(60, seed=3)
    page.set_viewport_size({"width": 375, "height": 740})
    page.reload()

    switcher = page.get_by_role("navigation", name="Kolonner")
    expect(switcher.get_by_role("button")).to_have_count(6)
    assert page.evaluate("document.documentElement.scrollWidth") <= 375
    expect(page.locator("section.column:visible")).to_have_count(1)
    lost = switcher.get_by_role("button", name=re.compile(r"^Tapt \d+$"))
    count = lost.locator(".count").inner_text()
    assert count == page.locator("#count-lost").get_attribute("data-count")
    lost.click()
    expect(lost).to_have_attribute("aria-pressed", "true")
    expect(page.locator("section.column:visible")).to_have_count(1)
    expect(page.locator("#column-lost")).to_be_visible()
    assert page.evaluate("document.documentElement.scrollWidth") <= 375


def poll_now(page):
    """Run the 30-second poll at once, as its timer would."""
    page.evaluate(
        "htmx.ajax('GET', document.getElementById('board-poll').getAttribute('hx-get'),"
        " {source: '#board-poll', target: '#board-inbox', swap: 'innerHTML'})"
    )


def test_the_poll_places_and_announces_a_new_lead_and_ignores_cards_the_page_never_loaded(app, staff_user, board):
    page = board
    for n in range(board_model.CARDS_PER_COLUMN + 1):
        make_lead(app, email=f"fylt{n:02d}@lhl.no", organization_name=f"Fylt {n:02d}")
    page.reload()
    expect(page.locator("#cards-new > .lead-card")).to_have_count(board_model.CARDS_PER_COLUMN)
    htmx_errors = []
    page.on("console", lambda message: "oobErrorNoTarget" in message.text and htmx_errors.append(message.text))
    page.evaluate("document.body.addEventListener('htmx:oobErrorNoTarget', () => console.error('oobErrorNoTarget'))")
    shown = set(page.locator("#cards-new > .lead-card").evaluate_all("cards => cards.map(c => c.dataset.leadId)"))
    with app.app_context():
        hidden = db.session.execute(sa.select(Lead.id).where(Lead.status == "new")).scalars().all()
    [unloaded] = [lead_id for lead_id in hidden if str(lead_id) not in shown]
    with app.app_context():  # a colleague edits the one card beyond «Vis flere», and a lead arrives
        db.session.execute(sa.update(Lead).where(Lead.id == unloaded).values(updated_at=utcnow()))
        db.session.commit()
    arrived = make_lead(app, email="helt.ny@lhl.no", organization_name="Helt Ny Forening")

    with page.expect_response(re.compile(r"/pipeline/changes")) as polled:
        poll_now(page)
    assert f'<template data-lead-id="{unloaded}"' in polled.value.text()  # sent, and left alone by the page

    new_card = card(page, arrived["id"])
    expect(new_card).to_have_class(has_class("lead-card--new"))
    expect(page.locator("#cards-new > .lead-card").first).to_have_id(f"card-{arrived['id']}")
    expect(page.locator("#board-messages")).to_have_text("Ny lead: Helt Ny Forening i «Ny».")
    expect(page.locator("#board-messages")).to_have_attribute("aria-live", "polite")
    expect(page.locator("#count-new")).to_have_attribute("data-count", str(board_model.CARDS_PER_COLUMN + 2))
    expect(card(page, unloaded)).to_have_count(0)
    assert htmx_errors == []


def test_a_filter_that_matches_nothing_says_so(app, staff_user, board):
    page = board
    make_lead(app)
    page.reload()

    page.get_by_label("Søk").fill("finnes ikke noe sted")

    expect(page.locator(".board-empty")).to_contain_text("Ingen leads passer søket eller filteret.")
    expect(page.locator(".lead-card")).to_have_count(0)
