"""hardening round 3: rate limits counted in the database while Redis is down, staff declining a booking's
details recorded on the booking, and leads staff have already worked marked as such

Revision ID: 0012
Revises: 0011
"""

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "rate_limit_keys",
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_rate_limit_keys")),
    )
    op.create_index("idx_rate_limit_key_expires_at", "rate_limit_keys", ["expires_at"])
    op.create_table(
        "rate_limit_hits",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_rate_limit_hits")),
    )
    op.create_index("idx_rate_limit_hit_key_at", "rate_limit_hits", ["key", "at"])
    op.create_index("idx_rate_limit_hit_expires_at", "rate_limit_hits", ["expires_at"])

    # Plain ADD COLUMN, no batch copy (as in 0009).
    op.add_column("bookings", sa.Column("details_rejected_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column("bookings", sa.Column("details_rejected_by_name", sa.String(length=100), nullable=True))

    # «Worked» is now any staff action (records.mark_worked). Leads staff gave an owner, a note, a move or any
    # other change before this revision get the mark they would have had, so a public rebooking no longer
    # overwrites them either.
    op.execute(
        """
        UPDATE leads SET staff_edited_at = updated_at
        WHERE staff_edited_at IS NULL AND (
            owner_id IS NOT NULL
            OR EXISTS (SELECT 1 FROM lead_notes WHERE lead_notes.lead_id = leads.id)
            OR EXISTS (SELECT 1 FROM lead_events WHERE lead_events.lead_id = leads.id AND lead_events.actor_id IS NOT NULL)
            OR EXISTS (SELECT 1 FROM lead_status_changes WHERE lead_status_changes.lead_id = leads.id)
            OR EXISTS (SELECT 1 FROM bookings WHERE bookings.lead_id = leads.id AND bookings.details_applied_at IS NOT NULL)
        )
        """
    )


def downgrade():
    with op.batch_alter_table("bookings") as batch:
        batch.drop_column("details_rejected_by_name")
        batch.drop_column("details_rejected_at")
    op.drop_index("idx_rate_limit_hit_expires_at", table_name="rate_limit_hits")
    op.drop_index("idx_rate_limit_hit_key_at", table_name="rate_limit_hits")
    op.drop_table("rate_limit_hits")
    op.drop_index("idx_rate_limit_key_expires_at", table_name="rate_limit_keys")
    op.drop_table("rate_limit_keys")
