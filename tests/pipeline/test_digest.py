"""The 07:30 digest: each owner's overdue next steps (and, with notifications on, overdue leads nobody owns),
on Norwegian business days only, after 07:30 Europe/Oslo, once per person and day, and only when there is
something to say. Real database, real RQ jobs, real SMTP sink."""

import uuid
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from helpers.booking import make_lead
from helpers.jobs import run_jobs
from helpers.staff import STAFF_PASSWORD
from helpers.waiting import run_together

from meander_site.accounts import users as accounts
from meander_site.accounts.models import User
from meander_site.core.clock import utcnow
from meander_site.extensions import db
from meander_site.leads.models import Lead
from meander_site.leads.statuses import LeadStatus
from meander_site.mail import dispatch
from meander_site.mail.models import OutboxMessage
from meander_site.pipeline import digest as morning_digest
from meander_site.worker import jobs

# 2028: 16 May is a Tuesday, 17 May (Constitution Day) a Wednesday, 20 May a Saturday.
# Summer time (UTC+2) runs from 26 March to 29 October 2028.
NORMAL_TUESDAY_0730 = datetime(2028, 5, 16, 5, 30, tzinfo=UTC)
CONSTITUTION_DAY_0730 = datetime(2028, 5, 17, 5, 30, tzinfo=UTC)
SATURDAY_0730 = datetime(2028, 5, 20, 5, 30, tzinfo=UTC)


@pytest.fixture
def people(app):
    """Anne has notifications on and owns nothing overdue; Bjørn has them off and owns an overdue lead;
    Cecilie has them off and owns only a lead that is due tomorrow; Dag has left. One overdue lead has no owner."""
    with app.app_context():
        users = {
            key: accounts.create_user(f"{key}@meander.no", name, STAFF_PASSWORD).id
            for key, name in (("anne", "Anne Andersen"), ("bjorn", "Bjørn Berg"), ("cecilie", "Cecilie Carlsen"))
        }
        users["dag"] = accounts.create_user("dag@meander.no", "Dag Dahl", STAFF_PASSWORD).id
        for key in ("bjorn", "cecilie"):
            accounts.set_new_lead_notifications(users[key], False)
    leads = {
        "bjorns_overdue": lead(app, "Bjørns Forening", users["bjorn"], due_in=timedelta(days=-2), step="Ring igjen"),
        "unowned_overdue": lead(app, "Ingens Lag", None, due_in=timedelta(hours=-3), step="Første kontakt"),
        "cecilies_tomorrow": lead(app, "Cecilies Klubb", users["cecilie"], due_in=timedelta(days=1)),
        "dags_overdue": lead(app, "Dags Gruppe", users["dag"], due_in=timedelta(days=-1)),
        "converted": lead(app, "Ferdig AS", users["anne"], due_in=timedelta(days=-5), status=LeadStatus.CONVERTED),
    }
    with app.app_context():
        accounts.deactivate("dag@meander.no")
    return {"users": users, "leads": leads}


def lead(app, organization, owner_id, due_in, step="Send tilbud", status=LeadStatus.CONTACTED):
    made = make_lead(app, organization_name=organization, email=f"lead-{uuid.uuid4().hex[:8]}@example.org")
    with app.app_context():
        db.session.execute(
            sa.update(Lead)
            .where(Lead.id == made["id"])
            .values(owner_id=owner_id, next_step=step, next_step_due_at=utcnow() + due_in, status=status.value)
        )
        db.session.commit()
    return made["id"]


def write_and_send(app, now) -> list:
    """What the worker's sweep does at `now`: write the day's digests, then run each one's job. (They are due at
    `now`, later than the real clock here, so a job serving whatever else is due would not take them yet.)"""
    with app.app_context():
        written = morning_digest.write_due_digests(now=now)
        for message in written:
            jobs.send_message(str(message.id))
    return written


def digests(smtp_server) -> dict[str, object]:
    return {mail["To"]: mail for mail in smtp_server.messages() if mail["Subject"].startswith("Dagens oppfølging")}


def digest_rows(app) -> list[tuple[str, str]]:
    with app.app_context():
        return list(
            db.session.execute(
                sa.select(OutboxMessage.recipient, OutboxMessage.dedupe_key).where(
                    OutboxMessage.kind == morning_digest.DIGEST_KIND
                )
            ).all()
        )


def text_of(mail) -> str:
    return mail.get_body(preferencelist=("plain",)).get_content()


# --- what it says, and to whom -------------------------------------------------------------------------


