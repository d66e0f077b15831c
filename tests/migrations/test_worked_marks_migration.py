"""Migration 0012 marks the leads staff had already worked before «worked» meant any staff action (issue 16,
item 2): a lead with an owner, a note, a staff event or a move keeps its details against a rebooking too."""

import uuid
from datetime import UTC, datetime

import sqlalchemy as sa
from flask_migrate import upgrade
from helpers.app import app_config

from meander_site import create_app
from meander_site.accounts import users
from meander_site.extensions import db
from meander_site.leads.models import Lead, LeadNote

BEFORE = datetime(2026, 3, 2, 9, tzinfo=UTC)


def a_lead(email: str, **values) -> uuid.UUID:
    lead_id = uuid.uuid4()
    db.session.execute(
        sa.insert(Lead.__table__).values(
            id=lead_id,
            email=email,
            first_name="Kari",
            last_name="Nordmann",
            organization_name="LHL",
            role_title="Leder",
            status="new",
            source="website",
            masked_ref=uuid.uuid4().hex[:22],
            booking_count=1,
            created_at=BEFORE,
            updated_at=BEFORE,
            status_changed_at=BEFORE,
            **values,
        )
    )
    return lead_id


def test_leads_worked_before_0012_are_marked_and_untouched_ones_are_not(
    empty_database_url,
    redis_url,
    smtp_server,
):
    app = create_app(app_config(empty_database_url, redis_url, smtp_server))
    with app.app_context():
        upgrade(revision="0011")  # the staff accounts' columns are there; 0012 marks the worked leads
        seller = users.create_user("selger@meander.no", "Siri Selger", "et-langt-passord-for-selger")
        owned = a_lead("eier@lhl.no", owner_id=seller.id)
        noted = a_lead("notat@lhl.no")
        db.session.add(
            LeadNote(lead_id=noted, author_id=seller.id, author_name=seller.name, body="Ringte.", created_at=BEFORE)
        )
        untouched = a_lead("ny@lhl.no")
        db.session.commit()

        upgrade()

        marks = dict(db.session.execute(sa.select(Lead.id, Lead.staff_edited_at)).all())
        db.session.remove()
        db.engine.dispose()
    assert marks[owned] == BEFORE and marks[noted] == BEFORE
    assert marks[untouched] is None
