"""Inviting a colleague by mail: the invitation, its one-time link (72 hours), and accepting it with a name and
a password, which makes the account and signs it in."""

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa
from email_validator import EmailNotValidError

from ..core.clock import utcnow
from ..core.email_address import canonical_address
from ..core.text import has_control_characters
from ..extensions import db
from ..mail.dispatch import dispatch
from . import audit, mails, tokens, users
from .models import AccountToken, Invitation, Role, User
from .passwords import password_problem
from .roles import parse_role

INVITATION_LIFETIME = timedelta(hours=72)


class InvitationRefused(ValueError):
    """What was typed cannot be used: a message per field."""

    def __init__(self, errors: dict[str, str]) -> None:
        super().__init__(" ".join(errors.values()))
        self.errors = errors


def validate_invitation(email: str | None, role: str | None) -> tuple[str, Role]:
    errors = {}
    address = (email or "").strip()
    if not address:
        errors["email"] = "Skriv inn e-postadressen til kollegaen du vil invitere."
    elif has_control_characters(address) or len(address) > 254:
        errors["email"] = "Skriv en gyldig e-postadresse, for eksempel ola@meander.no."
    else:
        try:
            address = canonical_address(address)
        except EmailNotValidError:
            errors["email"] = "Skriv en gyldig e-postadresse, for eksempel ola@meander.no."
    if "email" not in errors and db.session.execute(sa.select(User.id).where(User.email == address)).first():
        errors["email"] = f"{address} har allerede en konto. Finn personen i listen under."
    parsed = parse_role(role)
    if parsed is None:
        errors["role"] = "Velg om kollegaen skal være selger eller administrator."
    if errors:
        raise InvitationRefused(errors)
    return address, parsed


def invite(email: str | None, role: str | None, by_id: uuid.UUID) -> Invitation:
    """Mail a colleague a link to join. An open invitation to the same address is replaced (its link stops
    working): sending again is how an expired invitation is renewed."""
    address, parsed = validate_invitation(email, role)
    now = utcnow()
    earlier = list(
        db.session.execute(
            sa.select(Invitation.id).where(
                Invitation.email == address, Invitation.accepted_at.is_(None), Invitation.withdrawn_at.is_(None)
            )
        ).scalars()
    )
    if earlier:
        _withdraw(earlier, now)
    invitation = Invitation(id=uuid.uuid4(), email=address, role=parsed.value, invited_by_id=by_id, created_at=now)
    db.session.add(invitation)
    db.session.flush()  # the link's row points at it
    token = tokens.new_link(tokens.INVITATION, INVITATION_LIFETIME, invitation_id=invitation.id, now=now)
    message = mails.write_link_mail(mails.INVITATION, address, token)
    audit.record("user_invited", actor_id=by_id, subject_id=invitation.id, detail=parsed.value, now=now)
    db.session.commit()
    dispatch(message)
    return invitation


def _withdraw(invitation_ids: list[uuid.UUID], now: datetime) -> None:
    db.session.execute(
        sa.update(Invitation)
        .where(Invitation.id.in_(invitation_ids), Invitation.withdrawn_at.is_(None))
        .values(withdrawn_at=now)
        .execution_options(synchronize_session=False)
    )
    tokens.close_open_links(tokens.INVITATION, now, invitation_ids=invitation_ids)


def withdraw(invitation_id: uuid.UUID, by_id: uuid.UUID) -> bool:
    invitation = db.session.get(Invitation, invitation_id)
    if invitation is None or invitation.accepted_at or invitation.withdrawn_at:
        return False
    now = utcnow()
    _withdraw([invitation_id], now)
    audit.record("invitation_withdrawn", actor_id=by_id, subject_id=invitation_id, now=now)
    db.session.commit()
    return True


@dataclass(frozen=True)
class OpenInvitation:
    invitation: Invitation
    expires_at: datetime
    now: datetime

    @property
    def expired(self) -> bool:
        return self.expires_at <= self.now


def open_invitations() -> list[OpenInvitation]:
    """Invitations nobody has accepted yet (expired ones too: they can be sent again), newest first."""
    newest_link = (
        sa.select(AccountToken.invitation_id, sa.func.max(AccountToken.expires_at).label("expires_at"))
        .where(AccountToken.purpose == tokens.INVITATION)
        .group_by(AccountToken.invitation_id)
        .subquery()
    )
    rows = db.session.execute(
        sa.select(Invitation, newest_link.c.expires_at)
        .join(newest_link, newest_link.c.invitation_id == Invitation.id)
        .where(Invitation.accepted_at.is_(None), Invitation.withdrawn_at.is_(None))
        .order_by(Invitation.created_at.desc())
    ).all()
    now = utcnow()
    return [OpenInvitation(invitation, expires_at, now) for invitation, expires_at in rows]


@dataclass(frozen=True)
class InvitationLink:
    """What an opened invitation link leads to."""

    state: tokens.LinkState
    invitation: Invitation | None = None

    @property
    def withdrawn(self) -> bool:
        return self.invitation is not None and self.invitation.withdrawn_at is not None

    @property
    def inviter_name(self) -> str | None:
        inviter = self.invitation.invited_by if self.invitation else None
        return inviter.name if inviter is not None and inviter.is_active else None


def open_link(token_hash: str | None) -> InvitationLink:
    lookup = tokens.look_up(tokens.INVITATION, token_hash)
    invitation = db.session.get(Invitation, lookup.token.invitation_id) if lookup.token else None
    state = lookup.state
    if state == tokens.LinkState.VALID and (invitation is None or invitation.accepted_at or invitation.withdrawn_at):
        state = tokens.LinkState.USED
    return InvitationLink(state, invitation)


def accept(token_hash: str | None, name: str | None, password: str | None) -> User:
    """The invitee's name and password make the account, with the invitation's role; the link is used up."""
    link = open_link(token_hash)
    if link.state != tokens.LinkState.VALID:
        raise tokens.LinkNotUsable(link.state)
    invitation = link.invitation
    name, name_problem = users.validate_name(name)
    errors = {"name": name_problem} if name_problem else {}
    problem = password_problem(password or "", (invitation.email, name))
    if problem:
        errors["password"] = problem
    if errors:
        raise InvitationRefused(errors)
    now = utcnow()
    if tokens.use(tokens.INVITATION, token_hash, now) is None:
        db.session.rollback()
        raise tokens.LinkNotUsable(open_link(token_hash).state)
    user = User(
        id=uuid.uuid4(),
        email=invitation.email,
        name=name,
        password_hash=users.hash_password(password),
        role=invitation.role,
    )
    try:
        db.session.add(user)
        db.session.flush()
        invitation.accepted_at, invitation.user_id = now, user.id
        audit.record("invitation_accepted", actor_id=user.id, subject_id=user.id, now=now)
        db.session.commit()
    except sa.exc.IntegrityError:
        db.session.rollback()  # the address got an account meanwhile (the command line): the link stays unused
        raise InvitationRefused(
            {"name": f"{invitation.email} har fått en konto i mellomtiden. Logg inn, eller be om nytt passord."}
        ) from None
    return user
