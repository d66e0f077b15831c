"""Staff editing several leads to one email at the same instant: one edit wins, the rest get the field error."""

import threading

import sqlalchemy as sa
from helpers.booking import VALID_BOOKING, make_lead
from helpers.staff import log_in, staff_csrf
from helpers.waiting import run_together

from meander_site.extensions import db
from meander_site.leads.models import Lead

THREADS = 10
# Spellings of one mailbox: the unique index sees them all as one address.
COLLIDING_EMAILS = ["felles@eksempel.no", "FELLES@eksempel.no", "felles@ｅｋｓｅｍｐｅｌ.no", " Felles@Eksempel.NO "]
TAKEN_MESSAGE = "En annen lead har allerede denne e-postadressen"


def test_simultaneous_edits_setting_one_email_save_one_and_answer_the_rest_with_422(app, staff_user, caplog):
    lead_ids = [make_lead(app, email=f"lead{n}@eksempel.no")["id"] for n in range(THREADS)]
    sessions = []
    for _ in range(THREADS):
        client = app.test_client()
        assert log_in(client, staff_user["email"], staff_user["password"]).status_code == 303
        sessions.append((client, staff_csrf(client)))

    def edit(n: int, barrier: threading.Barrier):
        client, token = sessions[n]
        data = {**VALID_BOOKING, "email": COLLIDING_EMAILS[n % len(COLLIDING_EMAILS)], "csrf_token": token}
        barrier.wait()
        response = client.post(f"/pipeline/leads/{lead_ids[n]}", data=data)
        return response.status_code, response.get_data(as_text=True)

    results = run_together(THREADS, edit)

    assert sorted(status for status, _ in results) == [303] + [422] * (THREADS - 1)
    assert all(TAKEN_MESSAGE in body for status, body in results if status == 422)
    with app.app_context():
        emails = list(db.session.execute(sa.select(Lead.email)).scalars())
    assert emails.count("felles@eksempel.no") == 1
    assert len(emails) == THREADS, "every lead is still there"
    assert "felles@" not in caplog.text.lower()
