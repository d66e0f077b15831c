"""Tables and their invariants. Workflows (booking, moving, mailing) live in the domain modules."""

import enum
import secrets
import uuid
from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.orm import Mapped, mapped_column, relationship, validates

from .extensions import db


def utcnow() -> datetime:
    return datetime.now(UTC)


def new_masked_ref() -> str:
    # 16 random bytes = 128 bits, 22 URL-safe characters: unguessable, fine in a URL.
    return secrets.token_urlsafe(16)


class UTCDateTime(sa.TypeDecorator):
    """Timezone-aware UTC on every database (SQLite stores no offset, so we put it back on the way out)."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetimes are not stored; use meander_site.models.utcnow()")
        return value.astimezone(UTC)

    def process_result_value(self, value, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


class LabelledEnum(str, enum.Enum):
    """A string enum whose members carry the Norwegian label shown to people."""

    def __new__(cls, value: str, label: str):
        member = str.__new__(cls, value)
        member._value_ = value
        member.label = label
        return member

    @classmethod
    def values(cls) -> list[str]:
        return [member.value for member in cls]

    @classmethod
    def choices(cls) -> list[tuple[str, str]]:
        return [(member.value, member.label) for member in cls]


class LeadStatus(LabelledEnum):
    NEW = "new", "Ny"
    CONTACTED = "contacted", "Kontaktet"
    QUALIFIED = "qualified", "Kvalifisert"
    DEMO_SCHEDULED = "demo_scheduled", "Demo avtalt"
    CONVERTED = "converted", "Kunde"
    LOST = "lost", "Tapt"


class LeadSource(LabelledEnum):
    WEBSITE = "website", "Nettsiden"
    REFERRAL = "referral", "Anbefaling"
    EVENT = "event", "Arrangement"
    PHONE = "phone", "Telefon"
    EMAIL = "email", "E-post"
    OTHER = "other", "Annet"


class OrganizationSize(LabelledEnum):
    UP_TO_10 = "1-10", "1–10 personer"
    UP_TO_50 = "11-50", "11–50 personer"
    UP_TO_200 = "51-200", "51–200 personer"
    UP_TO_1000 = "201-1000", "201–1000 personer"
    OVER_1000 = "1000+", "Over 1000 personer"


def enum_check(column: str, enum_cls: type[LabelledEnum], nullable: bool = False) -> sa.CheckConstraint:
    allowed = ", ".join(f"'{value}'" for value in enum_cls.values())
    condition = f"{column} IN ({allowed})"
    if nullable:
        condition = f"{column} IS NULL OR {condition}"
    return sa.CheckConstraint(condition, name=f"{column}_allowed")


# The prospect's contact fields: what the public form sets, what a rebooking overwrites.
CONTACT_FIELDS = (
    "first_name",
    "last_name",
    "email",
    "phone",
    "organization_name",
    "role_title",
    "organization_size",
    "current_solution",
    "preferred_demo_timing",
    "notes",
)


# What the conversion report reads of a lead (reports.py), besides created_at.
REPORT_COLUMNS = (
    "status",
    "source",
    "first_utm_campaign",
    "organization_size",
    "owner_id",
    "funnel_rank",
    "first_contact_due_at",
    "left_new_at",
    "first_contact_at",
    "reached_demo_at",
    "converted_at",
    "lost_reason",
    "new_stage_seconds",
    "contacted_stage_seconds",
    "qualified_stage_seconds",
    "demo_stage_seconds",
)


class Lead(db.Model):
    __tablename__ = "leads"
    __table_args__ = (
        sa.Index("idx_lead_email", "email", unique=True),
        sa.Index("idx_lead_masked_ref", "masked_ref", unique=True),
        sa.Index("idx_lead_status", "status"),
        # The board reads each column newest first.
        sa.Index("idx_lead_status_created_at", "status", "created_at"),
        sa.Index("idx_lead_created_at", "created_at"),
        sa.Index("idx_lead_organization_name", "organization_name"),
        # «Forfaller først» per column, and the owner filters.
        sa.Index("idx_lead_status_next_step_due_at", "status", "next_step_due_at"),
        sa.Index("idx_lead_owner_id", "owner_id"),
        sa.Index("idx_lead_first_utm_campaign", "first_utm_campaign"),
        # The report reads a period's leads from this index alone on PostgreSQL (an index-only scan, about a
        # tenth of the table's width; the id for joining bookings); SQLite ignores INCLUDE, keeps created_at.
        sa.Index("idx_lead_report", "created_at", postgresql_include=["id", *REPORT_COLUMNS]),
        # The report's data version (reports.DataVersion) and the board's poll for changed cards.
        sa.Index("idx_lead_updated_at", "updated_at"),
        # «Demo avtalt» reads in demo order.
        sa.Index("idx_lead_status_demo_at", "status", "demo_at"),
        enum_check("status", LeadStatus),
        enum_check("source", LeadSource),
        enum_check("organization_size", OrganizationSize, nullable=True),
        sa.CheckConstraint("booking_count >= 1", name="booking_count_positive"),
    )

    id: Mapped[uuid.UUID] = mapped_column(sa.Uuid, primary_key=True, default=uuid.uuid4)
    first_name: Mapped[str] = mapped_column(sa.String(100))
    last_name: Mapped[str] = mapped_column(sa.String(100))
    email: Mapped[str] = mapped_column(sa.String(254))
    phone: Mapped[str | None] = mapped_column(sa.String(32))
    organization_name: Mapped[str] = mapped_column(sa.String(200))
    role_title: Mapped[str] = mapped_column(sa.String(100))
    organization_size: Mapped[str | None] = mapped_column(sa.String(16))
    current_solution: Mapped[str | None] = mapped_column(sa.String(500))
    preferred_demo_timing: Mapped[str | None] = mapped_column(sa.String(500))
    notes: Mapped[str | None] = mapped_column(sa.Text)
    status: Mapped[str] = mapped_column(sa.String(20), default=LeadStatus.NEW.value)
    source: Mapped[str] = mapped_column(sa.String(20), default=LeadSource.WEBSITE.value)
    # active_history: the validator must see the stored value even on an object expired by a commit.
    masked_ref: Mapped[str] = mapped_column(sa.String(32), default=new_masked_ref, active_history=True)
    ip_address: Mapped[str | None] = mapped_column(sa.String(45))
    confirmation_sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
    booking_count: Mapped[int] = mapped_column(sa.Integer, default=1)
    status_changed_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # Once staff have typed or edited a lead, a public rebooking no longer overwrites its details.
    staff_edited_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # The latest booking whose details differ from the lead's and were not applied: staff decide.
    newer_details_booking_id: Mapped[uuid.UUID | None] = mapped_column(sa.Uuid)
    # Follow-up: who works the lead and what they do next. Final statuses have no next step.
    owner_id: Mapped[uuid.UUID | None] = mapped_column(sa.ForeignKey("users.id", ondelete="SET NULL"))
    next_step: Mapped[str | None] = mapped_column(sa.String(200))
    next_step_due_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Attribution (attribution.py): the campaign and referring site of the first booking, never overwritten,
    # and of the latest one; when a lead had to be contacted by, as promised on the confirmation page.
    first_utm_source: Mapped[str | None] = mapped_column(sa.String(100))
    first_utm_medium: Mapped[str | None] = mapped_column(sa.String(100))
    first_utm_campaign: Mapped[str | None] = mapped_column(sa.String(100))
    first_utm_term: Mapped[str | None] = mapped_column(sa.String(100))
    first_utm_content: Mapped[str | None] = mapped_column(sa.String(100))
    first_referrer_host: Mapped[str | None] = mapped_column(sa.String(253))
    latest_utm_source: Mapped[str | None] = mapped_column(sa.String(100))
    latest_utm_medium: Mapped[str | None] = mapped_column(sa.String(100))
    latest_utm_campaign: Mapped[str | None] = mapped_column(sa.String(100))
    latest_utm_term: Mapped[str | None] = mapped_column(sa.String(100))
    latest_utm_content: Mapped[str | None] = mapped_column(sa.String(100))
    latest_referrer_host: Mapped[str | None] = mapped_column(sa.String(253))
    first_contact_due_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # The lead's journey, kept by a database trigger on every status change (migration 0008), so the report
    # reads one row per lead: the furthest stage reached (a skipped stage counts as passed), when it first
    # left «Ny», first made contact, reached «Demo avtalt» and «Kunde», why it was lost, and how long it spent
    # in each stage it has left.
    funnel_rank: Mapped[int] = mapped_column(sa.SmallInteger, default=0, server_default="0")
    left_new_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    first_contact_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    reached_demo_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    converted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    lost_reason: Mapped[str | None] = mapped_column(sa.String(40))
    new_stage_seconds: Mapped[float | None] = mapped_column(sa.Float)
    contacted_stage_seconds: Mapped[float | None] = mapped_column(sa.Float)
    qualified_stage_seconds: Mapped[float | None] = mapped_column(sa.Float)
    demo_stage_seconds: Mapped[float | None] = mapped_column(sa.Float)
    # The demo (scheduling.py): when, how long, where, who hosts it. SEQUENCE counts the invitations
    # sent for it (RFC 5545): a move or a cancellation is one higher than the mail before it.
    demo_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    demo_minutes: Mapped[int | None] = mapped_column(sa.Integer)
    demo_location: Mapped[str | None] = mapped_column(sa.String(500))
    demo_host_id: Mapped[uuid.UUID | None] = mapped_column(sa.ForeignKey("users.id", ondelete="SET NULL"))
    demo_sequence: Mapped[int] = mapped_column(sa.Integer, default=0, server_default="0")
    demo_cancelled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # «Be om et annet tidspunkt» from the confirmation page: the card shows «Ønsker ny tid» until moved.
    demo_change_requested_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    demo_change_request: Mapped[str | None] = mapped_column(sa.String(500))

    bookings: Mapped[list["Booking"]] = relationship(
        back_populates="lead", order_by="Booking.created_at", cascade="all, delete-orphan", passive_deletes=True
    )

    @validates("masked_ref")
    def _masked_ref_is_set_once(self, key, value):
        current = self.__dict__.get("masked_ref")
        if current is not None and value != current:
            raise MaskedRefImmutableError(self.id)
        return value

    @property
    def status_label(self) -> str:
        return LeadStatus(self.status).label

    @property
    def organization_size_label(self) -> str | None:
        return OrganizationSize(self.organization_size).label if self.organization_size else None

    @property
    def source_label(self) -> str:
        return LeadSource(self.source).label


class MaskedRefImmutableError(ValueError):
    def __init__(self, lead_id):
        super().__init__(f"masked_ref of lead {lead_id} is set once and never changes")


@event.listens_for(sa.orm.Session, "do_orm_execute")
def _refuse_bulk_masked_ref_updates(orm_execute_state):
    """Bulk UPDATE statements bypass @validates; refuse any that write masked_ref."""
    if not orm_execute_state.is_update:
        return
    statement = orm_execute_state.statement
    table = getattr(statement, "table", None)
    if table is not None and table.name == Lead.__tablename__:
        written = {getattr(key, "key", key) for key in (statement._values or {})}
        if "masked_ref" in written:
            raise MaskedRefImmutableError("(bulk update)")


class Booking(db.Model):
    """One submission of the demo form, kept as typed; also what a confirmation mail is about."""

    __tablename__ = "bookings"
    __table_args__ = (
        sa.Index("idx_booking_lead_id_created_at", "lead_id", "created_at"),
        sa.Index("idx_booking_email_created_at", "email", "created_at"),
        enum_check("organization_size", OrganizationSize, nullable=True),
    )

    id: Mapped[uuid.UUID] = mapped_column(sa.Uuid, primary_key=True, default=uuid.uuid4)
    lead_id: Mapped[uuid.UUID] = mapped_column(sa.ForeignKey("leads.id", ondelete="CASCADE"))
    first_name: Mapped[str] = mapped_column(sa.String(100))
    last_name: Mapped[str] = mapped_column(sa.String(100))
    email: Mapped[str] = mapped_column(sa.String(254))
    phone: Mapped[str | None] = mapped_column(sa.String(32))
    organization_name: Mapped[str] = mapped_column(sa.String(200))
    role_title: Mapped[str] = mapped_column(sa.String(100))
    organization_size: Mapped[str | None] = mapped_column(sa.String(16))
    current_solution: Mapped[str | None] = mapped_column(sa.String(500))
    preferred_demo_timing: Mapped[str | None] = mapped_column(sa.String(500))
    notes: Mapped[str | None] = mapped_column(sa.Text)
    ip_address: Mapped[str | None] = mapped_column(sa.String(45))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    # Its confirmation mail, if one was ordered, is an outbox row (kind "confirmation", booking_id = this id).
    # Staff took this submission's details over onto the lead («Bruk disse opplysningene»).
    details_applied_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    details_applied_by_name: Mapped[str | None] = mapped_column(sa.String(100))
    # Where the prospect came from: the URL's campaign parameters and the referring site's host.
    utm_source: Mapped[str | None] = mapped_column(sa.String(100))
    utm_medium: Mapped[str | None] = mapped_column(sa.String(100))
    utm_campaign: Mapped[str | None] = mapped_column(sa.String(100))
    utm_term: Mapped[str | None] = mapped_column(sa.String(100))
    utm_content: Mapped[str | None] = mapped_column(sa.String(100))
    referrer_host: Mapped[str | None] = mapped_column(sa.String(253))

    lead: Mapped[Lead] = relationship(back_populates="bookings")


# --- staff and the pipeline ---------------------------------------------------------------------------


class User(db.Model):
    """A member of the sales team."""

    __tablename__ = "users"
    __table_args__ = (sa.Index("idx_user_email", "email", unique=True),)

    id: Mapped[uuid.UUID] = mapped_column(sa.Uuid, primary_key=True, default=uuid.uuid4)
    email: Mapped[str] = mapped_column(sa.String(254))
    name: Mapped[str] = mapped_column(sa.String(100))
    password_hash: Mapped[str] = mapped_column(sa.String(255))
    is_active: Mapped[bool] = mapped_column(sa.Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_login_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # «Varsle meg om nye leads»: a mail for every new lead and rebooking.
    notify_new_leads: Mapped[bool] = mapped_column(sa.Boolean, default=True, server_default=sa.true())

    @property
    def initials(self) -> str:
        parts = self.name.split()
        return "".join(part[0] for part in (parts[:1] + parts[-1:] if len(parts) > 1 else parts)).upper() or "?"

    @property
    def first_name(self) -> str:
        return self.name.split()[0] if self.name.split() else self.name


class StaffSession(db.Model):
    """A signed-in browser. The cookie holds only this random token, so logging out ends it on the server."""

    __tablename__ = "staff_sessions"
    __table_args__ = (sa.Index("idx_staff_session_user_id", "user_id"),)

    token: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    user_id: Mapped[uuid.UUID] = mapped_column(sa.ForeignKey("users.id", ondelete="CASCADE"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)

    user: Mapped[User] = relationship(lazy="joined")


class LeadStatusChange(db.Model):
    """One move on the board: from, to, who, when, and why."""

    __tablename__ = "lead_status_changes"
    __table_args__ = (
        sa.Index("idx_status_change_lead_id_changed_at", "lead_id", "changed_at"),
        sa.Index("idx_status_change_lead_id_to_status", "lead_id", "to_status", "changed_at"),
        enum_check("from_status", LeadStatus),
        enum_check("to_status", LeadStatus),
    )

    id: Mapped[uuid.UUID] = mapped_column(sa.Uuid, primary_key=True, default=uuid.uuid4)
    lead_id: Mapped[uuid.UUID] = mapped_column(sa.ForeignKey("leads.id", ondelete="CASCADE"))
    from_status: Mapped[str] = mapped_column(sa.String(20))
    to_status: Mapped[str] = mapped_column(sa.String(20))
    changed_by_id: Mapped[uuid.UUID | None] = mapped_column(sa.ForeignKey("users.id", ondelete="SET NULL"))
    changed_by_name: Mapped[str | None] = mapped_column(sa.String(100))
    changed_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    reason: Mapped[str | None] = mapped_column(sa.String(40))
    note: Mapped[str | None] = mapped_column(sa.String(1000))


class LeadStatusCount(db.Model):
    """Leads per status, kept by database triggers, so the board's counts cost the same at any size."""

    __tablename__ = "lead_status_counts"

    status: Mapped[str] = mapped_column(sa.String(20), primary_key=True)
    lead_count: Mapped[int] = mapped_column(sa.Integer, default=0)


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


