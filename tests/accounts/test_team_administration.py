"""The team page: administrators only; roles, deactivation and reactivation, resets sent, every change in the
audit log (without a password or a token); the last administrator can never be removed, not even by two
administrators demoting each other at the same moment."""

import pytest
import sqlalchemy as sa
from helpers.accounts import (  # noqa: F401  (admin_fixture, admin_client_fixture: fixtures)
    ADMIN_PASSWORD,
    admin_client_fixture,
    admin_fixture,
    audit_actions,
    make_user,
    sent_link,
    signed_in,
    stored_user,
    submit,
)
from helpers.booking import make_lead
from helpers.jobs import run_jobs
from helpers.staff import STAFF_PASSWORD, staff_csrf
from helpers.waiting import run_together

from meander_site.accounts import roles
from meander_site.accounts.models import AuditEvent, Role, StaffSession, User
from meander_site.extensions import db
from meander_site.leads.models import Lead
from meander_site.pipeline import board as board_model
from meander_site.pipeline import moves


def act(admin_client, user_id, action: str, **fields):
    return submit(admin_client, "/pipeline/team", f"/pipeline/team/{user_id}/{action}", **fields)


def test_the_team_page_lists_everyone_with_role_status_last_sign_in_and_two_factor(
    app, admin, admin_client, staff_user
):
    page = admin_client.get("/pipeline/team")

    assert page.status_code == 200 and page.headers["Cache-Control"] == "no-store"
    row = page.text[page.text.index(f'id="member-{staff_user["id"]}"') :].split("</tr>")[0]
    assert "Siri Selger" in row and "selger@meander.no" in row and "<td>Selger</td>" in row
    assert "<td>Aktiv</td>" in row and "<td>Av</td>" in row and "<td>Aldri</td>" in row
    admin_row = page.text[page.text.index(f'id="member-{admin["id"]}"') :].split("</tr>")[0]
    assert "Sara Sjef (deg)" in admin_row and "<td>Administrator</td>" in admin_row and "<time" in admin_row
    assert '<a href="/pipeline/team" aria-current="page">Team</a>' in page.text


def test_a_seller_gets_a_403_in_norwegian_that_names_whom_to_ask(app, admin, staff_user, staff_client):
    for path in ("/pipeline/team",):
        response = staff_client.get(path)
        assert response.status_code == 403
        assert "Bare for administratorer" in response.text and "Be Sara Sjef om hjelp." in response.text
    posted = staff_client.post(
        f"/pipeline/team/{staff_user['id']}/role", data={"role": "admin", "csrf_token": staff_csrf(staff_client)}
    )
    assert posted.status_code == 403
    assert stored_user(app, staff_user["id"]).role == "seller"
    assert ">Team</a>" not in staff_client.get("/pipeline").text


def test_an_administrator_changes_a_role_and_it_is_audited(app, admin, admin_client, staff_user):
    response = act(admin_client, staff_user["id"], "role", role="admin")

    assert response.status_code == 303
    assert "Siri Selger er nå administrator." in admin_client.get("/pipeline/team").text
    assert stored_user(app, staff_user["id"]).role == "admin"
    assert ("role_changed", admin["id"], staff_user["id"], "admin") in audit_actions(app)
    assert "Sara Sjef ga Siri Selger rollen Administrator" in admin_client.get("/pipeline/team").text


def test_the_last_administrator_can_neither_be_demoted_nor_deactivated(app, admin, admin_client):
    for action, fields in (("role", {"role": "seller"}), ("deactivate", {})):
        response = act(admin_client, admin["id"], action, **fields)
        assert response.status_code == 303
        assert "Teamet må ha minst én aktiv administrator." in admin_client.get(response.headers["Location"]).text
    user = stored_user(app, admin["id"])
    assert (user.role, user.is_active) == ("admin", True)


def test_the_command_line_cannot_remove_the_last_administrator_either(app, admin):
    runner = app.test_cli_runner()

    demoted = runner.invoke(args=["users", "set-role", admin["email"], "seller"])
    deactivated = runner.invoke(args=["users", "deactivate", admin["email"]])

    assert demoted.exit_code == deactivated.exit_code == 1
    assert "last active administrator" in demoted.output and "last active administrator" in deactivated.output


