"""The public pages as a prospect (or a bot) meets them: form, CSRF, htmx, confirmation page, honeypot."""

import re
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser

import pytest
from helpers.booking import VALID_BOOKING, book, csrf_token, only_lead, stored_counts
from helpers.jobs import run_jobs


class Controls(HTMLParser):
    """Form controls and labels of a page."""

    def __init__(self, html: str):
        super().__init__(convert_charrefs=True)
        self.controls: list[dict] = []
        self.label_targets: set[str] = set()
        self.metas: list[dict] = []
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        attributes = dict(attrs)
        if tag in ("input", "select", "textarea"):
            self.controls.append({"tag": tag, **attributes})
        if tag == "label" and attributes.get("for"):
            self.label_targets.add(attributes["for"])
        if tag == "meta":
            self.metas.append(attributes)

    def value_of(self, name: str) -> str | None:
        for control in self.controls:
            if control.get("name") == name:
                return control.get("value")
        return None


# --- the form ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/", "/demo"])
def test_booking_form_has_a_label_for_every_field_and_a_csrf_token(client, path):
    response = client.get(path)

    assert response.status_code == 200
    page = Controls(response.get_data(as_text=True))
    visible = [control for control in page.controls if control.get("type") != "hidden"]
    names = {control.get("name") for control in visible}
    assert set(VALID_BOOKING) <= names
    for control in visible:
        assert control.get("id") in page.label_targets, f"no <label for=...> for {control}"
    csrf = [control for control in page.controls if control.get("name") == "csrf_token"]
    assert len(csrf) == 1 and csrf[0]["type"] == "hidden" and len(csrf[0]["value"]) > 20


def test_booking_form_is_in_norwegian(client):
    html = client.get("/demo").get_data(as_text=True)

    assert '<html lang="nb">' in html
    assert "Bestill en demo" in html and "Send forespørsel" in html


def test_post_without_csrf_token_is_refused_keeps_typed_values_and_stores_nothing(app, client, smtp_server):
    response = client.post("/demo", data={**VALID_BOOKING, "organization_name": "Uten token AS"})

    assert response.status_code == 400
    page = Controls(response.get_data(as_text=True))
    assert page.value_of("organization_name") == "Uten token AS"
    assert page.value_of("email") == VALID_BOOKING["email"]
    assert "Send forespørsel" in response.get_data(as_text=True)
    assert stored_counts(app) == (0, 0)
    assert run_jobs(app) == 0


def test_post_with_a_forged_csrf_token_is_refused(app, client):
    client.get("/demo")
    response = client.post("/demo", data={**VALID_BOOKING, "csrf_token": "forged.token.value"})

    assert response.status_code == 400
    assert stored_counts(app) == (0, 0)


def test_htmx_booking_gets_an_hx_redirect_header_instead_of_a_303(app, client):
    response = book(client, headers={"HX-Request": "true"})

    assert response.status_code == 200
    assert "Location" not in response.headers
    lead = only_lead(app)
    assert response.headers["HX-Redirect"] == f"/confirm/{lead.masked_ref}"


def test_the_form_page_and_its_htmx_fragment_are_cached_apart(client):
    assert "HX-Request" in client.get("/demo").headers.get("Vary", "")


# --- the confirmation page ---------------------------------------------------------------------------


def test_confirmation_page_names_organization_and_first_name_but_no_contact_details(client):
    location = book(client).headers["Location"]

    response = client.get(location)

    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert "Kari" in html
    assert "LHL Hjerneslag" in html
    for private in (VALID_BOOKING["email"], "kari.nordmann", "+4791234567", "912 34 567", "91234567"):
        assert private not in html
    assert VALID_BOOKING["notes"] not in html and "likepersoner i fem fylker" not in html


