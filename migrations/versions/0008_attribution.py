"""conversion tracking: campaign parameters on bookings, first and latest touch on leads, first-contact due time

Revision ID: 0008
Revises: 0006
"""

from datetime import UTC

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0006"
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


def upgrade():
    # Plain ADD COLUMN everywhere (no batch copy): on SQLite a table copy would drop the triggers on leads.
    for name, length in TOUCH_COLUMNS.items():
        op.add_column("bookings", sa.Column(name, sa.String(length=length), nullable=True))
        op.add_column("leads", sa.Column(f"first_{name}", sa.String(length=length), nullable=True))
        op.add_column("leads", sa.Column(f"latest_{name}", sa.String(length=length), nullable=True))
    op.add_column("leads", sa.Column("first_contact_due_at", sa.DateTime(timezone=True), nullable=True))
    # The report filters by campaign and reads the history of the leads of a period.
    op.create_index("idx_lead_first_utm_campaign", "leads", ["first_utm_campaign"])
    op.create_index(
        "idx_status_change_lead_id_to_status", "lead_status_changes", ["lead_id", "to_status", "changed_at"]
    )
    _backfill_first_contact_due()


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


def downgrade():
    op.drop_index("idx_status_change_lead_id_to_status", table_name="lead_status_changes")
    op.drop_index("idx_lead_first_utm_campaign", table_name="leads")
    with op.batch_alter_table("leads") as batch:
        batch.drop_column("first_contact_due_at")
        for name in TOUCH_COLUMNS:
            batch.drop_column(f"latest_{name}")
            batch.drop_column(f"first_{name}")
    with op.batch_alter_table("bookings") as batch:
        for name in TOUCH_COLUMNS:
            batch.drop_column(name)
