"""Deal value: the move to «Kunde» asks for the agreed annual value (a Norwegian 422 keeps the card), the estimate
from «Kvalifisert» on, «kr 48 000», the column sums kept by the count triggers, and the administrator's weights."""

import re

import pytest
import sqlalchemy as sa
from helpers.accounts import admin_client_fixture, admin_fixture  # noqa: F401  (fixtures)
from helpers.booking import make_lead
from helpers.staff import move, staff_csrf

from meander_site.core.money import kroner
from meander_site.extensions import db
from meander_site.leads import deal_value
from meander_site.leads.models import Lead, LeadStatusCount
from meander_site.leads.validation import LeadValidationError


def stored_sums(app) -> dict[str, tuple[int, int]]:
    with app.app_context():
        rows = db.session.execute(
            sa.select(LeadStatusCount.status, LeadStatusCount.lead_count, LeadStatusCount.value_sum)
        )
        return {status: (count, total) for status, count, total in rows}


def real_sums(app) -> dict[str, tuple[int, int]]:
    with app.app_context():
        value = sa.func.coalesce(Lead.deal_value, Lead.estimated_value, 0)
        rows = db.session.execute(sa.select(Lead.status, sa.func.count(), sa.func.sum(value)).group_by(Lead.status))
        return {status: (count, int(total)) for status, count, total in rows}


@pytest.mark.parametrize(
    ("value", "shown"), [(0, "kr 0"), (999, "kr 999"), (48000, "kr 48 000"), (99_999_999, "kr 99 999 999")]
)
def test_amounts_read_the_norwegian_way(value, shown):
    assert kroner(value) == shown
    assert kroner(None) == ""


@pytest.mark.parametrize(
    ("typed", "stored"), [("48000", 48000), ("48 000", 48000), ("kr 48 000", 48000), ("0", 0), ("99999999", 99_999_999)]
)
def test_a_typed_value_is_read_as_whole_kroner(typed, stored):
    assert deal_value.validate_deal_value({"deal_value": typed}) == stored


@pytest.mark.parametrize("typed", ["", "  ", "-5", "48000,50", "48.5", "100000000", "1e6", "abc", "4 8000"])
def test_a_bad_value_is_refused_in_norwegian(typed):
    with pytest.raises(LeadValidationError) as refused:
        deal_value.validate_deal_value({"deal_value": typed})
    assert "kroner" in refused.value.errors["deal_value"]


@pytest.mark.parametrize("typed", ["", "-1", "100000000", "12,5", "mye"])
def test_a_move_to_kunde_without_a_good_value_is_422_and_the_card_stays(app, staff_client, token, typed):
    lead = make_lead(app)

    response = move(staff_client, lead["id"], "converted", token, deal_value=typed)

    assert response.status_code == 422
    assert "kroner" in response.get_data(as_text=True)
    with app.app_context():
        stored = db.session.get(Lead, lead["id"])
        assert (stored.status, stored.deal_value) == ("new", None)
    assert stored_sums(app)["converted"] == (0, 0)


def test_a_move_to_kunde_records_the_value_and_the_column_header_shows_count_and_sum(app, staff_client, token):
    first, second = make_lead(app), make_lead(app, email="to@lhl.no")

    assert move(staff_client, first["id"], "converted", token, deal_value="48 000").status_code == 200
    response = move(staff_client, second["id"], "converted", token, deal_value="2000")

    assert response.status_code == 200
    body = response.get_data(as_text=True)
    assert re.search(
        r'id="sum-converted"[^>]*hx-swap-oob="true"><span class="visually-hidden">, verdi: </span>kr 50 000<', body
    )
    assert stored_sums(app)["converted"] == (2, 50000) == real_sums(app)["converted"]
    board = staff_client.get("/pipeline").get_data(as_text=True)
    assert "kr 48 000" in board and "kr 50 000" in board


