"""Attribution: a booking keeps the campaign of the link the prospect came by, and the site that sent them.

No cookies, no trackers: GET /demo puts the URL's utm_* values and the Referer's host into hidden fields of
the form, and the POST stores them on the booking and on the lead (first touch kept, latest updated).
"""

import re
from html import unescape

import sqlalchemy as sa
from helpers.booking import CSRF_INPUT, VALID_BOOKING

from meander_site.extensions import db
from meander_site.leads import attribution
from meander_site.leads.channel import channel_of
from meander_site.leads.models import Booking, Lead

HIDDEN_INPUT = re.compile(r'<input type="hidden" name="([a-z_]+)" value="([^"]*)">')


def hidden_fields(page: str) -> dict[str, str]:
    return {name: unescape(value) for name, value in HIDDEN_INPUT.findall(page)}


def book_from(client, url: str, referrer: str | None = None, **fields):
    """Open the form at `url` as a browser arriving from `referrer`, then send it with what the page carried."""
    headers = {"Referer": referrer} if referrer else {}
    page = client.get(url, headers=headers).get_data(as_text=True)
    carried = hidden_fields(page)
    data = {**VALID_BOOKING, **carried, **fields, "csrf_token": CSRF_INPUT.search(page).group(1)}
    return client.post("/demo", data={key: value for key, value in data.items() if value is not None}), carried


def lead_and_bookings(app):
    with app.app_context():
        lead = db.session.execute(sa.select(Lead)).scalar_one()
        bookings = db.session.execute(sa.select(Booking).order_by(Booking.created_at)).scalars().all()
        db.session.expunge_all()
        return lead, bookings


def test_a_booking_from_a_campaign_link_shows_the_campaign_on_its_lead_page(app, client, staff_client):
    response, carried = book_from(
        client,
        "/demo?utm_source=nyhetsbrev&utm_medium=e-post&utm_campaign=vinter&utm_content=knapp",
        referrer="https://www.facebook.com/groups/frivillig?x=1",
    )

    assert response.status_code == 303
    assert carried["utm_campaign"] == "vinter" and carried["referrer_host"] == "www.facebook.com"
    lead, [booking] = lead_and_bookings(app)
    assert (booking.utm_source, booking.utm_medium, booking.utm_campaign) == ("nyhetsbrev", "e-post", "vinter")
    assert booking.utm_content == "knapp" and booking.utm_term is None
    assert booking.referrer_host == "www.facebook.com"
    assert (lead.first_utm_source, lead.first_utm_campaign, lead.first_referrer_host) == (
        "nyhetsbrev",
        "vinter",
        "www.facebook.com",
    )
    assert lead.latest_utm_campaign == "vinter"

    page = staff_client.get(f"/pipeline/leads/{lead.id}").get_data(as_text=True)
    section = page[page.index('id="attribution-heading"') :]
    assert "Kampanje (utm_campaign)</dt><dd>vinter</dd>" in section
    assert "Kilde (utm_source)</dt><dd>nyhetsbrev</dd>" in section
    assert "Henvisende nettsted</dt><dd>www.facebook.com</dd>" in section
    # … and the report counts it under its campaign.
    report = staff_client.get("/pipeline/report", query_string={"period": "30d"}).get_data(as_text=True)
    campaigns = report[report.index("<caption>Etter kampanje") :]
    assert re.search(r'<th scope="row">vinter</th><td>1</td>', campaigns)


def test_the_home_page_carries_the_campaign_too(app, client):
    response, carried = book_from(client, "/?utm_source=google&utm_medium=cpc&utm_term=likepersoner+system")

    assert response.status_code == 303
    assert carried == {"utm_source": "google", "utm_medium": "cpc", "utm_term": "likepersoner system"}
    lead, _ = lead_and_bookings(app)
    assert lead.first_utm_term == "likepersoner system"


def test_a_rebooking_keeps_the_first_touch_and_updates_the_latest(app, client):
    book_from(client, "/demo?utm_source=nyhetsbrev&utm_campaign=vinter")
    book_from(client, "/demo?utm_source=linkedin&utm_campaign=var")
    # A third booking typed straight into the address bar: no touch, so the latest campaign stays.
    book_from(client, "/demo")

    lead, bookings = lead_and_bookings(app)
    assert [booking.utm_campaign for booking in bookings] == ["vinter", "var", None]
    assert (lead.first_utm_source, lead.first_utm_campaign) == ("nyhetsbrev", "vinter")
    assert (lead.latest_utm_source, lead.latest_utm_campaign) == ("linkedin", "var")
    assert lead.booking_count == 3


def test_a_direct_first_booking_stays_direct_when_a_campaign_rebooking_follows(app, client):
    book_from(client, "/demo")
    book_from(client, "/demo?utm_campaign=vinter")

    lead, _ = lead_and_bookings(app)
    assert lead.first_utm_campaign is None
    assert lead.latest_utm_campaign == "vinter"


