"""Migration 0011: an upgraded installation is never left without an administrator, and it goes back down."""

import uuid
from datetime import UTC, datetime

import sqlalchemy as sa
from flask_migrate import downgrade, upgrade
from helpers.app import app_config

from meander_site import create_app
from meander_site.extensions import db

USERS_AT_0010 = sa.table(
    "users",
    sa.column("id", sa.Uuid),
    sa.column("email", sa.String),
    sa.column("name", sa.String),
    sa.column("password_hash", sa.String),
    sa.column("is_active", sa.Boolean),
    sa.column("created_at", sa.DateTime(timezone=True)),
    sa.column("notify_new_leads", sa.Boolean),
)


def insert_user(email: str, day: int, active: bool = True) -> uuid.UUID:
    user_id = uuid.uuid4()
    db.session.execute(
        sa.insert(USERS_AT_0010),
        {
            "id": user_id,
            "email": email,
            "name": email.split("@")[0],
            "password_hash": "x",
            "is_active": active,
            "created_at": datetime(2025, 1, day, tzinfo=UTC),
            "notify_new_leads": True,
        },
    )
    return user_id


def test_the_earliest_active_account_becomes_the_administrator_and_everyone_else_a_seller(
    empty_database_url,
    redis_url,
    smtp_server,
):
    app = create_app(app_config(empty_database_url, redis_url, smtp_server))
    with app.app_context():
        upgrade(revision="0010")
        left = insert_user("sluttet@meander.no", day=1, active=False)
        first = insert_user("forst@meander.no", day=2)
        later = insert_user("senere@meander.no", day=3)
        db.session.commit()

        upgrade(revision="0011")

        roles = dict(db.session.execute(sa.text("SELECT id, role FROM users")).all())
        roles = {uuid.UUID(str(key)) if not isinstance(key, uuid.UUID) else key: value for key, value in roles.items()}
        tables = set(sa.inspect(db.engine).get_table_names())
        db.session.rollback()  # end the read: dropping the new tables locks users

        downgrade(revision="0010")
        columns = {column["name"] for column in sa.inspect(db.engine).get_columns("users")}
        db.engine.dispose()

    assert roles == {left: "seller", first: "admin", later: "seller"}
    assert {"invitations", "account_tokens", "recovery_codes", "team_settings"} <= tables
    assert "role" not in columns and "totp_secret" not in columns
