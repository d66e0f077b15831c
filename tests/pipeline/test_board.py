"""The board at GET /pipeline: columns, cards, counts under search and filters, paging, the poll,
a fixed number of queries, and what every staff page sends (no-store, no htmx history)."""

import html
import re
from datetime import datetime, timedelta
from urllib.parse import parse_qs, urlsplit
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa
from helpers.assignment import leave_the_pool
from helpers.booking import VALID_BOOKING, make_lead
from helpers.jobs import run_jobs
from helpers.paths import PROJECT_ROOT

from meander_site.accounts.models import User
from meander_site.core.clock import utcnow
from meander_site.dev import demo_data
from meander_site.extensions import db
from meander_site.leads import models, validation
from meander_site.leads.models import Lead
from meander_site.pipeline import board as board_model
from meander_site.pipeline import moves, staff_leads

STATUSES = ["new", "contacted", "qualified", "demo_scheduled", "converted", "lost"]
LABELS = ["Ny", "Kontaktet", "Kvalifisert", "Demo avtalt", "Kunde", "Tapt"]
COUNT = re.compile(
    r'<span id="count-([a-z_]+)" class="count"[^>]*><span class="visually-hidden">[^<]*</span>(\d+)</span>'
)
HTMX = {"HX-Request": "true"}


# --- reading the board -----------------------------------------------------------------------------


def columns(page: str) -> dict[str, list[str]]:
    """Status -> lead ids of its cards, in page order."""
    parts = re.split(r'(?=<section class="column" id="column-)', page)[1:]
    result = {}
    for part in parts:
        status = re.match(r'<section class="column" id="column-([a-z_]+)"', part).group(1)
        result[status] = re.findall(r'<li class="lead-card[^"]*"\s+id="card-([^"]+)"', part)
    return result


def counts(page: str) -> dict[str, int]:
    return {status: int(count) for status, count in COUNT.findall(page)}


def card(page: str, lead_id) -> str:
    match = re.search(rf'<li class="lead-card[^"]*"\s+id="card-{lead_id}".*?</li>', page, re.S)
    assert match, f"card {lead_id} is on the page"
    return match.group(0)


def board(client, **args) -> str:
    response = client.get("/pipeline", query_string=args)
    assert response.status_code == 200
    return response.get_data(as_text=True)


def export_link(page: str) -> str:
    return html.unescape(re.search(r'<a id="export-link"[^>]*href="([^"]+)"', page).group(1))


def move_lead(app, lead_id, status: str, user_id, reason: str | None = None) -> None:
    with app.app_context():
        user = db.session.get(User, user_id)
        value = 48000 if status == "converted" else None
        moves.move(lead_id, status, by=user, details=moves.MoveDetails(reason=reason, deal_value=value))


def staff_created(app, source: str, **fields) -> str:
    with app.app_context():
        details = validation.validate_contact_details({**VALID_BOOKING, **fields})
        return staff_leads.create_by_staff(details, source, send_confirmation=False).lead_id


# --- columns and cards -----------------------------------------------------------------------------


def test_the_board_renders_the_move_rules_and_board_js_hard_codes_none_of_them(app, staff_client):
    lead = make_lead(app)

    page = board(staff_client)

    assert f'data-move-url="/pipeline/leads/{lead["id"]}/status"' in page
    column = '<section class="column" id="column-{0}" data-status="{0}" data-label="{1}"'
    lost = ' data-dialog-title="Flytt til «Tapt»" data-requires-reason="true" aria-'
    assert column.format("lost", "Tapt") + lost in page
    assert (
        column.format("converted", "Kunde") + ' data-dialog-title="Flytt til «Kunde»" data-requires-value="true" aria-'
        in page
    )
    assert column.format("qualified", "Kvalifisert") + " aria-" in page
    assert 'data-allowed="contacted qualified demo_scheduled converted lost"' in card(page, lead["id"])
    assert f'<textarea id="move-note" name="note" rows="3" maxlength="{models.MAX_NOTE_LENGTH}">' in page
    script = (PROJECT_ROOT / "static" / "js" / "board.js").read_text()
    assert "/pipeline" not in script and "«" not in script
    assert not [status for status in STATUSES if f'"{status}"' in script or f"{status}:" in script]


