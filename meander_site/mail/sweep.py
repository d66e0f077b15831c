"""What the database says is due and unsent goes back on the queue: the sweep, the operator's retry, staff's «send
now»."""

import uuid
from datetime import datetime, timedelta

import sqlalchemy as sa

from ..core.clock import utcnow
from ..extensions import db
from .dispatch import enqueue, job_id_for
from .models import OutboxMessage
from .timing import retry_intervals, send_lease

SWEEP_BATCH_SIZE = 500


def sweep_due(limit: int = SWEEP_BATCH_SIZE) -> int:
    """Re-enqueue unsent mail whose time has come. Concurrent sweeps enqueue each one once: each row is
    taken by a compare-and-set on due_at."""
    now = utcnow()
    due_ids = (
        db.session.execute(
            sa.select(OutboxMessage.id)
            .where(OutboxMessage.sent_at.is_(None), OutboxMessage.closed_at.is_(None), OutboxMessage.due_at <= now)
            .order_by(OutboxMessage.due_at)
            .limit(limit)
        )
        .scalars()
        .all()
    )
    db.session.rollback()
    return sum(_take_andenqueue(message_id, due_before=now, trigger="sweep") for message_id in due_ids)


def retry_pending() -> int:
    """Re-enqueue every unsent mail now (the CLI's `mail retry-pending`)."""
    far_future = utcnow() + timedelta(days=36500)
    pending_ids = (
        db.session.execute(
            sa.select(OutboxMessage.id).where(OutboxMessage.sent_at.is_(None), OutboxMessage.closed_at.is_(None))
        )
        .scalars()
        .all()
    )
    db.session.rollback()
    return sum(
        _take_andenqueue(message_id, due_before=far_future, trigger="retry_pending") for message_id in pending_ids
    )


def send_now(message_id: uuid.UUID) -> bool:
    """Staff asked to (re)send an unsent mail: enqueue it now, whatever its backoff says. A mail closed
    unsent (e.g. past the per-address cap) is opened again: staff decided it should go."""
    db.session.execute(
        sa.update(OutboxMessage)
        .where(OutboxMessage.id == message_id, OutboxMessage.sent_at.is_(None))
        .values(due_at=utcnow(), closed_at=None, closed_reason=None)
    )
    db.session.commit()
    return _take_andenqueue(message_id, due_before=utcnow(), trigger="staff") == 1


def _take_andenqueue(message_id: uuid.UUID, due_before: datetime, trigger: str) -> int:
    table = OutboxMessage.__table__.c
    kind_name = db.session.execute(
        sa.update(OutboxMessage.__table__)
        .where(
            table.id == message_id,
            table.sent_at.is_(None),
            table.closed_at.is_(None),
            table.due_at <= due_before,
        )
        # Until the job has had its chance, no other sweep takes this row; a lost job is taken again later.
        .values(due_at=utcnow() + send_lease() + timedelta(seconds=retry_intervals()[0]))
        .returning(table.kind)
    ).scalar()
    db.session.commit()
    if kind_name is None:
        return 0
    # A fresh job id: the original job may still sit in RQ's failed registry.
    job_id = job_id_for(message_id, f"-sweep-{uuid.uuid4().hex[:8]}")
    if not enqueue(message_id, job_id, trigger=trigger, kind_name=kind_name):
        # Give it back so the next sweep tries again once Redis answers.
        db.session.execute(sa.update(OutboxMessage).where(OutboxMessage.id == message_id).values(due_at=utcnow()))
        db.session.commit()
        return 0
    return 1
