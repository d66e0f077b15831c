"""One outbox for every mail the site sends.

A mail is a row in `outbox_messages` first, written in the same transaction as whatever caused it. After
the commit a job is queued (RQ only nudges). The worker claims the row with a compare-and-set lease,
builds the message from fresh data with its kind's builder, sends it over the kept-open SMTP session
with no transaction open, and records the outcome. A failure is recorded and retried on RQ's schedule;
the sweep re-enqueues whatever is due and unsent (Redis lost the job, or RQ ran out of retries). A row is
sent at most once: only the holder of its lease sends, and a sent row is never claimed again.

A new kind of mail is a builder registered with `@kind(...)` and a call to `add()`; never a copy of this.
Some kinds are batched: a job claims every unsent row of that kind for the same recipient and sends them
as one mail (new-lead notifications arriving within a minute share one).
"""

import functools
import json
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa
from flask import current_app, has_app_context
from flask_mail import Message
from redis.exceptions import RedisError
from rq import Queue, Retry, get_current_job

from .extensions import db
from .mailer import smtp_session
from .models import OutboxMessage, utcnow
from .redis_client import shared_redis

log = logging.getLogger(__name__)

MAX_SWEEP_BACKOFF = timedelta(hours=1)
SWEEP_BATCH_SIZE = 500


@dataclass(frozen=True)
class Kind:
    name: str
    # Builds the mail from the claimed rows (one, or a batch for batched kinds); None: nothing to send
    # any more (what it was about was erased), and the rows are closed without sending.
    build: Callable[[list[OutboxMessage]], Message | None]
    batched: bool = False


KINDS: dict[str, Kind] = {}


def kind(name: str, batched: bool = False):
    """Register a builder for one kind of mail."""

    def register(build):
        KINDS[name] = Kind(name=name, build=build, batched=batched)
        return build

    return register


def send_lease() -> timedelta:
    """How long a job holds a mail: longer than an SMTP timeout, so a second job waits it out."""
    return timedelta(seconds=current_app.config["CONFIRMATION_SEND_LEASE_SECONDS"])


def retry_intervals() -> list[int]:
    """RQ's retry delays in seconds (the first within a minute); the sweep backs off along the same curve."""
    return current_app.config["CONFIRMATION_RETRY_INTERVALS"]


def mail_queue(connection=None) -> Queue:
    return Queue(current_app.config["RQ_QUEUE_NAME"], connection=connection or shared_redis())


# --- writing a mail ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CloseWhen:
    """A condition read by the statement that writes the row (write()): when it holds, the mail is written
    closed with `reason`. `condition(recipient)` builds the SQL from the row's recipient parameter (a cap
    on mail to one address, say); `params(now)` gives the values of any parameters of its own. Keep one
    instance per rule: the statement is built once for it.
    """

    reason: str
    condition: Callable[[sa.BindParameter], sa.ColumnElement[bool]]
    params: Callable[[datetime], dict] = lambda now: {}


@dataclass(frozen=True)
class Draft:
    """A mail to store: add()'s arguments as a value, for write()."""

    kind_name: str
    recipient: str
    lead_id: uuid.UUID | None = None
    booking_id: uuid.UUID | None = None
    user_id: uuid.UUID | None = None
    payload: dict | None = None
    send_after: timedelta = timedelta(0)
    dedupe_key: str | None = None
    closed_reason: str | None = None
    close_when: CloseWhen | None = None


def _row(draft: Draft, now: datetime) -> dict:
    """The new row's columns. `closed_reason`: the mail is recorded as one that will not go out (e.g.
    "capped"), so its state says why."""
    if draft.kind_name not in KINDS:
        raise ValueError(f"unknown kind of mail: {draft.kind_name}")
    grace = timedelta(seconds=current_app.config["CONFIRMATION_SWEEP_GRACE_SECONDS"])
    closed = draft.closed_reason is not None
    send_after = now + draft.send_after
    return {
        "id": uuid.uuid4(),
        "kind": draft.kind_name,
        "recipient": draft.recipient,
        "lead_id": draft.lead_id,
        "booking_id": draft.booking_id,
        "user_id": draft.user_id,
        "payload": json.dumps(draft.payload) if draft.payload else None,
        "dedupe_key": draft.dedupe_key,
        "created_at": now,
        "send_after": send_after,
        # The request enqueues the job right away; the sweep steps in only if that did not happen.
        "due_at": None if closed else send_after + grace,
        "attempts": 0,
        "closed_at": now if closed else None,
        "closed_reason": draft.closed_reason,
    }


