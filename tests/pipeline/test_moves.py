"""Moving a lead: POST /pipeline/leads/<id>/status — forward only, one compare-and-set, every answer
code, the recorded history, and two people (eight, here) moving one card at the same instant."""

import re
import threading
import uuid
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa
from helpers.booking import make_lead
from helpers.staff import STAFF_PASSWORD, log_in, move, staff_csrf
from helpers.waiting import run_together

from meander_site.accounts import users as accounts
from meander_site.accounts.models import User
from meander_site.core.clock import utcnow
from meander_site.extensions import db
from meander_site.leads.models import Lead, LeadStatusChange, LeadStatusCount

HTMX = {"HX-Request": "true"}
COUNT = re.compile(
    r'<span id="count-([a-z_]+)" class="count"[^>]*><span class="visually-hidden">[^<]*</span>(\d+)</span>'
)


def demo_fields() -> dict:
    """What a move to «Demo avtalt» carries (scheduling.validate_demo): a time a week ahead, Oslo wall clock."""
    day = (datetime.now(UTC) + timedelta(days=7)).astimezone(ZoneInfo("Europe/Oslo"))
    return {"demo_at": day.strftime("%Y-%m-%dT10:00"), "demo_location": "https://meet.meander.no/demo"}


def lead_state(app, lead_id) -> tuple[str, object, list[tuple]]:
    """Status, status_changed_at and the status history (from, to, reason, note) of a lead."""
    with app.app_context():
        lead = db.session.get(Lead, lead_id)
        history = db.session.execute(
            sa.select(
                LeadStatusChange.from_status, LeadStatusChange.to_status, LeadStatusChange.reason, LeadStatusChange.note
            )
            .where(LeadStatusChange.lead_id == lead_id)
            .order_by(LeadStatusChange.changed_at)
        ).all()
        return lead.status, lead.status_changed_at, [tuple(row) for row in history]


def message(response) -> str:
    return re.search(r'<p class="board-message[^"]*">(.*?)</p>', response.get_data(as_text=True), re.S).group(1)


def counts(body: str) -> dict[str, int]:
    return {status: int(count) for status, count in COUNT.findall(body)}


def stored_counts(app) -> dict[str, int]:
    with app.app_context():
        return dict(db.session.execute(sa.select(LeadStatusCount.status, LeadStatusCount.lead_count)).all())


# --- forward moves ---------------------------------------------------------------------------------


def test_a_forward_move_answers_200_with_the_card_for_its_new_column_and_the_proposed_next_step(
    app, staff_client, token
):
    lead = make_lead(app)
    make_lead(app, email="annen@eksempel.no")

    response = move(staff_client, lead["id"], "contacted", token)

    assert response.status_code == 200
    body = response.get_data(as_text=True)
    # The proposal is said out loud, so the salesperson knows what the board will remind them of.
    assert message(response).startswith(
        "«LHL Hjerneslag» er flyttet til «Kontaktet». Neste steg: «Følg opp og kvalifiser», frist "
    )
    moved = re.search(
        r'<template data-lead-id="([^"]+)" data-status="contacted" data-changed>(.*?)</template>', body, re.S
    )
    assert moved and moved.group(1) == str(lead["id"])
    assert 'data-allowed="qualified demo_scheduled converted lost"' in moved.group(2)
    assert "Følg opp og kvalifiser</span> · <time" in moved.group(2)
    assert '<span id="count-new" class="count" data-count="1" hx-swap-oob="true">' in body
    assert counts(body) == {"new": 1, "contacted": 1, "qualified": 0, "demo_scheduled": 0, "converted": 0, "lost": 0}
    assert lead_state(app, lead["id"])[0] == "contacted"


