"""One lead: its page (attributes, booking and status history, mail state), resending the confirmation,
editing contact fields, staff-created leads, and GDPR erasure."""

import html
import re
import uuid

import pytest
import sqlalchemy as sa
from helpers.assignment import leave_the_pool
from helpers.booking import VALID_BOOKING, book, make_lead
from helpers.jobs import run_jobs
from helpers.staff import STAFF_PASSWORD, log_in, staff_csrf

from meander_site.accounts.models import AuditEvent
from meander_site.booking import confirmation_mail
from meander_site.extensions import db
from meander_site.leads.models import Booking, Lead, LeadStatusChange, LeadStatusCount
from meander_site.pipeline import lead_history

HTMX = {"HX-Request": "true"}
SMTP_DOWN = "451 4.3.0 Try again later"


def page_of(client, lead_id) -> str:
    response = client.get(f"/pipeline/leads/{lead_id}")
    assert response.status_code == 200
    return response.get_data(as_text=True)


def text(fragment: str) -> str:
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", fragment)).split())


def facts(page: str) -> dict[str, str]:
    block = re.search(r'<dl class="facts">(.*?)</dl>', page, re.S).group(1)
    return {text(dt): text(dd) for dt, dd in re.findall(r"<dt>(.*?)</dt><dd[^>]*>(.*?)</dd>", block, re.S)}


def the_lead(app, lead_id) -> Lead:
    with app.app_context():
        lead = db.session.get(Lead, lead_id)
        if lead is not None:
            db.session.expunge(lead)
        return lead


def all_leads(app) -> list[Lead]:
    with app.app_context():
        rows = db.session.execute(sa.select(Lead)).scalars().all()
        for row in rows:
            db.session.expunge(row)
        return rows


def edit(client, lead_id, token, htmx=False, **changes):
    data = {**VALID_BOOKING, **changes, "csrf_token": token}
    data = {key: value for key, value in data.items() if value is not None}
    return client.post(f"/pipeline/leads/{lead_id}", data=data, headers=HTMX if htmx else {})


def create(client, token, **fields):
    data = {**VALID_BOOKING, "source": "phone", **fields, "csrf_token": token}
    data = {key: value for key, value in data.items() if value is not None}
    return client.post("/pipeline/leads/new", data=data)


# --- what the page shows ---------------------------------------------------------------------------


def test_the_lead_page_shows_every_attribute(app, staff_client):
    lead = make_lead(app)

    page = page_of(staff_client, lead["id"])

    assert "<h1>LHL Hjerneslag</h1>" in page
    assert "Kari Nordmann · Koordinator" in page
    shown = facts(page)
    assert shown["Status"].startswith("Ny siden ")
    assert shown["Opprinnelse"] == "Nettsiden"
    assert shown["E-post"] == "kari.nordmann@lhl.no"
    assert shown["Telefon"] == "+4791234567"
    assert shown["Størrelse"] == "51–200 personer"
    assert shown["Bruker i dag"] == "Excel og e-post"
    assert shown["Ønsket tidspunkt"] == "Tirsdager etter kl. 12"
    assert shown["Notater"] == VALID_BOOKING["notes"]
    assert shown["Bookinger"] == "1"
    assert re.fullmatch(r"\d\d\.\d\d\.\d{4} kl\. \d\d:\d\d", shown["Opprettet"])
    assert re.fullmatch(r"\d\d\.\d\d\.\d{4} kl\. \d\d:\d\d", shown["Sist endret"])
    assert shown["IP-adresse"] == "198.51.100.7"
    assert shown["Referanse"] == lead["masked_ref"]
    assert shown["Id"] == str(lead["id"])


def test_the_booking_history_lists_every_submission_and_what_changed(app, staff_client):
    lead = make_lead(app, notes="Første notat om likepersoner.", preferred_demo_timing="Mandager")
    make_lead(app, notes="Andre notat: nå med styret.", preferred_demo_timing="Fredager før lunsj")

    page = page_of(staff_client, lead["id"])

    assert "Bookinger (2)" in page
    bookings = re.findall(r'<article class="booking">(.*?)</article>', page, re.S)
    assert len(bookings) == 2
    newest, first = bookings
    assert "Andre notat: nå med styret." in newest and "Første notat om likepersoner." in first
    assert "første booking" in first and "første booking" not in newest
    changes = re.search(r'<ul class="changes">(.*?)</ul>', newest, re.S).group(1)
    assert text(changes) == (
        "Når passer en demo? : Mandager → Fredager før lunsj "
        "Noe mer vi bør vite? : Første notat om likepersoner. → Andre notat: nå med styret."
    )
    assert "Endret fra forrige booking" not in first
    assert facts(page)["Bookinger"] == "2"
    assert facts(page)["Notater"] == "Andre notat: nå med styret."


