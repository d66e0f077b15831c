"""Migration 0013 names the channel of every lead booked before there were channels, by the same rule as a
new booking (leads/channel.py), from the touch columns the lead already had; and seals the two-factor secrets
stored as typed before it (core/sealed.py)."""

import uuid
from datetime import UTC, datetime

import sqlalchemy as sa
from flask_migrate import upgrade
from helpers.app import app_config

from meander_site import create_app
from meander_site.accounts import users
from meander_site.accounts.models import User
from meander_site.core.columns import UTCDateTime
from meander_site.extensions import db
from meander_site.leads.models import Lead

BEFORE = datetime(2026, 3, 2, 9, tzinfo=UTC)
SECRET = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"
LEADS_BEFORE_0013 = sa.table(
    "leads",
    sa.column("id", sa.Uuid()),
    *(sa.column(name, UTCDateTime()) for name in ("created_at", "updated_at", "status_changed_at")),
    *(
        sa.column(name)
        for name in (
            "email", "first_name", "last_name", "organization_name", "role_title", "status", "source",
            "masked_ref", "booking_count",
            "first_utm_source", "first_utm_medium", "first_referrer_host", "latest_utm_source", "latest_referrer_host",
        )
    ),
)  # fmt: skip


def a_lead(email: str, **touch) -> uuid.UUID:
    lead_id = uuid.uuid4()
    db.session.execute(
        sa.insert(LEADS_BEFORE_0013).values(
            id=lead_id, email=email, first_name="Kari", last_name="Nordmann", organization_name="LHL",
            role_title="Leder", status="new", source="website", masked_ref=uuid.uuid4().hex[:22], booking_count=1,
            created_at=BEFORE, updated_at=BEFORE, status_changed_at=BEFORE, **touch,
        )
    )  # fmt: skip
    return lead_id


def test_leads_booked_before_0013_get_the_channel_their_touches_name(empty_database_url, redis_url, smtp_server):
    app = create_app(app_config(empty_database_url, redis_url, smtp_server))
    with app.app_context():
        upgrade(revision="0012")
        campaign = a_lead(
            "kampanje@lhl.no", first_utm_source="google", first_utm_medium="cpc", latest_referrer_host="www.lhl.no"
        )
        referred = a_lead("henvist@lhl.no", first_referrer_host="www.facebook.com")
        direct = a_lead("direkte@lhl.no")
        db.session.commit()

        upgrade()

        channels = {row.id: (row.first_channel, row.latest_channel) for row in db.session.execute(
            sa.select(Lead.id, Lead.first_channel, Lead.latest_channel)
        )}  # fmt: skip
        db.session.remove()
        db.engine.dispose()
    assert channels[campaign] == ("google / cpc", "lhl.no")
    assert channels[referred] == ("facebook.com", "Direkte")
    assert channels[direct] == ("Direkte", "Direkte")


def test_two_factor_secrets_stored_before_0013_are_sealed_and_still_work(empty_database_url, redis_url, smtp_server):
    app = create_app(app_config(empty_database_url, redis_url, smtp_server))
    with app.app_context():
        upgrade(revision="0012")
        seller = users.create_user("selger@meander.no", "Siri Selger", "et-langt-passord-for-selger")
        users_before = sa.table("users", sa.column("id", sa.Uuid()), sa.column("totp_secret"))
        db.session.execute(sa.update(users_before).where(users_before.c.id == seller.id).values(totp_secret=SECRET))
        db.session.commit()

        upgrade()

        stored = db.session.execute(sa.select(sa.type_coerce(User.totp_secret, sa.String))).scalar_one()
        opened = db.session.execute(sa.select(User.totp_secret)).scalar_one()
        db.session.remove()
        db.engine.dispose()
    assert stored.startswith("sealed1:") and SECRET not in stored
    assert opened == SECRET
