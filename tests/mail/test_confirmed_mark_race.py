"""The lead's «confirmation sent» mark survives two workers recording two of its confirmations at the same moment
(issue 16, item 9). Each record reads whether the lead's other confirmations still wait; in one statement's
snapshot each saw the other's as unsent, and neither set confirmation_sent_at. The record now locks the lead's row
first, in a statement of its own, so the second record reads the first one's committed send.

The same moment is made, not hoped for: a third transaction holds both outbox rows, so both workers' records are
under way and waiting when it lets go. PostgreSQL only: on SQLite the second writer waits for the first's commit
before its transaction reads anything."""

import threading

import pytest
import sqlalchemy as sa
from helpers.booking import book
from helpers.waiting import wait_until, waiting_for_locks

from meander_site.booking import confirmation_mail
from meander_site.extensions import db
from meander_site.leads.models import Lead
from meander_site.mail.models import OutboxMessage
from meander_site.worker import jobs


@pytest.fixture
def postgresql_app(app):
    with app.app_context():
        if db.engine.dialect.name != "postgresql":
            pytest.skip("PostgreSQL only: set DATABASE_URL=postgresql://… (SQLite has one writer at a time)")
    return app


@pytest.mark.parametrize("run", range(3))
def test_two_workers_recording_a_leads_two_confirmations_at_once_mark_it_confirmed(postgresql_app, client, run):
    app = postgresql_app
    assert book(client).status_code == 303
    assert book(client, notes="Andre gang").status_code == 303
    with app.app_context():
        rows = db.session.execute(
            sa.select(OutboxMessage.id, OutboxMessage.lead_id)
            .where(OutboxMessage.kind == confirmation_mail.KIND)
            .order_by(OutboxMessage.id)
        ).all()
        db.session.remove()
    assert len(rows) == 2

    errors: list[BaseException] = []

    def worker(row):
        """What a worker does once its SMTP server took the mail: record the send (jobs.InlineRecorder)."""
        try:
            with app.app_context(), jobs._job_connection() as connection:
                jobs.InlineRecorder(connection).record(confirmation_mail.KIND, [row], {"kind": "confirmation"})
        except BaseException as error:
            errors.append(error)

    with app.app_context(), db.engine.connect() as holder:
        holder.execute(
            sa.select(OutboxMessage.id).where(OutboxMessage.id.in_([row.id for row in rows])).with_for_update()
        ).all()  # both rows held: both records start and wait
        workers = [threading.Thread(target=worker, args=(row,)) for row in rows]
        for thread in workers:
            thread.start()
        wait_until(lambda: waiting_for_locks(app) >= 2, 10, "both records to be under way and waiting")
        holder.commit()
    for thread in workers:
        thread.join(timeout=20)
    assert not errors, errors

    with app.app_context():
        lead = db.session.execute(sa.select(Lead)).scalar_one()
        sent = db.session.scalars(
            sa.select(OutboxMessage.sent_at).where(OutboxMessage.id.in_([row.id for row in rows]))
        ).all()
        assert all(sent), "both sends are recorded"
        assert lead.confirmation_sent_at is not None, "neither record saw the other's send"
