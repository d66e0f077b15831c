"""The morning digest: an outbox kind, written by the worker's periodic job (worker/runner.py).

At 07:30 Europe/Oslo on Norwegian business days, one row per active staff member and day (a dedupe key makes it
one, whichever worker writes it first); it goes out only when there is something to say: the person's overdue
next steps and today's demos, and, for those with notifications on, overdue leads nobody owns.
"""

import json
import logging
import uuid
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

import sqlalchemy as sa
from flask import render_template
from flask_mail import Message

from .. import business_days
from ..accounts.models import User
from ..core.clock import utcnow
from ..core.links import external_url
from ..extensions import db
from ..leads.models import Lead
from ..leads.next_step import overdue_condition
from ..leads.statuses import LeadStatus
from ..mail import outbox
from ..mail.kind import Kind
from ..mail.models import OutboxMessage
from .board import unassigned_condition

log = logging.getLogger(__name__)

DIGEST_KIND = "digest"
DIGEST_AT = time(7, 30)
DIGEST_UNTIL = time(12, 0)  # a worker that was down all morning does not send yesterday's news at night


def lead_url(lead_id: uuid.UUID) -> str:
    return external_url("pipeline.lead_page", lead_id=lead_id)


# --- new leads -----------------------------------------------------------------------------------------


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
            DIGEST,
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
    overdue = overdue_condition(now)

    def select(*conditions, order=Lead.next_step_due_at):
        return list(db.session.execute(sa.select(Lead).where(*conditions).order_by(order).limit(50)).scalars())

    demos_today = select(*today_demo_conditions(day), Lead.owner_id == user.id, order=Lead.demo_at)
    return Digest(
        user=user,
        day=day,
        overdue=select(overdue, Lead.owner_id == user.id),
        demos_today=demos_today,
        # As the board shows it: an open lead of a colleague who has left is nobody's until someone takes it.
        unassigned_overdue=select(overdue, unassigned_condition()) if user.notify_new_leads else [],
    )


def today_demo_conditions(day: date) -> list:
    """Leads with a demo on this Oslo day."""
    start = datetime.combine(day, time(0), tzinfo=business_days.OSLO)
    return [
        Lead.status == LeadStatus.DEMO_SCHEDULED.value,
        Lead.demo_at >= start,
        Lead.demo_at < start + timedelta(days=1),
    ]


def build_digest(messages: list[sa.Row]) -> Message | None:
    message = messages[0]
    user = db.session.get(User, message.user_id) if message.user_id else None
    if user is None or not user.is_active:
        return None
    day = date.fromisoformat(json.loads(message.payload or "{}").get("day") or business_days.oslo_today().isoformat())
    digest = digest_for(user, day)
    if digest.is_empty:
        return None  # nothing to say: no mail
    context = {"digest": digest, "lead_url": lead_url, "board_url": external_url("pipeline.board")}
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


DIGEST = Kind(DIGEST_KIND, build_digest)
