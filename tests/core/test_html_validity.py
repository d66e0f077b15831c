"""The pages people meet are valid HTML, checked by the Nu Html Checker (vnu.jar, the W3C's checker).

`make test` installs vnu.jar from the npm registry into tools/html-checker (the machine's java runs it).
One JVM start checks every page at once; htmx's hx-* attributes are the only reports we accept.
"""

import uuid

from helpers.booking import VALID_BOOKING, book, csrf_token, make_lead
from helpers.html import NEEDS_THE_CHECKER, check_html

from meander_site.accounts.models import User
from meander_site.dev import demo_data
from meander_site.extensions import db
from meander_site.pipeline import moves

pytestmark = NEEDS_THE_CHECKER


def page(client, path: str, status: int = 200) -> str:
    response = client.get(path)
    assert response.status_code == status, path
    return response.get_data(as_text=True)


def test_public_and_staff_pages_are_valid_html(app, client, staff_client, staff_user, tmp_path):
    pages = {"booking_form": page(client, "/demo")}
    invalid = client.post("/demo", data={**VALID_BOOKING, "email": "ikke-en-adresse", "csrf_token": csrf_token(client)})
    assert invalid.status_code == 422
    pages["booking_form_with_errors"] = invalid.get_data(as_text=True)
    confirmation = book(client, email="siri@frivillig.no")
    assert confirmation.status_code == 303
    pages["confirmation"] = page(client, confirmation.headers["Location"])
    pages["received"] = page(client, "/demo/mottatt")
    pages["login"] = page(app.test_client(), "/login")

    lead = make_lead(app)
    make_lead(app, organization_name="LHL Hjerneslag, avd. Bergen")  # a rebooking: badge and history
    with app.app_context():
        demo_data.create_demo_leads(30, seed=7)
        salesperson = db.session.get(User, staff_user["id"])
        moves.move(lead["id"], "contacted", by=salesperson)
    pages["board"] = page(staff_client, "/pipeline")
    pages["lead"] = page(staff_client, f"/pipeline/leads/{lead['id']}")
    pages["new_lead"] = page(staff_client, "/pipeline/leads/new")
    pages["settings"] = page(staff_client, "/pipeline/settings")
    pages["card_menu"] = "<!doctype html><html lang=nb><title>Meny</title><div>{}</div>".format(
        page(staff_client, f"/pipeline/leads/{lead['id']}/menu")
    )
    pages["staff_not_found"] = page(staff_client, f"/pipeline/leads/{uuid.uuid4()}", status=404)

    assert check_html(pages, tmp_path) == []


def test_the_checker_catches_what_it_should(tmp_path):
    """Guards the test above: a page with a microsecond <time> and a bad attribute fails."""
    broken = (
        '<!doctype html><html lang="nb"><head><title>x</title></head><body>'
        '<time datetime="2026-01-01T10:00:00.123456+00:00">i dag</time><p hx-get="/x" colour="red">y</p></body></html>'
    )

    errors = check_html({"broken": broken}, tmp_path)

    assert any("fraction of a second" in error for error in errors), errors
    assert any("“colour”" in error for error in errors), errors
    assert not any("hx-get" in error for error in errors)
