"""pipeline value and a new pass for a lost lead: estimated and agreed values, the expected close month, the
stage weights, the column sums kept beside the counts, the pass number and each closed pass kept

Revision ID: 0016
Revises: 0015

The column sums follow every insert, delete, status and value change by the same triggers that keep the counts
(0002), replaced here: a lead's value in a column is its agreed value, else its estimate, else nothing. The
journey trigger (0008) is replaced so that «Ny» is measured from the start of the lead's current pass.
"""

import sqlalchemy as sa
from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None

DEFAULT_WEIGHTS = {"new": 5, "contacted": 10, "qualified": 25, "demo_scheduled": 50}
LEAD_VALUE = "COALESCE({0}.deal_value, {0}.estimated_value, 0)"

SQLITE_COUNT_TRIGGERS = [
    f"""CREATE TRIGGER leads_count_insert AFTER INSERT ON leads BEGIN
         UPDATE lead_status_counts SET lead_count = lead_count + 1, value_sum = value_sum + {LEAD_VALUE.format("NEW")}
         WHERE status = NEW.status; END""",
    f"""CREATE TRIGGER leads_count_delete AFTER DELETE ON leads BEGIN
         UPDATE lead_status_counts SET lead_count = lead_count - 1, value_sum = value_sum - {LEAD_VALUE.format("OLD")}
         WHERE status = OLD.status; END""",
    f"""CREATE TRIGGER leads_count_update AFTER UPDATE OF status, deal_value, estimated_value ON leads
         WHEN NEW.status IS NOT OLD.status OR NEW.deal_value IS NOT OLD.deal_value
           OR NEW.estimated_value IS NOT OLD.estimated_value BEGIN
         UPDATE lead_status_counts SET lead_count = lead_count - 1, value_sum = value_sum - {LEAD_VALUE.format("OLD")}
         WHERE status = OLD.status;
         UPDATE lead_status_counts SET lead_count = lead_count + 1, value_sum = value_sum + {LEAD_VALUE.format("NEW")}
         WHERE status = NEW.status; END""",
]
OLD_SQLITE_COUNT_TRIGGERS = [
    """CREATE TRIGGER leads_count_insert AFTER INSERT ON leads BEGIN
         UPDATE lead_status_counts SET lead_count = lead_count + 1 WHERE status = NEW.status; END""",
    """CREATE TRIGGER leads_count_delete AFTER DELETE ON leads BEGIN
         UPDATE lead_status_counts SET lead_count = lead_count - 1 WHERE status = OLD.status; END""",
    """CREATE TRIGGER leads_count_update AFTER UPDATE OF status ON leads
         WHEN NEW.status IS NOT OLD.status BEGIN
         UPDATE lead_status_counts SET lead_count = lead_count - 1 WHERE status = OLD.status;
         UPDATE lead_status_counts SET lead_count = lead_count + 1 WHERE status = NEW.status; END""",
]
POSTGRES_COUNT_FUNCTION = f"""
CREATE OR REPLACE FUNCTION leads_count_status() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP IN ('UPDATE', 'DELETE') THEN
    UPDATE lead_status_counts SET lead_count = lead_count - 1, value_sum = value_sum - {LEAD_VALUE.format("OLD")}
    WHERE status = OLD.status;
  END IF;
  IF TG_OP IN ('UPDATE', 'INSERT') THEN
    UPDATE lead_status_counts SET lead_count = lead_count + 1, value_sum = value_sum + {LEAD_VALUE.format("NEW")}
    WHERE status = NEW.status;
  END IF;
  RETURN NULL;
END $$
"""
POSTGRES_UPDATE_TRIGGER = """CREATE TRIGGER leads_count_update AFTER UPDATE OF status, deal_value, estimated_value ON leads
  FOR EACH ROW WHEN (OLD.status IS DISTINCT FROM NEW.status OR OLD.deal_value IS DISTINCT FROM NEW.deal_value
                     OR OLD.estimated_value IS DISTINCT FROM NEW.estimated_value)
  EXECUTE FUNCTION leads_count_status()"""
OLD_POSTGRES_UPDATE_TRIGGER = """CREATE TRIGGER leads_count_update AFTER UPDATE OF status ON leads
  FOR EACH ROW WHEN (OLD.status IS DISTINCT FROM NEW.status) EXECUTE FUNCTION leads_count_status()"""

