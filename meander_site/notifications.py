"""Mail to the sales team: a notice for every new lead and rebooking, and each morning's digest.

Both are outbox kinds (see outbox.py): stored with what caused them, sent once by the worker.
- New leads: one row per booking, addressed to the team. Rows that arrive within a minute of each other
  go out as one mail, to every active staff member who has «Varsle meg om nye leads» on.
- The digest: at 07:30 Europe/Oslo on Norwegian business days, one row per active staff member and day
  (a dedupe key makes it one, whichever worker writes it first); it goes out only when there is something
  to say: the person's overdue next steps and today's demos, and, for those with notifications on,
  overdue leads nobody owns.
"""

import json
import logging
import uuid
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

import sqlalchemy as sa
from flask import current_app, render_template
from flask_mail import Message

from . import business_days, leads, outbox
from .extensions import db
from .models import Booking, Lead, LeadStatus, OutboxMessage, User, utcnow

log = logging.getLogger(__name__)

NEW_LEADS_KIND = "new_leads"
DIGEST_KIND = "digest"
TEAM_RECIPIENT = "team"  # the new-lead mail goes to whoever has notifications on when it is sent
COMBINE_WINDOW = timedelta(minutes=1)
DIGEST_AT = time(7, 30)
DIGEST_UNTIL = time(12, 0)  # a worker that was down all morning does not send yesterday's news at night


def lead_url(lead_id: uuid.UUID) -> str:
    return f"{current_app.config['SITE_URL']}/pipeline/leads/{lead_id}"


# --- new leads -----------------------------------------------------------------------------------------


def new_booking_notice(booking_id: uuid.UUID, lead_id: uuid.UUID) -> outbox.Draft:
    """For outbox.write() in the booking's transaction: the team hears of it within about a minute."""
    return outbox.Draft(
        NEW_LEADS_KIND, TEAM_RECIPIENT, lead_id=lead_id, booking_id=booking_id, send_after=COMBINE_WINDOW
    )


def notified_staff() -> list[User]:
    return list(
        db.session.execute(sa.select(User).where(User.is_active, User.notify_new_leads).order_by(User.name)).scalars()
    )


@dataclass
class BookingNotice:
    booking: Booking
    lead: Lead
    is_rebooking: bool

    @property
    def url(self) -> str:
        return lead_url(self.lead.id)


@outbox.kind(NEW_LEADS_KIND, batched=True)
def build_new_leads(messages: list[sa.Row]) -> Message | None:
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
    if not recipients or not rows:
        return None  # nobody wants it, or every lead it was about has been erased
    first_booking_ids = _first_booking_ids([lead.id for _, lead in rows])
    notices = [
        BookingNotice(booking=booking, lead=lead, is_rebooking=booking.id != first_booking_ids.get(lead.id))
        for booking, lead in rows
    ]
    if len(notices) == 1:
        notice = notices[0]
        kind_text = "Ny booking fra kjent lead" if notice.is_rebooking else "Ny lead"
        subject = f"{kind_text}: {notice.lead.organization_name}"
    else:
        subject = f"{len(notices)} nye bookinger på demo"
    context = {"notices": notices, "board_url": f"{current_app.config['SITE_URL']}/pipeline"}
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


# --- the morning digest ------------------------------------------------------------------------------


def digest_dedupe_key(user_id: uuid.UUID, day: date) -> str:
    return f"digest:{user_id}:{day.isoformat()}"


def write_due_digests(now: datetime | None = None) -> list[OutboxMessage]:
    """Called by the worker's sweep: on a business-day morning, one digest row per active staff member.

    Safe from any number of workers at once: the dedupe key lets only one row per person and day exist.
    """
    now = now or utcnow()
    local = business_days.to_oslo(now)
    if not business_days.is_business_day(local.date()) or not DIGEST_AT <= local.time() < DIGEST_UNTIL:
        return []
    written = []
    # All of them first: the commits and rollbacks below must not cut a result still being read.
    staff = db.session.execute(sa.select(User).where(User.is_active)).scalars().all()
    keys = {user.id: digest_dedupe_key(user.id, local.date()) for user in staff}
    # The sweep calls this every few seconds all morning: one query finds who has today's row already.
    written_before = set(
        db.session.execute(sa.select(OutboxMessage.dedupe_key).where(OutboxMessage.dedupe_key.in_(keys.values())))
        .scalars()
        .all()
    )
    for user in staff:
        key = keys[user.id]
        if key in written_before:
            continue
        message = outbox.add(
            DIGEST_KIND,
            user.email,
            user_id=user.id,
            dedupe_key=key,
            payload={"day": local.date().isoformat()},
            now=now,
        )
        try:
            db.session.commit()
        except sa.exc.IntegrityError:
            db.session.rollback()  # another worker wrote it first
            continue
        written.append(message)
    return written


@dataclass
class Digest:
    user: User
    day: date
    overdue: list[Lead]
    demos_today: list[Lead]
    unassigned_overdue: list[Lead]

    @property
    def is_empty(self) -> bool:
        return not (self.overdue or self.demos_today or self.unassigned_overdue)


def digest_for(user: User, day: date, now: datetime | None = None) -> Digest:
    now = now or utcnow()
    open_statuses = [status.value for status in LeadStatus if status not in leads.FINAL_STATUSES]
    overdue = Lead.next_step_due_at < now

    def select(*conditions, order=Lead.next_step_due_at):
        return list(db.session.execute(sa.select(Lead).where(*conditions).order_by(order).limit(50)).scalars())

    demos_today = select(*today_demo_conditions(day), Lead.owner_id == user.id, order=Lead.demo_at)
    return Digest(
        user=user,
        day=day,
        overdue=select(Lead.status.in_(open_statuses), overdue, Lead.owner_id == user.id),
        demos_today=demos_today,
        unassigned_overdue=select(Lead.status.in_(open_statuses), overdue, Lead.owner_id.is_(None))
        if user.notify_new_leads
        else [],
    )


def today_demo_conditions(day: date) -> list:
    """Leads with a demo on this Oslo day."""
    start = datetime.combine(day, time(0), tzinfo=business_days.OSLO)
    return [
        Lead.status == LeadStatus.DEMO_SCHEDULED.value,
        Lead.demo_at >= start,
        Lead.demo_at < start + timedelta(days=1),
    ]


@outbox.kind(DIGEST_KIND)
def build_digest(messages: list[sa.Row]) -> Message | None:
    message = messages[0]
    user = db.session.get(User, message.user_id) if message.user_id else None
    if user is None or not user.is_active:
        return None
    day = date.fromisoformat(json.loads(message.payload or "{}").get("day") or business_days.oslo_today().isoformat())
    digest = digest_for(user, day)
    if digest.is_empty:
        return None  # nothing to say: no mail
    context = {"digest": digest, "lead_url": lead_url, "board_url": f"{current_app.config['SITE_URL']}/pipeline"}
    parts = []
    if digest.overdue:
        parts.append(f"{len(digest.overdue)} forfalt")
    if digest.demos_today:
        parts.append(f"{len(digest.demos_today)} demo{'er' if len(digest.demos_today) > 1 else ''} i dag")
    if digest.unassigned_overdue:
        parts.append(f"{len(digest.unassigned_overdue)} ufordelt forfalt")
    return Message(
        subject=f"Dagens oppfølging: {', '.join(parts)}",
        recipients=[user.email],
        body=render_template("mail/digest.txt", **context),
        html=render_template("mail/digest.html", **context),
    )
