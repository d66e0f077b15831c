"""«Be om et annet tidspunkt» cannot flood the team (issue 16, item 1): the confirmation link travels in every
invitation's .ics, so anyone who holds it can post. One wish per demo (a later one replaces it), at most one mail
an hour per lead, to the owner (the team only when there is none), quoting the wish without links, and a limit per
link besides the one per address."""

from datetime import timedelta

import pytest
import sqlalchemy as sa
from helpers.assignment import leave_the_pool
from helpers.booking import CSRF_INPUT
from helpers.jobs import run_jobs
from helpers.scheduling import make_scheduled_lead
from helpers.waiting import run_together

from meander_site.accounts import users
from meander_site.core.clock import utcnow
from meander_site.extensions import db
from meander_site.leads.models import Lead, LeadEvent
from meander_site.mail.models import OutboxMessage
from meander_site.scheduling import demos
from meander_site.scheduling import mails as scheduling_mails

LINKS = (
    "https://evil.example/book",
    "www.evil.example",
    "evil.example",
    "evil。example",
    "ｅｖｉｌ．ｅｘａｍｐｌｅ",
    "evil\u2024example",
    "evil[.]example",
    "svar til ond@evil.example",
)


@pytest.fixture
def owner(app, staff_user):
    return staff_user


@pytest.fixture
def colleague(app):
    with app.app_context():
        user = users.create_user("kollega@meander.no", "Kari Kollega", "et-langt-passord-for-kollega")
        return {"id": user.id, "email": user.email}


@pytest.fixture
def owned_demo(app, owner):
    lead = make_scheduled_lead(app, owner["id"])
    with app.app_context():
        db.session.execute(sa.update(Lead).where(Lead.id == lead["id"]).values(owner_id=owner["id"]))
        db.session.commit()
    run_jobs(app)  # the invitations go first, out of the way
    return lead


def post_wish(client, ref: str, wish: str, address: str = "127.0.0.1"):
    """A browser at `address` posting the form on the confirmation page."""
    environ = {"REMOTE_ADDR": address}
    page = client.get(f"/confirm/{ref}", environ_overrides=environ).get_data(as_text=True)
    token = CSRF_INPUT.search(page).group(1)
    return client.post(
        f"/confirm/{ref}/annet-tidspunkt", data={"csrf_token": token, "wish": wish}, environ_overrides=environ
    )


def time_request_mails(smtp_server) -> list:
    return [mail for mail in smtp_server.messages() if mail["Subject"].startswith("Ønsker ny tid")]


def stored(app, lead_id) -> Lead:
    with app.app_context():
        lead = db.session.get(Lead, lead_id)
        db.session.expunge(lead)
        return lead


def test_sixty_wishes_from_twelve_addresses_reach_the_owner_once(app, owned_demo, owner, colleague, smtp_server):
    """The attack as reported: 5 posts from each of 12 addresses, each wish with a URL."""
    statuses = []
    for address in range(1, 13):
        client = app.test_client()
        for attempt in range(5):
            wish = f"Fredag {address}.{attempt} passer, se https://evil.example/{address}/{attempt}"
            statuses.append(post_wish(client, owned_demo["masked_ref"], wish, f"203.0.113.{address}").status_code)
    run_jobs(app)

    accepted = statuses.count(303)
    assert accepted <= 3, f"the link accepted {accepted} wishes in an hour"
    assert statuses.count(429) == 60 - accepted
    mails = time_request_mails(smtp_server)
    assert [mail["X-RcptTo"] for mail in mails] == [owner["email"]], "one mail, to the owner alone"
    with app.app_context():
        events = db.session.scalar(
            sa.select(sa.func.count()).where(
                LeadEvent.lead_id == owned_demo["id"], LeadEvent.kind == "demo_time_requested"
            )
        )
    assert events == 1, "the history says once that they asked, however often they asked"


def test_a_later_wish_replaces_the_pending_one_and_the_mail_within_the_hour_is_the_only_one(
    app, owned_demo, owner, smtp_server
):
    with app.app_context():
        for wish in ("Mandag", "Tirsdag", "Onsdag formiddag"):
            demos.request_other_time(db.session.get(Lead, owned_demo["id"]), wish)
    run_jobs(app)

    [mail] = time_request_mails(smtp_server)
    assert "Onsdag formiddag" in mail.get_body(("plain",)).get_content(), "the mail quotes the latest wish"
    assert stored(app, owned_demo["id"]).demo_change_request == "Onsdag formiddag"
    with app.app_context():
        reasons = db.session.scalars(
            sa.select(OutboxMessage.closed_reason)
            .where(OutboxMessage.kind == scheduling_mails.TIME_REQUEST_KIND)
            .order_by(OutboxMessage.created_at)
        ).all()
    assert reasons == [None, "throttled", "throttled"]


