"""The story of a booking, top to bottom: the lead is created or counted, the booking kept as typed, the mails
written in the same transaction, and a job asked to send them once it has committed. Knows nothing of HTTP."""

import logging
import uuid
from dataclasses import dataclass
from datetime import datetime

from .. import business_hours
from ..accounts import team_settings
from ..assignment import chat, pool
from ..core.clock import utcnow
from ..extensions import db
from ..leads import attribution, passes, upsert
from ..leads.models import LeadSource
from ..leads.next_step import first_step
from ..leads.statuses import LeadStatus
from ..leads.validation import ContactDetails
from ..mail import dispatch, outbox
from ..slots import claims
from ..slots import rules as slot_rules
from . import confirmation_mail, team_notice

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BookingResult:
    lead_id: uuid.UUID
    booking_id: uuid.UUID
    masked_ref: str
    booking_count: int
    mail_due: bool = False
    # With a slot: booked, taken a moment ago, kept (a future demo already), or closed (a won or lost lead).
    slot_outcome: claims.Outcome | None = None

    @property
    def is_rebooking(self) -> bool:
        return self.booking_count > 1


def book_demo(
    details: ContactDetails,
    ip_address: str | None,
    source: LeadSource = LeadSource.WEBSITE,
    with_confirmation: bool = True,
    by_staff: bool = False,
    touch: attribution.Touch = attribution.NO_TOUCH,
    slot: datetime | None = None,
) -> BookingResult:
    """Create the lead, or count the booking on the one with this email; keep the submission; mail about it.

    Commits. Status, masked_ref and created_at of an existing lead are never touched, nor its details once it
    has left `new` or staff have touched it (leads.upsert). Without a confirmation (a lead staff typed in), or
    past the per-recipient cap, the booking's confirmation is never due, so no job or sweep sends it.

    A website booking's lead gets its owner in the same transaction (assignment.pool), with the first-contact
    clock in business time (business_hours), a line in its timeline and a mail to the owner.

    With a `slot` (a start time the form offered), the same transaction books the demo (slots.claims.book_slot):
    the invitation then replaces the confirmation, and the demo is the first contact (the status change's
    trigger records it). A slot taken a moment ago leaves the booking as without one.
    """
    now = utcnow()
    try:
        if slot:
            # Bookings of one day take turns from before the lead is written: a rebooking (no new row) that held the
            # day's lock while waiting for the status counts, which a new lead held while waiting for the day's
            # lock, was a deadlock.
            claims.lock_day(slot)
        # A lead from the website gets an owner at once: its earlier owner, or the pool's next member.
        if by_staff:
            owner, settings = None, team_settings.current()
        else:
            owner, settings = pool.pick_for_booking(db.session, details.email, now)
        hours, target = settings.business_hours, settings.first_contact_target
        stored = upsert.store_booking(
            details,
            source=source,
            ip_address=ip_address,
            touch=touch,
            first_contact_due_at=business_hours.first_contact_due(now, target, hours),
            first_contact_reminder_at=business_hours.halfway(now, target, hours),
            next_step_due_at=first_step(now).due_at,
            owner_id=owner.user_id if owner else None,
            assignment_detail=owner.timeline_text if owner else None,
            by_staff=by_staff,
            now=now,
        )
        if stored.booking_count > 1 and stored.status == LeadStatus.LOST.value:
            # A lost lead booking again starts a new pass (leads/passes.py); a «Kunde» stays «Kunde». The upsert
            # returned the status under the lead's row lock: the lead is read again only when it is lost.
            passes.reopen(stored.lead_id, now)
        slot_result = None
        if slot:
            # A lead this booking created is known without reading it back: new, with the owner just chosen.
            new_lead = (
                claims.SlotLead(details.email, LeadStatus.NEW.value, owner.user_id if owner else None, is_new=True)
                if stored.booking_count == 1
                else None
            )
            slot_result = claims.book_slot(
                stored.lead_id, slot, slot_rules.current(), now, lead=new_lead, day_locked=True
            )
        booked = slot_result is not None and slot_result.outcome == claims.Outcome.BOOKED
        drafts = []
        if with_confirmation and not booked:
            kept = slot_result is not None and slot_result.outcome == claims.Outcome.KEPT
            drafts.append(confirmation_mail.draft(stored.booking_id, stored.lead_id, details.email, kept_demo=kept))
        if owner is not None:
            drafts.append(team_notice.owner_notice(stored.booking_id, stored.lead_id, owner.user_id, owner.email))
        if not by_staff and settings.chat_webhook_url:
            if stored.booking_count == 1:
                drafts.append(chat.chat_draft(chat.NEW_LEAD, stored.lead_id))
            if booked:
                drafts.append(chat.chat_draft(chat.SELF_BOOKED, stored.lead_id))
        if not by_staff:
            # Those who chose «Alle nye leads» hear of every booking from the website; whoever typed a lead in
            # knows already.
            drafts.append(team_notice.new_booking_notice(stored.booking_id, stored.lead_id))
        slot_drafts = slot_result.drafts if slot_result else ()
        quiet_drafts = slot_result.quiet_drafts if slot_result else ()
        # A statement of its own, after the upsert: see confirmation_mail.draft for why the cap needs that.
        written = outbox.write([*drafts, *slot_drafts, *quiet_drafts], now=now)
        mails = written[: len(written) - len(quiet_drafts)]  # reminders are left to the sweep
        db.session.commit()
    except Exception:
        db.session.rollback()
        raise
    # After the commit: a job never looks for a row that is not there yet. Without Redis the sweep sends them.
    dispatch.dispatch_all(mails)
    result = BookingResult(
        lead_id=stored.lead_id,
        booking_id=stored.booking_id,
        masked_ref=stored.masked_ref,
        booking_count=stored.booking_count,
        mail_due=with_confirmation and (booked or mails[0].closed_at is None),
        slot_outcome=slot_result.outcome if slot_result else None,
    )
    log.info(
        "demo rebooked" if result.is_rebooking else "demo booked",
        extra={
            "event": "rebooking" if result.is_rebooking else "booking",
            "lead_id": str(result.lead_id),
            "booking_id": str(result.booking_id),
            "booking_count": result.booking_count,
            "source": source.value,
            "mail_due": result.mail_due,
            "slot": result.slot_outcome.value if result.slot_outcome else None,
        },
    )
    return result
