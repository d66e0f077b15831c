"""The record of account changes: who did what to whom, and when. Ids and roles only, never a password, a
token or an address; the team page puts names to the ids when it shows them."""

import uuid
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa

from ..core.clock import utcnow
from ..extensions import db
from .models import AuditEvent, Invitation, Role, User

# Each account action and how the team page says it: {actor} did it, {subject} is whom it was about.
ACTIONS = {
    "user_created": "{subject} fikk konto fra kommandolinjen",
    "user_invited": "{actor} inviterte {subject} som {detail}",
    "invitation_withdrawn": "{actor} trakk tilbake invitasjonen til {subject}",
    "invitation_accepted": "{subject} godtok invitasjonen og fikk konto",
    "role_changed": "{actor} ga {subject} rollen {detail}",
    "user_deactivated": "{actor} deaktiverte {subject}",
    "user_reactivated": "{actor} aktiverte {subject} igjen",
    "password_reset_sent": "{actor} sendte {subject} en lenke for nytt passord",
    "password_reset_completed": "{subject} satte nytt passord med lenke fra e-post",
    "password_changed": "{subject} endret passordet sitt",
    "password_set_by_operator": "{subject} fikk nytt passord fra kommandolinjen",
    "two_factor_enabled": "{subject} slo på tofaktor-innlogging",
    "two_factor_disabled": "{subject} slo av tofaktor-innlogging",
    "two_factor_reset": "{actor} nullstilte tofaktor-innloggingen til {subject}",
    "recovery_codes_renewed": "{subject} lagde nye reservekoder",
    "name_changed": "{subject} endret navnet sitt",
    "notifications_changed": "{subject} endret varslene sine",
    "team_settings_changed": "{actor} endret innstillingene for alle: {detail}",
    "absence_added": "{actor} registrerte fravær for {subject}: {detail}",
    "absence_removed": "{actor} slettet fravær for {subject}: {detail}",
    "lead_pool_changed": "{actor} endret fordelingen for {subject}: {detail}",
}
SOMEONE = "en tidligere bruker"
# No actor: the change came from the command line on the server (accounts are deactivated, never deleted).
OPERATOR = "driftsansvarlig (kommandolinjen)"


def record(
    action: str,
    *,
    actor_id: uuid.UUID | None,
    subject_id: uuid.UUID | None = None,
    detail: str | None = None,
    now: datetime | None = None,
) -> None:
    """Add the entry to the caller's transaction."""
    assert action in ACTIONS, action
    db.session.add(
        AuditEvent(action=action, actor_id=actor_id, subject_id=subject_id, detail=detail, at=now or utcnow())
    )


@dataclass(frozen=True)
class Entry:
    at: datetime
    text: str


def _role_label(value: str | None) -> str:
    try:
        return Role(value).label
    except ValueError:
        return value or ""


def recent(limit: int = 30) -> list[Entry]:
    """The newest account changes, worded for the team page (two queries for the names, whatever the count)."""
    events = list(
        db.session.execute(
            sa.select(AuditEvent)
            .where(AuditEvent.action.in_(ACTIONS))
            .order_by(AuditEvent.at.desc(), AuditEvent.id)
            .limit(limit)
        ).scalars()
    )
    ids = {event.actor_id for event in events} | {event.subject_id for event in events}
    ids.discard(None)
    names = dict(db.session.execute(sa.select(User.id, User.name).where(User.id.in_(ids))).all()) if ids else {}
    names.update(
        dict(db.session.execute(sa.select(Invitation.id, Invitation.email).where(Invitation.id.in_(ids))).all())
        if ids
        else {}
    )
    entries = []
    for event in events:
        detail = event.detail or ""
        if event.action in ("user_invited", "role_changed"):
            detail = _role_label(detail)
        text = ACTIONS[event.action].format(
            actor=names.get(event.actor_id, SOMEONE) if event.actor_id else OPERATOR,
            subject=names.get(event.subject_id, SOMEONE),
            detail=detail,
        )
        entries.append(Entry(at=event.at, text=text[:1].upper() + text[1:]))
    return entries