def test_the_timeline_shows_each_move_with_who_and_why_newest_first(app, staff_client, token):
    leave_the_pool(app)  # no «Tildelt …» line: the timeline starts empty
    lead = make_lead(app)
    assert "Ingen notater eller endringer ennå." in page_of(staff_client, lead["id"])
    headers = {**HTMX, "X-CSRFToken": token}
    staff_client.post(f"/pipeline/leads/{lead['id']}/status", data={"status": "contacted"}, headers=headers)
    staff_client.post(
        f"/pipeline/leads/{lead['id']}/status", data={"status": "lost", "reason": "no_response"}, headers=headers
    )

    page = page_of(staff_client, lead["id"])

    entries = re.findall(
        r'<li class="timeline-entry timeline-entry--status">.*?· (.*?)</p>\s*<p class="">(.*?)</p>'
        r'\s*(?:<p class="hint">(.*?)</p>)?',
        page,
        re.S,
    )
    assert entries == [
        ("Siri Selger", "Flyttet fra «Kontaktet» til «Tapt»", "Fikk ikke kontakt"),
        ("Siri Selger", "Flyttet fra «Ny» til «Kontaktet»", ""),
    ]
    assert facts(page)["Status"].startswith("Tapt siden ")


def test_an_unsent_confirmation_shows_its_state_and_a_resend_button(app, staff_client):
    lead = make_lead(app)

    page = page_of(staff_client, lead["id"])

    assert "Venter på å bli sendt" in page
    assert f'action="/pipeline/leads/{lead["id"]}/resend"' in page
    assert "Send bekreftelsen nå" in page


def test_a_sent_confirmation_shows_sent_and_no_resend_button(app, staff_client):
    lead = make_lead(app)
    with app.app_context():
        confirmation_mail.dispatch_confirmation(lead["booking_id"])
    run_jobs(app)

    page = page_of(staff_client, lead["id"])

    assert '<span class="badge badge--ok">Sendt</span>' in page
    assert "Send bekreftelsen nå" not in page


def test_the_mail_state_and_the_resend_offer_come_from_the_sales_domain(app):
    # The page and the resend action ask sales one question each, so they cannot disagree.
    lead = make_lead(app)
    with app.app_context():
        [entry] = lead_history.booking_history(lead["id"])
        assert entry.mail_state == "pending"
        assert lead_history.confirmation_to_resend(lead["id"]).id == lead["booking_id"]
    with app.app_context():
        confirmation_mail.dispatch_confirmation(lead["booking_id"])
    run_jobs(app)

    with app.app_context():
        [entry] = lead_history.booking_history(lead["id"])
        assert entry.mail_state == "sent"
        assert lead_history.confirmation_to_resend(lead["id"]) is None


def test_resending_after_an_smtp_failure_delivers_the_mail(app, staff_client, token, smtp_server):
    smtp_server.fail_with = SMTP_DOWN
    lead = make_lead(app)  # the booking enqueues its confirmation
    assert run_jobs(app) == 1
    page = page_of(staff_client, lead["id"])
    assert "Feiler – prøver igjen automatisk" in page
    assert "451" in page and "Send bekreftelsen nå" in page
    smtp_server.fail_with = None

    response = staff_client.post(f"/pipeline/leads/{lead['id']}/resend", data={"csrf_token": token})

    assert response.status_code == 303
    assert response.headers["Location"] == f"/pipeline/leads/{lead['id']}"
    assert "Bekreftelsen sendes på nytt nå." in page_of(staff_client, lead["id"])
    assert run_jobs(app) == 1
    [message] = smtp_server.wait_for(1)
    assert message["To"] == "kari.nordmann@lhl.no"
    assert the_lead(app, lead["id"]).confirmation_sent_at is not None
    assert "Send bekreftelsen nå" not in page_of(staff_client, lead["id"])


def test_resending_an_already_sent_confirmation_sends_nothing_more(app, staff_client, token, smtp_server):
    leave_the_pool(app)  # no owner's mail beside the confirmation
    lead = make_lead(app)
    with app.app_context():
        confirmation_mail.dispatch_confirmation(lead["booking_id"])
    run_jobs(app)
    smtp_server.wait_for(1)

    response = staff_client.post(f"/pipeline/leads/{lead['id']}/resend", data={"csrf_token": token})

    assert response.status_code == 303
    assert "Bekreftelsen er allerede sendt." in page_of(staff_client, lead["id"])
    assert run_jobs(app) == 0
    assert len(smtp_server.messages()) == 1


