"""self-booked slots: the administrator's rules, each host's demo settings and calendar feed, the busy times read
from it, the claims booked slots hold on their host's time (never overlapping, on PostgreSQL by an exclusion
constraint), and whether a demo was held

Revision ID: 0015
Revises: 0014
"""

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "slot_rules",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("demo_minutes", sa.Integer(), nullable=False),
        sa.Column("buffer_minutes", sa.Integer(), nullable=False),
        sa.Column("notice_business_hours", sa.Integer(), nullable=False),
        sa.Column("horizon_business_days", sa.Integer(), nullable=False),
        sa.Column("max_per_host_per_day", sa.Integer(), nullable=False),
        sa.Column("step_minutes", sa.Integer(), nullable=False),
        sa.Column("change_cutoff_hours", sa.Integer(), nullable=False),
        sa.Column("max_moves", sa.Integer(), nullable=False),
        sa.Column("location", sa.String(length=500), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("updated_by_id", sa.Uuid(), nullable=True),
        sa.ForeignKeyConstraint(
            ["updated_by_id"], ["users.id"], name=op.f("fk_slot_rules_updated_by_id_users"), ondelete="SET NULL"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_slot_rules")),
    )
    op.create_table(
        "demo_hosts",
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("takes_demos", sa.Boolean(), nullable=False, server_default=sa.true()),
        sa.Column("weekly_hours", sa.String(length=200), nullable=True),
        sa.Column("feed_url", sa.String(), nullable=True),  # sealed (core/sealed.py)
        sa.Column("feed_fetched_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("feed_error", sa.String(length=300), nullable=True),
        sa.Column("feed_error_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("feed_lease_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name=op.f("fk_demo_hosts_user_id_users"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("user_id", name=op.f("pk_demo_hosts")),
    )
    op.create_table(
        "host_busy",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("starts_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ends_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name=op.f("fk_host_busy_user_id_users"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_host_busy")),
    )
    op.create_index("idx_host_busy_user_id_starts_at", "host_busy", ["user_id", "starts_at"])
    op.create_table(
        "slot_claims",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("lead_id", sa.Uuid(), nullable=False),
        sa.Column("host_id", sa.Uuid(), nullable=False),
        sa.Column("starts_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ends_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("blocked_until", sa.DateTime(timezone=True), nullable=False),
        sa.Column("moves", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("blocked_until > starts_at", name=op.f("ck_slot_claims_slot_claim_range")),
        sa.ForeignKeyConstraint(["lead_id"], ["leads.id"], name=op.f("fk_slot_claims_lead_id_leads"), ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["host_id"], ["users.id"], name=op.f("fk_slot_claims_host_id_users"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_slot_claims")),
    )
    op.create_index("idx_slot_claim_lead_id", "slot_claims", ["lead_id"], unique=True)
    op.create_index("idx_slot_claim_host_id_starts_at", "slot_claims", ["host_id", "starts_at"])
    if op.get_context().dialect.name == "postgresql":
        # No host is ever double-booked, whatever writes: two claims of one host never overlap.
        op.execute("CREATE EXTENSION IF NOT EXISTS btree_gist")
        op.execute(
            "ALTER TABLE slot_claims ADD CONSTRAINT slot_claims_no_overlap EXCLUDE USING gist "
            "(host_id WITH =, tstzrange(starts_at, blocked_until) WITH &&)"
        )
    # «Ble demoen holdt?»: held, no_show or cancelled_by_us, and when staff answered. Plain ADD COLUMN (see 0009).
    op.add_column("leads", sa.Column("demo_outcome", sa.String(length=20), nullable=True))
    op.add_column("leads", sa.Column("demo_outcome_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column("leads", sa.Column("demo_cancel_reason", sa.String(length=500), nullable=True))


def downgrade():
    with op.batch_alter_table("leads") as batch:
        batch.drop_column("demo_cancel_reason")
        batch.drop_column("demo_outcome_at")
        batch.drop_column("demo_outcome")
    op.drop_index("idx_slot_claim_host_id_starts_at", table_name="slot_claims")
    op.drop_index("idx_slot_claim_lead_id", table_name="slot_claims")
    op.drop_table("slot_claims")
    op.drop_index("idx_host_busy_user_id_starts_at", table_name="host_busy")
    op.drop_table("host_busy")
    op.drop_table("demo_hosts")
    op.drop_table("slot_rules")
