"""The confirmation mail: one outbox kind (mail/outbox.py stores it; worker/jobs.py leases and sends it once).

A booking from the public form writes a confirmation row in its own transaction; the request dispatches
it after the commit. Past the per-address cap the row is written closed ("capped"), so staff see why no
mail went. The lead's confirmation_sent_at is kept in step with the rows, in the transaction that records
a send: the board, the lead page and the export read it.
"""

import enum
import json
import uuid
from collections.abc import Mapping
from datetime import timedelta

import sqlalchemy as sa
from flask import render_template
from flask_mail import Message
from sqlalchemy.orm import aliased

from ..core.links import external_url
from ..core.text import quotable
from ..extensions import db
from ..leads.models import Booking, Lead
from ..mail import dispatch, outbox, sweep
from ..mail.kind import Kind
from ..mail.models import OutboxMessage

KIND = "confirmation"

# The form must not be a way to flood someone's inbox: past this, bookings are kept but mail no one.
MAX_CONFIRMATIONS_PER_RECIPIENT = 3
RECIPIENT_CAP_WINDOW = timedelta(hours=24)
CAPPED_REASON = "capped"
# What staff see for a capped booking.
CAPPED = "Ikke sendt: for mange bekreftelser til denne adressen siste døgn"


def _cap_reached(row: Mapping[str, sa.BindParameter]) -> sa.ColumnElement[bool]:
    """Whether this address has had its confirmations in the window: those due or sent count; a capped
    (closed) one never went, so it does not."""
    table = OutboxMessage.__table__.c
    recent = (
        sa.select(sa.func.count())
        .where(
            table.kind == KIND,
            table.recipient == row["recipient"],
            table.created_at > sa.bindparam("cap_window_start", type_=table.created_at.type),
            sa.or_(table.sent_at.is_not(None), table.closed_at.is_(None)),
        )
        .scalar_subquery()
    )
    return recent >= MAX_CONFIRMATIONS_PER_RECIPIENT


CAP = outbox.CloseWhen(
    reason=CAPPED_REASON,
    condition=_cap_reached,
    params=lambda now: {"cap_window_start": now - RECIPIENT_CAP_WINDOW},
)


def draft(booking_id: uuid.UUID, lead_id: uuid.UUID, recipient: str, kept_demo: bool = False) -> outbox.Draft:
    """The booking's confirmation, for outbox.write(), written closed ("capped") past the per-address cap.

    Write it in the booking's transaction in a statement after the lead upsert's: the upsert's row lock
    queues bookings for one address, and in READ COMMITTED a statement's snapshot is taken as it starts,
    so this count sees every booking committed before the lock was granted (inside the upsert's own
    statement it would not, and a burst could slip past the cap).
    """
    payload = {"kept_demo": True} if kept_demo else None
    return outbox.Draft(
        CONFIRMATION, recipient, lead_id=lead_id, booking_id=booking_id, payload=payload, close_when=CAP
    )


class MailState(str, enum.Enum):
    """Where a confirmation stands: one vocabulary for the card, the lead page and each booking's history."""

    SENT = "sent"
    PENDING = "pending"  # ordered, waiting for the worker
    FAILING = "failing"  # tried and failed; retried automatically
    CAPPED = "capped"  # never to be sent: too many to one address (staff may still send it)
    NONE = "none"  # not ordered (a lead staff typed in without one), or closed for another reason


def mail_state(*, sent: bool, waiting: bool, failed: bool, capped: bool) -> MailState:
    """The state from what the outbox rows say: one still waiting outranks one capped, which outranks one sent."""
    if waiting:
        return MailState.FAILING if failed else MailState.PENDING
    if capped:
        return MailState.CAPPED
    return MailState.SENT if sent else MailState.NONE


def state_of(message: OutboxMessage | None) -> MailState:
    """One confirmation's state, from its outbox row (None: it was never ordered)."""
    if message is None:
        return MailState.NONE
    return mail_state(
        sent=message.sent_at is not None,
        waiting=message.sent_at is None and message.closed_at is None,
        failed=bool(message.attempts and message.last_error),
        capped=is_capped(message),
    )


