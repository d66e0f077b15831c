"""demo scheduling: when, how long, where and who hosts a lead's demo; «Ønsker ny tid»

Revision ID: 0009
Revises: 0008
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade():
    # Plain ADD COLUMN, no batch copy: on SQLite a table copy would drop the triggers on leads.
    if op.get_context().dialect.name == "sqlite":
        op.execute(
            "ALTER TABLE leads ADD COLUMN demo_host_id CHAR(32)"
            " CONSTRAINT fk_leads_demo_host_id_users REFERENCES users (id) ON DELETE SET NULL"
        )
    else:
        op.add_column("leads", sa.Column("demo_host_id", sa.Uuid(), nullable=True))
        op.create_foreign_key(
            op.f("fk_leads_demo_host_id_users"), "leads", "users", ["demo_host_id"], ["id"], ondelete="SET NULL"
        )
    op.add_column("leads", sa.Column("demo_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column("leads", sa.Column("demo_minutes", sa.Integer(), nullable=True))
    op.add_column("leads", sa.Column("demo_location", sa.String(length=500), nullable=True))
    op.add_column("leads", sa.Column("demo_sequence", sa.Integer(), nullable=False, server_default="0"))
    op.add_column("leads", sa.Column("demo_cancelled_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column("leads", sa.Column("demo_change_requested_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column("leads", sa.Column("demo_change_request", sa.String(length=500), nullable=True))
    op.create_index("idx_lead_status_demo_at", "leads", ["status", "demo_at"])


def downgrade():
    op.drop_index("idx_lead_status_demo_at", table_name="leads")
    with op.batch_alter_table("leads") as batch:
        for name in (
            "demo_change_request",
            "demo_change_requested_at",
            "demo_cancelled_at",
            "demo_sequence",
            "demo_location",
            "demo_minutes",
            "demo_at",
            "demo_host_id",
        ):
            batch.drop_column(name)