def test_a_move_is_recorded_with_from_to_who_and_when(app, staff_client, staff_user, token):
    lead = make_lead(app)
    before = utcnow()

    assert move(staff_client, lead["id"], "contacted", token).status_code == 200

    after = utcnow()
    with app.app_context():
        [change] = db.session.execute(sa.select(LeadStatusChange)).scalars().all()
        moved = db.session.get(Lead, lead["id"])
        assert (change.lead_id, change.from_status, change.to_status) == (lead["id"], "new", "contacted")
        assert (change.changed_by_id, change.changed_by_name) == (staff_user["id"], "Siri Selger")
        assert before <= change.changed_at <= after
        assert change.reason is None and change.note is None
        assert moved.status_changed_at == change.changed_at


def test_skipping_ahead_is_allowed(app, staff_client, token):
    lead = make_lead(app)

    response = move(staff_client, lead["id"], "demo_scheduled", token, **demo_fields())

    assert response.status_code == 200
    assert lead_state(app, lead["id"])[2] == [("new", "demo_scheduled", None, None)]


def test_the_whole_pipeline_forward_leaves_a_complete_history(app, staff_client, token):
    lead = make_lead(app)

    for status in ("contacted", "qualified", "demo_scheduled"):
        assert move(staff_client, lead["id"], status, token, **demo_fields()).status_code == 200
    assert (
        move(staff_client, lead["id"], "converted", token, note="Signerte på stedet.", deal_value="48000").status_code
        == 200
    )

    status, _, history = lead_state(app, lead["id"])
    assert status == "converted"
    assert history == [
        ("new", "contacted", None, None),
        ("contacted", "qualified", None, None),
        ("qualified", "demo_scheduled", None, None),
        ("demo_scheduled", "converted", None, "Signerte på stedet."),
    ]
    assert stored_counts(app)["converted"] == 1 and stored_counts(app)["new"] == 0


def test_a_plain_form_post_moves_and_redirects_back_to_the_board_with_a_message(app, staff_client, token):
    lead = make_lead(app)

    response = staff_client.post(
        f"/pipeline/leads/{lead['id']}/status", data={"status": "qualified", "csrf_token": token}
    )

    assert response.status_code == 303
    assert response.headers["Location"] == "/pipeline"
    assert lead_state(app, lead["id"])[0] == "qualified"
    board = staff_client.get("/pipeline").get_data(as_text=True)
    assert "«LHL Hjerneslag» er flyttet til «Kvalifisert»." in board


def test_a_plain_form_post_keeps_the_boards_search_on_the_way_back(app, staff_client, token):
    lead = make_lead(app)

    response = staff_client.post(
        f"/pipeline/leads/{lead['id']}/status?q=lhl&source=website", data={"status": "contacted", "csrf_token": token}
    )

    assert response.status_code == 303
    assert response.headers["Location"] == "/pipeline?q=lhl&source=website"


def test_the_move_control_offers_only_the_statuses_a_card_may_go_to(app, staff_client, token):
    lead = make_lead(app)
    move(staff_client, lead["id"], "qualified", token)

    menu = staff_client.get(f"/pipeline/leads/{lead['id']}/menu", headers=HTMX).get_data(as_text=True)

    form = re.search(r'<form class="move-form".*?</form>', menu, re.S).group(0)
    assert re.findall(r'name="status" value="([a-z_]+)"', form) == ["demo_scheduled", "converted", "lost"]
    # «Kunde» and «Tapt» ask for details first (the board's dialog, named by the column the card goes to), the
    # others move at once.
    board = staff_client.get("/pipeline").get_data(as_text=True)
    assert re.findall(r'id="column-([a-z_]+)"[^>]*data-dialog-title', board) == ["converted", "lost"]


# --- refused moves ---------------------------------------------------------------------------------