def test_each_owner_gets_their_overdue_steps_and_unowned_ones_go_to_those_with_notifications_on(
    app, smtp_server, people
):
    write_and_send(app, NORMAL_TUESDAY_0730)

    sent = digests(smtp_server)
    assert set(sent) == {"anne@meander.no", "bjorn@meander.no"}  # Cecilie has nothing due; Dag has left

    bjorn = text_of(sent["bjorn@meander.no"])
    assert "Bjørns Forening" in bjorn and "Ring igjen" in bjorn
    assert f"https://demo.meander.test/pipeline/leads/{people['leads']['bjorns_overdue']}" in bjorn
    assert "Ingens Lag" not in bjorn  # notifications off: not his to pick up
    assert sent["bjorn@meander.no"]["Subject"] == "Dagens oppfølging: 1 forfalt"

    anne = text_of(sent["anne@meander.no"])
    assert "Ingens Lag" in anne and "Forfalt uten eier" in anne
    # Dag has left: his open, overdue lead is nobody's now, as the board shows it.
    assert "Dags Gruppe" in anne
    assert "Ferdig AS" not in anne  # a final status has no next step to chase
    assert "Bjørns Forening" not in anne and "Cecilies Klubb" not in anne
    assert sent["anne@meander.no"]["Subject"] == "Dagens oppfølging: 2 ufordelt forfalt"
    html = sent["anne@meander.no"].get_body(preferencelist=("html",)).get_content()
    assert "Ingens Lag" in html and 'name="viewport"' in html


def test_nothing_to_say_means_no_mail(app, smtp_server):
    with app.app_context():
        accounts.create_user("anne@meander.no", "Anne Andersen", STAFF_PASSWORD)
    make_lead(app)  # a fresh lead: its first step is due tomorrow, nothing is overdue

    written = write_and_send(app, NORMAL_TUESDAY_0730)

    assert len(written) == 1  # the row exists, so no other worker writes it again today...
    assert digests(smtp_server) == {}  # ...but there was nothing to say
    with app.app_context():
        row = db.session.get(OutboxMessage, written[0].id)
        assert row.sent_at is None and row.closed_at is not None


def test_an_owner_who_clears_the_overdue_step_before_the_mail_goes_gets_none(app, smtp_server, people):
    with app.app_context():
        written = morning_digest.write_due_digests(now=NORMAL_TUESDAY_0730)
        db.session.execute(
            sa.update(Lead)
            .where(Lead.id == people["leads"]["bjorns_overdue"])
            .values(next_step_due_at=utcnow() + timedelta(days=3))
        )
        db.session.commit()
        for message in written:
            dispatch.dispatch(message.id, delay=timedelta(0))
    run_jobs(app)

    assert "bjorn@meander.no" not in digests(smtp_server)  # built from fresh data when sent


def test_todays_demos_are_the_owners_demos_on_that_oslo_day_in_demo_order(app, people):
    anne = people["users"]["anne"]
    afternoon = demo(app, "Ettermiddagslaget", anne, datetime(2028, 5, 16, 11, 0, tzinfo=UTC))  # 13.00 Oslo
    morning = demo(app, "Morgenforeningen", anne, datetime(2028, 5, 16, 7, 30, tzinfo=UTC))  # 09.30 Oslo
    demo(app, "Neste Dag", anne, datetime(2028, 5, 16, 22, 30, tzinfo=UTC))  # 00.30 on Wednesday in Oslo
    demo(app, "Bjørns Demo", people["users"]["bjorn"], datetime(2028, 5, 16, 9, 0, tzinfo=UTC))
    moved_on = demo(app, "Tapt Likevel", anne, datetime(2028, 5, 16, 8, 0, tzinfo=UTC))
    with app.app_context():
        db.session.execute(sa.update(Lead).where(Lead.id == moved_on).values(status=LeadStatus.LOST.value))
        db.session.commit()
        digest = morning_digest.digest_for(db.session.get(User, anne), NORMAL_TUESDAY_0730.date())
        assert [item.id for item in digest.demos_today] == [morning, afternoon]
        assert {item.organization_name for item in digest.unassigned_overdue} == {"Ingens Lag", "Dags Gruppe"}


def demo(app, organization, owner_id, demo_at):
    lead_id = lead(app, organization, owner_id, due_in=timedelta(days=3), status=LeadStatus.DEMO_SCHEDULED)
    with app.app_context():
        db.session.execute(sa.update(Lead).where(Lead.id == lead_id).values(demo_at=demo_at, demo_minutes=30))
        db.session.commit()
    return lead_id


