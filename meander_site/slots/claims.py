"""Booking a slot for a lead in the caller's transaction: pick a free host, hold their time (a SlotClaim), move the
lead to «Demo avtalt» and write the invitations. No host is ever double-booked: on PostgreSQL the bookings of one
day take turns on an advisory lock and the exclusion constraint refuses any overlap; on SQLite the booking's write
transaction (begun by the upsert) already holds the one write lock."""

import functools
import logging
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import Enum

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from ..accounts import team_settings
from ..business_days import OSLO, end_of_day, end_of_next_business_day, next_business_day
from ..extensions import db
from ..leads.models import Lead, LeadEvent, LeadStatusChange
from ..leads.statuses import FINAL_STATUSES, LeadStatus
from ..mail import outbox
from ..scheduling import mails as demo_mails
from ..scheduling import reminders
from ..scheduling.demo_state import has_upcoming_demo
from ..scheduling.labels import demo_label
from . import availability, hosts
from . import rules as slot_rules
from .models import SlotClaim
from .rules import Rules

log = logging.getLogger(__name__)

# Who made the change, as the timeline and the moves table show it.
PROSPECT = "Kunden"
# Kept in step with pipeline.next_steps.FOLLOW_UP_AFTER_DEMO (which this layer may not import).
FOLLOW_UP_AFTER_DEMO = "Følg opp etter demoen"
# The key space of this package's PostgreSQL advisory locks (the other key is the Oslo day's ordinal).
ADVISORY_LOCK_SPACE = 19


class Outcome(str, Enum):
    BOOKED = "booked"
    TAKEN = "taken"  # offered, but no host is free any more: «Tidspunktet ble nettopp tatt»
    KEPT = "kept"  # the lead already has a future demo; it is kept
    CLOSED = "closed"  # the lead is won or lost: no demo is booked from the form


@dataclass(frozen=True)
class SlotResult:
    outcome: Outcome
    starts_at: datetime | None = None
    host_id: uuid.UUID | None = None
    # For the caller's one outbox.write: the invitations (dispatched after the commit) and the reminders (left to
    # the sweep, which sends each within a minute or two of its moment: no job waits a day in Redis for it).
    drafts: tuple[outbox.Draft, ...] = ()
    quiet_drafts: tuple[outbox.Draft, ...] = ()


# The booking's statements are built once, from the tables: SQLAlchemy keeps a Core statement's compiled form and
# cache key, while one naming mapped classes is copied and keyed anew on every execution.
CLAIMS, LEADS = SlotClaim.__table__.c, Lead.__table__.c


def _parameters(table: sa.Table, names) -> dict[str, sa.BindParameter]:
    return {name: sa.bindparam(name, type_=table.c[name].type) for name in names}


@functools.cache
def _lock_day_statement():
    return sa.select(sa.func.pg_advisory_xact_lock(ADVISORY_LOCK_SPACE, sa.bindparam("day", type_=sa.Integer)))


def lock_day(starts_at: datetime) -> None:
    """PostgreSQL: bookings of one Oslo day take turns until their transaction ends (SQLite needs nothing: the
    booking's first write took the database's one write lock)."""
    if db.session.get_bind().dialect.name == "postgresql":
        db.session.execute(_lock_day_statement(), {"day": starts_at.astimezone(OSLO).date().toordinal()})


@functools.cache
def _event_statement():
    return sa.insert(LeadEvent.__table__).values(
        _parameters(LeadEvent.__table__, ("id", "lead_id", "kind", "actor_name", "at", "detail"))
    )


def record_prospect_event(lead_id: uuid.UUID, kind: str, detail: str, now: datetime) -> None:
    """A line in the lead's timeline for what the prospect did themselves: booked, moved or cancelled a demo."""
    db.session.execute(
        _event_statement(),
        {"id": uuid.uuid4(), "lead_id": lead_id, "kind": kind, "actor_name": PROSPECT, "at": now, "detail": detail},
    )


@functools.cache
def _claim_statement(dialect: str):
    """INSERT … ON CONFLICT DO NOTHING RETURNING id: no row back when the exclusion constraint (PostgreSQL: DO
    NOTHING takes exclusion constraints as arbiters) or the lead's one claim refuses it. No savepoint needed: a
    refused row is skipped, not an error that would end the transaction."""
    insert = {"postgresql": postgresql.insert, "sqlite": sqlite.insert}[dialect]
    table = SlotClaim.__table__
    columns = ("id", "lead_id", "host_id", "starts_at", "ends_at", "blocked_until", "moves", "created_at")
    return insert(table).values(_parameters(table, columns)).on_conflict_do_nothing().returning(table.c.id)


