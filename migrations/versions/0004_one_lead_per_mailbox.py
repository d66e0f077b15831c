"""one lead per mailbox: normalize stored emails (NFKC, IDNA) and merge leads that collapse into one

Revision ID: 0004
Revises: 0003

Addresses are canonicalized in Python (IDNA has no SQL), written to a scratch table, and everything else
is plain SQL that PostgreSQL and SQLite both run. Per canonical address the lead with the earliest
created_at survives, with its id and masked_ref (confirmation links keep working); the others' bookings
and status history move to it, booking counts are summed, the furthest status wins (a final one over an
open one), and the lead_status_counts triggers follow the status update and the deletes by themselves.
The downgrade keeps the merged leads: they cannot be told apart again.
"""

import sqlalchemy as sa
from alembic import op
from email_validator import EmailNotValidError, validate_email

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

# The group's winning status first: converted and lost are final, so they beat any open status; then the
# furthest along; then the latest move.
WINNING_STATUS_FIRST = (
    "ORDER BY CASE member.status WHEN 'converted' THEN 6 WHEN 'lost' THEN 5 WHEN 'demo_scheduled' THEN 4 "
    "WHEN 'qualified' THEN 3 WHEN 'contacted' THEN 2 ELSE 1 END DESC, member.status_changed_at DESC LIMIT 1"
)


def canonical_email(email: str) -> str:
    """leads.normalize_email as of this revision, frozen here so the migration never changes meaning."""
    address = email.strip()
    try:
        normalized = validate_email(address, check_deliverability=False, allow_smtputf8=False).normalized
    except EmailNotValidError:
        return address.lower()
    local_part, _, domain = normalized.rpartition("@")
    return f"{local_part.lower()}@{domain}"


# Every lead of the survivor's group, the survivor included: `leads` is the survivor being updated.
MEMBERS = "(member.id = leads.id OR member.id IN (SELECT lead_id FROM lead_merges WHERE survivor_id = leads.id))"

MERGE_STATEMENTS = [
    # One row per lead whose canonical address some other lead shares, naming that group's survivor.
    """INSERT INTO lead_merges (lead_id, survivor_id)
       SELECT l.id, (SELECT l2.id FROM leads l2 JOIN email_canonical c2 ON c2.original = l2.email
                     WHERE c2.canonical = c.canonical ORDER BY l2.created_at, l2.id LIMIT 1)
       FROM leads l JOIN email_canonical c ON c.original = l.email
       WHERE c.canonical IN (SELECT c3.canonical FROM leads l3 JOIN email_canonical c3 ON c3.original = l3.email
                             GROUP BY c3.canonical HAVING count(*) > 1)""",
    "DELETE FROM lead_merges WHERE lead_id = survivor_id",
    f"""UPDATE leads SET
         booking_count = booking_count
           + (SELECT sum(member.booking_count) FROM leads member WHERE member.id IN
              (SELECT lead_id FROM lead_merges WHERE survivor_id = leads.id)),
         updated_at = (SELECT max(member.updated_at) FROM leads member WHERE {MEMBERS}),
         confirmation_sent_at = (SELECT max(member.confirmation_sent_at) FROM leads member
                                 WHERE {MEMBERS}),
         status = (SELECT member.status FROM leads member WHERE {MEMBERS} {WINNING_STATUS_FIRST}),
         status_changed_at = (SELECT member.status_changed_at FROM leads member WHERE {MEMBERS}
                              {WINNING_STATUS_FIRST})
       WHERE id IN (SELECT survivor_id FROM lead_merges)""",
    """UPDATE bookings SET lead_id = (SELECT survivor_id FROM lead_merges WHERE lead_merges.lead_id = bookings.lead_id)
       WHERE lead_id IN (SELECT lead_id FROM lead_merges)""",
    """UPDATE lead_status_changes
       SET lead_id = (SELECT survivor_id FROM lead_merges WHERE lead_merges.lead_id = lead_status_changes.lead_id)
       WHERE lead_id IN (SELECT lead_id FROM lead_merges)""",
    "DELETE FROM leads WHERE id IN (SELECT lead_id FROM lead_merges)",
    # Survivors only now: while the others existed, a canonical address could still be taken.
    """UPDATE leads SET email = (SELECT canonical FROM email_canonical WHERE original = leads.email)
       WHERE email IN (SELECT original FROM email_canonical WHERE canonical <> original)""",
    """UPDATE bookings SET email = (SELECT canonical FROM email_canonical WHERE original = bookings.email)
       WHERE email IN (SELECT original FROM email_canonical WHERE canonical <> original)""",
]


def upgrade():
    connection = op.get_bind()
    addresses = set(connection.execute(sa.text("SELECT email FROM leads UNION SELECT email FROM bookings")).scalars())
    email_canonical = op.create_table(
        "email_canonical",
        sa.Column("original", sa.String(254), primary_key=True),
        sa.Column("canonical", sa.String(254), nullable=False),
    )
    op.create_index("idx_email_canonical_canonical", "email_canonical", ["canonical"])
    op.create_table(
        "lead_merges",
        sa.Column("lead_id", sa.Uuid(), primary_key=True),
        sa.Column("survivor_id", sa.Uuid(), nullable=False),
    )
    op.create_index("idx_lead_merges_survivor_id", "lead_merges", ["survivor_id"])
    rows = [{"original": address, "canonical": canonical_email(address)} for address in addresses]
    if rows:
        op.bulk_insert(email_canonical, rows)
        for statement in MERGE_STATEMENTS:
            op.execute(statement)
    op.drop_table("lead_merges")
    op.drop_table("email_canonical")


def downgrade():
    pass
