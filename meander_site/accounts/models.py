"""The sales team's tables: who may sign in and with which role, their signed-in browsers and second factor,
invitations and the one-time links mailed for them, the settings that govern everyone, and what staff did that
stays on record."""

import uuid
from datetime import date, datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, relationship

from ..core.clock import utcnow
from ..core.columns import LabelledEnum, UTCDateTime
from ..core.sealed import SealedString
from ..extensions import db

ABSENCE_NOTE_LENGTH = 100


class Role(LabelledEnum):
    """What a member of the team may do: administrators manage the team and the rules for everyone."""

    ADMIN = ("admin", "Administrator")
    SELLER = ("seller", "Selger")


class User(db.Model):
    """A member of the sales team."""

    __tablename__ = "users"
    __table_args__ = (sa.Index("idx_user_email", "email", unique=True),)
    # The assignment columns have server defaults only and are deferred (read when used, never fetched by an INSERT
    # or a plain load): the older migrations' tests use this model on tables that lack them.
    __mapper_args__ = {"eager_defaults": False}

    id: Mapped[uuid.UUID] = mapped_column(sa.Uuid, primary_key=True, default=uuid.uuid4)
    email: Mapped[str] = mapped_column(sa.String(254))
    name: Mapped[str] = mapped_column(sa.String(100))
    password_hash: Mapped[str] = mapped_column(sa.String(255))
    is_active: Mapped[bool] = mapped_column(sa.Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_login_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # «Varsle meg om nye leads»: a mail for every new lead and rebooking.
    notify_new_leads: Mapped[bool] = mapped_column(sa.Boolean, default=True, server_default=sa.true())
    role: Mapped[str] = mapped_column(sa.String(20), default=Role.SELLER.value, server_default=Role.SELLER.value)
    # The authenticator app's shared secret (base32), once confirmed with a code; NULL: no second factor.
    totp_secret: Mapped[str | None] = mapped_column(SealedString)
    two_factor_enabled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # The last TOTP time step accepted: a code is never accepted twice, nor one older than it.
    totp_last_step: Mapped[int | None] = mapped_column(sa.BigInteger)
    # A secret shown during setup, not yet confirmed with a code.
    totp_pending_secret: Mapped[str | None] = mapped_column(SealedString)
    # The assignment pool (assignment/pool.py): «Tar imot nye leads», the share of them (100: a full share), and the
    # member's place in the weighted rotation (each lead moves it on by 100 / weight; the lowest goes next).
    takes_new_leads: Mapped[bool] = mapped_column(
        sa.Boolean, server_default=sa.true(), deferred=True, deferred_group="pool"
    )
    assignment_weight_percent: Mapped[int] = mapped_column(
        sa.Integer, server_default="100", deferred=True, deferred_group="pool"
    )
    assignment_pass: Mapped[float] = mapped_column(sa.Float, server_default="0", deferred=True, deferred_group="pool")
    last_assigned_at: Mapped[datetime | None] = mapped_column(
        UTCDateTime, server_default=sa.null(), deferred=True, deferred_group="pool"
    )

    @property
    def initials(self) -> str:
        parts = self.name.split()
        return "".join(part[0] for part in (parts[:1] + parts[-1:] if len(parts) > 1 else parts)).upper() or "?"

    @property
    def first_name(self) -> str:
        return self.name.split()[0] if self.name.split() else self.name

    @property
    def is_admin(self) -> bool:
        return self.role == Role.ADMIN.value

    @property
    def role_label(self) -> str:
        return Role(self.role).label

    @property
    def has_two_factor(self) -> bool:
        return self.totp_secret is not None


class StaffSession(db.Model):
    """A signed-in browser. The cookie holds only this random token, so logging out ends it on the server."""

    __tablename__ = "staff_sessions"
    __table_args__ = (sa.Index("idx_staff_session_user_id", "user_id"),)

    token: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    user_id: Mapped[uuid.UUID] = mapped_column(sa.ForeignKey("users.id", ondelete="CASCADE"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)

    user: Mapped[User] = relationship(lazy="joined")


class AuditEvent(db.Model):
    """What staff did that must stay on record, without personal data (an erased lead leaves only this)."""

    __tablename__ = "audit_events"
    __table_args__ = (sa.Index("idx_audit_event_at", "at"),)

    id: Mapped[uuid.UUID] = mapped_column(sa.Uuid, primary_key=True, default=uuid.uuid4)
    action: Mapped[str] = mapped_column(sa.String(40))
    subject_id: Mapped[uuid.UUID | None] = mapped_column(sa.Uuid)
    actor_id: Mapped[uuid.UUID | None] = mapped_column(sa.ForeignKey("users.id", ondelete="SET NULL"))
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    detail: Mapped[str | None] = mapped_column(sa.String(200))


class Invitation(db.Model):
    """A colleague asked to join, by mail: open until accepted, replaced by a newer one, or withdrawn."""

    __tablename__ = "invitations"
    __table_args__ = (sa.Index("idx_invitation_email", "email"),)

    id: Mapped[uuid.UUID] = mapped_column(sa.Uuid, primary_key=True, default=uuid.uuid4)
    email: Mapped[str] = mapped_column(sa.String(254))
    role: Mapped[str] = mapped_column(sa.String(20))
    invited_by_id: Mapped[uuid.UUID | None] = mapped_column(sa.ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    accepted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    withdrawn_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # The account the invitation became.
    user_id: Mapped[uuid.UUID | None] = mapped_column(sa.ForeignKey("users.id", ondelete="SET NULL"))

    invited_by: Mapped[User | None] = relationship(foreign_keys=[invited_by_id])

    @property
    def role_label(self) -> str:
        return Role(self.role).label


class AccountToken(db.Model):
    """A one-time link's secret: only its SHA-256 is stored, written when the mail carrying it is built."""

    __tablename__ = "account_tokens"
    __table_args__ = (
        sa.Index("idx_account_token_hash", "token_hash", unique=True),
        sa.Index("idx_account_token_user_id", "user_id"),
        sa.Index("idx_account_token_invitation_id", "invitation_id"),
    )

    id: Mapped[uuid.UUID] = mapped_column(sa.Uuid, primary_key=True, default=uuid.uuid4)
    purpose: Mapped[str] = mapped_column(sa.String(20))
    token_hash: Mapped[str | None] = mapped_column(sa.String(64))
    user_id: Mapped[uuid.UUID | None] = mapped_column(sa.ForeignKey("users.id", ondelete="CASCADE"))
    invitation_id: Mapped[uuid.UUID | None] = mapped_column(sa.ForeignKey("invitations.id", ondelete="CASCADE"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class RecoveryCode(db.Model):
    """One of the codes handed out when two-factor is turned on: each signs in once, stored as a hash."""

    __tablename__ = "recovery_codes"
    __table_args__ = (sa.Index("idx_recovery_code_user_id", "user_id"),)

    id: Mapped[uuid.UUID] = mapped_column(sa.Uuid, primary_key=True, default=uuid.uuid4)
    user_id: Mapped[uuid.UUID] = mapped_column(sa.ForeignKey("users.id", ondelete="CASCADE"))
    code_hash: Mapped[str] = mapped_column(sa.String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class TeamSettings(db.Model):
    """The settings an administrator sets for everyone: one row (id 1); no row means every default."""

    __tablename__ = "team_settings"

    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True, autoincrement=False)
    require_two_factor: Mapped[bool] = mapped_column(sa.Boolean, default=False, server_default=sa.false())
    # Business hours, as minutes after midnight Oslo time, and the first-contact target in business minutes.
    opens_at_minute: Mapped[int] = mapped_column(sa.Integer, server_default="480")
    closes_at_minute: Mapped[int] = mapped_column(sa.Integer, server_default="960")
    first_contact_target_minutes: Mapped[int] = mapped_column(sa.Integer, server_default="120")
    # «Gi videre når fristen går ut»: an expired lead goes to the next member of the pool.
    hand_over_when_expired: Mapped[bool] = mapped_column(sa.Boolean, server_default=sa.false())
    # The chat's incoming webhook (Slack, Teams), and why the last post was refused (a 4xx), for the settings page.
    chat_webhook_url: Mapped[str | None] = mapped_column(SealedString, server_default=sa.null())  # sealed: a secret
    chat_webhook_error: Mapped[str | None] = mapped_column(sa.String(300), server_default=sa.null())
    updated_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    updated_by_id: Mapped[uuid.UUID | None] = mapped_column(sa.ForeignKey("users.id", ondelete="SET NULL"))


class Absence(db.Model):
    """Days a member of the team is away (holiday, leave): no new leads and no demos on them. Both dates count."""

    __tablename__ = "staff_absence"
    __table_args__ = (
        sa.Index("idx_staff_absence_user_id_ends_on", "user_id", "ends_on"),
        sa.CheckConstraint("ends_on >= starts_on", name="absence_ends_after_it_starts"),
    )

    id: Mapped[uuid.UUID] = mapped_column(sa.Uuid, primary_key=True, default=uuid.uuid4)
    user_id: Mapped[uuid.UUID] = mapped_column(sa.ForeignKey("users.id", ondelete="CASCADE"))
    starts_on: Mapped[date] = mapped_column(sa.Date)
    ends_on: Mapped[date] = mapped_column(sa.Date)
    note: Mapped[str | None] = mapped_column(sa.String(ABSENCE_NOTE_LENGTH))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