def _planned(message: OutboxMessage) -> OutboxMessage:
    # Kept outside the mapped state, which the caller's commit expires: dispatch() then needs no SELECT,
    # and works even if the row is gone by then (erased together with its lead).
    message.dispatch_plan = (message.id, message.kind, message.send_after, message.closed_at is not None)
    return message


def add(
    kind_name: str,
    recipient: str,
    *,
    lead_id: uuid.UUID | None = None,
    booking_id: uuid.UUID | None = None,
    user_id: uuid.UUID | None = None,
    payload: dict | None = None,
    send_after: timedelta = timedelta(0),
    dedupe_key: str | None = None,
    now: datetime | None = None,
    closed_reason: str | None = None,
) -> OutboxMessage:
    """Store a mail in the caller's transaction (the caller commits, then calls `dispatch`).

    `payload` holds ids and settings, never personal data: the builder reads what it needs when it runs.
    """
    draft = Draft(kind_name, recipient, lead_id, booking_id, user_id, payload, send_after, dedupe_key, closed_reason)
    message = OutboxMessage(**_row(draft, now or utcnow()))
    db.session.add(message)
    return _planned(message)


_COLUMNS = (
    "id",
    "kind",
    "recipient",
    "lead_id",
    "booking_id",
    "user_id",
    "payload",
    "dedupe_key",
    "created_at",
    "send_after",
    "due_at",
    "attempts",
    "closed_at",
    "closed_reason",
)


@functools.cache
def _write_statement(close_whens: tuple[CloseWhen | None, ...]):
    """INSERT … SELECT one row per draft (UNION ALL) … RETURNING id, closed_at: one round trip for them all.

    Each row's values are typed parameters named by its position (mail0_id, mail1_id, …); PostgreSQL
    casts them, so a NULL in a UNION keeps its column's type. A row's CloseWhen is evaluated once, in a
    derived table its CASEs read.
    """
    table = OutboxMessage.__table__
    rows = []
    for position, close_when in enumerate(close_whens):
        values = {name: sa.bindparam(f"mail{position}_{name}", type_=table.c[name].type) for name in _COLUMNS}
        row = sa.select(*values.values())
        if close_when is not None:
            closes = sa.select(close_when.condition(values["recipient"]).label("closes")).subquery()
            values.update(
                due_at=sa.case((closes.c.closes, sa.null()), else_=values["due_at"]),
                closed_at=sa.case((closes.c.closes, values["created_at"]), else_=values["closed_at"]),
                closed_reason=sa.case((closes.c.closes, sa.literal(close_when.reason)), else_=values["closed_reason"]),
            )
            row = sa.select(*values.values()).select_from(closes)
        rows.append(row)
    source = rows[0] if len(rows) == 1 else sa.union_all(*rows)
    return sa.insert(table).from_select(_COLUMNS, source).returning(table.c.id, table.c.closed_at)


def write(drafts: list[Draft], now: datetime | None = None) -> list[OutboxMessage]:
    """add() for several mails in one statement (Core, no unit of work), in the caller's transaction.

    The rows add() would write, except that a draft's CloseWhen is decided by the statement. Returns
    unattached objects, planned for dispatch() as add()'s are.
    """
    if not drafts:
        return []
    now = now or utcnow()
    rows = [_row(draft, now) for draft in drafts]
    params = {f"mail{position}_{name}": value for position, row in enumerate(rows) for name, value in row.items()}
    for draft in drafts:
        if draft.close_when is not None:
            params.update(draft.close_when.params(now))
    statement = _write_statement(tuple(draft.close_when for draft in drafts))
    closed_at_by_id = dict(db.session.execute(statement, params).all())
    messages = []
    for draft, row in zip(drafts, rows, strict=True):
        closed_at = closed_at_by_id[row["id"]]
        if closed_at is not None and row["closed_at"] is None:
            row.update(due_at=None, closed_at=closed_at, closed_reason=draft.close_when.reason)
        messages.append(_planned(OutboxMessage(**row)))
    return messages


def job_id_for(message_id: uuid.UUID, attempt_marker: str = "") -> str:
    return f"mail-{message_id}{attempt_marker}"


