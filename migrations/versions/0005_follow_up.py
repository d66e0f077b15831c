"""follow-up: lead owners and next steps, staff notes, lead events, new-lead notifications per user

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade():
    # Plain ADD COLUMN, no batch copy: on SQLite a table copy would drop the triggers on leads.
    if op.get_context().dialect.name == "sqlite":
        op.execute("ALTER TABLE leads ADD COLUMN owner_id CHAR(32) REFERENCES users (id) ON DELETE SET NULL")
    else:
        op.add_column("leads", sa.Column("owner_id", sa.Uuid(), nullable=True))
        op.create_foreign_key(
            op.f("fk_leads_owner_id_users"), "leads", "users", ["owner_id"], ["id"], ondelete="SET NULL"
        )
    op.add_column("leads", sa.Column("next_step", sa.String(length=200), nullable=True))
    op.add_column("leads", sa.Column("next_step_due_at", sa.DateTime(timezone=True), nullable=True))
    op.create_index("idx_lead_status_next_step_due_at", "leads", ["status", "next_step_due_at"])
    op.create_index("idx_lead_owner_id", "leads", ["owner_id"])
    op.add_column(
        "users", sa.Column("notify_new_leads", sa.Boolean(), nullable=False, server_default=sa.true())
    )

    op.create_table(
        "lead_notes",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("lead_id", sa.Uuid(), nullable=False),
        sa.Column("author_id", sa.Uuid(), nullable=True),
        sa.Column("author_name", sa.String(length=100), nullable=True),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["lead_id"], ["leads.id"], name=op.f("fk_lead_notes_lead_id_leads"), ondelete="CASCADE"),
        sa.ForeignKeyConstraint(
            ["author_id"], ["users.id"], name=op.f("fk_lead_notes_author_id_users"), ondelete="SET NULL"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_lead_notes")),
    )
    op.create_index("idx_lead_note_lead_id_created_at", "lead_notes", ["lead_id", "created_at"])

    op.create_table(
        "lead_events",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("lead_id", sa.Uuid(), nullable=False),
        sa.Column("kind", sa.String(length=40), nullable=False),
        sa.Column("actor_id", sa.Uuid(), nullable=True),
        sa.Column("actor_name", sa.String(length=100), nullable=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("detail", sa.String(length=300), nullable=True),
        sa.ForeignKeyConstraint(["lead_id"], ["leads.id"], name=op.f("fk_lead_events_lead_id_leads"), ondelete="CASCADE"),
        sa.ForeignKeyConstraint(
            ["actor_id"], ["users.id"], name=op.f("fk_lead_events_actor_id_users"), ondelete="SET NULL"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_lead_events")),
    )
    op.create_index("idx_lead_event_lead_id_at", "lead_events", ["lead_id", "at"])


def downgrade():
    op.drop_index("idx_lead_event_lead_id_at", table_name="lead_events")
    op.drop_table("lead_events")
    op.drop_index("idx_lead_note_lead_id_created_at", table_name="lead_notes")
    op.drop_table("lead_notes")
    op.drop_column("users", "notify_new_leads")
    op.drop_index("idx_lead_owner_id", table_name="leads")
    op.drop_index("idx_lead_status_next_step_due_at", table_name="leads")
    with op.batch_alter_table("leads") as batch:
        batch.drop_column("next_step_due_at")
        batch.drop_column("next_step")
        batch.drop_column("owner_id")