def test_the_estimate_is_kept_from_kvalifisert_and_follows_the_lead_in_the_sums(app, staff_client, token):
    lead = make_lead(app)
    too_early = staff_client.post(
        f"/pipeline/leads/{lead['id']}/estimate",
        data={"estimated_value": "30000", "expected_close_month": "2027-03"},
        headers={"X-CSRFToken": token},
    )
    assert too_early.status_code == 422 and "«Kvalifisert»" in too_early.get_data(as_text=True)

    move(staff_client, lead["id"], "qualified", token)
    saved = staff_client.post(
        f"/pipeline/leads/{lead['id']}/estimate",
        data={"estimated_value": "30 000", "expected_close_month": "2027-03"},
        headers={"X-CSRFToken": token},
    )

    assert saved.status_code in (200, 303)
    with app.app_context():
        stored = db.session.get(Lead, lead["id"])
        assert (stored.estimated_value, stored.expected_close_month.isoformat()) == (30000, "2027-03-01")
    assert stored_sums(app)["qualified"] == (1, 30000)
    # The agreed value replaces the estimate in «Kunde»'s sum; «Kvalifisert» gives it back.
    move(staff_client, lead["id"], "converted", token, deal_value="36000")
    sums = stored_sums(app)
    assert sums["qualified"] == (0, 0) and sums["converted"] == (1, 36000)
    assert sums == {status: real_sums(app).get(status, (0, 0)) for status in sums}


def test_a_filtered_board_sums_the_filtered_leads(app, staff_client, token):
    lead = make_lead(app, organization_name="Verdifull AS")
    make_lead(app, email="annen@lhl.no", organization_name="Annen AS")
    move(staff_client, lead["id"], "converted", token, deal_value="1234567")

    board = staff_client.get("/pipeline?q=verdifull").get_data(as_text=True)

    assert "kr 1 234 567" in board


def test_the_administrator_sets_the_stage_weights(app, admin_client, staff_client):
    admin_token = staff_csrf(admin_client)
    with app.app_context():
        assert deal_value.stage_weights() == {"new": 5, "contacted": 10, "qualified": 25, "demo_scheduled": 50}
    page = admin_client.get("/pipeline/weights")
    assert page.status_code == 200 and 'value="25"' in page.get_data(as_text=True)

    refused = admin_client.post(
        "/pipeline/weights",
        data={"weight_new": "5", "weight_contacted": "101", "weight_qualified": "x", "weight_demo_scheduled": "60"},
        headers={"X-CSRFToken": admin_token},
    )
    saved = admin_client.post(
        "/pipeline/weights",
        data={"weight_new": "2", "weight_contacted": "10", "weight_qualified": "30", "weight_demo_scheduled": "60"},
        headers={"X-CSRFToken": admin_token},
    )

    assert refused.status_code == 422 and "fra 0 til 100" in refused.get_data(as_text=True)
    assert saved.status_code in (200, 303)
    with app.app_context():
        assert deal_value.stage_weights() == {"new": 2, "contacted": 10, "qualified": 30, "demo_scheduled": 60}
    assert staff_client.get("/pipeline/weights").status_code == 403


def test_the_lead_page_moves_to_kunde_with_the_value_and_says_what_is_wrong(app, staff_client, token):
    lead = make_lead(app)
    url = f"/pipeline/leads/{lead['id']}/status"
    page = staff_client.get(f"/pipeline/leads/{lead['id']}").get_data(as_text=True)
    assert "Flytt til «Kunde»" in page and 'name="deal_value"' in page and 'name="back" value="lead"' in page

    refused = staff_client.post(
        url, data={"status": "converted", "deal_value": "mye", "back": "lead", "csrf_token": token}
    )
    assert refused.status_code == 422
    assert 'id="move-deal_value-error"' in refused.get_data(as_text=True)

    moved = staff_client.post(
        url, data={"status": "converted", "deal_value": "48000", "back": "lead", "csrf_token": token}
    )
    assert moved.status_code == 303 and moved.headers["Location"].endswith(f"/pipeline/leads/{lead['id']}")
    with app.app_context():
        assert (db.session.get(Lead, lead["id"]).status, db.session.get(Lead, lead["id"]).deal_value) == (
            "converted",
            48000,
        )


def test_the_lost_dialog_says_a_booked_demo_is_cancelled(app, staff_client, token):
    from_board = staff_client.get("/pipeline").get_data(as_text=True)

    assert '<p id="move-dialog-demo" class="notice" hidden>Leaden har en avtalt demo. Den avlyses' in from_board
