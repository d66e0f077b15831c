"""Rows as the early migrations stored them, for the tests that run a migration over them: the tables at
those revisions (no models exist for them any more) and leads placed on known days."""

import uuid
from datetime import UTC, datetime

import sqlalchemy as sa

from meander_site.extensions import db

LEADS = sa.table(
    "leads",
    *(sa.column(name, sa.String) for name in ("first_name", "last_name", "email", "organization_name", "role_title")),
    *(sa.column(name, sa.String) for name in ("status", "source", "masked_ref")),
    sa.column("id", sa.Uuid),
    sa.column("booking_count", sa.Integer),
    *(
        sa.column(name, sa.DateTime(timezone=True))
        for name in ("created_at", "updated_at", "status_changed_at", "confirmation_sent_at")
    ),
)
BOOKINGS = sa.table(
    "bookings",
    *(sa.column(name, sa.String) for name in ("first_name", "last_name", "email", "organization_name", "role_title")),
    sa.column("id", sa.Uuid),
    sa.column("lead_id", sa.Uuid),
    sa.column("created_at", sa.DateTime(timezone=True)),
    sa.column("confirmation_attempts", sa.Integer),
)
STATUS_CHANGES = sa.table(
    "lead_status_changes",
    sa.column("id", sa.Uuid),
    sa.column("lead_id", sa.Uuid),
    sa.column("from_status", sa.String),
    sa.column("to_status", sa.String),
    sa.column("changed_at", sa.DateTime(timezone=True)),
)


def day(n: int, hour: int = 9) -> datetime:
    return datetime(2026, 1, n, hour, tzinfo=UTC)


def insert_lead(email: str, created: int, status: str = "new", moved: int | None = None, bookings: int = 1) -> dict:
    """A lead as 0002 stored it, with its bookings (and its one move, when it has moved)."""
    lead = {
        "id": uuid.uuid4(),
        "email": email,
        "status": status,
        "source": "website",
        "masked_ref": uuid.uuid4().hex[:16],
        "booking_count": bookings,
        "first_name": "Kari",
        "last_name": "Nordmann",
        "organization_name": "LHL",
        "role_title": "Leder",
        "created_at": day(created),
        "updated_at": day(moved or created, 10),
        "status_changed_at": day(moved or created),
        "confirmation_sent_at": day(created, 11),
    }
    db.session.execute(sa.insert(LEADS), lead)
    for n in range(bookings):
        db.session.execute(
            sa.insert(BOOKINGS),
            {
                "id": uuid.uuid4(),
                "lead_id": lead["id"],
                "email": email,
                "created_at": day(created, 9 + n),
                "confirmation_attempts": 1,
                **{name: lead[name] for name in ("first_name", "last_name", "organization_name", "role_title")},
            },
        )
    if moved:
        db.session.execute(
            sa.insert(STATUS_CHANGES),
            {
                "id": uuid.uuid4(),
                "lead_id": lead["id"],
                "from_status": "new",
                "to_status": status,
                "changed_at": day(moved),
            },
        )
    return lead