# --- only on business days, only after 07:30 Oslo time ---------------------------------------------------


@pytest.mark.parametrize(
    "now",
    [
        pytest.param(SATURDAY_0730, id="a Saturday"),
        pytest.param(CONSTITUTION_DAY_0730, id="17 May"),
        pytest.param(datetime(2028, 5, 25, 5, 30, tzinfo=UTC), id="Ascension Day"),
        pytest.param(datetime(2028, 5, 16, 5, 29, tzinfo=UTC), id="07:29 in summer"),
        pytest.param(datetime(2028, 10, 31, 5, 30, tzinfo=UTC), id="06:30 in winter (07:30 UTC+2)"),
        pytest.param(datetime(2028, 3, 27, 5, 29, tzinfo=UTC), id="07:29 the Monday after summer time begins"),
        pytest.param(datetime(2028, 5, 16, 10, 0, tzinfo=UTC), id="noon: a worker down all morning stays quiet"),
    ],
)
def test_no_digest_outside_a_business_day_morning(app, smtp_server, people, now):
    assert write_and_send(app, now) == []
    assert digests(smtp_server) == {}


@pytest.mark.parametrize(
    "now",
    [
        pytest.param(NORMAL_TUESDAY_0730, id="07:30 on a summer Tuesday"),
        pytest.param(datetime(2028, 10, 31, 6, 30, tzinfo=UTC), id="07:30 on a winter Tuesday"),
        pytest.param(datetime(2028, 3, 27, 5, 30, tzinfo=UTC), id="07:30 the Monday after summer time begins"),
        pytest.param(datetime(2028, 10, 30, 6, 30, tzinfo=UTC), id="07:30 the Monday after summer time ends"),
        pytest.param(datetime(2028, 5, 18, 9, 59, tzinfo=UTC), id="11:59 the day after 17 May"),
    ],
)
def test_the_digest_goes_out_from_0730_oslo_time_on_business_days(app, smtp_server, people, now):
    write_and_send(app, now)

    assert set(digests(smtp_server)) == {"anne@meander.no", "bjorn@meander.no"}


# --- once per person and day ------------------------------------------------------------------------------


def test_concurrent_sweeps_write_one_digest_per_person_and_day(app, smtp_server, people):
    def sweep(n, barrier):
        with app.app_context():
            barrier.wait()
            written = morning_digest.write_due_digests(now=NORMAL_TUESDAY_0730 + timedelta(seconds=n))
            return [message.id for message in written]

    written = [message_id for ids in run_together(4, sweep) for message_id in ids]
    with app.app_context():
        for message_id in written:
            jobs.send_message(str(message_id))  # each one's job (they are due at `now`, ahead of the clock)

    rows = digest_rows(app)
    assert len(rows) == 3  # Anne, Bjørn, Cecilie: one row each, whichever sweep wrote it
    assert len(written) == 3
    assert sorted(mail["To"] for mail in smtp_server.messages() if mail["Subject"].startswith("Dagens")) == [
        "anne@meander.no",
        "bjorn@meander.no",
    ]


def test_later_sweeps_the_same_day_write_nothing_and_the_next_business_day_gets_its_own(app, smtp_server, people):
    write_and_send(app, NORMAL_TUESDAY_0730)
    assert write_and_send(app, NORMAL_TUESDAY_0730 + timedelta(minutes=1)) == []
    assert write_and_send(app, NORMAL_TUESDAY_0730 + timedelta(hours=3)) == []
    assert len(digests_sent(smtp_server)) == 2

    # Wednesday is 17 May; the next digest is Thursday's.
    assert write_and_send(app, CONSTITUTION_DAY_0730) == []
    write_and_send(app, datetime(2028, 5, 18, 5, 30, tzinfo=UTC))

    assert len(digests_sent(smtp_server)) == 4
    assert len(digest_rows(app)) == 6


def test_a_duplicate_digest_job_sends_one_mail(app, smtp_server, people):
    with app.app_context():
        written = morning_digest.write_due_digests(now=NORMAL_TUESDAY_0730)
        for message in written:
            for _ in range(3):
                jobs.send_message(str(message.id))

    assert sorted(mail["To"] for mail in digests_sent(smtp_server)) == ["anne@meander.no", "bjorn@meander.no"]


def digests_sent(smtp_server) -> list:
    return [mail for mail in smtp_server.messages() if mail["Subject"].startswith("Dagens oppfølging")]