def dispatch(message: OutboxMessage | uuid.UUID, delay: timedelta | None = None) -> bool:
    """Enqueue a committed mail. Never raises: with Redis down the sweep sends it later. A mail added
    closed (never to be sent) is not enqueued."""
    kind_name = None
    if isinstance(message, OutboxMessage):
        message_id, kind_name, send_after, closed = getattr(message, "dispatch_plan", None) or (
            message.id,
            message.kind,
            message.send_after,
            message.closed_at is not None,
        )
        if closed:
            return False
        if delay is None:
            delay = max(send_after - utcnow(), timedelta(0))
    else:
        message_id = message
    return _enqueue(message_id, job_id_for(message_id), trigger="new", delay=delay or timedelta(0), kind_name=kind_name)


def _enqueue(
    message_id: uuid.UUID, job_id: str, trigger: str, delay: timedelta = timedelta(0), kind_name: str | None = None
) -> bool:
    fields = {"kind": kind_name, "message_id": str(message_id), "job_id": job_id, "trigger": trigger}
    options = {
        "job_id": job_id,
        "retry": Retry(max=len(retry_intervals()), interval=retry_intervals()),
        "result_ttl": 0,  # nothing reads a job's result: the outbox row records the outcome
        "failure_ttl": 7 * 24 * 3600,
    }
    try:
        queue = mail_queue()
        if delay > timedelta(0):
            queue.enqueue_in(delay, send_message, str(message_id), **options)
        else:
            queue.enqueue(send_message, str(message_id), **options)
    except RedisError as error:
        log.warning(
            "mail not enqueued, a later sweep retries",
            extra={"event": "mail_enqueue_failed", **fields, "error": type(error).__name__},
        )
        return False
    log.info("mail enqueued", extra={"event": "mail_enqueued", **fields})
    return True


# --- sending ---------------------------------------------------------------------------------------------


class MailNotSent(Exception):
    """What a failed send raises to RQ: SMTP errors can quote the recipient's address, this never does."""


def _claimable(now: datetime):
    table = OutboxMessage.__table__.c
    return sa.and_(
        table.sent_at.is_(None),
        table.closed_at.is_(None),
        sa.or_(table.claimed_until.is_(None), table.claimed_until < now),
    )


def _claim(message_id: uuid.UUID) -> list[OutboxMessage]:
    """Take the row (and, for a batched kind, its unsent siblings for the same recipient) with a lease.

    The claim hands back the rows it took (UPDATE … RETURNING), so no SELECT follows; builders get them as
    plain, unattached objects."""
    now = utcnow()
    table = OutboxMessage.__table__
    lease = {"claimed_until": now + send_lease(), "attempts": table.c.attempts + 1}
    own = (
        db.session.execute(
            sa.update(table)
            .where(table.c.id == message_id, table.c.kind.in_(list(KINDS)), _claimable(now))
            .values(**lease)
            .returning(*table.c)
        )
        .mappings()
        .first()
    )
    rows = [own] if own is not None else []
    if own is not None and KINDS[own["kind"]].batched:
        # Every unsent row of this kind for this recipient goes in the same mail, including those that
        # arrived while this one waited for its time.
        rows += (
            db.session.execute(
                sa.update(table)
                .where(
                    table.c.kind == own["kind"],
                    table.c.recipient == own["recipient"],
                    table.c.id != message_id,
                    _claimable(now),
                )
                .values(**lease)
                .returning(*table.c)
            )
            .mappings()
            .all()
        )
    db.session.commit()
    return sorted((OutboxMessage(**row) for row in rows), key=lambda message: message.created_at)


def _record_sent(kind_name: str, message_ids: list[uuid.UUID]) -> None:
    now = utcnow()
    db.session.execute(
        sa.update(OutboxMessage.__table__)
        .where(OutboxMessage.__table__.c.id.in_(message_ids))
        .values(sent_at=now, due_at=None, claimed_until=None, last_error=None)
    )
    # In the same transaction: what a kind keeps elsewhere never disagrees with the row.
    for listener in SENT_LISTENERS.get(kind_name, ()):
        listener(message_ids, now)
    db.session.commit()


# Kinds that keep state elsewhere (the lead's "confirmation sent") listen here: kind -> listeners.
SENT_LISTENERS: dict[str, list[Callable[[list[uuid.UUID], datetime], None]]] = {}


def on_sent(kind_name: str):
    """Register a listener called with the sent rows' ids, inside the transaction that records the send."""

    def register(listener):
        SENT_LISTENERS.setdefault(kind_name, []).append(listener)
        return listener

    return register


def _record_closed(message_ids: list[uuid.UUID], reason: str) -> None:
    db.session.execute(
        sa.update(OutboxMessage.__table__)
        .where(OutboxMessage.__table__.c.id.in_(message_ids))
        .values(closed_at=utcnow(), closed_reason=reason, due_at=None, claimed_until=None)
    )
    db.session.commit()


