"""Storing a booking: one atomic INSERT … ON CONFLICT (email) per dialect, so a known email counts the
booking on its lead even under concurrent submissions, and the booking is kept as typed.

The rule for what a rebooking may overwrite lives here, in the statement itself (see _upsert_statement).
"""

import functools
import uuid
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from ..extensions import db
from . import attribution
from .channel import channel_of
from .models import CONTACT_FIELDS, Booking, Lead, LeadEvent, LeadSource, new_masked_ref
from .next_step import FIRST_CONTACT
from .records import not_yet_worked
from .statuses import LeadStatus
from .validation import ContactDetails

# The lead columns a booking writes from its parameters (same names); the rest are fixed in the statement.
LEAD_PARAMETERS = (
    "id",
    "masked_ref",
    "source",
    "ip_address",
    "created_at",
    "updated_at",
    "status_changed_at",
    "next_step_due_at",
    "first_contact_due_at",
    "first_contact_reminder_at",
    "owner_id",
    "staff_edited_at",
    *(f"{touch}_{name}" for touch in ("first", "latest") for name in attribution.TOUCH_FIELDS),
    "first_channel",
    "latest_channel",
    *CONTACT_FIELDS,
)
BOOKING_PARAMETERS = ("ip_address", "created_at", *CONTACT_FIELDS, *attribution.TOUCH_FIELDS)


def _parameter(table: sa.Table, name: str) -> sa.BindParameter:
    # Typed: psycopg binds with a cast, so a NULL inside a CTE or SELECT still has its column's type.
    return sa.bindparam(name, type_=table.c[name].type)


def _upsert_statement(dialect: str, by_staff: bool = False):
    """INSERT … ON CONFLICT (email) DO UPDATE: one atomic statement, so concurrent bookings never race.

    A public rebooking overwrites the lead's details only while no one on staff has worked the lead
    (records.not_yet_worked: still «Ny», and no staff action of any kind); otherwise the lead keeps them
    and points at the booking (:booking_id) whose details differ, for staff to decide. Staff typing a lead
    in always write their details. Every CASE reads the row as it stood under the conflict's row lock, so
    the choice is made inside the same statement.
    """
    insert = {"postgresql": postgresql.insert, "sqlite": sqlite.insert}[dialect]
    table = Lead.__table__
    leads = table.c
    statement = insert(Lead.__table__).values(
        {
            **{name: _parameter(table, name) for name in LEAD_PARAMETERS},
            "status": LeadStatus.NEW.value,
            "booking_count": 1,
            # A new lead's first step: the confirmation promises a call within one business day.
            "next_step": FIRST_CONTACT,
            "newer_details_booking_id": None,
            # Stated, not left to the columns' Python defaults: inside a WITH beside other INSERTs (PostgreSQL's
            # booking_statements) SQLAlchemy does not fill those in.
            "funnel_rank": 0,
            "demo_sequence": 0,
        }
    )
    excluded = statement.excluded
    if by_staff:
        on_rebooking = {field: excluded[field] for field in CONTACT_FIELDS}
        on_rebooking.update(
            ip_address=excluded.ip_address, staff_edited_at=excluded.staff_edited_at, newer_details_booking_id=None
        )
    else:
        may_overwrite = not_yet_worked(leads)
        on_rebooking = {
            field: sa.case((may_overwrite, excluded[field]), else_=leads[field])
            for field in (*CONTACT_FIELDS, "ip_address")
        }
        details_differ = sa.or_(*(leads[field].is_distinct_from(excluded[field]) for field in CONTACT_FIELDS))
        on_rebooking["newer_details_booking_id"] = sa.case(
            (may_overwrite, sa.null()),
            (details_differ, sa.bindparam("booking_id", type_=sa.Uuid)),
            else_=sa.null(),
        )
    # First touch stays as the first booking left it; a booking that came with a touch becomes the latest.
    came_with_touch = sa.or_(*(excluded[f"latest_{name}"].is_not(None) for name in attribution.TOUCH_FIELDS))
    on_rebooking.update(
        {
            f"latest_{name}": sa.case((came_with_touch, excluded[f"latest_{name}"]), else_=leads[f"latest_{name}"])
            for name in (*attribution.TOUCH_FIELDS, "channel")
        }
    )
    on_rebooking.update(
        # Assignment (assignment/pool.py) chose the earlier owner, or someone else when they are away or gone.
        owner_id=sa.func.coalesce(excluded.owner_id, leads.owner_id),
        updated_at=excluded.updated_at,
        booking_count=leads.booking_count + 1,
        # The new booking's confirmation has not gone out yet.
        confirmation_sent_at=None,
    )
    return statement.on_conflict_do_update(index_elements=[leads.email], set_=on_rebooking).returning(
        leads.id, leads.masked_ref, leads.booking_count, leads.status
    )


