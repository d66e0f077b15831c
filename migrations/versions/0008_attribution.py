"""conversion tracking: campaign parameters on bookings, first and latest touch on leads, first-contact due time,
each lead's journey (milestones, time per stage) kept by triggers on lead_status_changes

Revision ID: 0008
Revises: 0007
"""

from datetime import UTC

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

# The campaign parameters and the referring host: the same six columns on bookings and, twice, on leads.
TOUCH_COLUMNS = {
    "utm_source": 100,
    "utm_medium": 100,
    "utm_campaign": 100,
    "utm_term": 100,
    "utm_content": 100,
    "referrer_host": 253,
}
BACKFILL_BATCH = 5000
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

# A lead's journey through the funnel, kept up to date by a trigger on every inserted status change, so the
# report reads one row per lead instead of aggregating the whole history (reports.py).
STAGE_SECONDS = {  # column -> the stage it measures
    "new_stage_seconds": "new",
    "contacted_stage_seconds": "contacted",
    "qualified_stage_seconds": "qualified",
    "demo_stage_seconds": "demo_scheduled",
}
JOURNEY_TIMES = ("left_new_at", "first_contact_at", "reached_demo_at", "converted_at")
RANK = "CASE {0} WHEN 'new' THEN 0 WHEN 'contacted' THEN 1 WHEN 'qualified' THEN 2 WHEN 'demo_scheduled' THEN 3 WHEN 'converted' THEN 4 ELSE -1 END"


def _journey_assignments(dialect: str) -> str:
    """SET clauses for UPDATE leads after a change NEW: what the move adds to the lead's journey."""
    if dialect == "postgresql":

        def seconds(later, earlier):
            return f"EXTRACT(EPOCH FROM ({later} - {earlier}))"

        greatest = "GREATEST"
    else:

        def seconds(later, earlier):
            return f"((julianday({later}) - julianday({earlier})) * 86400.0)"

        greatest = "MAX"
    # Forward only: a stage is entered once, by the one move whose to_status it is (or at arrival for «Ny»).
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
        since = "created_at" if stage == "new" else entered
        parts.append(
            f"{column} = CASE WHEN NEW.from_status = '{stage}' THEN {seconds('NEW.changed_at', since)} ELSE {column} END"
        )
    return ",\n    ".join(parts)


def _create_journey_trigger(dialect: str) -> None:
    assignments = _journey_assignments(dialect)
    if dialect == "postgresql":
        op.execute(
            f"""CREATE FUNCTION lead_journey_after_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  UPDATE leads SET
    {assignments}
  WHERE id = NEW.lead_id;
  RETURN NULL;
END $$"""
        )
        op.execute(
            "CREATE TRIGGER lead_journey_after_change AFTER INSERT ON lead_status_changes "
            "FOR EACH ROW EXECUTE FUNCTION lead_journey_after_change()"
        )
    else:
        op.execute(
            f"""CREATE TRIGGER lead_journey_after_change AFTER INSERT ON lead_status_changes BEGIN
  UPDATE leads SET
    {assignments}
  WHERE id = NEW.lead_id;
END"""
        )


