"""rebooking safeguards: staff-edited leads keep their details, newer details wait for staff, mail cap

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade():
    # Plain ADD COLUMNs: SQLite's batch mode would rebuild the tables and drop the triggers of 0001/0002.
    op.add_column("leads", sa.Column("staff_edited_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column("leads", sa.Column("newer_details_booking_id", sa.Uuid(), nullable=True))
    op.add_column("bookings", sa.Column("details_applied_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column("bookings", sa.Column("details_applied_by_name", sa.String(length=100), nullable=True))
    # The per-recipient mail cap counts a mailbox's recent bookings.
    op.create_index("idx_booking_email_created_at", "bookings", ["email", "created_at"])


def downgrade():
    op.drop_index("idx_booking_email_created_at", table_name="bookings")
    op.drop_column("bookings", "details_applied_by_name")
    op.drop_column("bookings", "details_applied_at")
    op.drop_column("leads", "newer_details_booking_id")
    op.drop_column("leads", "staff_edited_at")
