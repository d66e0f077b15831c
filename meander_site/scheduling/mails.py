"""The mails about a demo: the invitation, its updates and cancellation (each with the .ics), and the prospect's wish
for another time, to the owner."""

import json
import uuid
from collections.abc import Mapping
from datetime import datetime, timedelta

import sqlalchemy as sa
from flask import render_template
from flask_mail import Message

from ..accounts import users
from ..accounts.models import User
from ..core.links import external_url
from ..core.text import without_links
from ..extensions import db
from ..leads.models import Lead
from ..mail import outbox
from ..mail.kind import Kind
from ..mail.models import OutboxMessage
from .calendar import confirm_url, ics_bytes
from .demo_state import DEFAULT_MINUTES, lead_and_host
from .labels import demo_label

INVITATION_KIND = "demo_invitation"
UPDATE_KIND = "demo_update"
CANCELLATION_KIND = "demo_cancellation"
TIME_REQUEST_KIND = "demo_time_request"
CALENDAR_KINDS = (INVITATION_KIND, UPDATE_KIND, CANCELLATION_KIND)
# A wish for another time mails whoever works the lead at most once an hour: later wishes replace the wish on the
# lead (the mail reads it when it is sent), and are written closed with this reason.
TIME_REQUEST_INTERVAL = timedelta(hours=1)
TIME_REQUEST_THROTTLED = "throttled"


def write_mails(lead: Lead, kind: Kind, sequence: int, host_id: uuid.UUID | None, now: datetime):
    """One row for the prospect and one for the host, in the caller's transaction."""
    payload = {"sequence": sequence}
    rows = [outbox.add(kind, lead.email, lead_id=lead.id, payload=payload, now=now)]
    host = db.session.get(User, host_id) if host_id else None
    if host is not None:
        rows.append(outbox.add(kind, host.email, lead_id=lead.id, user_id=host.id, payload=payload, now=now))
    return rows


def write_former_host_cancellation(
    lead: Lead, host_id: uuid.UUID, sequence: int, was_at: datetime, now: datetime
) -> list[OutboxMessage]:
    """A host who no longer holds the demo: a cancellation of the same UID, for their calendar alone."""
    host = db.session.get(User, host_id)
    if host is None:
        return []
    payload = {"sequence": sequence, "former_host": True, "was_at": was_at.isoformat()}
    return [outbox.add(CANCELLATION, host.email, lead_id=lead.id, user_id=host.id, payload=payload, now=now)]


class CalendarMessage(Message):
    """A mail carrying an iTIP method: `text/calendar; method=…` beside the text and HTML (what calendar
    clients act on) and the same object as an .ics attachment (for those that only look at attachments)."""

    def __init__(self, *args, calendar_method: str, ics: bytes, **kwargs):
        super().__init__(*args, **kwargs)
        self.alts["calendar"] = ics.decode("utf-8")
        self.alt_parameters = {"calendar": {"method": calendar_method}}  # see mailer.message_bytes
        self.attach("invitation.ics", "application/ics", ics)


SUBJECTS = {
    INVITATION_KIND: "Demoen er avtalt: {when}",
    UPDATE_KIND: "Demoen er flyttet: {when}",
    CANCELLATION_KIND: "Demoen er avlyst: {when}",
}


def _superseded(message: sa.Row, lead: Lead) -> bool:
    sequence = json.loads(message.payload or "{}").get("sequence")
    return sequence != lead.demo_sequence


def _earlier_invitation_sent(message: sa.Row) -> bool:
    return (
        db.session.execute(
            sa.select(OutboxMessage.id).where(
                OutboxMessage.lead_id == message.lead_id,
                OutboxMessage.recipient == message.recipient,
                OutboxMessage.kind.in_((INVITATION_KIND, UPDATE_KIND)),
                OutboxMessage.sent_at.is_not(None),
            )
        ).first()
        is not None
    )


def build_demo_mail(messages: list[sa.Row]) -> Message | None:
    message = messages[0]
    lead, host = lead_and_host(message.lead_id)
    if lead is None or lead.demo_at is None:
        return None  # erased
    payload = json.loads(message.payload or "{}")
    if payload.get("former_host"):
        return _former_host_cancellation(message, lead, host, payload)
    if _superseded(message, lead):
        return None  # a later change says everything this one would
    if message.kind == CANCELLATION_KIND and not _earlier_invitation_sent(message):
        return None  # they never heard of it: no need to take it back
    if message.user_id is not None:
        if host is None or host.id != message.user_id:
            return None  # the host changed: the new host got their own invitation, the old one a cancellation
        recipient = host.email
    else:
        recipient = lead.email
    method = "CANCEL" if message.kind == CANCELLATION_KIND else "REQUEST"
    context = _context(lead, message.kind, host, for_host=message.user_id is not None)
    subject = SUBJECTS[message.kind].format(when=context["when"])
    if context["for_host"]:
        subject = f"{subject} ({lead.organization_name})"
    mail = CalendarMessage(
        subject=subject,
        recipients=[recipient],
        body=render_template("mail/demo.txt", **context),
        html=render_template("mail/demo.html", **context),
        calendar_method=method,
        ics=ics_bytes(lead, method, lead.demo_sequence, organizer=host),
    )
    if not context["for_host"] and host is not None:
        mail.reply_to = host.email  # a reply reaches the person who holds the demo
    return mail