@pytest.mark.parametrize(
    ("remove", "undo"),
    [
        (lambda target, actor: roles.change_role(target, Role.SELLER, by_id=actor), {"role": "admin"}),
        (lambda target, actor: roles.deactivate(target, by_id=actor), {"is_active": True}),
    ],
    ids=["demoting", "deactivating"],
)
def test_two_administrators_removing_each_other_at_once_leave_one(app, admin, remove, undo):
    other = make_user(app, "nestleder@meander.no", "Nils Nestleder", ADMIN_PASSWORD, admin=True)
    pairs = [(admin["id"], other["id"]), (other["id"], admin["id"])]

    def race(n, barrier):
        actor, target = pairs[n]
        with app.app_context():
            barrier.wait()
            try:
                return remove(target, actor)
            except roles.LastAdministrator:
                return "refused"

    for _ in range(5):  # a race has to be given its chances
        assert sorted(map(str, run_together(2, race))) == ["True", "refused"]
        with app.app_context():
            left = db.session.scalar(
                sa.select(sa.func.count()).select_from(User).where(User.role == "admin", User.is_active)
            )
            assert left == 1
            db.session.execute(sa.update(User).values(**undo))
            db.session.commit()


def test_deactivating_ends_a_live_session_at_once(app, admin, admin_client, staff_user, staff_client):
    lead = make_lead(app)
    token = staff_csrf(staff_client)
    assert staff_client.get("/pipeline").status_code == 200

    response = act(admin_client, staff_user["id"], "deactivate")

    assert response.status_code == 303
    assert "Siri Selger er deaktivert og logget ut overalt." in admin_client.get("/pipeline/team").text
    assert staff_client.get("/pipeline").status_code == 302
    moved = staff_client.post(
        f"/pipeline/leads/{lead['id']}/status",
        data={"status": "contacted"},
        headers={"X-CSRFToken": token, "HX-Request": "true"},
    )
    assert moved.status_code == 401
    with app.app_context():
        assert db.session.get(Lead, lead["id"]).status == "new"
        sessions = db.session.scalar(
            sa.select(sa.func.count()).select_from(StaffSession).where(StaffSession.user_id == staff_user["id"])
        )
        assert sessions == 0
    assert ("user_deactivated", admin["id"], staff_user["id"], None) in audit_actions(app)


def test_a_deactivated_colleagues_open_leads_show_as_unassigned_and_come_back_on_reactivation(
    app, admin, admin_client, staff_user
):
    open_lead = make_lead(app, email="apen@lhl.no", organization_name="Åpen Forening")
    closed_lead = make_lead(app, email="vunnet@lhl.no", organization_name="Vunnet AS")
    with app.app_context():
        db.session.execute(sa.update(Lead).values(owner_id=staff_user["id"]))
        db.session.commit()
        moves.move(
            closed_lead["id"],
            "converted",
            by=db.session.get(User, admin["id"]),
            details=moves.MoveDetails(deal_value=1),
        )

    act(admin_client, staff_user["id"], "deactivate")

    with app.app_context():
        assert board_model.get_card(open_lead["id"]).owner is None
        assert board_model.get_card(closed_lead["id"]).owner.id == staff_user["id"]  # who won it stays
        unassigned = board_model.BoardFilter.from_args({"owner": "none"}, viewer_id=admin["id"])
        shown = [card.lead.id for column in board_model.board(unassigned) for card in column.cards]
    assert shown == [open_lead["id"]]
    board = admin_client.get("/pipeline?owner=none").text
    assert "Åpen Forening" in board and "Vunnet AS" not in board
    assert 'title="Ufordelt"' in board

    act(admin_client, staff_user["id"], "reactivate")

    with app.app_context():
        assert board_model.get_card(open_lead["id"]).owner.id == staff_user["id"]
    assert "Åpen Forening" not in admin_client.get("/pipeline?owner=none").text
    assert signed_in(app, staff_user).get("/pipeline").status_code == 200
    assert ("user_reactivated", admin["id"], staff_user["id"], None) in audit_actions(app)


def test_an_administrator_sends_a_password_reset_that_is_audited(app, admin, admin_client, staff_user, smtp_server):
    response = act(admin_client, staff_user["id"], "password-reset")

    assert response.status_code == 303
    assert "Siri Selger får en e-post med en lenke" in admin_client.get("/pipeline/team").text
    sent_link(app, smtp_server, "Velg nytt passord for Meander", staff_user["email"])
    assert ("password_reset_sent", admin["id"], staff_user["id"], None) in audit_actions(app)