# The journey (0008), with «Ny» measured from the start of the current pass.
STAGE_SECONDS = {
    "new_stage_seconds": "new",
    "contacted_stage_seconds": "contacted",
    "qualified_stage_seconds": "qualified",
    "demo_stage_seconds": "demo_scheduled",
}
RANK = (
    "CASE {0} WHEN 'new' THEN 0 WHEN 'contacted' THEN 1 WHEN 'qualified' THEN 2 WHEN 'demo_scheduled' THEN 3 "
    "WHEN 'converted' THEN 4 ELSE -1 END"
)


def _journey_assignments(dialect: str, new_since: str) -> str:
    if dialect == "postgresql":

        def seconds(later, earlier):
            return f"EXTRACT(EPOCH FROM ({later} - {earlier}))"

        greatest = "GREATEST"
    else:

        def seconds(later, earlier):
            return f"((julianday({later}) - julianday({earlier})) * 86400.0)"

        greatest = "MAX"
    entered = (
        "(SELECT MAX(c.changed_at) FROM lead_status_changes c "
        "WHERE c.lead_id = NEW.lead_id AND c.to_status = NEW.from_status AND c.changed_at <= NEW.changed_at)"
    )
    parts = [
        f"funnel_rank = {greatest}(funnel_rank, {RANK.format('NEW.from_status')}, {RANK.format('NEW.to_status')})",
        "left_new_at = CASE WHEN NEW.from_status = 'new' AND left_new_at IS NULL THEN NEW.changed_at ELSE left_new_at END",
        "first_contact_at = CASE WHEN NEW.from_status = 'new' AND NEW.to_status <> 'lost' AND first_contact_at IS NULL "
        "THEN NEW.changed_at ELSE first_contact_at END",
        "reached_demo_at = CASE WHEN NEW.to_status IN ('demo_scheduled', 'converted') AND reached_demo_at IS NULL "
        "THEN NEW.changed_at ELSE reached_demo_at END",
        "converted_at = CASE WHEN NEW.to_status = 'converted' THEN NEW.changed_at ELSE converted_at END",
        "lost_reason = CASE WHEN NEW.to_status = 'lost' THEN NEW.reason ELSE lost_reason END",
    ]
    for column, stage in STAGE_SECONDS.items():
        since = new_since if stage == "new" else entered
        parts.append(
            f"{column} = CASE WHEN NEW.from_status = '{stage}' THEN {seconds('NEW.changed_at', since)} ELSE {column} END"
        )
    return ",\n    ".join(parts)


def _replace_journey_trigger(new_since: str) -> None:
    dialect = op.get_context().dialect.name
    assignments = _journey_assignments(dialect, new_since)
    if dialect == "postgresql":
        op.execute(
            f"""CREATE OR REPLACE FUNCTION lead_journey_after_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  UPDATE leads SET
    {assignments}
  WHERE id = NEW.lead_id;
  RETURN NULL;
END $$"""
        )
    else:
        op.execute("DROP TRIGGER IF EXISTS lead_journey_after_change")
        op.execute(
            f"""CREATE TRIGGER lead_journey_after_change AFTER INSERT ON lead_status_changes BEGIN
  UPDATE leads SET
    {assignments}
  WHERE id = NEW.lead_id;
END"""
        )