def _context(lead: Lead, kind: str, host: User | None, for_host: bool, **extra) -> dict:
    return {
        "lead": lead,
        "kind": kind,
        "when": demo_label(lead.demo_at),
        "minutes": lead.demo_minutes or DEFAULT_MINUTES,
        "host_name": host.name if host else "Meander",
        "for_host": for_host,
        "confirm_url": confirm_url(lead),
        "lead_url": external_url("pipeline.lead_page", lead_id=lead.id),
        **extra,
    }


def _former_host_cancellation(message: sa.Row, lead: Lead, host: User | None, payload: dict) -> Message | None:
    """The demo taken out of the calendar of a host who no longer holds it: not overtaken by later changes (those
    go to the new host), unless they hold it again, and only if their invitation went out."""
    former = db.session.get(User, message.user_id) if message.user_id else None
    if former is None or (host is not None and host.id == former.id) or not _earlier_invitation_sent(message):
        return None
    was_when = demo_label(datetime.fromisoformat(payload["was_at"])) if payload.get("was_at") else None
    context = _context(
        lead, CANCELLATION_KIND, host, for_host=True, former_host=True, former_name=former.name, was_when=was_when
    )
    return CalendarMessage(
        subject=f"Du holder ikke lenger demoen med {lead.organization_name}",
        recipients=[former.email],
        body=render_template("mail/demo.txt", **context),
        html=render_template("mail/demo.html", **context),
        calendar_method="CANCEL",
        ics=ics_bytes(lead, "CANCEL", lead.demo_sequence, organizer=former),
    )


def owner_or_team(message: sa.Row) -> list[str]:
    """Who hears of something the prospect did: the owner the row names (if still active), or, for a lead nobody
    owned when it was written, everyone with notifications on."""
    if message.user_id is not None:
        owner = db.session.get(User, message.user_id)
        return [owner.email] if owner is not None and owner.is_active else []
    return [user.email for user in users.notified_staff()]


def build_time_request(messages: list[sa.Row]) -> Message | None:
    message = messages[0]
    lead = db.session.get(Lead, message.lead_id) if message.lead_id else None
    if lead is None or lead.demo_change_requested_at is None:
        return None  # erased, or the demo has been moved since: nothing left to ask
    recipients = owner_or_team(message)
    if not recipients:
        return None
    context = {
        "lead": lead,
        "when": demo_label(lead.demo_at) if lead.demo_at else None,
        # Typed by whoever holds the link: quoted as plain text, with anything that reads as a link taken out.
        "wish": without_links(lead.demo_change_request or ""),
        "lead_url": external_url("pipeline.lead_page", lead_id=lead.id),
    }
    mail = Message(
        subject=f"Ønsker ny tid for demoen: {lead.organization_name}",
        recipients=recipients,
        body=render_template("mail/demo_time_request.txt", **context),
        html=render_template("mail/demo_time_request.html", **context),
    )
    mail.reply_to = lead.email
    return mail


def _time_request_mailed_within_the_hour(row: Mapping[str, sa.BindParameter]) -> sa.ColumnElement[bool]:
    """A wish for this lead was mailed (or is on its way) within the interval; throttled ones never went."""
    table = OutboxMessage.__table__.c
    return (
        sa.select(table.id)
        .where(
            table.kind == TIME_REQUEST_KIND,
            table.lead_id == row["lead_id"],
            table.created_at > sa.bindparam("time_request_since", type_=table.created_at.type),
            sa.or_(table.sent_at.is_not(None), table.closed_at.is_(None)),
        )
        .exists()
    )


ONE_TIME_REQUEST_AN_HOUR = outbox.CloseWhen(
    reason=TIME_REQUEST_THROTTLED,
    condition=_time_request_mailed_within_the_hour,
    params=lambda now: {"time_request_since": now - TIME_REQUEST_INTERVAL},
)


INVITATION = Kind(INVITATION_KIND, build_demo_mail)
UPDATE = Kind(UPDATE_KIND, build_demo_mail)
CANCELLATION = Kind(CANCELLATION_KIND, build_demo_mail)
TIME_REQUEST = Kind(TIME_REQUEST_KIND, build_time_request)
KINDS = (INVITATION, UPDATE, CANCELLATION, TIME_REQUEST)