def test_values_that_are_not_short_and_printable_are_dropped_and_the_booking_still_goes_through(app, client):
    too_long = "k" * (attribution.MAX_UTM_LENGTH + 1)
    response, _ = book_from(
        client,
        "/demo",
        utm_source="nyhets\u0000brev",
        utm_medium="e-post\u200b",
        utm_campaign=too_long,
        utm_content="  vinter   2027  ",
        referrer_host="not a host/..",
    )

    assert response.status_code == 303
    _, [booking] = lead_and_bookings(app)
    assert booking.utm_source is None  # a NUL
    assert booking.utm_medium is None  # an invisible zero-width space
    assert booking.utm_campaign is None  # too long
    assert booking.utm_content == "vinter 2027"  # whitespace tidied, kept
    assert booking.referrer_host is None


def test_the_campaign_survives_a_form_with_errors(app, client):
    page = client.get("/demo?utm_campaign=vinter&utm_source=nyhetsbrev").get_data(as_text=True)
    carried = hidden_fields(page)
    token = CSRF_INPUT.search(page).group(1)

    refused = client.post("/demo", data={**VALID_BOOKING, **carried, "email": "", "csrf_token": token})

    assert refused.status_code == 422
    assert hidden_fields(refused.get_data(as_text=True)) == {"utm_campaign": "vinter", "utm_source": "nyhetsbrev"}


def test_our_own_pages_and_odd_referrers_are_not_counted_as_referring_sites(app, client):
    own = client.get("/demo", headers={"Referer": "https://demo.meander.test/demo/mottatt"})
    local = client.get("/demo", headers={"Referer": "http://localhost/demo"})
    script = client.get("/demo", headers={"Referer": "javascript:alert(1)"})
    other = client.get("/demo", headers={"Referer": "https://Søk.Example.NO/resultat"})

    assert "referrer_host" not in hidden_fields(own.get_data(as_text=True))
    assert "referrer_host" not in hidden_fields(local.get_data(as_text=True))
    assert "referrer_host" not in hidden_fields(script.get_data(as_text=True))
    assert hidden_fields(other.get_data(as_text=True))["referrer_host"] == "søk.example.no".encode("idna").decode(
        "ascii"
    )


def test_carried_values_are_escaped_in_the_form(app, client):
    page = client.get('/demo?utm_campaign="><script>alert(1)</script>').get_data(as_text=True)

    assert "<script>alert(1)</script>" not in page
    assert hidden_fields(page)["utm_campaign"] == '"><script>alert(1)</script>'


def test_the_board_filters_by_campaign(app, client, staff_client):
    book_from(client, "/demo?utm_campaign=vinter")
    other = app.test_client()
    book_from(other, "/demo?utm_campaign=var", email="ola@bymisjon.no", organization_name="Kirkens Bymisjon")

    board = staff_client.get("/pipeline", query_string={"campaign": "vinter"}).get_data(as_text=True)
    everything = staff_client.get("/pipeline").get_data(as_text=True)

    assert "LHL Hjerneslag" in board and "Kirkens Bymisjon" not in board
    assert '<option value="vinter" selected>vinter</option>' in board
    assert '<option value="var">var</option>' in everything
    assert "LHL Hjerneslag" in everything and "Kirkens Bymisjon" in everything


def test_a_lead_is_named_by_its_channel_first_touch_kept_latest_updated(app, client):
    book_from(client, "/demo", referrer="https://www.facebook.com/groups/frivillig")
    book_from(client, "/demo?utm_source=google&utm_medium=cpc&utm_campaign=vinter")
    # Typed into the address bar: no touch, so the latest channel stays Google's.
    book_from(client, "/demo")

    lead, _ = lead_and_bookings(app)
    assert (lead.first_channel, lead.latest_channel) == ("facebook.com", "google / cpc")


def test_a_lead_with_neither_campaign_nor_referrer_is_direct(app, client):
    book_from(client, "/demo")

    lead, _ = lead_and_bookings(app)
    assert (lead.first_channel, lead.latest_channel) == ("Direkte", "Direkte")


def test_the_channel_rule_campaign_first_then_the_referring_site_then_direct():
    assert channel_of(attribution.Touch(utm_source="nyhetsbrev", referrer_host="www.lhl.no")) == "nyhetsbrev"
    assert channel_of(attribution.Touch(utm_source="google", utm_medium="cpc")) == "google / cpc"
    # A medium without a source names no channel: the site that sent them does.
    assert channel_of(attribution.Touch(utm_medium="e-post", referrer_host="www.lhl.no")) == "lhl.no"
    assert channel_of(attribution.Touch(referrer_host="wwwhelse.no")) == "wwwhelse.no"
    assert channel_of(attribution.NO_TOUCH) == "Direkte"