def test_board_has_six_columns_in_pipeline_order_with_norwegian_labels(staff_client):
    page = board(staff_client)

    assert list(columns(page)) == STATUSES
    titles = re.findall(r'<h2 id="column-([a-z_]+)-title" class="column-title">\s*([^<]+?)\s*<span', page)
    assert titles == list(zip(STATUSES, LABELS, strict=True))
    assert counts(page) == dict.fromkeys(STATUSES, 0)


def test_a_card_shows_organization_contact_role_owner_and_its_first_step(app, staff_client):
    leave_the_pool(app)  # the web lead arrives «Ufordelt» (tests/assignment: owners in rotation)
    web = make_lead(app)
    phoned = staff_created(
        app,
        "phone",
        email="ola@bymisjon.no",
        first_name="Ola",
        last_name="Hansen",
        organization_name="Kirkens Bymisjon Bergen",
        role_title="Daglig leder",
        organization_size="",
    )

    page = board(staff_client)

    web_card = card(page, web["id"])
    assert f'data-lead-id="{web["id"]}"' in web_card
    assert "LHL Hjerneslag" in web_card
    assert "Kari Nordmann · Koordinator" in web_card
    assert '<span class="visually-hidden">Ufordelt</span>' in web_card
    # Its first step, «Første kontakt», as the clock in business time (tests/assignment/test_first_contact.py).
    assert re.search(r'title="Første kontakt innen [^"]+">Svar innen \d', web_card)
    assert "Forfalt" not in web_card and "data-overdue" not in web_card
    assert f'href="/pipeline/leads/{web["id"]}"' in web_card
    # One Tab stop: the menu's button; the title link is for the mouse.
    assert web_card.count('tabindex="-1"') == 1 and web_card.count("<summary") == 1
    assert "Ola Hansen · Daglig leder" in card(page, phoned)


def test_a_final_card_shows_time_in_its_column_counted_from_the_last_move(app, staff_client, staff_user):
    lead = make_lead(app)
    move_lead(app, lead["id"], "converted", staff_user["id"])
    with app.app_context():
        db.session.execute(
            sa.update(Lead).where(Lead.id == lead["id"]).values(status_changed_at=utcnow() - timedelta(days=3, hours=2))
        )
        db.session.commit()

    shown = card(board(staff_client), lead["id"])
    assert "3 dager i «Kunde»" in shown
    assert "data-final" in shown and 'data-allowed=""' in shown


def test_time_in_status_carries_a_valid_html_datetime_in_utc_to_the_second(app, staff_client, staff_user):
    lead = make_lead(app)
    move_lead(app, lead["id"], "lost", staff_user["id"], reason="price")
    moved_at = datetime(2026, 3, 29, 1, 30, 5, 123456, tzinfo=ZoneInfo("Europe/Oslo"))  # the night of the DST change
    with app.app_context():
        db.session.execute(sa.update(Lead).where(Lead.id == lead["id"]).values(status_changed_at=moved_at))
        db.session.commit()

    stamp = re.search(r'<time datetime="([^"]+)"', card(board(staff_client), lead["id"])).group(1)

    # HTML allows at most three digits of a second; isoformat() wrote six.
    assert stamp == "2026-03-29T00:30:05Z"


def test_a_rebooked_lead_carries_a_badge_with_its_booking_count(app, staff_client):
    once = make_lead(app, email="en.gang@eksempel.no")
    make_lead(app)
    twice = make_lead(app, notes="Vi booker igjen.")

    page = board(staff_client)

    assert "Booket 2 ganger" in card(page, twice["id"])
    assert "Booket" not in card(page, once["id"])


def test_a_card_shows_whether_its_confirmation_is_pending_sent_or_failing(app, staff_client, smtp_server):
    sent = make_lead(app, email="sendt@eksempel.no")
    assert run_jobs(app) == 1
    smtp_server.fail_with = "451 4.3.0 Try again later"
    failing = make_lead(app, email="feiler@eksempel.no")
    assert run_jobs(app) == 1
    pending = make_lead(app, email="venter@eksempel.no")  # its job has not run yet
    unconfirmed = staff_created(app, "event", email="messe@eksempel.no")

    page = board(staff_client)

    assert "Bekreftelse venter" in card(page, pending["id"])
    assert "Bekreftelse" not in card(page, sent["id"])  # the normal case carries no badge
    failing_card = card(page, failing["id"])
    assert "Bekreftelse feiler" in failing_card
    assert "lead-card--mail-failing" in failing_card
    assert "451" in failing_card  # the last error, as a tooltip
    assert "Bekreftelse" not in card(page, unconfirmed)


