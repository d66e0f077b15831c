"""The lead's tables and their invariants: a lead, each booking it made, its moves, notes and events.

Workflows (booking, moving, mailing) live in the domain modules; a table holds data and the rules that
must hold whoever writes it (masked_ref is set once).
"""

import secrets
import uuid
from datetime import date, datetime

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.orm import Mapped, mapped_column, relationship, validates

from ..core.clock import utcnow
from ..core.columns import LabelledEnum, UTCDateTime, enum_check
from ..extensions import db
from .channel import DIRECT, MAX_CHANNEL_LENGTH
from .statuses import LeadStatus


def new_masked_ref() -> str:
    # 16 random bytes = 128 bits, 22 URL-safe characters: unguessable, fine in a URL.
    return secrets.token_urlsafe(16)


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


# What the conversion report reads of a lead (reporting/): the board's filters, and everything its figures of a
# period read, so a period is read from idx_lead_report_pass alone (an index-only scan on PostgreSQL).
FILTER_COLUMNS = ("source", "first_utm_campaign", "organization_size", "owner_id")
REPORT_COLUMNS = (
    "id",
    "created_at",
    "pass_started_at",
    "status",
    *FILTER_COLUMNS,
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
    "first_channel",
    "latest_channel",
    "latest_utm_campaign",
    "demo_at",
    "demo_cancelled_at",
    "demo_outcome",
    "deal_value",
)


