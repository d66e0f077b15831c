"""An administrator sets the pool, the business hours and the first-contact target on the team page; everyone enters
their own absences in Innstillinger, and an administrator anyone's."""

from datetime import date, timedelta

import sqlalchemy as sa
from helpers.accounts import admin_client_fixture, admin_fixture, page_token  # noqa: F401 (fixtures)
from helpers.staff import staff_csrf

from meander_site.accounts import team_settings
from meander_site.accounts.models import Absence, User
from meander_site.business_days import oslo_today
from meander_site.extensions import db


def test_the_administrator_sets_the_hours_the_target_and_the_hand_over(app, admin_client):
    token = staff_csrf(admin_client)
    page = admin_client.get("/pipeline/team").get_data(as_text=True)
    assert '<label for="hand_over">Gi videre når fristen går ut</label>' in page
    assert 'value="08:00"' in page and 'value="16:00"' in page

    response = admin_client.post(
        "/pipeline/team/first-contact",
        data={
            "opens_at": "09:00",
            "closes_at": "15:30",
            "target_minutes": "60",
            "hand_over": "on",
            "csrf_token": token,
        },
    )
    assert response.status_code == 303
    with app.app_context():
        settings = team_settings.current()
    assert (settings.opens_at_minute, settings.closes_at_minute) == (540, 930)
    assert settings.first_contact_target_minutes == 60 and settings.hand_over_when_expired


def test_hours_that_close_before_they_open_are_refused_with_a_message(app, admin_client):
    token = staff_csrf(admin_client)
    response = admin_client.post(
        "/pipeline/team/first-contact",
        data={"opens_at": "16:00", "closes_at": "08:00", "target_minutes": "120", "csrf_token": token},
    )
    assert response.status_code == 422
    assert "Arbeidstiden må starte før den slutter" in response.get_data(as_text=True)
    for hostile in ({"opens_at": "25:99"}, {"target_minutes": "abc"}, {"target_minutes": "7"}):
        data = {"opens_at": "08:00", "closes_at": "16:00", "target_minutes": "120", "csrf_token": token, **hostile}
        assert admin_client.post("/pipeline/team/first-contact", data=data).status_code == 422


def test_the_pool_and_a_weight_are_set_per_member(app, admin_client, staff_user):
    token = staff_csrf(admin_client)
    page = admin_client.get("/pipeline/team").get_data(as_text=True)
    assert f'<label for="takes-{staff_user["id"]}">Tar imot nye leads' in page

    response = admin_client.post(
        f"/pipeline/team/{staff_user['id']}/pool", data={"takes_new_leads": "on", "weight": "50", "csrf_token": token}
    )
    assert response.status_code == 303
    with app.app_context():
        user = db.session.get(User, staff_user["id"])
        assert (user.takes_new_leads, user.assignment_weight_percent) == (True, 50)
    admin_client.post(f"/pipeline/team/{staff_user['id']}/pool", data={"weight": "50", "csrf_token": token})
    with app.app_context():
        assert db.session.get(User, staff_user["id"]).takes_new_leads is False
    refused = admin_client.post(f"/pipeline/team/{staff_user['id']}/pool", data={"weight": "33", "csrf_token": token})
    assert refused.status_code == 303
    assert "Velg en av andelene" in admin_client.get("/pipeline/team").get_data(as_text=True)


def test_a_seller_cannot_set_the_pool(app, staff_client, staff_user):
    token = staff_csrf(staff_client)
    response = staff_client.post(
        f"/pipeline/team/{staff_user['id']}/pool", data={"weight": "200", "takes_new_leads": "on", "csrf_token": token}
    )
    assert response.status_code in (303, 403)
    with app.app_context():
        assert db.session.get(User, staff_user["id"]).assignment_weight_percent == 100


def test_a_seller_enters_and_removes_their_own_absence(app, staff_client, staff_user):
    token = staff_csrf(staff_client)
    start = oslo_today() + timedelta(days=3)
    response = staff_client.post(
        "/pipeline/settings/absences",
        data={"starts_on": start.isoformat(), "ends_on": (start + timedelta(days=4)).isoformat(), "note": "Ferie"},
        headers={"X-CSRFToken": token},
    )
    assert response.status_code == 303
    page = staff_client.get("/pipeline/settings").get_data(as_text=True)
    assert f"{start:%d.%m.%Y}" in page and "Ferie" in page
    with app.app_context():
        absence_id = db.session.scalar(sa.select(Absence.id))
    assert (
        staff_client.post(
            f"/pipeline/settings/absences/{absence_id}/remove", headers={"X-CSRFToken": token}
        ).status_code
        == 303
    )
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(Absence)) == 0


def test_an_absence_that_ends_before_it_starts_is_refused_with_the_fields_kept(app, staff_client):
    token = staff_csrf(staff_client)
    response = staff_client.post(
        "/pipeline/settings/absences",
        data={"starts_on": "2027-07-05", "ends_on": "2027-07-01", "note": "Ferie", "csrf_token": token},
    )
    assert response.status_code == 422
    page = response.get_data(as_text=True)
    assert "Siste fraværsdag kan ikke være før første" in page and 'value="2027-07-05"' in page
    for hostile in ({"starts_on": "i morgen"}, {"starts_on": "99999-01-01"}, {"note": "a\x00b"}):
        data = {"starts_on": "2027-07-01", "ends_on": "2027-07-05", "csrf_token": token, **hostile}
        assert staff_client.post("/pipeline/settings/absences", data=data).status_code == 422


def test_a_seller_cannot_remove_a_colleagues_absence(app, staff_client, admin):
    with app.app_context():
        absence = Absence(user_id=admin["id"], starts_on=date(2027, 7, 1), ends_on=date(2027, 7, 5))
        db.session.add(absence)
        db.session.commit()
        absence_id = absence.id
    token = staff_csrf(staff_client)
    assert (
        staff_client.post(f"/pipeline/settings/absences/{absence_id}/remove", data={"csrf_token": token}).status_code
        == 404
    )


def test_the_administrator_enters_a_colleagues_absence_on_the_team_page(app, admin_client, staff_user):
    token = staff_csrf(admin_client)
    today = oslo_today()
    response = admin_client.post(
        "/pipeline/team/absences",
        data={
            "user_id": str(staff_user["id"]),
            "starts_on": today.isoformat(),
            "ends_on": today.isoformat(),
            "csrf_token": token,
        },
    )
    assert response.status_code == 303
    page = admin_client.get("/pipeline/team").get_data(as_text=True)
    assert "Borte" in page and f"{today:%d.%m.%Y}" in page