# --- counts, search and filters --------------------------------------------------------------------


def test_column_counts_match_the_leads_in_each_status(app, staff_client, staff_user):
    ids = [make_lead(app, email=f"lead{n}@eksempel.no")["id"] for n in range(7)]
    for lead_id, status, reason in [
        (ids[0], "contacted", None),
        (ids[1], "contacted", None),
        (ids[2], "qualified", None),
        (ids[3], "converted", None),
        (ids[4], "lost", "price"),
    ]:
        move_lead(app, lead_id, status, staff_user["id"], reason)

    page = board(staff_client)

    expected = {"new": 2, "contacted": 2, "qualified": 1, "demo_scheduled": 0, "converted": 1, "lost": 1}
    assert counts(page) == expected
    assert {status: len(cards) for status, cards in columns(page).items()} == expected
    assert columns(page)["lost"] == [str(ids[4])]


@pytest.fixture
def mixed_leads(app, staff_user):
    """Four leads that differ in name, email, organization, size, source, status and age."""
    kari = make_lead(app)["id"]
    ola = make_lead(
        app,
        first_name="Ola",
        last_name="Hansen",
        email="ola@bymisjon.no",
        organization_name="Kirkens Bymisjon Bergen",
        organization_size="1-10",
    )["id"]
    ingrid = staff_created(
        app,
        "phone",
        first_name="Ingrid",
        last_name="Berg",
        email="ingrid@rodekors.no",
        organization_name="Frivilligsentralen Tromsø",
        organization_size="201-1000",
    )
    per = make_lead(
        app, first_name="Per", last_name="Lund", email="per@gammel.no", organization_name="Gammel Forening"
    )["id"]
    move_lead(app, ola, "contacted", staff_user["id"])
    with app.app_context():
        old = utcnow() - timedelta(days=30)
        db.session.execute(sa.update(Lead).where(Lead.id == per).values(created_at=old))
        db.session.commit()
    return {"kari": str(kari), "ola": str(ola), "ingrid": str(ingrid), "per": str(per)}


@pytest.mark.parametrize(
    "args, expected",
    [
        ({"q": "bymisjon"}, {"ola"}),  # organization
        ({"q": "KARI nordmann"}, {"kari"}),  # full name, any case
        ({"q": "rodekors"}, {"ingrid"}),  # email
        ({"q": "  berg  "}, {"ola", "ingrid"}),  # "Bergen" and "Berg"; spaces trimmed
        ({"source": "phone"}, {"ingrid"}),
        ({"organization_size": "1-10"}, {"ola"}),
        ({"period": "7d"}, {"kari", "ola", "ingrid"}),
        ({"q": "berg", "source": "website"}, {"ola"}),
        ({"q": "100%_"}, set()),  # LIKE wildcards are taken literally
    ],
)
def test_search_and_filters_narrow_cards_and_counts_alike(staff_client, mixed_leads, args, expected):
    page = board(staff_client, **args)

    shown = {name for name, lead_id in mixed_leads.items() if f'data-lead-id="{lead_id}"' in page}
    assert shown == expected
    per_column = {status: len(cards) for status, cards in columns(page).items()}
    assert counts(page) == per_column
    assert sum(counts(page).values()) == len(expected)


@pytest.mark.parametrize("typed", ["Øyvind", "øyvind", "ØYVIND", "sæther"])
def test_search_finds_names_with_norwegian_letters_in_any_case(app, staff_client, typed):
    lead = make_lead(app, first_name="Øyvind", last_name="Sæther", email="oyvind@eksempel.no")["id"]
    make_lead(app, email="annen@eksempel.no")

    page = board(staff_client, q=typed)

    assert columns(page)["new"] == [str(lead)]
    assert counts(page)["new"] == 1


def test_the_filter_form_and_export_link_reflect_the_current_search(staff_client, mixed_leads):
    page = board(staff_client, q="berg", source="phone", period="30d")

    assert 'name="q" value="berg"' in page
    assert '<option value="phone" selected>' in page
    assert '<option value="30d" selected>' in page
    link = urlsplit(export_link(page))
    assert link.path == "/pipeline/leads.csv"
    assert parse_qs(link.query) == {"q": ["berg"], "source": ["phone"], "period": ["30d"]}


