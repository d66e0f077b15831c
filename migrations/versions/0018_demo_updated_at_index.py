"""the free times' data version reads the newest change to a lead with a demo from an index of those leads

Revision ID: 0018
Revises: 0017

Until now the version took the newest change to any lead, so every booking, with a time or without, made the next
form compute every host's free times anew. Only leads with a demo decide free times (slots/hosts.data_version).
"""

import sqlalchemy as sa
from alembic import op

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None


def upgrade():
    op.create_index(
        "idx_lead_demo_updated_at",
        "leads",
        ["updated_at"],
        postgresql_where=sa.text("demo_at IS NOT NULL"),
        sqlite_where=sa.text("demo_at IS NOT NULL"),
    )


def downgrade():
    op.drop_index("idx_lead_demo_updated_at", table_name="leads")
