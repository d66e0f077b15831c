"""speed to lead: the assignment pool (who takes new leads, their weight and place in the rotation), business
hours and the first-contact target, the first-contact clock's reminder time and escalation stage, and the chat
webhook

Revision ID: 0014
Revises: 0013
"""

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None

USER_COLUMNS = (
    sa.Column("takes_new_leads", sa.Boolean(), nullable=False, server_default=sa.true()),
    sa.Column("assignment_weight_percent", sa.Integer(), nullable=False, server_default="100"),
    sa.Column("assignment_pass", sa.Float(), nullable=False, server_default="0"),
    sa.Column("last_assigned_at", sa.DateTime(timezone=True), nullable=True, server_default=sa.null()),
)
SETTINGS_COLUMNS = (
    sa.Column("opens_at_minute", sa.Integer(), nullable=False, server_default="480"),
    sa.Column("closes_at_minute", sa.Integer(), nullable=False, server_default="960"),
    sa.Column("first_contact_target_minutes", sa.Integer(), nullable=False, server_default="120"),
    sa.Column("hand_over_when_expired", sa.Boolean(), nullable=False, server_default=sa.false()),
    sa.Column("chat_webhook_url", sa.String(), nullable=True, server_default=sa.null()),  # sealed (core/sealed.py)
    sa.Column("chat_webhook_error", sa.String(length=300), nullable=True, server_default=sa.null()),
)
LEAD_COLUMNS = (
    sa.Column("first_contact_reminder_at", sa.DateTime(timezone=True), nullable=True, server_default=sa.null()),
    sa.Column("escalation_stage", sa.SmallInteger(), nullable=False, server_default="0"),
)


def upgrade():
    # Server defaults only (the models too, NULL included): the older migrations' tests insert through these models.
    # Plain ADD COLUMN with server defaults, no batch copy (as in 0009 and 0013).
    for column in USER_COLUMNS:
        op.add_column("users", column)
    for column in SETTINGS_COLUMNS:
        op.add_column("team_settings", column)
    for column in LEAD_COLUMNS:
        op.add_column("leads", column)
    # The worker's escalation reads open «Ny» leads whose reminder or deadline has come.
    op.create_index("idx_lead_escalation", "leads", ["escalation_stage", "first_contact_reminder_at"])


def downgrade():
    op.drop_index("idx_lead_escalation", table_name="leads")
    for table, columns in (("leads", LEAD_COLUMNS), ("team_settings", SETTINGS_COLUMNS), ("users", USER_COLUMNS)):
        with op.batch_alter_table(table) as batch:
            for column in reversed(columns):
                batch.drop_column(column.name)