def test_an_htmx_request_gets_only_the_board_fragment_with_the_export_link_out_of_band(staff_client, mixed_leads):
    response = staff_client.get("/pipeline", query_string={"q": "bymisjon"}, headers=HTMX)

    assert response.status_code == 200
    body = response.get_data(as_text=True)
    assert "<html" not in body and "<body" not in body and '<form id="board-filters"' not in body
    assert body.lstrip().startswith('<div id="board"')
    assert columns(body)["contacted"] == [mixed_leads["ola"]]
    assert re.search(r'<a id="export-link" hx-swap-oob="true" href="/pipeline/leads.csv\?q=bymisjon"', body)
    assert "HX-Request" in response.headers["Vary"]


def test_unknown_filter_values_are_ignored_rather_than_failing(staff_client, mixed_leads):
    response = staff_client.get(
        "/pipeline",
        query_string={"source": "fax", "organization_size": "999", "period": "forever", "bogus": "1"},
    )

    assert response.status_code == 200
    page = response.get_data(as_text=True)
    assert sum(counts(page).values()) == 4
    assert export_link(page) == "/pipeline/leads.csv"


def test_an_overlong_search_is_cut_not_refused(staff_client, mixed_leads):
    response = staff_client.get("/pipeline", query_string={"q": "x" * 5000})

    assert response.status_code == 200
    assert 'value="' + "x" * 100 + '"' in response.get_data(as_text=True)


# --- paging ----------------------------------------------------------------------------------------


def more_url(page: str, status: str) -> str | None:
    match = re.search(rf'hx-get="(/pipeline/columns/{status}\?[^"]+)"', page)
    return html.unescape(match.group(1)) if match else None


@pytest.fixture
def fifty_five_new_leads(app):
    """55 «Ny» leads whose created and due times tie in groups that straddle the first page's end in each order."""
    ids = [make_lead(app, email=f"lead{n:02d}@eksempel.no")["id"] for n in range(55)]
    base = utcnow() - timedelta(days=60)
    with app.app_context():
        for n, lead_id in enumerate(ids):
            created = n if not 2 <= n <= 6 and not 47 <= n <= 52 else (2 if n < 10 else 47)
            due = min(n, 40)
            db.session.execute(
                sa.update(Lead)
                .where(Lead.id == lead_id)
                .values(created_at=base + timedelta(minutes=created), next_step_due_at=base + timedelta(days=due))
            )
        db.session.commit()
        rows = db.session.execute(sa.select(Lead.id, Lead.created_at, Lead.next_step_due_at)).all()
    return {
        "due": [str(row.id) for row in sorted(rows, key=lambda row: (row.next_step_due_at, row.id))],
        "oldest": [str(row.id) for row in sorted(rows, key=lambda row: (row.created_at, row.id))],
        "newest": [str(row.id) for row in sorted(rows, key=lambda row: (row.created_at, row.id), reverse=True)],
    }


@pytest.mark.parametrize("order", ["due", "oldest", "newest"])
def test_vis_flere_pages_through_a_column_in_its_chosen_order_without_gaps_or_repeats(
    staff_client, fifty_five_new_leads, order
):
    expected = fifty_five_new_leads[order]
    page = board(staff_client, sort_new=order)

    assert columns(page)["new"] == expected[:50]
    assert counts(page)["new"] == 55
    assert f'<option value="{order}" selected>{board_model.SORT_ORDERS[order]}</option>' in page
    url = more_url(page, "new")
    assert parse_qs(urlsplit(url).query).get("sort_new", ["due"]) == [order]
    more = staff_client.get(url, headers=HTMX)
    assert more.status_code == 200
    rest = more.get_data(as_text=True)
    assert re.findall(r'<li class="lead-card[^"]*"\s+id="card-([^"]+)"', rest) == expected[50:]
    assert "Vis flere" not in rest and "<html" not in rest