def test_confirmation_page_is_kept_out_of_caches_search_engines_and_referrers(client):
    location = book(client).headers["Location"]

    response = client.get(location)

    assert response.headers["Cache-Control"] == "no-store"
    assert response.headers["Referrer-Policy"] == "no-referrer"
    assert "noindex" in response.headers["X-Robots-Tag"]
    robots = [meta for meta in Controls(response.get_data(as_text=True)).metas if meta.get("name") == "robots"]
    assert robots and robots[0]["content"].startswith("noindex")


@pytest.mark.parametrize("path", ["/", "/demo"])
def test_other_pages_keep_the_referrer_for_the_csrf_check(client, path):
    response = client.get(path)

    assert response.headers.get("Referrer-Policy", "") != "no-referrer"
    assert "no-referrer" not in response.get_data(as_text=True)


@pytest.mark.parametrize("ref", ["ukjent-referanse-123", "A" * 22, "x" * 300])
def test_unknown_confirmation_ref_gives_a_norwegian_404(client, ref):
    response = client.get(f"/confirm/{ref}")

    assert response.status_code == 404
    assert "Fant ikke siden" in response.get_data(as_text=True)


def test_typed_markup_is_escaped_on_the_confirmation_page(client):
    response = book(client, first_name="<script>alert(1)</script>", organization_name='<img src=x onerror="alert(2)">')
    assert response.status_code == 303

    html = client.get(response.headers["Location"]).get_data(as_text=True)

    assert "<script>alert(1)" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "<img src=x" not in html
    assert "&lt;img src=x" in html


# --- honeypot and fields the public may not set ------------------------------------------------------


def test_honeypot_filled_looks_accepted_but_stores_and_sends_nothing(app, client, smtp_server):
    response = book(client, website_url="https://cheap-pills.example")

    assert response.status_code == 303
    thanks = client.get(response.headers["Location"])
    assert thanks.status_code == 200
    assert "Takk" in thanks.get_data(as_text=True)
    assert stored_counts(app) == (0, 0)
    assert run_jobs(app) == 0
    assert smtp_server.messages() == []


def test_a_bot_that_fills_the_honeypot_without_a_token_is_refused_by_the_csrf_check_first(app, client):
    # The view builds no form object for a booking that goes through: the token is checked before it runs.
    client.get("/demo")
    response = client.post("/demo", data={**VALID_BOOKING, "website_url": "https://cheap-pills.example"})

    assert response.status_code == 400
    assert stored_counts(app) == (0, 0)


def test_public_form_cannot_set_status_source_ref_count_or_timestamps(app, client):
    response = book(
        client,
        status="converted",
        source="referral",
        masked_ref="chosen-by-the-visitor",
        booking_count="99",
        created_at="2000-01-01T00:00:00+00:00",
        updated_at="2000-01-01T00:00:00+00:00",
        confirmation_sent_at="2000-01-01T00:00:00+00:00",
        ip_address="198.51.100.9",
        id="00000000-0000-0000-0000-000000000001",
    )

    assert response.status_code == 303
    lead = only_lead(app)
    assert lead.status == "new"
    assert lead.source == "website"
    assert lead.booking_count == 1
    assert lead.masked_ref != "chosen-by-the-visitor"
    assert re.fullmatch(r"[A-Za-z0-9_-]{22,}", lead.masked_ref)
    assert str(lead.id) != "00000000-0000-0000-0000-000000000001"
    assert lead.ip_address == "127.0.0.1"
    assert lead.confirmation_sent_at is None
    now = datetime.now(UTC)
    assert now - timedelta(minutes=5) < lead.created_at <= now
    assert response.headers["Location"] == f"/confirm/{lead.masked_ref}"


def test_every_lead_gets_its_own_unguessable_ref(app, client):
    refs = {book(client, email=f"person{n}@lhl.no").headers["Location"] for n in range(3)}

    assert len(refs) == 3


def test_csrf_token_from_one_visitor_does_not_work_for_another(app):
    first, second = app.test_client(), app.test_client()
    token = csrf_token(first)
    second.get("/demo")

    response = second.post("/demo", data={**VALID_BOOKING, "csrf_token": token})

    assert response.status_code == 400
    assert stored_counts(app) == (0, 0)