class LeadNote(db.Model):
    """A dated note a salesperson wrote on a lead: the lead page shows them as a timeline."""

    __tablename__ = "lead_notes"
    __table_args__ = (sa.Index("idx_lead_note_lead_id_created_at", "lead_id", "created_at"),)

    id: Mapped[uuid.UUID] = mapped_column(sa.Uuid, primary_key=True, default=uuid.uuid4)
    lead_id: Mapped[uuid.UUID] = mapped_column(sa.ForeignKey("leads.id", ondelete="CASCADE"))
    author_id: Mapped[uuid.UUID | None] = mapped_column(sa.ForeignKey("users.id", ondelete="SET NULL"))
    author_name: Mapped[str | None] = mapped_column(sa.String(100))
    body: Mapped[str] = mapped_column(sa.Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class LeadEvent(db.Model):
    """Something staff did to a lead besides moving it (reassigning, setting the next step): its history."""

    __tablename__ = "lead_events"
    __table_args__ = (sa.Index("idx_lead_event_lead_id_at", "lead_id", "at"),)

    id: Mapped[uuid.UUID] = mapped_column(sa.Uuid, primary_key=True, default=uuid.uuid4)
    lead_id: Mapped[uuid.UUID] = mapped_column(sa.ForeignKey("leads.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(sa.String(40))
    actor_id: Mapped[uuid.UUID | None] = mapped_column(sa.ForeignKey("users.id", ondelete="SET NULL"))
    actor_name: Mapped[str | None] = mapped_column(sa.String(100))
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # A short, readable account («Eier: Kari → Ola»); never the prospect's own text.
    detail: Mapped[str | None] = mapped_column(sa.String(300))


class OutboxMessage(db.Model):
    """One mail the site sends, stored before it is queued: the worker claims it, sends it once, records it."""

    __tablename__ = "outbox_messages"
    __table_args__ = (
        sa.Index("idx_outbox_due_at", "due_at"),
        sa.Index("idx_outbox_kind_recipient_sent_at", "kind", "recipient", "sent_at"),
        sa.Index("idx_outbox_lead_id", "lead_id"),
        sa.Index("idx_outbox_booking_id", "booking_id"),
        sa.Index("idx_outbox_dedupe_key", "dedupe_key", unique=True),
    )

    id: Mapped[uuid.UUID] = mapped_column(sa.Uuid, primary_key=True, default=uuid.uuid4)
    kind: Mapped[str] = mapped_column(sa.String(40))
    recipient: Mapped[str] = mapped_column(sa.String(254))
    # What the mail is about; erasing a lead takes its mail with it.
    lead_id: Mapped[uuid.UUID | None] = mapped_column(sa.ForeignKey("leads.id", ondelete="CASCADE"))
    booking_id: Mapped[uuid.UUID | None] = mapped_column(sa.ForeignKey("bookings.id", ondelete="CASCADE"))
    user_id: Mapped[uuid.UUID | None] = mapped_column(sa.ForeignKey("users.id", ondelete="CASCADE"))
    # Ids and settings the builder needs, as JSON; never personal data.
    payload: Mapped[str | None] = mapped_column(sa.Text)
    # One mail per key, whoever tries to write it (e.g. one digest per person per day).
    dedupe_key: Mapped[str | None] = mapped_column(sa.String(120))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # Not sent before then (a batch collects what arrives meanwhile).
    send_after: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # When a sweep should (re-)enqueue it if nobody is handling it; NULL once sent or closed.
    due_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # A worker holds the send until then, so two jobs never both send it.
    claimed_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    attempts: Mapped[int] = mapped_column(sa.Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(sa.String(500))
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Never to be sent: suppressed (too many to one address), cancelled, or its subject is gone.
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    closed_reason: Mapped[str | None] = mapped_column(sa.String(40))