def upgrade():
    # Plain ADD COLUMN everywhere (no batch copy): on SQLite a table copy would drop the triggers on leads.
    op.add_column("leads", sa.Column("estimated_value", sa.Integer(), nullable=True))
    op.add_column("leads", sa.Column("expected_close_month", sa.Date(), nullable=True))
    op.add_column("leads", sa.Column("deal_value", sa.Integer(), nullable=True))
    op.add_column("leads", sa.Column("pass_number", sa.Integer(), nullable=False, server_default="1"))
    op.add_column("leads", sa.Column("pass_started_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column("lead_status_changes", sa.Column("pass_number", sa.Integer(), nullable=False, server_default="1"))
    op.add_column("lead_status_counts", sa.Column("value_sum", sa.BigInteger(), nullable=False, server_default="0"))

    weights = op.create_table(
        "stage_weights",
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("percent", sa.Integer(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("updated_by_id", sa.Uuid(), nullable=True),
        sa.ForeignKeyConstraint(
            ["updated_by_id"], ["users.id"], name=op.f("fk_stage_weights_updated_by_id_users"), ondelete="SET NULL"
        ),
        sa.PrimaryKeyConstraint("status", name=op.f("pk_stage_weights")),
    )
    op.bulk_insert(weights, [{"status": status, "percent": percent} for status, percent in DEFAULT_WEIGHTS.items()])

    op.create_table(
        "lead_passes",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("lead_id", sa.Uuid(), nullable=False),
        sa.Column("pass_number", sa.Integer(), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("outcome", sa.String(length=20), nullable=False),
        sa.Column("lost_reason", sa.String(length=40), nullable=True),
        sa.Column("owner_id", sa.Uuid(), nullable=True),
        sa.Column("funnel_rank", sa.SmallInteger(), nullable=False),
        sa.Column("left_new_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("first_contact_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("reached_demo_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("estimated_value", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["lead_id"], ["leads.id"], name=op.f("fk_lead_passes_lead_id_leads"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["owner_id"], ["users.id"], name=op.f("fk_lead_passes_owner_id_users"), ondelete="SET NULL"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_lead_passes")),
    )
    op.create_index("idx_lead_pass_lead_id_pass_number", "lead_passes", ["lead_id", "pass_number"], unique=True)
    op.create_index("idx_lead_pass_ended_at", "lead_passes", ["ended_at"])
    op.create_index("idx_lead_pass_started_at", "lead_passes", ["started_at"])
    # The report's won value per period and the expected value per close month.
    op.create_index("idx_lead_converted_at", "leads", ["converted_at"])
    op.create_index("idx_lead_expected_close_month", "leads", ["expected_close_month"])
    op.create_index("idx_lead_pass_started_at_on_leads", "leads", ["pass_started_at"])

    is_postgres = op.get_bind().dialect.name == "postgresql"
    if is_postgres:
        op.execute(POSTGRES_COUNT_FUNCTION)
        op.execute("DROP TRIGGER IF EXISTS leads_count_update ON leads")
        op.execute(POSTGRES_UPDATE_TRIGGER)
    else:
        for name in ("leads_count_insert", "leads_count_delete", "leads_count_update"):
            op.execute(f"DROP TRIGGER IF EXISTS {name}")
        for statement in SQLITE_COUNT_TRIGGERS:
            op.execute(statement)
    _replace_journey_trigger("COALESCE(pass_started_at, created_at)")


def downgrade():
    _replace_journey_trigger("created_at")
    is_postgres = op.get_bind().dialect.name == "postgresql"
    if is_postgres:
        op.execute("DROP TRIGGER IF EXISTS leads_count_update ON leads")
        op.execute(OLD_POSTGRES_UPDATE_TRIGGER)
    else:
        for name in ("leads_count_insert", "leads_count_delete", "leads_count_update"):
            op.execute(f"DROP TRIGGER IF EXISTS {name}")
        for statement in OLD_SQLITE_COUNT_TRIGGERS:
            op.execute(statement)
    op.drop_index("idx_lead_pass_started_at_on_leads", table_name="leads")
    op.drop_index("idx_lead_expected_close_month", table_name="leads")
    op.drop_index("idx_lead_converted_at", table_name="leads")
    op.drop_index("idx_lead_pass_started_at", table_name="lead_passes")
    op.drop_index("idx_lead_pass_ended_at", table_name="lead_passes")
    op.drop_index("idx_lead_pass_lead_id_pass_number", table_name="lead_passes")
    op.drop_table("lead_passes")
    op.drop_table("stage_weights")
    if is_postgres:
        op.execute(POSTGRES_COUNT_FUNCTION.replace(", value_sum = value_sum - COALESCE(OLD.deal_value, OLD.estimated_value, 0)", "").replace(", value_sum = value_sum + COALESCE(NEW.deal_value, NEW.estimated_value, 0)", ""))
    with op.batch_alter_table("lead_status_counts") as batch:
        batch.drop_column("value_sum")
    with op.batch_alter_table("lead_status_changes") as batch:
        batch.drop_column("pass_number")
    with op.batch_alter_table("leads") as batch:
        for name in ("pass_started_at", "pass_number", "deal_value", "expected_close_month", "estimated_value"):
            batch.drop_column(name)