def upgrade():
    # Plain ADD COLUMN everywhere (no batch copy): on SQLite a table copy would drop the triggers on leads.
    for name, length in TOUCH_COLUMNS.items():
        op.add_column("bookings", sa.Column(name, sa.String(length=length), nullable=True))
        op.add_column("leads", sa.Column(f"first_{name}", sa.String(length=length), nullable=True))
        op.add_column("leads", sa.Column(f"latest_{name}", sa.String(length=length), nullable=True))
    op.add_column("leads", sa.Column("first_contact_due_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column("leads", sa.Column("funnel_rank", sa.SmallInteger(), nullable=False, server_default="0"))
    for name in JOURNEY_TIMES:
        op.add_column("leads", sa.Column(name, sa.DateTime(timezone=True), nullable=True))
    op.add_column("leads", sa.Column("lost_reason", sa.String(length=40), nullable=True))
    for name in STAGE_SECONDS:
        op.add_column("leads", sa.Column(name, sa.Float(), nullable=True))
    # The report filters by campaign and reads the history of the leads of a period.
    op.create_index("idx_lead_first_utm_campaign", "leads", ["first_utm_campaign"])
    op.create_index(
        "idx_status_change_lead_id_to_status", "lead_status_changes", ["lead_id", "to_status", "changed_at"]
    )
    _backfill_first_contact_due()
    # The report's index-only scan on PostgreSQL (see models.REPORT_COLUMNS); on SQLite an index on created_at.
    op.create_index("idx_lead_report", "leads", ["created_at"], postgresql_include=list(REPORT_COLUMNS))
    dialect = op.get_context().dialect.name
    _create_journey_trigger(dialect)
    _backfill_journeys()


def _backfill_first_contact_due():
    """Leads booked before this revision: the promise they were given, end of the next business day."""
    from meander_site.business_days import end_of_next_business_day

    connection = op.get_bind()
    leads = sa.table(
        "leads",
        sa.column("id", sa.Uuid()),
        sa.column("created_at", sa.DateTime(timezone=True)),
        sa.column("first_contact_due_at", sa.DateTime(timezone=True)),
    )
    while True:
        rows = connection.execute(
            sa.select(leads.c.id, leads.c.created_at)
            .where(leads.c.first_contact_due_at.is_(None))
            .limit(BACKFILL_BATCH)
        ).all()
        if not rows:
            return
        for lead_id, created_at in rows:
            if created_at.tzinfo is None:  # SQLite keeps no offset; the app stores UTC
                created_at = created_at.replace(tzinfo=UTC)
            due = end_of_next_business_day(created_at)
            connection.execute(sa.update(leads).where(leads.c.id == lead_id).values(first_contact_due_at=due))


def _backfill_journeys():
    """Leads moved before this revision: replay their history through the trigger's own arithmetic."""
    connection = op.get_bind()
    changes = sa.table(
        "lead_status_changes",
        sa.column("id", sa.Uuid()),
        sa.column("lead_id", sa.Uuid()),
        sa.column("from_status", sa.String()),
        sa.column("to_status", sa.String()),
        sa.column("changed_by_id", sa.Uuid()),
        sa.column("changed_by_name", sa.String()),
        sa.column("changed_at", sa.DateTime(timezone=True)),
        sa.column("reason", sa.String()),
        sa.column("note", sa.String()),
    )
    # Delete and insert again, oldest first, so the trigger sees each lead's moves in order.
    rows = connection.execute(sa.select(changes).order_by(changes.c.changed_at)).mappings().all()
    if rows:
        connection.execute(sa.delete(changes))
        for start in range(0, len(rows), BACKFILL_BATCH):
            for row in rows[start : start + BACKFILL_BATCH]:
                connection.execute(sa.insert(changes), dict(row))


def downgrade():
    op.execute(
        "DROP TRIGGER IF EXISTS lead_journey_after_change"
        + (" ON lead_status_changes" if op.get_context().dialect.name == "postgresql" else "")
    )
    if op.get_context().dialect.name == "postgresql":
        op.execute("DROP FUNCTION IF EXISTS lead_journey_after_change()")
    op.drop_index("idx_status_change_lead_id_to_status", table_name="lead_status_changes")
    op.drop_index("idx_lead_report", table_name="leads")
    op.drop_index("idx_lead_first_utm_campaign", table_name="leads")
    with op.batch_alter_table("leads") as batch:
        batch.drop_column("first_contact_due_at")
        for name in ("funnel_rank", *JOURNEY_TIMES, "lost_reason", *STAGE_SECONDS):
            batch.drop_column(name)
        for name in TOUCH_COLUMNS:
            batch.drop_column(f"latest_{name}")
            batch.drop_column(f"first_{name}")
    with op.batch_alter_table("bookings") as batch:
        for name in TOUCH_COLUMNS:
            batch.drop_column(name)