# --- editing ---------------------------------------------------------------------------------------


def test_editing_contact_fields_saves_them_with_the_phone_in_e164(app, staff_client, token):
    lead = make_lead(app)

    response = edit(
        staff_client,
        lead["id"],
        token,
        first_name="Kari Anne",
        phone="+46 70 123 45 67",
        email="Kari.Anne@LHL.no",
        organization_size="201-1000",
        notes="Ringt 3. mars.",
    )

    assert response.status_code == 303
    assert response.headers["Location"] == f"/pipeline/leads/{lead['id']}"
    saved = the_lead(app, lead["id"])
    assert (saved.first_name, saved.phone, saved.email) == ("Kari Anne", "+46701234567", "kari.anne@lhl.no")
    assert (saved.organization_size, saved.notes) == ("201-1000", "Ringt 3. mars.")
    assert "Endringene er lagret." in page_of(staff_client, lead["id"])


def test_editing_through_htmx_answers_with_an_hx_redirect(app, staff_client, token):
    lead = make_lead(app)

    response = edit(staff_client, lead["id"], token, htmx=True, role_title="Daglig leder")

    assert response.status_code == 200
    assert response.headers["HX-Redirect"] == f"/pipeline/leads/{lead['id']}"
    assert the_lead(app, lead["id"]).role_title == "Daglig leder"


def test_an_invalid_edit_is_422_with_messages_keeps_what_was_typed_and_saves_nothing(app, staff_client, token):
    lead = make_lead(app)

    response = edit(
        staff_client,
        lead["id"],
        token,
        first_name="",
        email="ikke-en-epost",
        phone="12",
        organization_name="Ny organisasjon AS",
    )

    assert response.status_code == 422
    page = response.get_data(as_text=True)
    assert "Endringene er ikke lagret" in page
    assert "Skriv inn kontaktens fornavn." in page  # staff are told about the contact, not about themselves
    assert "Skriv inn en gyldig e-postadresse" in page
    assert "Skriv inn et gyldig telefonnummer" in page
    assert 'value="ikke-en-epost"' in page and 'value="Ny organisasjon AS"' in page and 'value="12"' in page
    saved = the_lead(app, lead["id"])
    assert (saved.first_name, saved.email, saved.phone, saved.organization_name) == (
        "Kari",
        "kari.nordmann@lhl.no",
        "+4791234567",
        "LHL Hjerneslag",
    )


def test_a_crafted_edit_cannot_change_id_ref_dates_count_ip_status_or_source(app, staff_client, token):
    lead = make_lead(app)
    before = the_lead(app, lead["id"])

    response = edit(
        staff_client,
        lead["id"],
        token,
        role_title="Leder",
        id=str(uuid.uuid4()),
        masked_ref="attacker-chosen-ref",
        created_at="2001-01-01T00:00:00+00:00",
        booking_count="99",
        ip_address="6.6.6.6",
        status="converted",
        source="phone",
        confirmation_sent_at="2001-01-01T00:00:00+00:00",
        status_changed_at="2001-01-01T00:00:00+00:00",
    )

    assert response.status_code == 303
    [after] = all_leads(app)
    assert after.role_title == "Leder"
    for name in (
        "id",
        "masked_ref",
        "created_at",
        "booking_count",
        "ip_address",
        "status",
        "source",
        "confirmation_sent_at",
        "status_changed_at",
    ):
        assert getattr(after, name) == getattr(before, name), name


def test_changing_the_email_to_another_leads_email_is_422_not_500(app, staff_client, token):
    lead = make_lead(app, email="forste@eksempel.no")
    make_lead(app, email="andre@eksempel.no")

    response = edit(staff_client, lead["id"], token, email="ANDRE@eksempel.no")

    assert response.status_code == 422
    assert "En annen lead har allerede denne e-postadressen" in response.get_data(as_text=True)
    assert the_lead(app, lead["id"]).email == "forste@eksempel.no"


