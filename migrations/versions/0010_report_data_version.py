"""the report's data version and cheaper cold renders: an index on leads.updated_at (the newest change is one
index probe), and the report's covering index with the lead's id (the per-week bookings with a filter)

Revision ID: 0010
Revises: 0009
"""

from alembic import op

# What the conversion report reads of a lead besides created_at (models.REPORT_COLUMNS at this revision).
REPORT_COLUMNS = (
    "status",
    "source",
    "first_utm_campaign",
    "organization_size",
    "owner_id",
    "funnel_rank",
    "first_contact_due_at",
    "left_new_at",
    "first_contact_at",
    "reached_demo_at",
    "converted_at",
    "lost_reason",
    "new_stage_seconds",
    "contacted_stage_seconds",
    "qualified_stage_seconds",
    "demo_stage_seconds",
)

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade():
    # reports.data_version reads max(updated_at) on every report render; the board's 30 s poll
    # (updated_at > since, in updated_at order) reads the same index.
    op.create_index("idx_lead_updated_at", "leads", ["updated_at"])
    # With the id, the weekly bookings of a filtered report join bookings to this index alone, not to the
    # whole table. SQLite ignores INCLUDE: there the index stays one on created_at.
    op.drop_index("idx_lead_report", table_name="leads")
    op.create_index("idx_lead_report", "leads", ["created_at"], postgresql_include=["id", *REPORT_COLUMNS])


def downgrade():
    op.drop_index("idx_lead_report", table_name="leads")
    op.create_index("idx_lead_report", "leads", ["created_at"], postgresql_include=list(REPORT_COLUMNS))
    op.drop_index("idx_lead_updated_at", table_name="leads")
