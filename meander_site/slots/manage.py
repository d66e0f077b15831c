"""What the prospect does from the confirmation page, each in a transaction of its own: pick a slot for a lead that
has no demo (after «Tidspunktet ble nettopp tatt», or later), move the demo to another free slot, or cancel it."""

import logging
import uuid
from datetime import datetime, timedelta

import sqlalchemy as sa

from ..core import text
from ..core.clock import utcnow
from ..extensions import db
from ..leads.models import Lead
from ..leads.validation import LeadValidationError
from ..mail import dispatch, outbox
from ..scheduling import mails as demo_mails
from ..scheduling import reminders
from ..scheduling.demo_state import has_upcoming_demo
from ..scheduling.demos import DemoNotScheduled
from ..scheduling.labels import demo_label
from . import claims, hosts, rules
from . import mails as slot_mails
from .models import SlotClaim

log = logging.getLogger(__name__)

MAX_REASON_LENGTH = 500


class SlotNotOffered(Exception):
    """The posted start time is not one the page could have offered (malformed, past, outside the hours)."""


def take_write_lock(lead_id: uuid.UUID, day_of: datetime | None = None) -> None:
    """Begin the transaction with a write, so that on SQLite every read after it sees the latest commit (a
    transaction that read first could not write after another one committed). On PostgreSQL: the lead's row lock,
    so that two changes of one demo take turns. `day_of`: a time to be booked; its day's lock (claims.lock_day) is
    taken first, in the order the booking form takes the two (the day, then the lead's row in the upsert): in the
    other order, a pick on the confirmation page and a booking of the same day from the form deadlocked."""
    db.session.commit()
    if day_of is not None:
        claims.lock_day(day_of)  # a no-op on SQLite, where the write below stays the transaction's first statement
    db.session.execute(
        sa.update(Lead)
        .where(Lead.id == lead_id)
        .values(updated_at=Lead.updated_at)
        .execution_options(synchronize_session=False)
    )


def _offered(raw_slot: object, now: datetime) -> tuple[rules.Rules, datetime]:
    """The rules, and the start time the prospect picked: one the page offered. Raises SlotNotOffered."""
    slot_rules = rules.current()
    starts_at = claims.offered_or_none(raw_slot, slot_rules, now)
    if starts_at is None:
        raise SlotNotOffered(raw_slot)
    return slot_rules, starts_at


def book_for_lead(lead_id: uuid.UUID, raw_slot: object, now: datetime | None = None) -> claims.SlotResult:
    """A lead without a demo picks one of the free times. Commits; raises SlotNotOffered."""
    now = now or utcnow()
    slot_rules, starts_at = _offered(raw_slot, now)
    try:
        take_write_lock(lead_id, day_of=starts_at)
        result = claims.book_slot(lead_id, starts_at, slot_rules, now, day_locked=True)
        written = outbox.write([*result.drafts, *result.quiet_drafts], now=now)
        db.session.commit()
    except Exception:
        db.session.rollback()
        raise
    dispatch.dispatch_all(written[: len(result.drafts)])  # reminders are left to the sweep
    return result


class ChangeTooLate(Exception):
    """The demo starts within the administrator's cutoff: changes go by mail or phone now."""


class TooManyMoves(Exception):
    """The demo has been moved as often as the rules allow."""


def _fresh_lead(lead_id: uuid.UUID) -> Lead:
    return db.session.execute(
        sa.select(Lead).where(Lead.id == lead_id).execution_options(populate_existing=True)
    ).scalar_one()


def _check_change_allowed(lead: Lead, slot_rules: rules.Rules, now: datetime) -> None:
    if not has_upcoming_demo(lead, now):
        raise DemoNotScheduled(lead.id)
    if lead.demo_at - now < timedelta(hours=slot_rules.change_cutoff_hours):
        raise ChangeTooLate(lead.id)


def change_state(lead: Lead, now: datetime | None = None) -> dict:
    """What the confirmation page may offer: moves left, and whether it is too late to change anything."""
    now = now or utcnow()
    slot_rules = rules.current()
    claim = db.session.execute(sa.select(SlotClaim).where(SlotClaim.lead_id == lead.id)).scalar_one_or_none()
    moves_left = max(slot_rules.max_moves - (claim.moves if claim else 0), 0)
    too_late = lead.demo_at is not None and lead.demo_at - now < timedelta(hours=slot_rules.change_cutoff_hours)
    return {"moves_left": moves_left, "too_late": too_late, "cutoff_hours": slot_rules.change_cutoff_hours}


