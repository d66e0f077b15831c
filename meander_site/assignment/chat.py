"""Chat notifications: new leads and expired first-contact times posted to the team's chat (a Slack or Microsoft
Teams incoming webhook, both of which take a JSON POST with a "text").

Each post is an outbox row of its own kind, delivered by the worker through core/outbound_http.py (public HTTPS only,
no redirects followed, a deadline): exactly once, retried on the outbox's schedule after a 5xx or a timeout; a 4xx (or
a redirect, or an address that is not allowed) closes it, and what the chat said is shown on the team page. The text
names the organization and the role, never the prospect's name, email or phone: the chat is a third party's.
The URL is a secret: never logged, shown masked.
"""

import json
import logging

import sqlalchemy as sa
from flask import current_app

from ..accounts import team_settings
from ..accounts.models import User
from ..core import outbound_http
from ..core.links import external_url
from ..extensions import db
from ..leads.models import Lead
from ..mail import outbox
from ..mail.kind import Kind

log = logging.getLogger(__name__)

CHAT_KIND = "chat_webhook"
CHAT_RECIPIENT = "chat"  # the webhook's address is read from the settings when the post is made
NEW_LEAD, EXPIRED, SELF_BOOKED = "new_lead", "expired", "self_booked"
TEXTS = {
    NEW_LEAD: "Ny lead: {organization} ({role}).{owner}",
    EXPIRED: "Svarfristen er gått ut for {organization} ({role}) uten kontakt.",
    SELF_BOOKED: "Demo booket av kunden selv: {organization} ({role}).",
}


class ChatUnavailable(Exception):
    """The chat answered with a 5xx: try again later (the outbox's retry schedule)."""


def chat_draft(event: str, lead_id) -> outbox.Draft:
    """For outbox.write() in the transaction of whatever happened (only when a webhook is set)."""
    return outbox.Draft(CHAT, CHAT_RECIPIENT, lead_id=lead_id, payload={"event": event})


def message_text(event: str, lead: Lead, owner_first_name: str | None = None) -> str:
    owner = f" Tildelt {owner_first_name}." if owner_first_name else ""
    text = TEXTS[event].format(organization=lead.organization_name, role=lead.role_title, owner=owner)
    return f"{text} {external_url('pipeline.lead_page', lead_id=lead.id)}"


def _refused(error: str) -> str:
    team_settings.record_chat_webhook_error(error[:300])
    db.session.commit()
    return "refused"


def deliver(rows: list[sa.Row]) -> str | None:
    """Post one message; None when the chat took it, a reason when it is closed unsent; raises to be retried."""
    row = rows[0]
    url = team_settings.current().chat_webhook_url
    if not url:
        return "no_webhook"
    lead = db.session.get(Lead, row.lead_id) if row.lead_id else None
    event = json.loads(row.payload or "{}").get("event")
    if lead is None or event not in TEXTS:
        return "gone"
    owner_name = None
    if event == NEW_LEAD and lead.owner_id:
        owner = db.session.get(User, lead.owner_id)
        owner_name = owner.first_name if owner is not None else None
    try:
        response = outbound_http.post_json(
            url,
            {"text": message_text(event, lead, owner_name)},
            timeout=current_app.config["CHAT_WEBHOOK_TIMEOUT_SECONDS"],
            allow_loopback=current_app.config["OUTBOUND_ALLOW_LOOPBACK"],
        )
    except outbound_http.OutboundRefused as refused:
        return _refused(refused.message)
    if response.status >= 500:
        raise ChatUnavailable(f"chatten svarte {response.status}")
    if response.is_redirect:
        return _refused(
            f"Chatten svarte med en videresending ({response.status}), som vi ikke følger. "
            "Lim inn adressen tjenesten ga deg for innkommende webhook."
        )
    if response.status >= 400:
        return _refused(
            f"Chatten avviste meldingen ({response.status}). Sjekk at webhooken fortsatt finnes, eller lim inn en ny."
        )
    if team_settings.current().chat_webhook_error:
        team_settings.record_chat_webhook_error(None)
        db.session.commit()
    return None


def _no_mail(rows):
    return None


CHAT = Kind(CHAT_KIND, _no_mail, deliver=deliver)
