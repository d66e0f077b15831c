"""the report reads a period by the start of each lead's pass from one covering index, and its value figures from
covering indexes of their own; the board reads each column's first cards and the shown cards' unsent mail from
indexes in that order

Revision ID: 0017
Revises: 0016

Since 0016 the report's period is «the current pass began in it»: COALESCE(pass_started_at, created_at). Written as
an OR of the two cases, PostgreSQL combined idx_lead_report (created_at) with idx_lead_pass_started_at_on_leads in a
bitmap and read the table for every lead of the period, or scanned the table: no index held pass_started_at, nor the
channel, deal and demo columns the value figures read. Now the period is one range on an index of that expression,
holding every column the report reads of a lead of the period (an index-only scan on PostgreSQL; SQLite ignores
INCLUDE and keeps an index on the expression). The won value (by when it was won) and the open pipeline (valued
leads by stage) get covering indexes of their own. The weekly counts keep a slim index on created_at.

The board: «Ny» reads by the first-contact clock, which no index held (every lead in «Ny» was read and sorted for
the first 51, and read again for the count of those past their time); «Kunde» and «Tapt» read newest first, by created_at and then the id, now both in the index; and the
shown cards' unsent confirmations were found by a scan of the whole outbox, now by an index of unsent mail only.
"""

import sqlalchemy as sa
from alembic import op

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None

PASS_START = "COALESCE(pass_started_at, created_at)"
FILTER_COLUMNS = ("source", "first_utm_campaign", "organization_size", "owner_id")
PERIOD_COLUMNS = (
    "id",
    "created_at",
    "pass_started_at",
    "status",
    *FILTER_COLUMNS,
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
    "first_channel",
    "latest_channel",
    "latest_utm_campaign",
    "demo_at",
    "demo_cancelled_at",
    "demo_outcome",
    "deal_value",
)
WON_COLUMNS = ("status", *FILTER_COLUMNS, "first_channel", "latest_channel", "deal_value")
OPEN_VALUE_COLUMNS = (*FILTER_COLUMNS, "first_channel", "latest_channel", "estimated_value", "expected_close_month")
ARRIVAL_COLUMNS = ("id", "status", *FILTER_COLUMNS)

# 0010's idx_lead_report, for the downgrade.
OLD_REPORT_COLUMNS = (
    "id",
    "status",
    *FILTER_COLUMNS,
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


def upgrade():
    op.create_index(
        "idx_lead_report_pass", "leads", [sa.text(PASS_START)], postgresql_include=list(PERIOD_COLUMNS)
    )
    op.create_index("idx_lead_arrivals", "leads", ["created_at"], postgresql_include=list(ARRIVAL_COLUMNS))
    op.create_index(
        "idx_lead_won",
        "leads",
        ["converted_at"],
        postgresql_include=list(WON_COLUMNS),
        postgresql_where=sa.text("converted_at IS NOT NULL"),
        sqlite_where=sa.text("converted_at IS NOT NULL"),
    )
    op.create_index(
        "idx_lead_open_value",
        "leads",
        ["status"],
        postgresql_include=list(OPEN_VALUE_COLUMNS),
        postgresql_where=sa.text("estimated_value IS NOT NULL"),
        sqlite_where=sa.text("estimated_value IS NOT NULL"),
    )
    op.drop_index("idx_lead_report", table_name="leads")
    op.drop_index("idx_lead_pass_started_at_on_leads", table_name="leads")
    op.drop_index("idx_lead_converted_at", table_name="leads")

    op.create_index(
        "idx_lead_status_first_contact_due_at",
        "leads",
        ["status", "first_contact_due_at", "id"],
        postgresql_include=["first_contact_at"],
    )
    op.drop_index("idx_lead_status_created_at", table_name="leads")
    op.create_index("idx_lead_status_created_at", "leads", ["status", "created_at", "id"])
    op.create_index(
        "idx_outbox_unsent_lead_id",
        "outbox_messages",
        ["lead_id"],
        postgresql_where=sa.text("sent_at IS NULL"),
        sqlite_where=sa.text("sent_at IS NULL"),
    )


def downgrade():
    op.drop_index("idx_outbox_unsent_lead_id", table_name="outbox_messages")
    op.drop_index("idx_lead_status_created_at", table_name="leads")
    op.create_index("idx_lead_status_created_at", "leads", ["status", "created_at"])
    op.drop_index("idx_lead_status_first_contact_due_at", table_name="leads")
    op.create_index("idx_lead_converted_at", "leads", ["converted_at"])
    op.create_index("idx_lead_pass_started_at_on_leads", "leads", ["pass_started_at"])
    op.create_index("idx_lead_report", "leads", ["created_at"], postgresql_include=list(OLD_REPORT_COLUMNS))
    op.drop_index("idx_lead_open_value", table_name="leads")
    op.drop_index("idx_lead_won", table_name="leads")
    op.drop_index("idx_lead_arrivals", table_name="leads")
    op.drop_index("idx_lead_report_pass", table_name="leads")