def _record_failure(message_ids: list[uuid.UUID], attempts: int, error: Exception) -> None:
    intervals = retry_intervals()
    backoff_index = min(attempts, len(intervals)) - 1
    backoff = min(timedelta(seconds=intervals[max(backoff_index, 0)]), MAX_SWEEP_BACKOFF)
    db.session.rollback()
    db.session.execute(
        sa.update(OutboxMessage.__table__)
        .where(OutboxMessage.__table__.c.id.in_(message_ids))
        .values(
            claimed_until=None,
            # Leave room for RQ's own retry to come first; the sweep only catches what RQ dropped.
            due_at=utcnow() + backoff + timedelta(seconds=30),
            last_error=f"{type(error).__name__}: {error}"[:500],
        )
    )
    db.session.commit()


def send_message(message_id: str) -> str:
    """The RQ job. Safe to run twice: it sends only while it holds the rows' lease."""
    app = current_app._get_current_object() if has_app_context() else _job_app()
    with app.app_context():
        return _send(uuid.UUID(message_id))


@functools.cache
def _job_app():
    # Jobs open their own app context when the worker did not push one.
    from . import create_app

    return create_app()


def _send(message_id: uuid.UUID) -> str:
    try:
        messages = _claim(message_id)
        if not messages:
            return "skipped"
        first = messages[0]
        kind_name, attempts = first.kind, max(message.attempts for message in messages)
        ids = [message.id for message in messages]
        # Ids and counts only: SMTP errors can quote the recipient's address, so only their class is logged.
        fields = {
            "kind": kind_name,
            "message_id": str(message_id),
            "batch_size": len(ids),
            "lead_id": str(first.lead_id) if first.lead_id else None,
            "booking_id": str(first.booking_id) if first.booking_id else None,
            "attempt": attempts,
        }
        if attempts > 1:
            log.info("mail retried", extra={"event": "mail_retried", **fields})
        try:
            mail = KINDS[kind_name].build(messages)
            db.session.rollback()  # no transaction stays open while SMTP talks (the claim is committed)
            if mail is None:
                _record_closed(ids, "gone")
                log.info("mail dropped, its subject is gone", extra={"event": "mail_dropped", **fields})
                return "gone"
            smtp_session.send(mail)
        except Exception as error:
            log.error(
                "mail failed",
                extra={
                    "event": "mail_failed",
                    **fields,
                    "error": type(error).__name__,
                    "smtp_code": getattr(error, "smtp_code", None),
                    **_retry_plan(),
                },
            )
            _record_failure(ids, attempts, error)
            # RQ logs and stores what the job raised: give it the class, not the text (kept on the row).
            raise MailNotSent(f"{type(error).__name__} ({kind_name} {message_id}, attempt {attempts})") from None
        _record_sent(kind_name, ids)
        log.info("mail sent (%s)", kind_name, extra={"event": "mail_sent", **fields})
        return "sent"
    finally:
        db.session.remove()


def _retry_plan() -> dict:
    """Who tries again after a failure: RQ while the job has retries left, the sweep after that."""
    job = get_current_job()
    retries_left = job.retries_left if job is not None else None
    return {"retries_left": retries_left, "retry_by": "rq" if retries_left else "sweep"}


# --- the sweep and operator commands --------------------------------------------------------------------


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
    return sum(_take_and_enqueue(message_id, due_before=now, trigger="sweep") for message_id in due_ids)


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
        _take_and_enqueue(message_id, due_before=far_future, trigger="retry_pending") for message_id in pending_ids
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
    return _take_and_enqueue(message_id, due_before=utcnow(), trigger="staff") == 1


def _take_and_enqueue(message_id: uuid.UUID, due_before: datetime, trigger: str) -> int:
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
    if not _enqueue(message_id, job_id, trigger=trigger, kind_name=kind_name):
        # Give it back so the next sweep tries again once Redis answers.
        db.session.execute(sa.update(OutboxMessage).where(OutboxMessage.id == message_id).values(due_at=utcnow()))
        db.session.commit()
        return 0
    return 1


# --- what staff see ---------------------------------------------------------------------------------------


def state(message: OutboxMessage | None) -> str:
    """ "sent", "pending", "failing", "closed" (never to be sent) or "none" (there is no such mail)."""
    if message is None:
        return "none"
    if message.sent_at is not None:
        return "sent"
    if message.closed_at is not None:
        return "closed"
    if message.attempts and message.last_error:
        return "failing"
    return "pending"