def test_open_columns_list_what_falls_due_first_and_final_ones_newest_first(app, staff_client, staff_user):
    """«Ny» by its first-contact time (assignment/first_contact.py), other open columns by their next step's."""
    later = make_lead(app, email="senere@eksempel.no")["id"]
    sooner = make_lead(app, email="snarere@eksempel.no")["id"]
    first_lost = make_lead(app, email="tapt1@eksempel.no")["id"]
    last_lost = make_lead(app, email="tapt2@eksempel.no")["id"]
    for lead_id in (first_lost, last_lost):
        move_lead(app, lead_id, "lost", staff_user["id"], reason="price")
    with app.app_context():
        db.session.execute(
            sa.update(Lead).where(Lead.id == later).values(first_contact_due_at=utcnow() + timedelta(days=9))
        )
        db.session.execute(sa.update(Lead).where(Lead.id == first_lost).values(created_at=utcnow() - timedelta(days=9)))
        db.session.commit()

    page = board(staff_client)

    assert columns(page)["new"] == [str(sooner), str(later)]
    assert columns(page)["lost"] == [str(last_lost), str(first_lost)]
    assert '<option value="respond" selected>Svarfrist først</option>' in page
    assert '<option value="newest" selected>Nyeste først</option>' in page


def test_vis_flere_keeps_the_search(app, staff_client):
    for n in range(53):
        make_lead(app, email=f"bydel{n:02d}@eksempel.no", organization_name=f"Bydel Frogner {n:02d}")
    for n in range(3):
        make_lead(app, email=f"annen{n}@eksempel.no", organization_name=f"Annen forening {n}")

    page = board(staff_client, q="frogner")

    assert len(columns(page)["new"]) == 50
    assert counts(page)["new"] == 53
    url = more_url(page, "new")
    assert parse_qs(urlsplit(url).query)["q"] == ["frogner"]
    rest = staff_client.get(url, headers=HTMX).get_data(as_text=True)
    assert len(re.findall(r'<li class="lead-card', rest)) == 3
    assert "Annen forening" not in rest


def test_a_column_with_50_or_fewer_cards_has_no_vis_flere(app, staff_client):
    for n in range(3):
        make_lead(app, email=f"lead{n}@eksempel.no")

    assert "Vis flere" not in board(staff_client)


@pytest.mark.parametrize(
    "path, status",
    [
        ("/pipeline/columns/archived", 404),
        ("/pipeline/columns/new?cursor=not-a-cursor", 200),
        ("/pipeline/columns/new?cursor=2024-01-01T00:00:00%2B00:00|not-a-uuid", 200),
        ("/pipeline/columns/new?cursor=2024-01-01T00:00:00|00000000-0000-4000-8000-000000000001", 200),
    ],
)
def test_load_more_with_a_bad_status_or_cursor_does_not_fail(app, staff_client, path, status):
    make_lead(app)

    assert staff_client.get(path, headers=HTMX).status_code == status


# --- the board's cost ------------------------------------------------------------------------------


def statements_during(app, client, url: str) -> tuple[list[str], str]:
    with app.app_context():
        engine = db.engine
    seen: list[str] = []

    def record(conn, cursor, statement, parameters, context, executemany):
        seen.append(statement)

    sa.event.listen(engine, "before_cursor_execute", record)
    try:
        response = client.get(url)
    finally:
        sa.event.remove(engine, "before_cursor_execute", record)
    assert response.status_code == 200
    return seen, response.get_data(as_text=True)


@pytest.mark.parametrize("url", ["/pipeline", "/pipeline?source=website&q=e"])
def test_the_board_costs_the_same_number_of_queries_with_10_or_200_leads(app, staff_client, url):
    make_lead(app)  # a website lead whose name matches the search, whatever the random demo data holds
    with app.app_context():
        demo_data.create_demo_leads(9, seed=1)
    staff_client.get(url)  # warm up the connection pool
    small, _ = statements_during(app, staff_client, url)

    with app.app_context():
        demo_data.create_demo_leads(190, seed=2)
    large, page = statements_during(app, staff_client, url)

    assert len(large) == len(small), "\n---\n".join(large)
    # Session, counts, card ids, leads, owners, mail state, the business hours (for the first-contact clocks), «Ny»'s
    # count past its first-contact time, overdue count, staff, and the campaign filter's choices (a loose index scan:
    # one probe per campaign, see queries.campaign_choices).
    assert len(small) <= 11
    if url == "/pipeline":
        assert max(len(cards) for cards in columns(page).values()) == 50  # the cap is reached