def test_a_backward_move_is_refused_with_409_and_a_norwegian_reason_and_changes_nothing(app, staff_client, token):
    lead = make_lead(app)
    assert move(staff_client, lead["id"], "qualified", token).status_code == 200
    before = lead_state(app, lead["id"])

    response = move(staff_client, lead["id"], "contacted", token)

    assert response.status_code == 409
    assert message(response) == "En lead kan bare flyttes fremover i løpet. «Kontaktet» ligger før «Kvalifisert»."
    assert "hx-swap-oob" not in response.get_data(as_text=True)
    assert lead_state(app, lead["id"]) == before
    assert stored_counts(app)["qualified"] == 1 and stored_counts(app)["contacted"] == 0


@pytest.mark.parametrize(
    "final, target", [("converted", "qualified"), ("converted", "lost"), ("lost", "contacted"), ("lost", "converted")]
)
def test_a_lead_in_a_final_status_cannot_be_moved(app, staff_client, token, final, target):
    lead = make_lead(app)
    assert move(staff_client, lead["id"], final, token, reason="no_need", deal_value="1").status_code == 200
    before = lead_state(app, lead["id"])

    response = move(staff_client, lead["id"], target, token, reason="price", deal_value="1")

    assert response.status_code == 409
    assert "er en sluttstatus" in message(response)
    assert lead_state(app, lead["id"]) == before


def test_moving_to_the_status_it_already_has_is_refused(app, staff_client, token):
    lead = make_lead(app)

    response = move(staff_client, lead["id"], "new", token)

    assert response.status_code == 409
    assert message(response) == "Leaden står allerede i «Ny»."
    assert lead_state(app, lead["id"])[2] == []


@pytest.mark.parametrize("status", ["archived", "NEW", "", None])
def test_an_unknown_or_missing_status_is_422(app, staff_client, token, status):
    lead = make_lead(app)

    response = move(staff_client, lead["id"], status, token)

    assert response.status_code == 422
    assert "Ukjent status" in message(response)
    assert lead_state(app, lead["id"])[:1] == ("new",)


@pytest.mark.parametrize("lead_id", [uuid.uuid4(), "not-a-uuid"])
def test_moving_an_unknown_lead_is_404(app, staff_client, token, lead_id):
    make_lead(app)

    response = move(staff_client, lead_id, "contacted", token)

    assert response.status_code == 404


@pytest.mark.parametrize("bad_token", [None, "forged-token"])
def test_a_move_without_a_valid_csrf_token_is_400_and_changes_nothing(app, staff_client, bad_token):
    lead = make_lead(app)

    response = move(staff_client, lead["id"], "contacted", bad_token)

    assert response.status_code == 400
    assert lead_state(app, lead["id"])[0] == "new"
    assert lead_state(app, lead["id"])[2] == []


def test_a_refused_plain_form_post_shows_the_reason_on_a_page(app, staff_client, token):
    lead = make_lead(app)
    move(staff_client, lead["id"], "converted", token, deal_value="1")

    response = staff_client.post(f"/pipeline/leads/{lead['id']}/status", data={"status": "new", "csrf_token": token})

    assert response.status_code == 409
    page = response.get_data(as_text=True)
    assert "<html" in page and "«Kunde» er en sluttstatus" in page and "Tilbake til tavla" in page


# --- lost and converted ----------------------------------------------------------------------------


@pytest.mark.parametrize("reason", [None, "", "because", "PRICE"])
def test_a_move_to_lost_without_a_listed_reason_is_422_and_changes_nothing(app, staff_client, token, reason):
    lead = make_lead(app)
    fields = {"reason": reason} if reason is not None else {}

    response = move(staff_client, lead["id"], "lost", token, **fields)

    assert response.status_code == 422
    assert message(response) == "Velg hvorfor leaden er tapt."
    assert lead_state(app, lead["id"])[0] == "new"
    assert lead_state(app, lead["id"])[2] == []