def hold(
    lead_id: uuid.UUID, host_id: uuid.UUID, starts_at: datetime, rules: Rules, now: datetime, moves: int = 0
) -> bool:
    """Insert the claim; False when the exclusion constraint (or the lead's one claim) refuses it. A refusal by
    claims whose demo is gone (release_stale) clears them and tries once more."""
    ends_at = starts_at + timedelta(minutes=rules.demo_minutes)
    blocked_until = ends_at + timedelta(minutes=rules.buffer_minutes)
    claim = {
        "lead_id": lead_id,
        "host_id": host_id,
        "starts_at": starts_at,
        "ends_at": ends_at,
        "blocked_until": blocked_until,
        "moves": moves,
        "created_at": now,
    }
    statement = _claim_statement(db.session.get_bind().dialect.name)
    if db.session.execute(statement, {**claim, "id": uuid.uuid4()}).first() is not None:
        return True
    if not release_stale(host_id, starts_at, blocked_until):
        return False
    return db.session.execute(statement, {**claim, "id": uuid.uuid4()}).first() is not None


@functools.cache
def _release_stale_statement():
    claims = SlotClaim.__table__
    blocked_until = sa.bindparam("blocked_until", type_=CLAIMS.starts_at.type)
    starts_at = sa.bindparam("starts_at", type_=CLAIMS.blocked_until.type)
    stale = (
        sa.select(CLAIMS.id)
        .select_from(claims.join(Lead.__table__, LEADS.id == CLAIMS.lead_id))
        .where(
            CLAIMS.host_id == sa.bindparam("host_id", type_=sa.Uuid),
            CLAIMS.starts_at < blocked_until,
            CLAIMS.blocked_until > starts_at,
            sa.or_(
                LEADS.status != LeadStatus.DEMO_SCHEDULED.value,
                LEADS.demo_cancelled_at.is_not(None),
                LEADS.demo_at.is_(None),
                LEADS.demo_at != CLAIMS.starts_at,
                LEADS.demo_host_id.is_(None),
                LEADS.demo_host_id != CLAIMS.host_id,
            ),
        )
    )
    return sa.delete(claims).where(CLAIMS.id.in_(stale))


def release_stale(host_id: uuid.UUID, starts_at: datetime, blocked_until: datetime) -> int:
    """Claims in the way whose demo is no longer there (staff moved or cancelled it on the board, or the lead was
    won or lost): the demo on the lead is what counts, the claim only guards it. Returns how many went."""
    return db.session.execute(
        _release_stale_statement(), {"host_id": host_id, "starts_at": starts_at, "blocked_until": blocked_until}
    ).rowcount


def free_host_ids(starts_at: datetime, rules: Rules, moving: uuid.UUID | None = None) -> list[uuid.UUID]:
    """`moving`: a lead whose own demo does not stand in the way of its move."""
    return availability.free_hosts(starts_at, rules, hosts.host_times_at(starts_at, rules, moving=moving))


@dataclass(frozen=True)
class SlotLead:
    """What booking a slot needs of the lead (has_upcoming_demo reads the same names as on a Lead)."""

    email: str
    status: str
    owner_id: uuid.UUID | None
    demo_at: datetime | None = None
    demo_minutes: int | None = None
    demo_cancelled_at: datetime | None = None
    demo_sequence: int = 0
    demo_host_id: uuid.UUID | None = None
    # Created by this transaction (the booking's upsert inserted it): it has no claim to clear.
    is_new: bool = False


@functools.cache
def _slot_lead_statement():
    names = [field for field in SlotLead.__dataclass_fields__ if field != "is_new"]
    return sa.select(*(LEADS[name] for name in names)).where(LEADS.id == sa.bindparam("lead_id", type_=sa.Uuid))


def _slot_lead(lead_id: uuid.UUID) -> SlotLead:
    return SlotLead(**db.session.execute(_slot_lead_statement(), {"lead_id": lead_id}).one()._asdict())


@functools.cache
def _clear_claim_statement():
    return sa.delete(SlotClaim.__table__).where(CLAIMS.lead_id == sa.bindparam("lead_id", type_=sa.Uuid))


@functools.cache
def _schedule_statement():
    """The lead to «Demo avtalt» with the demo: the owner stays (the host when it had none), and the status's time
    moves only when the status does."""
    table = Lead.__table__
    now = sa.bindparam("now", type_=LEADS.updated_at.type)
    values = _parameters(
        table, ("next_step", "next_step_due_at", "demo_at", "demo_minutes", "demo_location", "demo_sequence")
    )
    scheduled = LeadStatus.DEMO_SCHEDULED.value
    return (
        sa.update(table)
        .where(LEADS.id == sa.bindparam("lead_id", type_=sa.Uuid))
        .values(
            status=scheduled,
            status_changed_at=sa.case((LEADS.status == scheduled, LEADS.status_changed_at), else_=now),
            updated_at=now,
            owner_id=sa.func.coalesce(LEADS.owner_id, sa.bindparam("host_id", type_=sa.Uuid)),
            demo_host_id=sa.bindparam("host_id", type_=sa.Uuid),
            demo_cancelled_at=None,
            demo_change_requested_at=None,
            demo_change_request=None,
            demo_outcome=None,
            demo_outcome_at=None,
            demo_cancel_reason=None,
            **values,
        )
    )


