"""staff accounts and the pipeline: users, sessions, status history, status counts, audit

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

STATUSES = ("new", "contacted", "qualified", "demo_scheduled", "converted", "lost")
STATUS_CHECK = "{column} IN ('new', 'contacted', 'qualified', 'demo_scheduled', 'converted', 'lost')"

# lead_status_counts follows every insert, delete and status change, whatever code (or SQL) made it.
SQLITE_COUNT_TRIGGERS = [
    """CREATE TRIGGER leads_count_insert AFTER INSERT ON leads BEGIN
         UPDATE lead_status_counts SET lead_count = lead_count + 1 WHERE status = NEW.status; END""",
    """CREATE TRIGGER leads_count_delete AFTER DELETE ON leads BEGIN
         UPDATE lead_status_counts SET lead_count = lead_count - 1 WHERE status = OLD.status; END""",
    """CREATE TRIGGER leads_count_update AFTER UPDATE OF status ON leads
         WHEN NEW.status IS NOT OLD.status BEGIN
         UPDATE lead_status_counts SET lead_count = lead_count - 1 WHERE status = OLD.status;
         UPDATE lead_status_counts SET lead_count = lead_count + 1 WHERE status = NEW.status; END""",
]
POSTGRES_COUNT_FUNCTION = """
CREATE FUNCTION leads_count_status() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP IN ('UPDATE', 'DELETE') THEN
    UPDATE lead_status_counts SET lead_count = lead_count - 1 WHERE status = OLD.status;
  END IF;
  IF TG_OP IN ('UPDATE', 'INSERT') THEN
    UPDATE lead_status_counts SET lead_count = lead_count + 1 WHERE status = NEW.status;
  END IF;
  RETURN NULL;
END $$
"""
POSTGRES_COUNT_TRIGGERS = [
    """CREATE TRIGGER leads_count_insert AFTER INSERT ON leads
         FOR EACH ROW EXECUTE FUNCTION leads_count_status()""",
    """CREATE TRIGGER leads_count_delete AFTER DELETE ON leads
         FOR EACH ROW EXECUTE FUNCTION leads_count_status()""",
    """CREATE TRIGGER leads_count_update AFTER UPDATE OF status ON leads
         FOR EACH ROW WHEN (OLD.status IS DISTINCT FROM NEW.status) EXECUTE FUNCTION leads_count_status()""",
]


def upgrade():
    op.create_table(
        "users",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("email", sa.String(length=254), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("password_hash", sa.String(length=255), nullable=False),
        sa.Column("is_active", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_login_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_users")),
    )
    op.create_index("idx_user_email", "users", ["email"], unique=True)

    op.create_table(
        "staff_sessions",
        sa.Column("token", sa.String(length=64), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_staff_sessions_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("token", name=op.f("pk_staff_sessions")),
    )
    op.create_index("idx_staff_session_user_id", "staff_sessions", ["user_id"])

    op.create_table(
        "lead_status_changes",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("lead_id", sa.Uuid(), nullable=False),
        sa.Column("from_status", sa.String(length=20), nullable=False),
        sa.Column("to_status", sa.String(length=20), nullable=False),
        sa.Column("changed_by_id", sa.Uuid(), nullable=True),
        sa.Column("changed_by_name", sa.String(length=100), nullable=True),
        sa.Column("changed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("reason", sa.String(length=40), nullable=True),
        sa.Column("note", sa.String(length=1000), nullable=True),
        sa.CheckConstraint(STATUS_CHECK.format(column="from_status"), name=op.f("ck_lead_status_changes_from_status_allowed")),
        sa.CheckConstraint(STATUS_CHECK.format(column="to_status"), name=op.f("ck_lead_status_changes_to_status_allowed")),
        sa.ForeignKeyConstraint(
            ["lead_id"], ["leads.id"], name=op.f("fk_lead_status_changes_lead_id_leads"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["changed_by_id"], ["users.id"], name=op.f("fk_lead_status_changes_changed_by_id_users"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_lead_status_changes")),
    )
    op.create_index("idx_status_change_lead_id_changed_at", "lead_status_changes", ["lead_id", "changed_at"])

    op.create_table(
        "audit_events",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("action", sa.String(length=40), nullable=False),
        sa.Column("subject_id", sa.Uuid(), nullable=True),
        sa.Column("actor_id", sa.Uuid(), nullable=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("detail", sa.String(length=200), nullable=True),
        sa.ForeignKeyConstraint(
            ["actor_id"], ["users.id"], name=op.f("fk_audit_events_actor_id_users"), ondelete="SET NULL"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_events")),
    )
    op.create_index("idx_audit_event_at", "audit_events", ["at"])

    # A plain ADD COLUMN with a constant default: SQLite's batch mode would rebuild the table and drop
    # the masked_ref trigger from 0001.
    op.add_column(
        "leads",
        sa.Column(
            "status_changed_at",
            sa.DateTime(timezone=True),
            nullable=False,
            server_default=sa.text("'1970-01-01 00:00:00+00:00'"),
        ),
    )
    op.execute("UPDATE leads SET status_changed_at = updated_at")
    if op.get_bind().dialect.name == "postgresql":
        op.alter_column("leads", "status_changed_at", server_default=None)
    op.create_index("idx_lead_status_created_at", "leads", ["status", "created_at"])

    counts = op.create_table(
        "lead_status_counts",
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("lead_count", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("status", name=op.f("pk_lead_status_counts")),
    )
    op.bulk_insert(counts, [{"status": status, "lead_count": 0} for status in STATUSES])
    op.execute(
        "UPDATE lead_status_counts SET lead_count = "
        "(SELECT count(*) FROM leads WHERE leads.status = lead_status_counts.status)"
    )
    if op.get_bind().dialect.name == "postgresql":
        op.execute(POSTGRES_COUNT_FUNCTION)
        for statement in POSTGRES_COUNT_TRIGGERS:
            op.execute(statement)
    else:
        for statement in SQLITE_COUNT_TRIGGERS:
            op.execute(statement)


def downgrade():
    is_postgres = op.get_bind().dialect.name == "postgresql"
    for name in ("leads_count_insert", "leads_count_delete", "leads_count_update"):
        op.execute(f"DROP TRIGGER IF EXISTS {name}" + (" ON leads" if is_postgres else ""))
    if is_postgres:
        op.execute("DROP FUNCTION IF EXISTS leads_count_status()")
    op.drop_table("lead_status_counts")
    op.drop_index("idx_lead_status_created_at", table_name="leads")
    op.drop_column("leads", "status_changed_at")
    op.drop_index("idx_audit_event_at", table_name="audit_events")
    op.drop_table("audit_events")
    op.drop_index("idx_status_change_lead_id_changed_at", table_name="lead_status_changes")
    op.drop_table("lead_status_changes")
    op.drop_index("idx_staff_session_user_id", table_name="staff_sessions")
    op.drop_table("staff_sessions")
    op.drop_index("idx_user_email", table_name="users")
    op.drop_table("users")