def _booking_insert(lead_id: sa.ColumnElement):
    """INSERT INTO bookings … SELECT: the booking as submitted, for the lead `lead_id` names."""
    table = Booking.__table__
    columns = ["id", "lead_id", *BOOKING_PARAMETERS]
    values = [sa.bindparam("booking_id", type_=sa.Uuid), lead_id]
    return sa.insert(table).from_select(
        columns, sa.select(*values, *(_parameter(table, name) for name in BOOKING_PARAMETERS))
    )


ASSIGNED_EVENT = "assigned"


def _assignment_event_insert(lead_id: sa.ColumnElement):
    """INSERT INTO lead_events … SELECT: the timeline's «Tildelt Kari (rundgang)» (:assignment_detail), when the
    booking's lead was given an owner (assignment/pool.py); nothing when the detail is NULL."""
    table = LeadEvent.__table__
    detail = sa.bindparam("assignment_detail", type_=table.c.detail.type)
    values = [
        sa.bindparam("event_id", type_=sa.Uuid),
        lead_id,
        sa.literal(ASSIGNED_EVENT),
        _parameter(Lead.__table__, "created_at").label("at"),
        detail,
    ]
    return sa.insert(table).from_select(
        ["id", "lead_id", "kind", "at", "detail"], sa.select(*values).where(detail.is_not(None))
    )


@functools.cache
def booking_statements(dialect: str, by_staff: bool = False) -> tuple:
    """The statements that store a booking, built once per dialect: constructing them per request cost
    more CPU than running them. The first returns (lead id, masked_ref, booking_count, status).

    PostgreSQL: one statement, the upsert, the booking insert and the assignment's timeline line in one CTE.
    SQLite has no INSERT in a WITH, so there the others follow with the lead's id (:lead_id) in the same
    transaction (the timeline line only when there is one).
    """
    upsert = _upsert_statement(dialect, by_staff)
    if dialect != "postgresql":
        lead_id = sa.bindparam("lead_id", type_=sa.Uuid)
        return upsert, _booking_insert(lead_id), _assignment_event_insert(lead_id)
    lead = upsert.cte("lead")
    booking = _booking_insert(lead.c.id).cte("booking")
    event = _assignment_event_insert(lead.c.id).cte("assignment_event")
    return (
        sa.select(lead.c.id, lead.c.masked_ref, lead.c.booking_count, lead.c.status).add_cte(booking).add_cte(event),
    )


@dataclass(frozen=True)
class StoredBooking:
    lead_id: uuid.UUID
    booking_id: uuid.UUID
    masked_ref: str
    booking_count: int
    status: str = LeadStatus.NEW.value  # the lead's, as the booking left it (a rebooking changes no status)


def store_booking(
    details: ContactDetails,
    *,
    source: LeadSource,
    ip_address: str | None,
    touch: attribution.Touch,
    first_contact_due_at: datetime,
    by_staff: bool,
    now: datetime,
    next_step_due_at: datetime | None = None,
    first_contact_reminder_at: datetime | None = None,
    owner_id: uuid.UUID | None = None,
    assignment_detail: str | None = None,
) -> StoredBooking:
    """The lead created, or the booking counted on the lead with this email; the booking kept as typed. In the
    caller's transaction: on PostgreSQL one statement, on SQLite two."""
    booking_id = uuid.uuid4()
    parameters = {
        "id": uuid.uuid4(),
        "masked_ref": new_masked_ref(),
        "source": source.value,
        "ip_address": ip_address,
        "created_at": now,
        "updated_at": now,
        "status_changed_at": now,
        "next_step_due_at": next_step_due_at or first_contact_due_at,
        "first_contact_due_at": first_contact_due_at,
        "first_contact_reminder_at": first_contact_reminder_at,
        "owner_id": owner_id,
        **touch.prefixed("first_"),
        **touch.prefixed("latest_"),
        "first_channel": channel_of(touch),
        "latest_channel": channel_of(touch),
        **touch.as_dict(),
        "staff_edited_at": now if by_staff else None,
        "booking_id": booking_id,
        "event_id": uuid.uuid4(),
        "assignment_detail": assignment_detail,
        **details.as_dict(),
    }
    store_lead, *store_the_booking = booking_statements(db.session.get_bind().dialect.name, by_staff)
    lead_id, masked_ref, booking_count, status = db.session.execute(store_lead, parameters).one()
    for statement in store_the_booking[: None if assignment_detail else 1]:
        db.session.execute(statement, {**parameters, "lead_id": lead_id})
    return StoredBooking(
        lead_id=lead_id, booking_id=booking_id, masked_ref=masked_ref, booking_count=booking_count, status=status
    )
