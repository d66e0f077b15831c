"""Migration 0007: every booking's confirmation state moves into the one outbox, nothing lost on the way."""

import uuid

import sqlalchemy as sa
from flask_migrate import downgrade, upgrade
from helpers.app import app_config
from helpers.migrations import LEADS, day

from meander_site import create_app
from meander_site.booking import confirmation_mail
from meander_site.core.redis_client import shared_redis
from meander_site.extensions import db
from meander_site.leads.models import Booking, Lead, LeadStatusCount
from meander_site.mail.models import OutboxMessage
from meander_site.pipeline import board
from meander_site.worker.jobs import MailJob

BOOKINGS_AT_0006 = sa.table(
    "bookings",
    *(sa.column(name, sa.String) for name in ("first_name", "last_name", "email", "organization_name", "role_title")),
    sa.column("id", sa.Uuid),
    sa.column("lead_id", sa.Uuid),
    sa.column("created_at", sa.DateTime(timezone=True)),
    sa.column("confirmation_sent_at", sa.DateTime(timezone=True)),
    sa.column("confirmation_due_at", sa.DateTime(timezone=True)),
    sa.column("confirmation_claimed_until", sa.DateTime(timezone=True)),
    sa.column("confirmation_attempts", sa.Integer),
    sa.column("confirmation_last_error", sa.String),
)
FAILURE = "SMTPRecipientsRefused: 451 try again later"


def insert_lead(email: str, created: int) -> dict:
    lead = {
        "id": uuid.uuid4(),
        "email": email,
        "status": "new",
        "source": "website",
        "masked_ref": uuid.uuid4().hex[:16],
        "booking_count": 2,
        "first_name": "Kari",
        "last_name": "Nordmann",
        "organization_name": "LHL",
        "role_title": "Leder",
        "created_at": day(created),
        "updated_at": day(created),
        "status_changed_at": day(created),
        "confirmation_sent_at": None,
    }
    db.session.execute(sa.insert(LEADS), lead)
    return lead


def insert_booking(lead: dict, created: int, **confirmation) -> uuid.UUID:
    booking_id = uuid.uuid4()
    db.session.execute(
        sa.insert(BOOKINGS_AT_0006),
        {
            "id": booking_id,
            "lead_id": lead["id"],
            "email": lead["email"],
            "created_at": day(created),
            "confirmation_attempts": 0,
            **{name: lead[name] for name in ("first_name", "last_name", "organization_name", "role_title")},
            **{f"confirmation_{name}": value for name, value in confirmation.items()},
        },
    )
    return booking_id


def test_the_migration_moves_each_confirmation_state_into_an_outbox_row(
    empty_database_url,
    redis_url,
    smtp_server,
):
    smtp_server.clear()
    app = create_app(app_config(empty_database_url, redis_url, smtp_server))
    with app.app_context():
        upgrade(revision="0006")
        kari = insert_lead("kari@lhl.no", created=1)
        ola = insert_lead("ola@lhl.no", created=2)
        per = insert_lead("per@lhl.no", created=3)
        sent = insert_booking(kari, 1, sent_at=day(1, 10), attempts=1)
        capped = insert_booking(kari, 2, last_error=confirmation_mail.CAPPED)
        failing = insert_booking(ola, 2, due_at=day(2, 12), attempts=2, last_error=FAILURE, claimed_until=day(2, 11))
        pending = insert_booking(per, 3, due_at=day(3, 10))
        never_ordered = insert_booking(per, 4)
        db.session.commit()

        upgrade(revision="0007")

        rows = {
            row.booking_id: row
            for row in db.session.execute(
                sa.select(OutboxMessage).where(OutboxMessage.kind == confirmation_mail.KIND)
            ).scalars()
        }
        assert set(rows) == {sent, capped, failing, pending}, "a booking that ordered no mail gets no row"
        assert all(row.id == booking_id for booking_id, row in rows.items()), "a queued job's id still finds it"
        assert {rows[sent].recipient, rows[failing].recipient} == {"kari@lhl.no", "ola@lhl.no"}
        assert (rows[sent].sent_at, rows[sent].attempts, rows[sent].due_at) == (day(1, 10), 1, None)
        assert (rows[failing].sent_at, rows[failing].due_at, rows[failing].attempts) == (None, day(2, 12), 2)
        assert (rows[failing].last_error, rows[failing].claimed_until) == (FAILURE, day(2, 11))
        assert (rows[pending].due_at, rows[pending].attempts, rows[pending].closed_at) == (day(3, 10), 0, None)
        assert (rows[capped].closed_reason, rows[capped].due_at, rows[capped].sent_at) == ("capped", None, None)
        assert [
            outbox_state(rows.get(booking_id)) for booking_id in (sent, capped, failing, pending, never_ordered)
        ] == ["sent", "capped", "failing", "pending", "none"]

        downgrade(revision="0006")

        restored = {row.id: row for row in db.session.execute(sa.select(BOOKINGS_AT_0006)).all()}
        assert restored[capped].confirmation_last_error == confirmation_mail.CAPPED
        assert restored[sent].confirmation_sent_at is not None and restored[pending].confirmation_due_at is not None
        assert (restored[failing].confirmation_attempts, restored[failing].confirmation_last_error) == (2, FAILURE)
        assert restored[never_ordered].confirmation_due_at is None
        assert db.session.scalar(sa.select(sa.func.count()).select_from(OutboxMessage)) == 0

        # What staff see: the lead page's mail section and each card, read through today's models at head
        # (the same rows again: 0007 runs a second time on the restored bookings).
        db.session.remove()
        upgrade()
        cards = {lead: board.get_card(row["id"]) for lead, row in (("kari", kari), ("ola", ola), ("per", per))}
        assert (cards["kari"].mail_state, cards["kari"].mail_error) == ("capped", confirmation_mail.CAPPED)
        assert (cards["ola"].mail_state, cards["ola"].mail_error) == ("failing", FAILURE)
        assert cards["per"].mail_state == "pending"

        # The columns are gone; the table kept its indexes, leads kept the triggers that count the board.
        inspector = sa.inspect(db.engine)
        assert not [column["name"] for column in inspector.get_columns("bookings") if "confirmation" in column["name"]]
        assert {index["name"] for index in inspector.get_indexes("bookings")} >= {
            "idx_booking_lead_id_created_at",
            "idx_booking_email_created_at",
        }
        assert db.session.scalar(sa.select(sa.func.count()).select_from(Booking)) == 5
        db.session.execute(sa.update(Lead).where(Lead.id == ola["id"]).values(status="contacted"))
        db.session.commit()
        counts = dict(db.session.execute(sa.select(LeadStatusCount.status, LeadStatusCount.lead_count)).all())
        assert (counts["new"], counts["contacted"]) == (2, 1)

        # A job queued before the deploy names the booking: it sends the migrated row, once.
        db.session.remove()
        assert job_queued_before_the_deploy(str(pending)).perform() == "sent"
        assert job_queued_before_the_deploy(str(pending)).perform() == "skipped"
        [message] = smtp_server.wait_for(1)
        assert message["X-RcptTo"] == "per@lhl.no"
        db.session.remove()
        db.engine.dispose()


def outbox_state(row: OutboxMessage | None) -> str:
    return confirmation_mail.state_of(row)


def job_queued_before_the_deploy(booking_id: str) -> MailJob:
    """A job as releases before migration 0007 queued it: named by the function's old path, with the booking's id."""
    return MailJob.create("meander_site.confirmations.send_confirmation", args=[booking_id], connection=shared_redis())
