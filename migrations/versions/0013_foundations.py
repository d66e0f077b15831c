"""foundations for assignment, slots and channels: staff absences; each lead's channel of its first
and latest touch (leads/channel.py), backfilled from the touch columns; two-factor secrets sealed
(core/sealed.py) instead of stored as typed

Revision ID: 0013
Revises: 0012
"""

import sqlalchemy as sa
from alembic import op

from meander_site.core.sealed import seal, unseal
from meander_site.leads.attribution import TOUCH_FIELDS, Touch
from meander_site.leads.channel import DIRECT, MAX_CHANNEL_LENGTH, channel_of

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

BATCH = 1000
TWO_FACTOR_SECRETS = ("totp_secret", "totp_pending_secret")


def upgrade():
    op.create_table(
        "staff_absence",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("starts_on", sa.Date(), nullable=False),
        sa.Column("ends_on", sa.Date(), nullable=False),
        sa.Column("note", sa.String(length=100), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("ends_on >= starts_on", name=op.f("ck_staff_absence_absence_ends_after_it_starts")),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_staff_absence_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_staff_absence")),
    )
    op.create_index("idx_staff_absence_user_id_ends_on", "staff_absence", ["user_id", "ends_on"])

    # Plain ADD COLUMN with a server default, no batch copy (as in 0009).
    for column in ("first_channel", "latest_channel"):
        op.add_column(
            "leads",
            sa.Column(column, sa.String(length=MAX_CHANNEL_LENGTH), nullable=False, server_default=DIRECT),
        )
    _backfill_channels()
    op.create_index("idx_lead_first_channel", "leads", ["first_channel"])

    _widen_two_factor_columns(None)
    _rewrite_two_factor_secrets(seal)


def _backfill_channels():
    """The rule is leads/channel.py's, in Python, so the migration cannot state it differently in SQL."""
    connection = op.get_bind()
    leads = sa.table(
        "leads",
        sa.column("id", sa.Uuid()),
        sa.column("first_channel"),
        sa.column("latest_channel"),
        *(sa.column(f"{touch}_{name}") for touch in ("first", "latest") for name in TOUCH_FIELDS),
    )
    has_a_touch = sa.or_(
        *(leads.c[f"{touch}_{name}"].is_not(None) for touch in ("first", "latest") for name in TOUCH_FIELDS)
    )
    update = (
        sa.update(leads)
        .where(leads.c.id == sa.bindparam("lead_id"))
        .values(first_channel=sa.bindparam("first"), latest_channel=sa.bindparam("latest"))
    )
    rows = connection.execute(sa.select(leads).where(has_a_touch).order_by(leads.c.id)).mappings().all()
    for start in range(0, len(rows), BATCH):
        changes = [
            {
                "lead_id": row["id"],
                "first": channel_of(Touch(**{name: row[f"first_{name}"] for name in TOUCH_FIELDS})),
                "latest": channel_of(Touch(**{name: row[f"latest_{name}"] for name in TOUCH_FIELDS})),
            }
            for row in rows[start : start + BATCH]
        ]
        connection.execute(update, changes)


def _widen_two_factor_columns(length: int | None):
    # SQLite keeps any length in a VARCHAR: only PostgreSQL needs the wider type (and no table copy).
    if op.get_bind().dialect.name == "postgresql":
        for column in TWO_FACTOR_SECRETS:
            op.alter_column("users", column, type_=sa.String(length=length))


def _rewrite_two_factor_secrets(rewrite):
    """Seal (or, going down, open) every stored secret with the app's key (the migration runs in its context)."""
    connection = op.get_bind()
    users = sa.table("users", sa.column("id", sa.Uuid()), *(sa.column(column) for column in TWO_FACTOR_SECRETS))
    for column in TWO_FACTOR_SECRETS:
        rows = connection.execute(sa.select(users.c.id, users.c[column]).where(users.c[column].is_not(None))).all()
        for user_id, value in rows:
            connection.execute(sa.update(users).where(users.c.id == user_id).values({column: rewrite(value)}))


def downgrade():
    _rewrite_two_factor_secrets(unseal)
    _widen_two_factor_columns(64)
    op.drop_index("idx_lead_first_channel", table_name="leads")
    with op.batch_alter_table("leads") as batch:
        batch.drop_column("latest_channel")
        batch.drop_column("first_channel")
    op.drop_index("idx_staff_absence_user_id_ends_on", table_name="staff_absence")
    op.drop_table("staff_absence")
