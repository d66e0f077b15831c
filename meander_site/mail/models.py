"""The outbox table: every mail the site sends is a row here first."""

import uuid
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from ..core.clock import utcnow
from ..core.columns import UTCDateTime
from ..extensions import db


class OutboxMessage(db.Model):
    """One mail the site sends, stored before it is queued: the worker claims it, sends it once, records it."""

    __tablename__ = "outbox_messages"
    __table_args__ = (
        sa.Index("idx_outbox_due_at", "due_at"),
        sa.Index("idx_outbox_kind_recipient_sent_at", "kind", "recipient", "sent_at"),
        sa.Index("idx_outbox_lead_id", "lead_id"),
        # The board's cards ask for their unsent confirmations: a few rows, however many were sent.
        sa.Index(
            "idx_outbox_unsent_lead_id",
            "lead_id",
            postgresql_where=sa.text("sent_at IS NULL"),
            sqlite_where=sa.text("sent_at IS NULL"),
        ),
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