# --- the poll --------------------------------------------------------------------------------------


def poll_url(page: str) -> str:
    return html.unescape(re.search(r'<div id="board-poll" hidden[^>]*hx-get="([^"]+)"', page).group(1))


def test_the_poll_brings_a_new_booking_with_fresh_counts_and_a_new_poller(app, staff_client):
    earlier = make_lead(app, email="tidligere@eksempel.no")
    url = poll_url(board(staff_client))
    booked = make_lead(app, email="ny@eksempel.no", organization_name="Ny Forening Hamar")

    response = staff_client.get(url, headers=HTMX)

    assert response.status_code == 200
    body = response.get_data(as_text=True)
    # Cards come as templates for board.js to place: an out-of-band swap would fail on a card the page never
    # loaded (htmx:oobErrorNoTarget); the new lead is marked as arrived so the board announces it.
    assert f'<template data-lead-id="{booked["id"]}" data-status="new" data-arrived>' in body
    assert "Ny Forening Hamar" in card(body, booked["id"])
    assert not re.search(r'hx-swap-oob="[^"]*"[^>]*>\s*<li', body) and "cards-new" not in body
    assert f'data-lead-id="{earlier["id"]}"' not in body  # unchanged: only its clock's label comes along
    assert '<span id="count-new" class="count" data-count="2" hx-swap-oob="true">' in body
    assert counts(body)["new"] == 2
    next_url = poll_url(body)
    assert 'id="board-poll" hidden hx-swap-oob="true"' in body
    assert next_url != url
    quiet = staff_client.get(next_url, headers=HTMX).get_data(as_text=True)
    assert "lead-card" not in quiet


def test_the_poll_moves_a_card_a_colleague_moved(app, staff_client, staff_user):
    lead = make_lead(app)
    url = poll_url(board(staff_client))
    move_lead(app, lead["id"], "qualified", staff_user["id"])

    body = staff_client.get(url, headers=HTMX).get_data(as_text=True)

    assert f'<template data-lead-id="{lead["id"]}" data-status="qualified">' in body  # moved, not arrived
    assert counts(body) == {**dict.fromkeys(STATUSES, 0), "qualified": 1}


def test_the_poll_respects_the_search(app, staff_client):
    url = poll_url(board(staff_client, q="bymisjon"))
    make_lead(app)  # Kari at LHL: not what the board is searching for
    wanted = make_lead(app, email="ola@bymisjon.no", organization_name="Kirkens Bymisjon")

    body = staff_client.get(url, headers=HTMX).get_data(as_text=True)

    assert re.findall(r'<template data-lead-id="([^"]+)"', body) == [str(wanted["id"])]
    assert counts(body)["new"] == 1
    assert "q=bymisjon" in poll_url(body)


@pytest.mark.parametrize("since", ["garbage", "2024-01-01T00:00:00", ""])
def test_the_poll_with_a_malformed_or_naive_since_does_not_fail(app, staff_client, since):
    make_lead(app)

    response = staff_client.get("/pipeline/changes", query_string={"since": since}, headers=HTMX)

    assert response.status_code == 200


# --- staff pages in general ------------------------------------------------------------------------


def test_the_board_sends_no_store_turns_off_htmx_history_and_carries_the_csrf_header(staff_client):
    response = staff_client.get("/pipeline")

    assert response.headers["Cache-Control"] == "no-store"
    page = response.get_data(as_text=True)
    assert re.search(r'<body hx-headers=\'\{"X-CSRFToken": "[^"]+"\}\' hx-history="false"[ >]', page)
    assert '<meta name="robots" content="noindex, nofollow">' in page


@pytest.mark.parametrize(
    "path",
    [
        "/pipeline?q=kari",
        "/pipeline/columns/new",
        "/pipeline/changes",
        "/pipeline/leads.csv",
        "/pipeline/leads/{id}",
        "/pipeline/leads/new",
    ],
)
@pytest.mark.parametrize("htmx", [False, True], ids=["plain", "htmx"])
def test_every_staff_page_and_fragment_is_never_cached(app, staff_client, path, htmx):
    lead = make_lead(app)

    response = staff_client.get(path.format(id=lead["id"]), headers=HTMX if htmx else {})

    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"
    body = response.get_data(as_text=True)
    if "<body" in body:
        assert 'hx-history="false"' in body