def test_routes_for_an_unknown_lead_answer_404_in_production(app, make_app, staff_user):
    production = make_app(TESTING=False)
    client = production.test_client()
    assert log_in(client, staff_user["email"], STAFF_PASSWORD).status_code == 303
    headers = {"X-CSRFToken": staff_csrf(client)}
    missing = uuid.uuid4()

    answers = {
        "page": client.get(f"/pipeline/leads/{missing}").status_code,
        "edit": client.post(f"/pipeline/leads/{missing}", data=VALID_BOOKING, headers=headers).status_code,
        "move": client.post(
            f"/pipeline/leads/{missing}/status", data={"status": "contacted"}, headers=headers
        ).status_code,
        "resend": client.post(f"/pipeline/leads/{missing}/resend", headers=headers).status_code,
        "delete": client.post(f"/pipeline/leads/{missing}/delete", headers=headers).status_code,
        "apply": client.post(f"/pipeline/leads/{missing}/bookings/{uuid.uuid4()}/apply", headers=headers).status_code,
    }

    assert answers == dict.fromkeys(answers, 404)


# --- every state change needs CSRF -----------------------------------------------------------------


@pytest.mark.parametrize(
    "path, data",
    [
        ("/pipeline/leads/{id}/status", {"status": "contacted"}),
        ("/pipeline/leads/{id}", {**VALID_BOOKING, "first_name": "Endret"}),
        ("/pipeline/leads/{id}/resend", {}),
        ("/pipeline/leads/{id}/delete", {}),
        ("/pipeline/leads/new", {**VALID_BOOKING, "email": "ny@eksempel.no", "source": "phone"}),
    ],
    ids=["move", "edit", "resend", "delete", "new"],
)
def test_a_state_change_without_csrf_is_400_and_changes_nothing(app, staff_client, path, data):
    lead = make_lead(app)
    run_jobs(app)  # the booking's own mail

    response = staff_client.post(path.format(id=lead["id"]), data=data)

    assert response.status_code == 400
    [only] = all_leads(app)
    assert (only.id, only.status, only.first_name) == (lead["id"], "new", "Kari")
    assert run_jobs(app) == 0


# --- staff-created leads ---------------------------------------------------------------------------


def test_the_new_lead_form_offers_staff_sources(staff_client):
    response = staff_client.get("/pipeline/leads/new")

    assert response.status_code == 200
    page = response.get_data(as_text=True)
    sources = re.findall(
        r'<option value="([a-z]+)">', re.search(r'<select[^>]*name="source".*?</select>', page, re.S).group(0)
    )
    assert sources == ["referral", "event", "phone", "email", "other"]
    assert 'name="send_confirmation"' in page


def test_a_staff_created_lead_gets_its_source_and_no_mail_unless_asked(app, staff_client, token, smtp_server):
    response = create(staff_client, token, email="ringte@eksempel.no")

    [lead] = all_leads(app)
    assert response.status_code == 303
    assert response.headers["Location"] == f"/pipeline/leads/{lead.id}"
    assert (lead.source, lead.status, lead.booking_count, lead.ip_address) == ("phone", "new", 1, None)
    assert run_jobs(app) == 0
    assert smtp_server.messages() == []
    page = page_of(staff_client, lead.id)
    assert "Leaden er lagret." in page and facts(page)["Opprinnelse"] == "Telefon"


def test_a_staff_created_lead_with_send_confirmation_gets_one_mail(app, staff_client, token, smtp_server):
    response = create(staff_client, token, email="messe@eksempel.no", source="event", send_confirmation="y")

    assert response.status_code == 303
    assert run_jobs(app) == 1
    [message] = smtp_server.wait_for(1)
    assert message["To"] == "messe@eksempel.no"
    [lead] = all_leads(app)
    assert lead.source == "event" and lead.confirmation_sent_at is not None


def test_a_staff_created_lead_with_a_known_email_updates_that_lead(app, staff_client, token):
    existing = make_lead(app)

    response = create(staff_client, token, email="KARI.NORDMANN@lhl.no", notes="Ringte og ville ha demo.")

    assert response.status_code == 303
    assert response.headers["Location"] == f"/pipeline/leads/{existing['id']}"
    [lead] = all_leads(app)
    assert (lead.id, lead.masked_ref, lead.booking_count) == (existing["id"], existing["masked_ref"], 2)
    assert lead.notes == "Ringte og ville ha demo."
    assert "E-posten fantes fra før: leaden er oppdatert." in page_of(staff_client, lead.id)


