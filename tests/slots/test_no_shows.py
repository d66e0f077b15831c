"""«Ble demoen holdt?» after the demo: «Ja» proposes the follow-up, «Kunden møtte ikke» mails new times once and the
page offers them, «Vi måtte avlyse»; and the report's no-show rate, overall and by channel."""

import re
from datetime import timedelta

import sqlalchemy as sa
from helpers.booking import make_lead
from helpers.scheduling import make_scheduled_lead
from helpers.staff import staff_csrf

from meander_site.core.clock import utcnow
from meander_site.extensions import db
from meander_site.leads.models import Lead
from meander_site.mail.models import OutboxMessage
from meander_site.slots import mails as slot_mails

SLOT_INPUT = re.compile(r'name="slot" value="([0-9T:-]{16})"')


def past_demo(app, host_id, **fields) -> dict:
    lead = make_scheduled_lead(app, host_id, **fields)
    with app.app_context():
        db.session.execute(sa.update(Lead).where(Lead.id == lead["id"]).values(demo_at=utcnow() - timedelta(hours=2)))
        db.session.commit()
    return lead


def answer(staff_client, lead_id, outcome: str, back: str = "lead"):
    return staff_client.post(
        f"/pipeline/leads/{lead_id}/demo/holdt",
        data={"csrf_token": staff_csrf(staff_client), "outcome": outcome, "back": back},
    )


def no_show_mails(app) -> int:
    with app.app_context():
        return db.session.scalar(
            sa.select(sa.func.count()).select_from(OutboxMessage).where(OutboxMessage.kind == slot_mails.NO_SHOW_KIND)
        )


def test_the_lead_page_and_the_card_ask_after_the_demo_has_ended(app, staff_client, staff_user):
    lead = past_demo(app, staff_user["id"])
    assert "Ble demoen holdt?" in staff_client.get(f"/pipeline/leads/{lead['id']}").get_data(as_text=True)
    assert "Ble demoen holdt?" in staff_client.get("/pipeline").get_data(as_text=True)
    future = make_scheduled_lead(app, staff_user["id"], email="ola@lhl.no")
    assert "Ble demoen holdt?" not in staff_client.get(f"/pipeline/leads/{future['id']}").get_data(as_text=True)


def test_a_no_show_mails_new_times_once_and_the_page_offers_them(app, client, staff_client, staff_user):
    lead = past_demo(app, staff_user["id"])
    assert answer(staff_client, lead["id"], "no_show").status_code == 303
    assert answer(staff_client, lead["id"], "no_show").status_code == 303  # refused: answered already
    assert no_show_mails(app) == 1
    page = client.get(f"/confirm/{lead['masked_ref']}").get_data(as_text=True)
    assert "Takk for demoen" not in page and SLOT_INPUT.findall(page)


def test_yes_proposes_the_follow_up(app, staff_client, staff_user):
    lead = past_demo(app, staff_user["id"])
    assert answer(staff_client, lead["id"], "held").status_code == 303
    with app.app_context():
        stored = db.session.get(Lead, lead["id"])
        assert stored.demo_outcome == "held" and stored.next_step == "Følg opp etter demoen"
    assert no_show_mails(app) == 0


def test_a_demo_still_to_come_cannot_be_answered(app, staff_client, staff_user):
    lead = make_scheduled_lead(app, staff_user["id"])
    answer(staff_client, lead["id"], "no_show")
    answer(staff_client, lead["id"], "whatever")
    with app.app_context():
        assert db.session.get(Lead, lead["id"]).demo_outcome is None


def test_the_report_shows_the_no_show_rate_overall_and_by_channel(app, staff_client, staff_user):
    for n, (source, outcome) in enumerate(
        [("nyhetsbrev", "no_show"), ("nyhetsbrev", "held"), (None, "held"), (None, "cancelled_by_us")]
    ):
        lead = past_demo(app, staff_user["id"], email=f"k{n}@lhl.no")
        with app.app_context():
            if source:
                db.session.execute(sa.update(Lead).where(Lead.id == lead["id"]).values(first_channel=source))
                db.session.commit()
        answer(staff_client, lead["id"], outcome)
    make_lead(app, email="uten@lhl.no")
    html = staff_client.get("/pipeline/report").get_data(as_text=True)
    section = html[html.index('id="no-show-heading"') :]
    section = section[: section.index("</section>")]
    assert re.search(r"<th scope=\"row\">nyhetsbrev</th><td>2</td><td>1</td><td>50,0 %</td>", section)
    assert re.search(r"<th scope=\"row\">Direkte</th><td>1</td><td>0</td><td>0,0 %</td>", section)
    assert re.search(r"<th scope=\"row\">Alle</th><td>3</td><td>1</td><td>33,3 %</td>", section)
