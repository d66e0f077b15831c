"""Reminders of a booked demo, however it was booked (by the prospect on the form, or by staff from the board): the
prospect gets one 24 hours and one 1 hour before the start, with the time, the place and «Flytt eller avlys».

Each is an outbox row due at its moment (kind demo_reminder), written with the change that set the time and
left to the sweep. The builder reads the lead when it sends: a reminder whose demo was moved or cancelled since
(a later SEQUENCE) is never sent; the move wrote reminders of its own."""

import json
import uuid
from datetime import datetime, timedelta

import sqlalchemy as sa
from flask import render_template
from flask_mail import Message

from ..core.clock import utcnow
from ..mail import outbox
from ..mail.kind import Kind
from .calendar import confirm_url
from .demo_state import DEFAULT_MINUTES, has_upcoming_demo, lead_and_host
from .labels import demo_label

REMINDER_KIND = "demo_reminder"
REMINDERS_BEFORE = (timedelta(hours=24), timedelta(hours=1))


def reminder_drafts(lead_id: uuid.UUID, email: str, demo_at: datetime, sequence: int, now: datetime):
    """One draft per reminder whose moment is still ahead, due at that moment; a later change's SEQUENCE overtakes it.
    Write them without dispatching: the sweep sends each once it is due (within MAIL_SWEEP_SECONDS and the grace)."""
    drafts = []
    for before in REMINDERS_BEFORE:
        at = demo_at - before
        if at <= now:
            continue  # its moment passed before the demo was booked
        payload = {"sequence": sequence, "hours_before": int(before.total_seconds() // 3600)}
        drafts.append(outbox.Draft(REMINDER, email, lead_id=lead_id, payload=payload, send_after=at - now))
    return drafts


def build_reminder(messages: list[sa.Row]) -> Message | None:
    message = messages[0]
    lead, host = lead_and_host(message.lead_id)
    payload = json.loads(message.payload or "{}")
    if lead is None or not has_upcoming_demo(lead) or payload.get("sequence") != lead.demo_sequence:
        return None  # erased, cancelled, held, or moved since: the move wrote reminders of its own
    if lead.demo_at <= utcnow():
        return None
    context = {
        "lead": lead,
        "when": demo_label(lead.demo_at),
        "minutes": lead.demo_minutes or DEFAULT_MINUTES,
        "host_name": host.name if host else "Meander",
        "confirm_url": confirm_url(lead),
        "soon": payload.get("hours_before") == 1,
    }
    subject = ("Om en time: " if context["soon"] else "I morgen: ") + f"demo av Meander {context['when']}"
    mail = Message(
        subject=subject,
        recipients=[lead.email],
        body=render_template("mail/demo_reminder.txt", **context),
        html=render_template("mail/demo_reminder.html", **context),
    )
    if host is not None:
        mail.reply_to = host.email
    return mail


REMINDER = Kind(REMINDER_KIND, build_reminder)
