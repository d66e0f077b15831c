"""confirmations in the one outbox: each booking's confirmation state becomes an outbox row

Revision ID: 0007
Revises: 0006

Sent confirmations become sent rows, pending and failing ones due rows (attempts, last error and any lease
kept), capped ones rows closed with reason "capped"; a booking that never ordered one gets none. A migrated
row takes its booking's id, so a job queued before the deploy (it carries the booking id) still finds it.
Then the bookings.confirmation_* columns go. leads.confirmation_sent_at stays: the board, the lead page and
the export read it, and the send keeps it in step.

No batch copy on SQLite: DROP COLUMN (SQLite 3.35+) leaves the table, its indexes and the outbox rows that
reference it alone (a copy would drop and recreate bookings, and ON DELETE CASCADE would empty the outbox).
"""

import sqlite3

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

CAPPED_REASON = "capped"
CAPPED_TEXT = "Ikke sendt: for mange bekreftelser til denne adressen siste døgn"
CONFIRMATION_COLUMNS = (
    "confirmation_sent_at",
    "confirmation_due_at",
    "confirmation_claimed_until",
    "confirmation_attempts",
    "confirmation_last_error",
)

bookings = sa.table(
    "bookings",
    sa.column("id", sa.Uuid),
    sa.column("lead_id", sa.Uuid),
    sa.column("email", sa.String),
    sa.column("created_at", sa.DateTime(timezone=True)),
    sa.column("confirmation_sent_at", sa.DateTime(timezone=True)),
    sa.column("confirmation_due_at", sa.DateTime(timezone=True)),
    sa.column("confirmation_claimed_until", sa.DateTime(timezone=True)),
    sa.column("confirmation_attempts", sa.Integer),
    sa.column("confirmation_last_error", sa.String),
)
outbox = sa.table(
    "outbox_messages",
    sa.column("id", sa.Uuid),
    sa.column("kind", sa.String),
    sa.column("recipient", sa.String),
    sa.column("lead_id", sa.Uuid),
    sa.column("booking_id", sa.Uuid),
    sa.column("created_at", sa.DateTime(timezone=True)),
    sa.column("send_after", sa.DateTime(timezone=True)),
    sa.column("due_at", sa.DateTime(timezone=True)),
    sa.column("claimed_until", sa.DateTime(timezone=True)),
    sa.column("attempts", sa.Integer),
    sa.column("last_error", sa.String),
    sa.column("sent_at", sa.DateTime(timezone=True)),
    sa.column("closed_at", sa.DateTime(timezone=True)),
    sa.column("closed_reason", sa.String),
)


def upgrade():
    if op.get_context().dialect.name == "sqlite" and sqlite3.sqlite_version_info < (3, 35):
        raise RuntimeError(f"SQLite {sqlite3.sqlite_version} cannot drop columns in place; 3.35 or newer is needed")
    b = bookings.c
    sent = b.confirmation_sent_at.is_not(None)
    waiting = sa.and_(b.confirmation_sent_at.is_(None), b.confirmation_due_at.is_not(None))
    capped = sa.and_(
        b.confirmation_sent_at.is_(None), b.confirmation_due_at.is_(None), b.confirmation_last_error.is_not(None)
    )
    rows = sa.select(
        b.id,
        sa.literal("confirmation"),
        b.email,
        b.lead_id,
        b.id,
        b.created_at,
        b.created_at,
        sa.case((waiting, b.confirmation_due_at)),
        sa.case((waiting, b.confirmation_claimed_until)),
        sa.func.coalesce(b.confirmation_attempts, 0),
        sa.case((waiting, b.confirmation_last_error)),
        b.confirmation_sent_at,
        sa.case((capped, b.created_at)),
        sa.case((capped, sa.literal(CAPPED_REASON))),
    ).where(sa.or_(sent, waiting, capped))
    op.execute(
        outbox.insert().from_select(
            [
                "id",
                "kind",
                "recipient",
                "lead_id",
                "booking_id",
                "created_at",
                "send_after",
                "due_at",
                "claimed_until",
                "attempts",
                "last_error",
                "sent_at",
                "closed_at",
                "closed_reason",
            ],
            rows,
        )
    )
    op.drop_index("idx_booking_confirmation_pending", table_name="bookings")
    for column in CONFIRMATION_COLUMNS:
        op.drop_column("bookings", column)


def downgrade():
    op.add_column("bookings", sa.Column("confirmation_sent_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column("bookings", sa.Column("confirmation_due_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column("bookings", sa.Column("confirmation_claimed_until", sa.DateTime(timezone=True), nullable=True))
    op.add_column("bookings", sa.Column("confirmation_attempts", sa.Integer(), nullable=False, server_default="0"))
    op.add_column("bookings", sa.Column("confirmation_last_error", sa.String(length=500), nullable=True))
    op.create_index("idx_booking_confirmation_pending", "bookings", ["confirmation_due_at"])
    o = outbox.c

    def from_row(column):
        return (
            sa.select(column).where(o.kind == "confirmation", o.booking_id == bookings.c.id).limit(1).scalar_subquery()
        )

    op.execute(
        bookings.update().values(
            confirmation_sent_at=from_row(o.sent_at),
            confirmation_due_at=from_row(o.due_at),
            confirmation_claimed_until=from_row(o.claimed_until),
            confirmation_attempts=sa.func.coalesce(from_row(o.attempts), 0),
            confirmation_last_error=from_row(
                sa.case((o.closed_reason == CAPPED_REASON, sa.literal(CAPPED_TEXT)), else_=o.last_error)
            ),
        )
    )
    op.execute(outbox.delete().where(o.kind == "confirmation"))