def test_the_audit_log_holds_who_what_and_when_and_never_a_password_or_a_token(
    app, admin, admin_client, staff_user, smtp_server
):
    submit(admin_client, "/pipeline/team", "/pipeline/team/invitations", email="ny@meander.no", role="seller")
    url, secret = sent_link(app, smtp_server, "Du er invitert", "ny@meander.no")
    act(admin_client, staff_user["id"], "password-reset")
    reset_url, reset_secret = sent_link(app, smtp_server, "Velg nytt passord", staff_user["email"])
    act(admin_client, staff_user["id"], "role", role="admin")
    act(admin_client, staff_user["id"], "deactivate")
    act(admin_client, staff_user["id"], "reactivate")
    page = admin_client.get("/pipeline/team").text
    submit(admin_client, "/pipeline/team", "/pipeline/team/settings", require_two_factor="on")
    run_jobs(app)

    with app.app_context():
        rows = (
            db.session.execute(sa.select(AuditEvent.__table__).where(AuditEvent.action != "user_created"))
            .mappings()
            .all()
        )
    actions = [row["action"] for row in rows]
    for action in ("user_invited", "password_reset_sent", "role_changed", "user_deactivated", "user_reactivated"):
        assert action in actions
    assert all(row["at"] is not None and row["actor_id"] == admin["id"] for row in rows)
    stored = " ".join(str(value) for row in rows for value in row.values())
    for secret_value in (secret, reset_secret, ADMIN_PASSWORD, STAFF_PASSWORD, "ny@meander.no", staff_user["email"]):
        assert secret_value not in stored
    assert "Sara Sjef inviterte ny@meander.no som Selger" in page  # names are put to the ids when shown
    assert "Sara Sjef deaktiverte Siri Selger" in page


def test_every_new_form_refuses_a_post_without_its_csrf_token(app, admin, admin_client, staff_user, staff_client):
    with app.app_context():
        invitation_id = staff_user["id"]  # any id: the CSRF check comes first
    posts = [
        (app.test_client(), "/login/kode", {"code": "123456"}),
        (app.test_client(), "/glemt-passord", {"email": staff_user["email"]}),
        (app.test_client(), "/invitasjon/lenke", {"secret": "x" * 43}),
        (app.test_client(), "/invitasjon", {"name": "Nina", "password": "fjord-lampe-sykkel-vinter-7"}),
        (app.test_client(), "/nytt-passord/lenke", {"secret": "x" * 43}),
        (app.test_client(), "/nytt-passord", {"password": "fjord-lampe-sykkel-vinter-7"}),
        (staff_client, "/pipeline/settings", {"notify_new_leads": "on"}),
        (staff_client, "/pipeline/settings/name", {"name": "Ny"}),
        (staff_client, "/pipeline/settings/password", {"current_password": STAFF_PASSWORD, "password": "x" * 20}),
        (staff_client, "/pipeline/settings/two-factor", {"code": "123456"}),
        (staff_client, "/pipeline/settings/two-factor/recovery-codes", {"current_password": STAFF_PASSWORD}),
        (staff_client, "/pipeline/settings/two-factor/off", {"current_password": STAFF_PASSWORD}),
        (admin_client, "/pipeline/team/invitations", {"email": "ny@meander.no", "role": "seller"}),
        (admin_client, f"/pipeline/team/invitations/{invitation_id}/withdraw", {}),
        (admin_client, f"/pipeline/team/{staff_user['id']}/role", {"role": "admin"}),
        (admin_client, f"/pipeline/team/{staff_user['id']}/deactivate", {}),
        (admin_client, f"/pipeline/team/{staff_user['id']}/reactivate", {}),
        (admin_client, f"/pipeline/team/{staff_user['id']}/password-reset", {}),
        (admin_client, f"/pipeline/team/{staff_user['id']}/two-factor/reset", {}),
        (admin_client, "/pipeline/team/settings", {"require_two_factor": "on"}),
    ]
    for client, path, data in posts:
        response = client.post(path, data=data)
        assert response.status_code == 400, path
        assert "Siden var utløpt" in response.text, path
    user = stored_user(app, staff_user["id"])
    assert (user.role, user.is_active, user.name) == ("seller", True, "Siri Selger")
    assert audit_actions(app) == []


def test_an_unknown_colleague_is_a_404_and_a_bad_role_changes_nothing(app, admin, admin_client, staff_user):
    assert act(admin_client, "3f1f3a2e-0000-4000-8000-000000000000", "deactivate").status_code == 404
    bad = act(admin_client, staff_user["id"], "role", role="konge")
    assert (
        bad.status_code == 303 and "Velg enten Administrator eller Selger." in admin_client.get("/pipeline/team").text
    )
    assert stored_user(app, staff_user["id"]).role == "seller"
