"""The confirmation mail: one outbox kind (see outbox.py for how every mail is stored, leased, sent once).

A booking from the public form writes a confirmation row in its own transaction; the request dispatches
it after the commit. Past the per-address cap the row is written closed ("capped"), so staff see why no
mail went. The lead's confirmation_sent_at is kept in step with the rows, in the transaction that records
a send: the board, the lead page and the export read it.
"""

import re
import uuid
from datetime import timedelta

import sqlalchemy as sa
from flask import current_app, render_template
from flask_mail import Message
from sqlalchemy.orm import aliased

from . import outbox
from .extensions import db
from .models import Booking, Lead, OutboxMessage

KIND = "confirmation"

# The form must not be a way to flood someone's inbox: past this, bookings are kept but mail no one.
MAX_CONFIRMATIONS_PER_RECIPIENT = 3
RECIPIENT_CAP_WINDOW = timedelta(hours=24)
CAPPED_REASON = "capped"
# What staff see for a capped booking.
CAPPED = "Ikke sendt: for mange bekreftelser til denne adressen siste døgn"
# What a mail client could turn into a link: a scheme, www., an address, a domain name.
LINK_LIKE = re.compile(r"://|www\.|@|\w\.[a-z]{2,}", re.IGNORECASE)


def _cap_reached(recipient: sa.BindParameter) -> sa.ColumnElement[bool]:
    """Whether this address has had its confirmations in the window: those due or sent count; a capped
    (closed) one never went, so it does not."""
    table = OutboxMessage.__table__.c
    recent = (
        sa.select(sa.func.count())
        .where(
            table.kind == KIND,
            table.recipient == recipient,
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


def draft(booking_id: uuid.UUID, lead_id: uuid.UUID, recipient: str) -> outbox.Draft:
    """The booking's confirmation, for outbox.write(), written closed ("capped") past the per-address cap.

    Write it in the booking's transaction in a statement after the lead upsert's: the upsert's row lock
    queues bookings for one address, and in READ COMMITTED a statement's snapshot is taken as it starts,
    so this count sees every booking committed before the lock was granted (inside the upsert's own
    statement it would not, and a burst could slip past the cap).
    """
    return outbox.Draft(KIND, recipient, lead_id=lead_id, booking_id=booking_id, close_when=CAP)


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
    return message_id is not None and outbox.dispatch(message_id)


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
        message_id = outbox.add(KIND, booking.email, lead_id=booking.lead_id, booking_id=booking.id).id
        db.session.commit()
    return outbox.send_now(message_id)


@outbox.on_sent(KIND)
def _mark_lead_confirmed(sent_lead_ids, message_ids, now):
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


def quotable(text: str | None) -> str | None:
    """A stored name fit to greet someone with, or None: a mail from us never carries a link someone typed."""
    if not text or LINK_LIKE.search(text):
        return None
    return text


def build_confirmation(
    recipient: str, masked_ref: str, first_name: str | None, organization_name: str | None
) -> Message:
    """The mail quotes none of the booking's text: whoever knows an address can book with it. The greeting
    uses the lead's stored name and organization, which a stranger's rebooking does not overwrite."""
    context = {
        "first_name": quotable(first_name),
        "organization_name": quotable(organization_name),
        "confirm_url": f"{current_app.config['SITE_URL']}/confirm/{masked_ref}",
    }
    return Message(
        subject="Vi har mottatt demoforespørselen din – Meander",
        recipients=[recipient],
        body=render_template("mail/confirmation.txt", **context),
        html=render_template("mail/confirmation.html", **context),
    )


@outbox.kind(KIND)
def build(rows) -> Message | None:
    """From what the claim handed back: no query."""
    row = rows[0]
    if row.lead_masked_ref is None:
        return None  # erased between enqueue and run
    return build_confirmation(row.recipient, row.lead_masked_ref, row.lead_first_name, row.lead_organization_name)


def send_confirmation(booking_id: str) -> str:
    """What jobs queued before migration 0007 call, with the booking's id: the migrated row has that id."""
    return outbox.send_message(booking_id)
