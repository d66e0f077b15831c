"""The mails of self-booked demos: the owner's notice when the prospect moves or cancels, and the one mail after a
no-show offering new times. Each is an outbox row; the builder reads fresh data when it sends. (The reminders
before a demo are scheduling.reminders: every booked demo gets them.)"""

import json
from datetime import datetime

import sqlalchemy as sa
from flask import render_template
from flask_mail import Message

from ..accounts import users
from ..accounts.models import User
from ..core.links import external_url
from ..extensions import db
from ..leads.models import Lead
from ..mail import outbox
from ..mail.kind import Kind
from ..mail.models import OutboxMessage
from ..scheduling import mails as demo_mails
from ..scheduling.calendar import confirm_url
from ..scheduling.labels import demo_label

CHANGE_NOTICE_KIND = "demo_changed_by_prospect"
NO_SHOW_KIND = "demo_no_show"


def write_change_notice(lead: Lead, change: str, now: datetime) -> list[OutboxMessage]:
    """The owner (or, for a lead nobody owns, everyone with notifications on) hears the prospect moved or cancelled."""
    owner = db.session.get(User, lead.owner_id) if lead.owner_id else None
    if owner is not None and owner.is_active:
        recipient, user_id = owner.email, owner.id
    else:
        recipient, user_id = users.TEAM_RECIPIENT, None
    payload = {"change": change, "sequence": lead.demo_sequence}
    return [outbox.add(CHANGE_NOTICE, recipient, lead_id=lead.id, user_id=user_id, payload=payload, now=now)]


def build_change_notice(messages: list[sa.Row]) -> Message | None:
    message = messages[0]
    lead = db.session.get(Lead, message.lead_id) if message.lead_id else None
    if lead is None or lead.demo_at is None:
        return None
    recipients = demo_mails.owner_or_team(message)
    if not recipients:
        return None
    change = json.loads(message.payload or "{}").get("change")
    context = {
        "lead": lead,
        "cancelled": change == "cancelled",
        "when": demo_label(lead.demo_at),
        "lead_url": external_url("pipeline.lead_page", lead_id=lead.id),
    }
    verb = "avlyste" if context["cancelled"] else "flyttet"
    return Message(
        subject=f"Kunden {verb} demoen: {lead.organization_name}",
        recipients=recipients,
        body=render_template("mail/demo_changed_by_prospect.txt", **context),
    )


def write_no_show_offer(lead: Lead, now: datetime) -> list[OutboxMessage]:
    """One mail offering new times after a no-show; a second «Kunden møtte ikke» for the same demo sends none."""
    dedupe = f"no-show:{lead.id}:{lead.demo_sequence}"
    exists = db.session.execute(
        sa.select(OutboxMessage.id).where(OutboxMessage.kind == NO_SHOW_KIND, OutboxMessage.dedupe_key == dedupe)
    ).first()
    if exists is not None:
        return []
    return [outbox.add(NO_SHOW, lead.email, lead_id=lead.id, dedupe_key=dedupe, now=now)]


def build_no_show_offer(messages: list[sa.Row]) -> Message | None:
    message = messages[0]
    lead = db.session.get(Lead, message.lead_id) if message.lead_id else None
    if lead is None:
        return None
    context = {"lead": lead, "confirm_url": confirm_url(lead)}
    return Message(
        subject="Vi savnet deg på demoen – velg en ny tid",
        recipients=[lead.email],
        body=render_template("mail/demo_no_show.txt", **context),
    )


CHANGE_NOTICE = Kind(CHANGE_NOTICE_KIND, build_change_notice)
NO_SHOW = Kind(NO_SHOW_KIND, build_no_show_offer)
KINDS = (CHANGE_NOTICE, NO_SHOW)
