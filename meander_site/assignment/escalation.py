"""The first-contact clock running out: at half the time a reminder to the owner; when it has passed, a mail to the
owner and to every administrator, and with «Gi videre når fristen går ut» the lead goes to the next pool member.

The worker runs `escalate_due` on a schedule (worker/runner.py). Each step is taken once per lead by one
compare-and-set on `leads.escalation_stage` (0 → 1 reminded, → 2 expired) in the same transaction as its mails, so
two workers, or a worker restarted mid-way, never send one twice; each row also carries a dedupe key. A lead contacted
meanwhile is no longer waiting and is never taken; its mail, if written just before, is dropped when built.
"""

import json
import logging
import uuid
from datetime import datetime

import sqlalchemy as sa
from flask import render_template
from flask_mail import Message

from ..accounts import team_settings
from ..accounts.models import Role, User
from ..core.clock import utcnow
from ..core.links import external_url
from ..extensions import db
from ..leads.models import Lead, LeadEvent
from ..mail import outbox
from ..mail.kind import Kind
from ..mail.models import OutboxMessage
from . import chat, pool
from .first_contact import is_waiting_for_first_contact, waiting_condition

log = logging.getLogger(__name__)

FIRST_CONTACT_KIND = "first_contact"
REMINDED, EXPIRED = 1, 2
REMINDER, EXPIRY, HANDED_OVER = "reminder", "expired", "handed_over"
BATCH = 100


def _take(stage: int, due_column, now: datetime) -> list[sa.Row]:
    """Move up to BATCH waiting leads whose time for `stage` has come to it, in one statement; their rows come back
    (id, owner). Only one caller can take a lead from a stage below."""
    leads = Lead.__table__
    due = (
        sa.select(leads.c.id)
        .where(waiting_condition(), Lead.escalation_stage < stage, due_column <= now)
        .order_by(due_column)
        .limit(BATCH)
    )
    return db.session.execute(
        sa.update(Lead)
        .where(Lead.id.in_(due.scalar_subquery()), Lead.escalation_stage < stage, waiting_condition())
        .values(escalation_stage=stage)
        .returning(Lead.id, Lead.owner_id)
        .execution_options(synchronize_session=False)
    ).all()


def _draft(step: str, lead_id: uuid.UUID, user: User) -> outbox.Draft:
    return outbox.Draft(
        FIRST_CONTACT,
        user.email,
        lead_id=lead_id,
        user_id=user.id,
        payload={"step": step},
        dedupe_key=f"first-contact:{step}:{lead_id}:{user.id}",
    )


def escalate_due(now: datetime | None = None) -> list[OutboxMessage]:
    """One round: reminders, then expiries (with hand-over when the team wants it). Commits; returns the mails."""
    now = now or utcnow()
    drafts: list[outbox.Draft] = []
    try:
        reminded = _take(REMINDED, Lead.first_contact_reminder_at, now)
        expired = _take(EXPIRED, Lead.first_contact_due_at, now)
        people = _people({owner for _, owner in [*reminded, *expired] if owner})
        admins = [user for user in people.values() if user.is_admin] + _other_admins(people)
        for lead_id, owner_id in reminded:
            if owner_id in people and people[owner_id].is_active:
                drafts.append(_draft(REMINDER, lead_id, people[owner_id]))
        settings = team_settings.current() if expired else None
        hand_over = settings.hand_over_when_expired if settings else False
        for lead_id, owner_id in expired:
            if settings.chat_webhook_url:
                drafts.append(chat.chat_draft(chat.EXPIRED, lead_id))
            owner = people.get(owner_id)
            told = {admin.id: admin for admin in admins}
            if owner is not None and owner.is_active:
                told[owner.id] = owner
            drafts += [_draft(EXPIRY, lead_id, user) for user in told.values()]
            if hand_over:
                new_owner = _hand_over(lead_id, owner_id, now)
                if new_owner is not None:
                    drafts.append(_draft(HANDED_OVER, lead_id, new_owner))
        messages = outbox.write(drafts, now=now)
        db.session.commit()
    except Exception:
        db.session.rollback()
        raise
    if reminded or expired:
        log.info(
            "first-contact escalation",
            extra={"event": "first_contact_escalation", "reminded": len(reminded), "expired": len(expired)},
        )
    return messages


def _people(user_ids: set) -> dict[uuid.UUID, User]:
    if not user_ids:
        return {}
    return {user.id: user for user in db.session.scalars(sa.select(User).where(User.id.in_(user_ids)))}


def _other_admins(known: dict[uuid.UUID, User]) -> list[User]:
    query = sa.select(User).where(
        User.is_active, User.role == Role.ADMIN.value, User.id.not_in(known or [uuid.UUID(int=0)])
    )
    return list(db.session.scalars(query))


def _hand_over(lead_id: uuid.UUID, owner_id: uuid.UUID | None, now: datetime) -> User | None:
    """«Gi videre når fristen går ut»: the next pool member other than the owner gets it, with the reason."""
    others = set(db.session.scalars(sa.select(User.id).where(User.is_active, User.id != owner_id)))
    chosen = pool.pick_owner(db.session, among_user_ids=others, now=now)
    if chosen is None:
        return None
    db.session.execute(
        sa.update(Lead)
        .where(Lead.id == lead_id)
        .values(owner_id=chosen.user_id, updated_at=now)
        .execution_options(synchronize_session=False)
    )
    detail = f"Tildelt {chosen.name} ({pool.HANDED_OVER})"
    db.session.execute(
        sa.insert(LeadEvent).values(id=uuid.uuid4(), lead_id=lead_id, kind="assigned", at=now, detail=detail)
    )
    return db.session.get(User, chosen.user_id)


SUBJECTS = {
    REMINDER: "Halvveis til svarfristen: {organization}",
    EXPIRY: "Svarfristen er gått ut: {organization}",
    HANDED_OVER: "Gitt videre til deg etter svarfristen: {organization}",
}


def build_first_contact_mail(messages: list[sa.Row]) -> Message | None:
    message = messages[0]
    step = json.loads(message.payload or "{}").get("step")
    lead = db.session.get(Lead, message.lead_id) if message.lead_id else None
    user = db.session.get(User, message.user_id) if message.user_id else None
    if step not in SUBJECTS or lead is None or user is None or not user.is_active:
        return None
    if step != HANDED_OVER and not is_waiting_for_first_contact(lead):
        return None  # contacted meanwhile: nothing to nudge about
    owner = db.session.get(User, lead.owner_id) if lead.owner_id else None
    context = {
        "step": step,
        "lead": lead,
        "user": user,
        "owner": owner,
        "lead_url": external_url("pipeline.lead_page", lead_id=lead.id),
    }
    return Message(
        subject=SUBJECTS[step].format(organization=lead.organization_name),
        recipients=[user.email],
        body=render_template("mail/first_contact.txt", **context),
        html=render_template("mail/first_contact.html", **context),
    )


FIRST_CONTACT = Kind(FIRST_CONTACT_KIND, build_first_contact_mail)
