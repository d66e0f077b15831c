"""The tables of self-booked slots: the administrator's rules (one row), each host's settings, and the claim a
booked slot holds on its host's time.

A claim covers the demo and the buffer after it ([starts_at, blocked_until)): two claims of one host that do not
overlap are then at least one buffer apart. On PostgreSQL an exclusion constraint (migration 0015, btree_gist:
host with =, the range with &&) holds it whatever writes; on SQLite the booking's one write transaction does.
"""

import uuid
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from ..core.clock import utcnow
from ..core.columns import UTCDateTime
from ..core.sealed import SealedString
from ..extensions import db


class SlotRules(db.Model):
    """The rules an administrator sets for self-booked demos: one row (id 1); no row means every default."""

    __tablename__ = "slot_rules"

    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True, autoincrement=False)
    demo_minutes: Mapped[int] = mapped_column(sa.Integer)
    buffer_minutes: Mapped[int] = mapped_column(sa.Integer)
    notice_business_hours: Mapped[int] = mapped_column(sa.Integer)
    horizon_business_days: Mapped[int] = mapped_column(sa.Integer)
    max_per_host_per_day: Mapped[int] = mapped_column(sa.Integer)
    step_minutes: Mapped[int] = mapped_column(sa.Integer)
    change_cutoff_hours: Mapped[int] = mapped_column(sa.Integer)
    max_moves: Mapped[int] = mapped_column(sa.Integer)
    location: Mapped[str] = mapped_column(sa.String(500))
    updated_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    updated_by_id: Mapped[uuid.UUID | None] = mapped_column(sa.ForeignKey("users.id", ondelete="SET NULL"))


class DemoHost(db.Model):
    """A staff member's demo settings; no row means the defaults: takes demos, Monday–Friday 09:00–16:00."""

    __tablename__ = "demo_hosts"

    user_id: Mapped[uuid.UUID] = mapped_column(sa.ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    takes_demos: Mapped[bool] = mapped_column(sa.Boolean, default=True, server_default=sa.true())
    # "0=09:00-16:00;1=09:00-16:00;…": weekday (Monday 0) = Oslo wall-clock from-to; a missing day is off.
    weekly_hours: Mapped[str | None] = mapped_column(sa.String(200))
    # The private calendar address (a secret: stored sealed, never shown again in full, never logged) and its
    # last fetch.
    feed_url: Mapped[str | None] = mapped_column(SealedString)
    feed_fetched_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    feed_error: Mapped[str | None] = mapped_column(sa.String(300))
    feed_error_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # A worker's lease on the next fetch: several workers never fetch one feed at once.
    feed_lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class HostBusy(db.Model):
    """One busy stretch read from a host's calendar feed (the last good copy): replaced whole on each good fetch."""

    __tablename__ = "host_busy"
    __table_args__ = (sa.Index("idx_host_busy_user_id_starts_at", "user_id", "starts_at"),)

    id: Mapped[uuid.UUID] = mapped_column(sa.Uuid, primary_key=True, default=uuid.uuid4)
    user_id: Mapped[uuid.UUID] = mapped_column(sa.ForeignKey("users.id", ondelete="CASCADE"))
    starts_at: Mapped[datetime] = mapped_column(UTCDateTime)
    ends_at: Mapped[datetime] = mapped_column(UTCDateTime)


class SlotClaim(db.Model):
    """A self-booked demo's hold on its host's time; one per lead, moved with the demo, deleted when cancelled."""

    __tablename__ = "slot_claims"
    __table_args__ = (
        sa.Index("idx_slot_claim_lead_id", "lead_id", unique=True),
        sa.Index("idx_slot_claim_host_id_starts_at", "host_id", "starts_at"),
        sa.CheckConstraint("blocked_until > starts_at", name="slot_claim_range"),
    )

    id: Mapped[uuid.UUID] = mapped_column(sa.Uuid, primary_key=True, default=uuid.uuid4)
    lead_id: Mapped[uuid.UUID] = mapped_column(sa.ForeignKey("leads.id", ondelete="CASCADE"))
    host_id: Mapped[uuid.UUID] = mapped_column(sa.ForeignKey("users.id", ondelete="CASCADE"))
    starts_at: Mapped[datetime] = mapped_column(UTCDateTime)
    ends_at: Mapped[datetime] = mapped_column(UTCDateTime)
    blocked_until: Mapped[datetime] = mapped_column(UTCDateTime)
    moves: Mapped[int] = mapped_column(sa.Integer, default=0, server_default="0")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