@functools.cache
def _status_change_statement():
    table = LeadStatusChange.__table__
    names = ("id", "lead_id", "from_status", "to_status", "changed_by_name", "changed_at")
    return sa.insert(table).values(_parameters(table, names))


def book_slot(
    lead_id: uuid.UUID,
    starts_at: datetime,
    rules: Rules,
    now: datetime,
    lead: SlotLead | None = None,
    day_locked: bool = False,
) -> SlotResult:
    """The lead gets the demo at `starts_at` (already checked as offered), in the caller's transaction; the caller
    commits and dispatches the returned mails. A known lead with a future demo keeps it; a won or lost one books none.
    `lead`: what the caller knows of the lead already (the booking that just created it), else it is read here.
    `day_locked`: the caller's transaction took lock_day(starts_at) already.
    """
    if not day_locked:
        lock_day(starts_at)
    if lead is None:
        lead = _slot_lead(lead_id)
    if LeadStatus(lead.status) in FINAL_STATUSES:
        return SlotResult(Outcome.CLOSED)
    if has_upcoming_demo(lead, now):
        return SlotResult(Outcome.KEPT, lead.demo_at, lead.demo_host_id)
    free = free_host_ids(starts_at, rules)
    if not free:
        return SlotResult(Outcome.TAKEN)
    host_id = hosts.choose_host(free, lead.owner_id)
    if not lead.is_new:
        db.session.execute(_clear_claim_statement(), {"lead_id": lead_id})  # a cancelled demo's, if any
    if not hold(lead_id, host_id, starts_at, rules, now):
        return SlotResult(Outcome.TAKEN)
    sequence = lead.demo_sequence + 1 if lead.demo_at is not None else 0
    follow_up_due = max(end_of_day(next_business_day(starts_at.astimezone(OSLO).date())), end_of_next_business_day(now))
    db.session.execute(
        _schedule_statement(),
        {
            "lead_id": lead_id,
            "now": now,
            "host_id": host_id,
            "next_step": FOLLOW_UP_AFTER_DEMO,
            "next_step_due_at": follow_up_due,
            "demo_at": starts_at,
            "demo_minutes": rules.demo_minutes,
            "demo_location": rules.location,
            "demo_sequence": sequence,
        },
    )
    if lead.status != LeadStatus.DEMO_SCHEDULED.value:
        db.session.execute(
            _status_change_statement(),
            {
                "id": uuid.uuid4(),
                "lead_id": lead_id,
                "from_status": lead.status,
                "to_status": LeadStatus.DEMO_SCHEDULED.value,
                "changed_by_name": PROSPECT,
                "changed_at": now,
            },
        )
    record_prospect_event(lead_id, "demo_scheduled", f"Demo avtalt av kunden: {demo_label(starts_at)}", now)
    log.info("slot booked", extra={"event": "slot_booked", "lead_id": str(lead_id), "user_id": str(host_id)})
    return SlotResult(
        Outcome.BOOKED,
        starts_at,
        host_id,
        drafts=tuple(invitation_drafts(lead_id, lead.email, host_id, sequence)),
        quiet_drafts=tuple(reminders.reminder_drafts(lead_id, lead.email, starts_at, sequence, now)),
    )


def invitation_drafts(lead_id: uuid.UUID, email: str, host_id: uuid.UUID, sequence: int) -> list[outbox.Draft]:
    """The invitation to the prospect and the host's copy (scheduling.mails builds both when they are sent)."""
    payload = {"sequence": sequence}
    drafts = [outbox.Draft(demo_mails.INVITATION, email, lead_id=lead_id, payload=payload)]
    host_email = hosts.host_email(host_id)
    if host_email is not None:
        drafts.append(
            outbox.Draft(demo_mails.INVITATION, host_email, lead_id=lead_id, user_id=host_id, payload=payload)
        )
    return drafts


def offered_for_booking(raw: object, now: datetime) -> datetime | None:
    """offered_or_none for the booking form's POST, whose transaction goes on to book the time: what both steps
    read (the hosts, the rules, the team's settings) is read in one statement first."""
    hosts.read_before_booking()
    return offered_or_none(raw, slot_rules.current(), now)


def offered_or_none(raw: object, rules: Rules, now: datetime) -> datetime | None:
    """The posted slot as an instant when it is one the form could have offered now; None otherwise."""
    starts_at = availability.parse_slot_value(raw)
    if starts_at is None:
        return None
    return (
        starts_at
        if availability.is_offered(starts_at, rules, hosts.host_weeks(), now, team_settings.current().business_hours)
        else None
    )
