"""What a lead's page shows of its bookings: each submission, what it changed, and its confirmation's state."""

import uuid
from dataclasses import dataclass

import sqlalchemy as sa

from ..booking import confirmation_mail
from ..core.clock import utcnow
from ..extensions import db
from ..leads.models import CONTACT_FIELDS, Booking
from ..leads.records import latest_booking, mark_worked
from ..mail.models import OutboxMessage


@dataclass
class BookingWithChanges:
    booking: Booking
    changed: dict[str, tuple[str | None, str | None]]  # field -> (before, after)
    mail: OutboxMessage | None = None  # its confirmation, if one was ordered

    @property
    def mail_state(self) -> confirmation_mail.MailState:
        return confirmation_mail.state_of(self.mail)

    @property
    def mail_note(self) -> str | None:
        """Why a capped confirmation did not go, in staff's words."""
        return confirmation_mail.CAPPED if confirmation_mail.is_capped(self.mail) else None


def booking_history(lead_id: uuid.UUID) -> list[BookingWithChanges]:
    """Every submission, each with what it changed compared with the one before."""
    bookings = list(
        db.session.execute(
            sa.select(Booking).where(Booking.lead_id == lead_id).order_by(Booking.created_at, Booking.id)
        ).scalars()
    )
    mails = confirmation_mail.messages_for([booking.id for booking in bookings])
    history, previous = [], None
    for booking in bookings:
        changed = {}
        if previous is not None:
            for name in CONTACT_FIELDS:
                before, after = getattr(previous, name), getattr(booking, name)
                if before != after:
                    changed[name] = (before, after)
        history.append(BookingWithChanges(booking=booking, changed=changed, mail=mails.get(booking.id)))
        previous = booking
    return list(reversed(history))


def confirmation_to_resend(lead_id: uuid.UUID) -> Booking | None:
    """What «Send bekreftelsen nå» sends: the latest booking's confirmation, while it is unsent."""
    booking = latest_booking(lead_id)
    if booking is None:
        return None
    mail = confirmation_mail.message_for(booking.id)
    return booking if mail is None or mail.sent_at is None else None


def resend_confirmation(lead_id: uuid.UUID) -> bool | None:
    """«Send bekreftelsen nå», which works the lead like any staff action: True when it goes now, False when the
    queue does not answer (it goes by itself later), None when it has already been sent."""
    booking = confirmation_to_resend(lead_id)
    mark_worked(lead_id, utcnow())
    db.session.commit()
    if booking is None:
        return None
    return confirmation_mail.send_now(booking.id)