def is_capped(message: OutboxMessage | None) -> bool:
    return message is not None and message.sent_at is None and message.closed_reason == CAPPED_REASON


def message_for(booking_id: uuid.UUID) -> OutboxMessage | None:
    return db.session.execute(
        sa.select(OutboxMessage).where(OutboxMessage.kind == KIND, OutboxMessage.booking_id == booking_id)
    ).scalar_one_or_none()


def messages_for(booking_ids: list[uuid.UUID]) -> dict[uuid.UUID, OutboxMessage]:
    """Each booking's confirmation row, in one query."""
    if not booking_ids:
        return {}
    rows = db.session.execute(
        sa.select(OutboxMessage).where(OutboxMessage.kind == KIND, OutboxMessage.booking_id.in_(booking_ids))
    ).scalars()
    return {message.booking_id: message for message in rows}


def dispatch_confirmation(booking_id: uuid.UUID) -> bool:
    """Enqueue a committed booking's confirmation (operators and benchmarks; the booking path dispatches
    the row it wrote). Never raises."""
    message_id = db.session.scalar(
        sa.select(OutboxMessage.id).where(
            OutboxMessage.kind == KIND,
            OutboxMessage.booking_id == booking_id,
            OutboxMessage.sent_at.is_(None),
            OutboxMessage.closed_at.is_(None),
        )
    )
    db.session.rollback()
    return message_id is not None and dispatch.dispatch(message_id)


def send_now(booking_id: uuid.UUID) -> bool:
    """Staff's «Send bekreftelsen nå»: the booking's confirmation goes now, whatever its backoff or the cap
    said. A booking that never had one (a lead staff typed in without it) gets its row now."""
    message_id = db.session.scalar(
        sa.select(OutboxMessage.id).where(OutboxMessage.kind == KIND, OutboxMessage.booking_id == booking_id)
    )
    if message_id is None:
        booking = db.session.get(Booking, booking_id)
        if booking is None:
            return False
        message_id = outbox.add(CONFIRMATION, booking.email, lead_id=booking.lead_id, booking_id=booking.id).id
        db.session.commit()
    return sweep.send_now(message_id)


def mark_lead_confirmed(sent_lead_ids, message_ids, now):
    """The lead counts as confirmed once none of its confirmations waits (a capped one waits for none)."""
    other = aliased(OutboxMessage)
    still_waiting = (
        sa.select(other.id)
        .where(
            other.lead_id == Lead.id,
            other.kind == KIND,
            other.id.not_in(message_ids),
            other.sent_at.is_(None),
            other.closed_at.is_(None),
        )
        .exists()
    )
    return (
        sa.update(Lead.__table__)
        .where(Lead.__table__.c.id.in_(sent_lead_ids), ~still_waiting)
        .values(confirmation_sent_at=now, updated_at=now)
    )


def build_confirmation(
    recipient: str, masked_ref: str, first_name: str | None, organization_name: str | None, kept_demo: bool = False
) -> Message:
    """The mail quotes none of the booking's text: whoever knows an address can book with it. The greeting
    uses the lead's stored name and organization, which a stranger's rebooking does not overwrite."""
    context = {
        "first_name": quotable(first_name),
        "organization_name": quotable(organization_name),
        "confirm_url": external_url("booking.confirmation", masked_ref=masked_ref),
        # A slot chosen while a demo is already booked: the booked one is kept, and the mail says so.
        "kept_demo": kept_demo,
    }
    return Message(
        subject="Vi har mottatt demoforespørselen din – Meander",
        recipients=[recipient],
        body=render_template("mail/confirmation.txt", **context),
        html=render_template("mail/confirmation.html", **context),
    )


def build(rows) -> Message | None:
    """From what the claim handed back: no query."""
    row = rows[0]
    if row.lead_masked_ref is None:
        return None  # erased between enqueue and run
    kept_demo = bool(json.loads(row.payload or "{}").get("kept_demo"))
    return build_confirmation(
        row.recipient, row.lead_masked_ref, row.lead_first_name, row.lead_organization_name, kept_demo
    )


CONFIRMATION = Kind(KIND, build, on_sent=mark_lead_confirmed)
