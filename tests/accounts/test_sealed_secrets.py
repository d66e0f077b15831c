"""A second factor's shared secret is stored sealed (core/sealed.py): a copy of the database does not reveal
it, the app still reads it, and SECRET_KEY can be rotated with the old key in SECRET_KEY_FALLBACKS."""

import pytest
import sqlalchemy as sa
from helpers.accounts import enrol_two_factor, stored_user

from meander_site.accounts.models import User
from meander_site.core.sealed import SealError
from meander_site.extensions import db

NEW_KEY = "a-new-secret-key-" + "y" * 32


def stored_text(app, user_id) -> tuple[str, str]:
    """The two secret columns as the database holds them, not as the model opens them."""
    with app.app_context():
        row = db.session.execute(
            sa.text("SELECT totp_secret, totp_pending_secret FROM users WHERE id = :id"),
            {"id": user_id.hex if db.engine.dialect.name == "sqlite" else user_id},
        ).one()
        return tuple(row)


def test_the_stored_secret_is_sealed_and_the_app_still_reads_it(app, staff_user, staff_client):
    secret, _ = enrol_two_factor(staff_client)

    sealed, pending = stored_text(app, staff_user["id"])
    assert sealed.startswith("sealed1:") and secret not in sealed and pending is None
    assert stored_user(app, staff_user["id"]).totp_secret == secret


def test_a_rotated_secret_key_reads_the_secret_with_the_old_key_as_a_fallback_and_not_without(
    app, make_app, staff_user, staff_client
):
    secret, _ = enrol_two_factor(staff_client)
    old_key = app.config["SECRET_KEY"]

    rotated = make_app(SECRET_KEY=NEW_KEY, SECRET_KEY_FALLBACKS=[old_key])
    with rotated.app_context():
        assert db.session.get(User, staff_user["id"]).totp_secret == secret
        db.session.remove()

    forgotten = make_app(SECRET_KEY=NEW_KEY)
    with forgotten.app_context():
        with pytest.raises(SealError, match="SECRET_KEY_FALLBACKS"):
            db.session.execute(sa.select(User.totp_secret).where(User.id == staff_user["id"])).scalar_one()
        db.session.remove()