def test_a_move_to_lost_records_the_reason_and_note(app, staff_client, token):
    lead = make_lead(app)

    response = move(staff_client, lead["id"], "lost", token, reason="price", note="  For dyrt for lokallaget.  ")

    assert response.status_code == 200
    assert f'<template data-lead-id="{lead["id"]}" data-status="lost" data-changed>' in response.get_data(as_text=True)
    assert lead_state(app, lead["id"])[2] == [("new", "lost", "price", "For dyrt for lokallaget.")]
    page = staff_client.get(f"/pipeline/leads/{lead['id']}").get_data(as_text=True)
    assert "Flyttet fra «Ny» til «Tapt»" in page and "Pris eller budsjett – For dyrt for lokallaget." in page


def test_a_move_to_converted_records_its_note_and_no_reason(app, staff_client, token):
    lead = make_lead(app)

    response = move(
        staff_client, lead["id"], "converted", token, reason="price", note="Avtale for 2 år.", deal_value="0"
    )

    assert response.status_code == 200
    assert lead_state(app, lead["id"])[2] == [("new", "converted", None, "Avtale for 2 år.")]


def test_an_overlong_note_is_422_and_changes_nothing(app, staff_client, token):
    lead = make_lead(app)

    response = move(staff_client, lead["id"], "converted", token, note="x" * 1001, deal_value="1")

    assert response.status_code == 422
    assert "høyst 1000 tegn" in message(response)
    assert lead_state(app, lead["id"])[0] == "new"


# --- the race --------------------------------------------------------------------------------------

THREADS = 8


def signed_in_clients(app, count: int) -> list:
    with app.app_context():
        users = [accounts.create_user(f"selger{n}@meander.no", f"Selger {n}", STAFF_PASSWORD) for n in range(count)]
        ids = [user.id for user in users]
    clients = []
    for n in range(count):
        client = app.test_client()
        assert log_in(client, f"selger{n}@meander.no", STAFF_PASSWORD).status_code == 303
        clients.append((client, staff_csrf(client), ids[n]))
    return clients


def move_all_at_once(app, lead_id, moves: list[dict]) -> list[int]:
    """Each of len(moves) signed-in people sends their move at the same instant; the answer codes in order."""
    clients = signed_in_clients(app, len(moves))

    def work(n: int, barrier: threading.Barrier) -> int:
        client, token, _ = clients[n]
        barrier.wait()
        return client.post(
            f"/pipeline/leads/{lead_id}/status", data=moves[n], headers={**HTMX, "X-CSRFToken": token}
        ).status_code

    return run_together(len(moves), work)


def test_eight_people_moving_one_card_at_once_make_exactly_one_move(app):
    lead = make_lead(app)

    codes = move_all_at_once(app, lead["id"], [{"status": "contacted"}] * THREADS)

    assert sorted(codes) == [200] + [409] * (THREADS - 1)
    status, _, history = lead_state(app, lead["id"])
    assert status == "contacted"
    assert history == [("new", "contacted", None, None)]
    assert stored_counts(app)["new"] == 0 and stored_counts(app)["contacted"] == 1


def test_racing_to_two_final_statuses_ends_in_exactly_one_of_them(app):
    lead = make_lead(app)
    moves = [
        {"status": "converted", "note": f"Kunde via selger {n}", "deal_value": "1000"}
        if n % 2
        else {"status": "lost", "reason": "price"}
        for n in range(THREADS)
    ]

    codes = move_all_at_once(app, lead["id"], moves)

    assert sorted(codes) == [200] + [409] * (THREADS - 1)
    winner = moves[codes.index(200)]
    status, _, history = lead_state(app, lead["id"])
    assert status == winner["status"]
    assert history == [("new", winner["status"], winner.get("reason"), winner.get("note"))]
    counts_now = stored_counts(app)
    assert counts_now[winner["status"]] == 1
    assert counts_now["converted"] + counts_now["lost"] == 1 and counts_now["new"] == 0
    with app.app_context():
        [change] = db.session.execute(sa.select(LeadStatusChange)).scalars().all()
        assert db.session.get(User, change.changed_by_id).name == change.changed_by_name