def test_the_owner_hears_again_an_hour_after_the_last_mail(app, owned_demo, owner, smtp_server):
    with app.app_context():
        demos.request_other_time(db.session.get(Lead, owned_demo["id"]), "Mandag")
        # That mail went 61 minutes ago; a wish 59 minutes after it was throttled.
        db.session.execute(
            sa.update(OutboxMessage)
            .where(OutboxMessage.kind == scheduling_mails.TIME_REQUEST_KIND)
            .values(created_at=utcnow() - timedelta(minutes=61))
        )
        db.session.commit()
        demos.request_other_time(db.session.get(Lead, owned_demo["id"]), "Torsdag")
    run_jobs(app)

    mails = time_request_mails(smtp_server)
    assert len(mails) == 2
    assert "Torsdag" in mails[-1].get_body(("plain",)).get_content()


def test_wishes_posted_at_once_mail_the_owner_once(app, owned_demo, owner, smtp_server):
    """The hourly check and the row it counts are written under the lead's row lock: a burst cannot slip past it."""

    def wish(n: int, barrier):
        with app.app_context():
            try:
                lead = db.session.get(Lead, owned_demo["id"])
                barrier.wait()
                demos.request_other_time(lead, f"Fredag, forslag {n}")
            finally:
                db.session.remove()

    run_together(6, wish)
    run_jobs(app)

    assert len(time_request_mails(smtp_server)) == 1


def test_the_wish_is_quoted_as_plain_text_without_anything_that_reads_as_a_link(app, owned_demo, owner, smtp_server):
    wish = "Torsdag kl. 12.30 passer. " + " | ".join(LINKS)
    with app.app_context():
        demos.request_other_time(db.session.get(Lead, owned_demo["id"]), wish)
    run_jobs(app)

    [mail] = time_request_mails(smtp_server)
    text = mail.get_body(("plain",)).get_content()
    html = mail.get_body(("html",)).get_content()
    for body in (text, html):
        assert "Torsdag kl. 12.30 passer." in body
        assert "[lenke fjernet]" in body
        for fragment in ("evil", "ｅｖｉｌ", "https://evil", "www."):
            assert fragment not in body, f"{fragment!r} reached the mail"
    assert 'href="https://evil' not in html


def test_a_lead_nobody_owns_mails_the_team_and_an_owned_one_only_its_owner(app, staff_user, colleague, smtp_server):
    leave_the_pool(app)
    unowned = make_scheduled_lead(app, staff_user["id"], email="uten.eier@lhl.no")
    run_jobs(app)
    smtp_server.clear()
    with app.app_context():
        demos.request_other_time(db.session.get(Lead, unowned["id"]), "Fredag")
    run_jobs(app)

    [mail] = time_request_mails(smtp_server)
    assert sorted(mail["X-RcptTo"].split(", ")) == sorted([staff_user["email"], colleague["email"]])


def test_the_link_has_a_limit_of_its_own_whatever_addresses_post(app, owned_demo, staff_user):
    other = make_scheduled_lead(app, staff_user["id"], email="annen@lhl.no")
    statuses = [
        post_wish(app.test_client(), owned_demo["masked_ref"], f"Forslag {n}", f"198.51.100.{n}").status_code
        for n in range(1, 6)
    ]

    assert statuses == [303, 303, 303, 429, 429]
    refused = post_wish(app.test_client(), owned_demo["masked_ref"], "Fredag", "198.51.100.9")
    assert refused.status_code == 429
    page = refused.get_data(as_text=True)
    assert "Du har sendt mange ønsker på kort tid" in page and "Prøv igjen om" in page
    assert ">Fredag</textarea>" in page, "what they typed is kept"
    # Another lead's link is not affected.
    assert post_wish(app.test_client(), other["masked_ref"], "Fredag", "198.51.100.9").status_code == 303


def test_after_posting_the_page_says_what_was_sent_instead_of_an_empty_form(app, owned_demo):
    client = app.test_client()
    response = post_wish(client, owned_demo["masked_ref"], "Uke 3, etter kl. 12 <b>helst</b>")
    assert response.status_code == 303

    page = client.get(f"/confirm/{owned_demo['masked_ref']}").get_data(as_text=True)

    assert (
        '<blockquote class="prewrap" id="sent-wish">Uke 3, etter kl. 12 &lt;b&gt;helst&lt;/b&gt;</blockquote>' in page
    )
    assert '<details class="change-wish"><summary>Endre ønsket</summary>' in page
    assert ">Uke 3, etter kl. 12 &lt;b&gt;helst&lt;/b&gt;</textarea>" in page, "the form to change it starts from it"
    assert "Det nye ønsket erstatter det du sendte." in page