@pytest.mark.parametrize(
    "fields, field_message",
    [
        ({"email": "ikke-en-epost"}, "Skriv inn en gyldig e-postadresse"),
        ({"organization_name": ""}, "Skriv inn navnet på organisasjonen."),
        ({"email": ""}, "Skriv inn kontaktens e-postadresse."),
        ({"source": None}, "Velg hvor leaden kom fra."),
        ({"source": "fax"}, "Velg hvor leaden kom fra."),
        ({"source": "website"}, "Velg hvor leaden kom fra."),
        ({"source": None, "email": ""}, "Velg hvor leaden kom fra."),
    ],
    ids=[
        "bad-email",
        "no-organization",
        "no-email",
        "no-source",
        "unknown-source",
        "website-source",
        "no-source-and-no-email",
    ],
)
def test_an_invalid_staff_created_lead_is_422_and_saves_nothing(app, staff_client, token, fields, field_message):
    response = create(staff_client, token, **{"email": "ny@eksempel.no", **fields})

    assert response.status_code == 422
    page = response.get_data(as_text=True)
    assert "Leaden er ikke lagret" in page and field_message in page
    assert "så vi kan bekrefte" not in page and "din." not in page  # words for prospects, not for staff
    assert all_leads(app) == []


def test_staff_created_leads_are_not_rate_limited(app, staff_client, token):
    codes = [create(staff_client, token, email=f"lead{n}@eksempel.no").status_code for n in range(7)]

    assert codes == [303] * 7
    assert len(all_leads(app)) == 7


# --- erasure ---------------------------------------------------------------------------------------


def test_the_lead_page_asks_are_you_sure_before_the_delete_button(app, staff_client):
    lead = make_lead(app)

    page = page_of(staff_client, lead["id"])

    details = re.search(r"<details>(.*?)</details>", page, re.S)
    assert details, "the delete control sits in a <details> the salesperson must open"
    inside = details.group(1)
    assert "<summary>" in inside
    assert inside.index("Er du sikker?") < inside.index(f'action="/pipeline/leads/{lead["id"]}/delete"')
    assert page.count(f"/pipeline/leads/{lead['id']}/delete") == 1


def test_erasure_removes_the_lead_its_bookings_and_history_and_keeps_an_anonymous_audit_entry(
    app, staff_client, staff_user, token
):
    lead = make_lead(app)
    make_lead(app, notes="Booket igjen.")
    other = make_lead(app, email="annen@eksempel.no", first_name="Ola", organization_name="Annen forening")
    staff_client.post(
        f"/pipeline/leads/{lead['id']}/status", data={"status": "contacted"}, headers={**HTMX, "X-CSRFToken": token}
    )

    response = staff_client.post(f"/pipeline/leads/{lead['id']}/delete", data={"csrf_token": token})

    assert response.status_code == 303
    assert response.headers["Location"] == "/pipeline"
    with app.app_context():
        assert db.session.get(Lead, lead["id"]) is None
        assert db.session.scalar(sa.select(sa.func.count()).where(Booking.lead_id == lead["id"])) == 0
        assert db.session.scalar(sa.select(sa.func.count()).where(LeadStatusChange.lead_id == lead["id"])) == 0
        assert db.session.get(Lead, other["id"]) is not None
        [event] = db.session.execute(sa.select(AuditEvent.__table__)).mappings().all()
        counts = dict(db.session.execute(sa.select(LeadStatusCount.status, LeadStatusCount.lead_count)).all())
    assert (event["action"], event["actor_id"], event["subject_id"]) == ("lead_erased", staff_user["id"], lead["id"])
    personal = ["kari.nordmann@lhl.no", "Kari", "Nordmann", "LHL", "91234567", "198.51.100.7", lead["masked_ref"]]
    for column, value in event.items():
        for item in personal:
            assert item.lower() not in str(value).lower(), f"audit_events.{column} holds {item!r}"
    assert counts["new"] == 1 and counts["contacted"] == 0
    board = staff_client.get("/pipeline").get_data(as_text=True)
    assert str(lead["id"]) not in board and "Leaden og all historikk om den er slettet." in board


def test_after_erasure_the_same_email_books_again_as_a_new_lead(app, client, staff_client, token):
    erased = make_lead(app)
    assert staff_client.post(f"/pipeline/leads/{erased['id']}/delete", data={"csrf_token": token}).status_code == 303

    response = book(client)

    assert response.status_code == 303
    [lead] = all_leads(app)
    assert lead.id != erased["id"]
    assert lead.masked_ref != erased["masked_ref"]
    assert response.headers["Location"] == f"/confirm/{lead.masked_ref}"
    assert (lead.email, lead.booking_count, lead.status) == ("kari.nordmann@lhl.no", 1, "new")