def move_demo(lead_id: uuid.UUID, raw_slot: object, now: datetime | None = None) -> claims.SlotResult:
    """«Flytt demoen»: to another free time, with the same host when they are free then. An invitation update (same
    UID, next SEQUENCE) to the prospect and the host, a cancellation to a host who no longer holds it, a line in the
    timeline, the owner told, the reminders moved. Commits; raises SlotNotOffered, DemoNotScheduled, ChangeTooLate,
    TooManyMoves; a time no host is free at any more comes back TAKEN."""
    now = now or utcnow()
    slot_rules, starts_at = _offered(raw_slot, now)
    try:
        take_write_lock(lead_id, day_of=starts_at)
        lead = _fresh_lead(lead_id)
        _check_change_allowed(lead, slot_rules, now)
        claim = db.session.execute(sa.select(SlotClaim).where(SlotClaim.lead_id == lead_id)).scalar_one_or_none()
        moves = claim.moves if claim else 0
        if moves >= slot_rules.max_moves:
            raise TooManyMoves(lead_id)
        free = claims.free_host_ids(starts_at, slot_rules, moving=lead_id)
        if not free:
            db.session.rollback()
            return claims.SlotResult(claims.Outcome.TAKEN)
        former_host_id, before = lead.demo_host_id, lead.demo_at
        host_id = former_host_id if former_host_id in free else hosts.choose_host(free, None)
        db.session.execute(sa.delete(SlotClaim).where(SlotClaim.lead_id == lead_id))
        if not claims.hold(lead_id, host_id, starts_at, slot_rules, now, moves=moves + 1):
            db.session.rollback()
            return claims.SlotResult(claims.Outcome.TAKEN)
        sequence = lead.demo_sequence + 1
        lead.demo_at, lead.demo_minutes, lead.demo_host_id = starts_at, slot_rules.demo_minutes, host_id
        lead.demo_sequence, lead.updated_at = sequence, now
        lead.demo_change_requested_at = lead.demo_change_request = None
        claims.record_prospect_event(
            lead_id, "demo_moved", f"Demo flyttet av kunden: {demo_label(before)} → {demo_label(starts_at)}", now
        )
        db.session.flush()
        written = demo_mails.write_mails(lead, demo_mails.UPDATE, sequence, host_id, now)
        if former_host_id is not None and former_host_id != host_id:
            written += demo_mails.write_former_host_cancellation(lead, former_host_id, sequence, before, now)
        written += slot_mails.write_change_notice(lead, "moved", now)
        outbox.write(reminders.reminder_drafts(lead_id, lead.email, starts_at, sequence, now), now=now)
        db.session.commit()
    except Exception:
        db.session.rollback()
        raise
    dispatch.dispatch_all(written)
    log.info("demo moved by the prospect", extra={"event": "demo_moved_by_prospect", "lead_id": str(lead_id)})
    return claims.SlotResult(claims.Outcome.BOOKED, starts_at, host_id)


def validate_reason(raw: object) -> str | None:
    reason = raw.strip() if isinstance(raw, str) else ""
    if not reason:
        return None
    if problem := text.forbidden_character_message(reason, multiline=True):
        raise LeadValidationError({"reason": problem})
    if len(reason) > MAX_REASON_LENGTH:
        raise LeadValidationError({"reason": f"Skriv høyst {MAX_REASON_LENGTH} tegn. Du har skrevet {len(reason)}."})
    return reason


def cancel_demo(lead_id: uuid.UUID, raw_reason: object, now: datetime | None = None) -> None:
    """«Avlys demoen», with an optional reason: a cancellation (same UID, next SEQUENCE) to the prospect and the host,
    the host's time freed, the reminders void, a line in the timeline, the owner told. Commits; raises
    LeadValidationError, DemoNotScheduled, ChangeTooLate."""
    now = now or utcnow()
    reason = validate_reason(raw_reason)
    slot_rules = rules.current()
    try:
        take_write_lock(lead_id)
        lead = _fresh_lead(lead_id)
        _check_change_allowed(lead, slot_rules, now)
        sequence = lead.demo_sequence + 1
        lead.demo_sequence, lead.demo_cancelled_at, lead.updated_at = sequence, now, now
        lead.demo_cancel_reason = reason
        lead.demo_change_requested_at = lead.demo_change_request = None
        db.session.execute(sa.delete(SlotClaim).where(SlotClaim.lead_id == lead_id))
        claims.record_prospect_event(
            lead_id, "demo_cancelled", f"Demo avlyst av kunden: {demo_label(lead.demo_at)}", now
        )
        db.session.flush()
        written = demo_mails.write_mails(lead, demo_mails.CANCELLATION, sequence, lead.demo_host_id, now)
        written += slot_mails.write_change_notice(lead, "cancelled", now)
        db.session.commit()
    except Exception:
        db.session.rollback()
        raise
    dispatch.dispatch_all(written)
    log.info("demo cancelled by the prospect", extra={"event": "demo_cancelled_by_prospect", "lead_id": str(lead_id)})