class Lead(db.Model):
    __tablename__ = "leads"
    __table_args__ = (
        sa.Index("idx_lead_email", "email", unique=True),
        sa.Index("idx_lead_masked_ref", "masked_ref", unique=True),
        sa.Index("idx_lead_status", "status"),
        # The board reads «Kunde» and «Tapt» newest first (created_at, then the id), «Ny» by the first-contact clock.
        sa.Index("idx_lead_status_created_at", "status", "created_at", "id"),
        sa.Index(
            "idx_lead_status_first_contact_due_at",
            "status",
            "first_contact_due_at",
            "id",
            postgresql_include=["first_contact_at"],  # «N over svarfristen»: those not yet contacted
        ),
        sa.Index("idx_lead_created_at", "created_at"),
        sa.Index("idx_lead_organization_name", "organization_name"),
        # «Forfaller først» per column, and the owner filters.
        sa.Index("idx_lead_status_next_step_due_at", "status", "next_step_due_at"),
        sa.Index("idx_lead_owner_id", "owner_id"),
        sa.Index("idx_lead_first_utm_campaign", "first_utm_campaign"),
        sa.Index("idx_lead_first_channel", "first_channel"),
        # The report reads a period, by when each lead's current pass began (reporting.filters.pass_start), from
        # this index alone on PostgreSQL; SQLite ignores INCLUDE and keeps an index on the expression.
        sa.Index(
            "idx_lead_report_pass", sa.text("COALESCE(pass_started_at, created_at)"), postgresql_include=REPORT_COLUMNS
        ),
        # The report's weekly new leads with the board's filters (the id: their bookings are joined to it).
        sa.Index("idx_lead_arrivals", "created_at", postgresql_include=["id", "status", *FILTER_COLUMNS]),
        # The report's data version (reporting/cache.py DataVersion) and the board's poll for changed cards.
        sa.Index("idx_lead_updated_at", "updated_at"),
        # The free times' data version (slots/hosts.py): the newest change to a lead that has a demo.
        sa.Index(
            "idx_lead_demo_updated_at",
            "updated_at",
            postgresql_where=sa.text("demo_at IS NOT NULL"),
            sqlite_where=sa.text("demo_at IS NOT NULL"),
        ),
        # «Demo avtalt» reads in demo order.
        sa.Index("idx_lead_status_demo_at", "status", "demo_at"),
        # The worker's escalation of first-contact clocks (assignment/escalation.py).
        sa.Index("idx_lead_escalation", "escalation_stage", "first_contact_reminder_at"),
        # The report: won value by when it was won, the open pipeline by stage and close month.
        sa.Index(
            "idx_lead_won",
            "converted_at",
            postgresql_include=["status", *FILTER_COLUMNS, "first_channel", "latest_channel", "deal_value"],
            postgresql_where=sa.text("converted_at IS NOT NULL"),
            sqlite_where=sa.text("converted_at IS NOT NULL"),
        ),
        sa.Index(
            "idx_lead_open_value",
            "status",
            postgresql_include=[
                *FILTER_COLUMNS,
                "first_channel",
                "latest_channel",
                "estimated_value",
                "expected_close_month",
            ],
            postgresql_where=sa.text("estimated_value IS NOT NULL"),
            sqlite_where=sa.text("estimated_value IS NOT NULL"),
        ),
        sa.Index("idx_lead_expected_close_month", "expected_close_month"),
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
    # When staff last worked the lead: typed it in, or did anything with it (records.mark_worked). From then on a
    # public rebooking no longer overwrites its details.
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
    # The first-contact clock (business_hours.py): due at the target in business time after arrival, with a
    # reminder to the owner halfway; escalation_stage says what the worker has done (0 nothing, 1 reminded,
    # 2 expired), each step taken once by a compare-and-set.
    first_contact_due_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    first_contact_reminder_at: Mapped[datetime | None] = mapped_column(UTCDateTime, server_default=sa.null())
    escalation_stage: Mapped[int] = mapped_column(sa.SmallInteger, server_default="0")
    # The channel of the first touch and of the latest (leads/channel.py), kept with the touch they name. A server
    # default only, so the older migrations' tests can still insert rows through this table.
    first_channel: Mapped[str] = mapped_column(sa.String(MAX_CHANNEL_LENGTH), server_default=DIRECT, nullable=False)
    latest_channel: Mapped[str] = mapped_column(sa.String(MAX_CHANNEL_LENGTH), server_default=DIRECT, nullable=False)
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
    # The demo (scheduling/): when, how long, where, who hosts it. SEQUENCE counts the invitations
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
    # «Ble demoen holdt?» (slots/outcomes.py): held, no_show or cancelled_by_us; None until staff answer.
    demo_outcome: Mapped[str | None] = mapped_column(sa.String(20))
    demo_outcome_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Why the prospect cancelled the demo from their page («Avlys demoen»), as they wrote it; optional.
    demo_cancel_reason: Mapped[str | None] = mapped_column(sa.String(500))
    # What the deal is worth (leads/deal_value.py), whole kroner a year: an estimate and the month it is
    # expected to close from «Kvalifisert» on, and the agreed value at «Kunde». The board's column sums
    # (lead_status_counts.value_sum) count the agreed value, else the estimate.
    estimated_value: Mapped[int | None] = mapped_column(sa.Integer)
    expected_close_month: Mapped[date | None] = mapped_column(sa.Date)  # the first day of the month
    deal_value: Mapped[int | None] = mapped_column(sa.Integer)
    # A lost lead reopened starts a new pass through the pipeline (leads/passes.py): 1 for the first pass;
    # pass_started_at is None for the first (it began at created_at). Earlier passes are kept in lead_passes.
    pass_number: Mapped[int] = mapped_column(sa.Integer, server_default="1")
    pass_started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

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
    # Staff kept the lead's details instead («Behold nåværende»).
    details_rejected_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    details_rejected_by_name: Mapped[str | None] = mapped_column(sa.String(100))
    # Where the prospect came from: the URL's campaign parameters and the referring site's host.
    utm_source: Mapped[str | None] = mapped_column(sa.String(100))
    utm_medium: Mapped[str | None] = mapped_column(sa.String(100))
    utm_campaign: Mapped[str | None] = mapped_column(sa.String(100))
    utm_term: Mapped[str | None] = mapped_column(sa.String(100))
    utm_content: Mapped[str | None] = mapped_column(sa.String(100))
    referrer_host: Mapped[str | None] = mapped_column(sa.String(253))

    lead: Mapped[Lead] = relationship(back_populates="bookings")


# A note staff write, on a move or in the lead's timeline: one length for both (the move's column holds this much).
MAX_NOTE_LENGTH = 1000


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
    note: Mapped[str | None] = mapped_column(sa.String(MAX_NOTE_LENGTH))
    # The lead's pass through the pipeline this move belongs to (a reopening is the first move of its pass).
    pass_number: Mapped[int] = mapped_column(sa.Integer, server_default="1")


class LeadStatusCount(db.Model):
    """Leads per status, kept by database triggers, so the board's counts cost the same at any size."""

    __tablename__ = "lead_status_counts"

    status: Mapped[str] = mapped_column(sa.String(20), primary_key=True)
    lead_count: Mapped[int] = mapped_column(sa.Integer, default=0)
    # The sum of the column's values (agreed, else estimated), kept by the same triggers (migration 0016).
    value_sum: Mapped[int] = mapped_column(sa.BigInteger, server_default="0")


class StageWeight(db.Model):
    """An administrator's probability that a lead in an open stage becomes a customer, in whole percent."""

    __tablename__ = "stage_weights"

    status: Mapped[str] = mapped_column(sa.String(20), primary_key=True)
    percent: Mapped[int] = mapped_column(sa.Integer)
    updated_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    updated_by_id: Mapped[uuid.UUID | None] = mapped_column(sa.ForeignKey("users.id", ondelete="SET NULL"))


class LeadPass(db.Model):
    """A pass through the pipeline that ended, kept when the lead was reopened (leads/passes.py)."""

    __tablename__ = "lead_passes"
    __table_args__ = (
        sa.Index("idx_lead_pass_lead_id_pass_number", "lead_id", "pass_number", unique=True),
        sa.Index("idx_lead_pass_ended_at", "ended_at"),
        sa.Index("idx_lead_pass_started_at", "started_at"),
    )

    id: Mapped[uuid.UUID] = mapped_column(sa.Uuid, primary_key=True, default=uuid.uuid4)
    lead_id: Mapped[uuid.UUID] = mapped_column(sa.ForeignKey("leads.id", ondelete="CASCADE"))
    pass_number: Mapped[int] = mapped_column(sa.Integer)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime)
    ended_at: Mapped[datetime] = mapped_column(UTCDateTime)
    outcome: Mapped[str] = mapped_column(sa.String(20))
    lost_reason: Mapped[str | None] = mapped_column(sa.String(40))
    owner_id: Mapped[uuid.UUID | None] = mapped_column(sa.ForeignKey("users.id", ondelete="SET NULL"))
    funnel_rank: Mapped[int] = mapped_column(sa.SmallInteger)
    left_new_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    first_contact_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    reached_demo_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    estimated_value: Mapped[int | None] = mapped_column(sa.Integer)


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
