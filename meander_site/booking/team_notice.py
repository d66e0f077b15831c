"""Who hears of a booking from the website: its owner (assignment.pool chose one) and everyone who chose «Alle nye
leads» in their settings. One outbox row per booking and recipient, and rows for one recipient that arrive within a
minute of each other go out as one mail."""

import uuid
from dataclasses import dataclass
from datetime import timedelta

import sqlalchemy as sa
from flask import render_template
from flask_mail import Message

from ..accounts.models import User
from ..accounts.users import TEAM_RECIPIENT, notified_staff
from ..core.links import external_url
from ..extensions import db
from ..leads import passes
from ..leads.models import Booking, Lead
from ..leads.statuses import LeadStatus
from ..mail import outbox
from ..mail.kind import Kind

NEW_LEADS_KIND = "new_leads"


COMBINE_WINDOW = timedelta(minutes=1)


def new_booking_notice(booking_id: uuid.UUID, lead_id: uuid.UUID) -> outbox.Draft:
    """For outbox.write() in the booking's transaction: the team hears of it within about a minute."""
    return outbox.Draft(NEW_LEADS, TEAM_RECIPIENT, lead_id=lead_id, booking_id=booking_id, send_after=COMBINE_WINDOW)


def owner_notice(booking_id: uuid.UUID, lead_id: uuid.UUID, owner_id: uuid.UUID, owner_email: str) -> outbox.Draft:
    """The new owner hears of their lead at once (their first-contact clock is running)."""
    return outbox.Draft(NEW_LEADS, owner_email, lead_id=lead_id, booking_id=booking_id, user_id=owner_id)


@dataclass
class BookingNotice:
    booking: Booking
    lead: Lead
    is_rebooking: bool

    @property
    def url(self) -> str:
        return external_url("pipeline.lead_page", lead_id=self.lead.id)

    @property
    def reopened_the_lead(self) -> bool:
        """This booking started the lead's current pass (leads/passes.py: the reopening takes the booking's time)."""
        return self.lead.pass_number > 1 and self.lead.pass_started_at == self.booking.created_at

    @property
    def headline(self) -> str:
        if self.reopened_the_lead:
            return passes.REOPENED_BY_BOOKING
        if self.is_rebooking and self.lead.status == LeadStatus.CONVERTED.value:
            return passes.EXISTING_CUSTOMER_BOOKED
        return "Booket igjen" if self.is_rebooking else "Ny lead"


def build_new_leads(messages: list[sa.Row]) -> Message | None:
    to_owner = messages[0].recipient != TEAM_RECIPIENT
    if to_owner:
        owner = db.session.get(User, messages[0].user_id) if messages[0].user_id else None
        recipients = [owner.email] if owner is not None and owner.is_active else []
    else:
        recipients = [user.email for user in notified_staff()]
    booking_ids = [message.booking_id for message in messages if message.booking_id]
    rows = (
        db.session.execute(
            sa.select(Booking, Lead)
            .join(Lead, Booking.lead_id == Lead.id)
            .where(Booking.id.in_(booking_ids))
            .order_by(Booking.created_at)
        ).all()
        if booking_ids
        else []
    )
    if not to_owner:
        # An owner hears of their own leads in a mail of their own.
        owners = {lead.owner_id for _, lead in rows}
        recipients = [user.email for user in notified_staff() if len(owners) > 1 or user.id not in owners]
    if not recipients or not rows:
        return None  # nobody wants it, or every lead it was about has been erased
    first_booking_ids = _first_booking_ids([lead.id for _, lead in rows])
    notices = [
        BookingNotice(booking=booking, lead=lead, is_rebooking=booking.id != first_booking_ids.get(lead.id))
        for booking, lead in rows
    ]
    # The owner of a lost lead booking again, or of a customer, reads it in their own mail's headline: the
    # booking's assignment gives a known lead to its owner (assignment.pool), who gets a mail of their own.
    if len(notices) == 1:
        notice = notices[0]
        if to_owner and notice.headline == "Ny lead":
            kind_text = "Din nye lead"
        elif notice.headline == "Booket igjen":
            kind_text = "Ny booking fra kjent lead"
        else:
            kind_text = notice.headline
        subject = f"{kind_text}: {notice.lead.organization_name}"
    else:
        subject = f"{len(notices)} nye bookinger på demo"
    context = {"notices": notices, "board_url": external_url("pipeline.board"), "to_owner": to_owner}
    mail = Message(
        subject=subject,
        recipients=recipients,
        body=render_template("mail/new_leads.txt", **context),
        html=render_template("mail/new_leads.html", **context),
    )
    if len(notices) == 1:
        # A reply goes straight to the prospect. With several prospects in one mail, nobody gets a reply-all.
        mail.reply_to = notices[0].booking.email
    return mail


def _first_booking_ids(lead_ids: list[uuid.UUID]) -> dict[uuid.UUID, uuid.UUID]:
    first = (
        sa.select(Booking.lead_id, sa.func.min(Booking.created_at).label("created_at"))
        .where(Booking.lead_id.in_(lead_ids))
        .group_by(Booking.lead_id)
        .subquery()
    )
    rows = db.session.execute(
        sa.select(Booking.lead_id, Booking.id).join(
            first, sa.and_(Booking.lead_id == first.c.lead_id, Booking.created_at == first.c.created_at)
        )
    )
    return {lead_id: booking_id for lead_id, booking_id in rows}


NEW_LEADS = Kind(NEW_LEADS_KIND, build_new_leads, batched=True)
