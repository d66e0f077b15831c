"""One outbox for every mail the site sends.

A mail is a row in `outbox_messages` first, written in the same transaction as whatever caused it. After
the commit a job is queued (RQ only nudges), unless one is already waiting: a job sends every due mail it
finds, so a burst of bookings costs one job. The job claims rows with a compare-and-set lease (one
UPDATE … RETURNING that also hands back what the mail needs of its lead), builds each message with its
kind's builder, sends it over the kept-open SMTP session with no transaction open, and records the send
right after it. A failed mail gets its own retry job on RQ's schedule; the sweep re-enqueues whatever is
due and unsent (Redis lost the job, or the retries ran out). A row is sent at most once: only the holder of
its lease sends, and a sent row is never claimed again.

A new kind of mail is a builder registered with `@kind(...)` and a call to `add()`; never a copy of this.
Some kinds are batched: a job claims every unsent row of that kind for the same recipient and sends them
as one mail (new-lead notifications arriving within a minute share one).
"""

import contextlib
import functools
import json
import logging
import math
import queue
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa
from flask import current_app, has_app_context
from flask_mail import Message
from redis.exceptions import RedisError
from rq import Queue

from .extensions import db
from .mailer import smtp_session
from .models import Lead, OutboxMessage, utcnow
from .redis_client import shared_redis

log = logging.getLogger(__name__)

MAX_SWEEP_BACKOFF = timedelta(hours=1)
SWEEP_BATCH_SIZE = 500


@dataclass(frozen=True)
class Kind:
    name: str
    # Builds the mail from the claimed rows (one, or a batch for batched kinds): rows of outbox_messages'
    # columns plus lead_<field> for LEAD_MAIL_FIELDS (None without a lead). None: nothing to send any more
    # (what it was about was erased), and the rows are closed without sending.
    build: Callable[[list[sa.Row]], Message | None]
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


# A job serves every due mail (see _send), so the web needs one only when none is waiting. The flag says one
# is queued; the job deletes it before it claims anything, so a mail committed before that is found by its
# claims, and one committed after it queues the next job. A lost flag or job leaves the mail to the sweep.
PENDING_FLAG_SECONDS = 30
# Mails due later (a team notice collects bookings for a minute) share one delayed job per few seconds.
DELAYED_JOB_SECONDS = 5


def _job_flag_prefix() -> str:
    return f"meander:{current_app.config['RQ_QUEUE_NAME']}:mail-job-"


def _job_flag(run_at_slot: int | None = None) -> str:
    return _job_flag_prefix() + ("pending" if run_at_slot is None else f"at:{run_at_slot}")


def forget_waiting_jobs() -> None:
    """Drop the flags of queued jobs (after emptying the queue, as tests and benchmarks do): the next mail
    queues a job of its own instead of counting on one that is gone."""
    connection = shared_redis()
    flags = list(connection.scan_iter(match=_job_flag_prefix() + "*", count=1000))
    if flags:
        connection.delete(*flags)


def dispatch(message: OutboxMessage | uuid.UUID, delay: timedelta | None = None) -> bool:
    """Make sure a job will send a committed mail. Never raises: with Redis down the sweep sends it later. A
    mail added closed (never to be sent) needs no job."""
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
        # A bare id (an operator's nudge, or one already tried): a job of its own. A waiting job's claims
        # take only mail nobody has tried, so it might not send this one.
        return _enqueue(message, job_id_for(message, f"-nudge-{uuid.uuid4().hex[:8]}"), "nudge", delay or timedelta(0))
    return _request_job(message_id, kind_name, delay or timedelta(0), trigger="new")


def _request_job(message_id: uuid.UUID, kind_name: str | None, delay: timedelta, trigger: str) -> bool:
    """Queue a job that will find this mail, unless one that will is already waiting."""
    fields = {"kind": kind_name, "message_id": str(message_id), "trigger": trigger}
    if delay > timedelta(0):
        # The slot's job runs at the end of the slot, so it finds every mail due within it.
        slot = math.ceil((time.time() + delay.total_seconds()) / DELAYED_JOB_SECONDS)
        delay = timedelta(seconds=max(slot * DELAYED_JOB_SECONDS - time.time(), 0))
        flag, flag_seconds = _job_flag(slot), int(delay.total_seconds()) + DELAYED_JOB_SECONDS
    else:
        flag, flag_seconds = _job_flag(), PENDING_FLAG_SECONDS
    # A job queued from inside a job gets an id of its own: the running job's id would be overwritten, and
    # deleted with it when it ends.
    job_id = job_id_for(message_id, "" if trigger == "new" else f"-{trigger}-{uuid.uuid4().hex[:8]}")
    try:
        if not shared_redis().set(flag, job_id, nx=True, ex=flag_seconds):
            log.info("mail waits for a queued job", extra={"event": "mail_enqueued", **fields, "job": "pending"})
            return True
    except RedisError as error:
        log.warning(
            "mail not enqueued, a later sweep retries",
            extra={"event": "mail_enqueue_failed", **fields, "error": type(error).__name__},
        )
        return False
    if _enqueue(message_id, job_id, trigger=trigger, delay=delay, kind_name=kind_name):
        return True
    try:
        shared_redis().delete(flag)  # no job behind it: let the next mail try again
    except RedisError:
        pass  # it expires
    return False


def _enqueue(
    message_id: uuid.UUID, job_id: str, trigger: str, delay: timedelta = timedelta(0), kind_name: str | None = None
) -> bool:
    fields = {"kind": kind_name, "message_id": str(message_id), "job_id": job_id, "trigger": trigger}
    options = {
        "job_id": job_id,
        "result_ttl": 0,  # nothing reads a job's result: the outbox rows record the outcome
        "failure_ttl": 7 * 24 * 3600,
        "job_timeout": JOB_TIMEOUT_SECONDS,
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
    log.info("mail enqueued", extra={"event": "mail_enqueued", **fields, "job": "new"})
    return True


# --- sending ---------------------------------------------------------------------------------------------

# A job claims the mail it was queued for, then every other due mail nobody has tried yet, this many at a
# time, until none is left or its time is up (then it queues its successor).
CLAIM_BATCH_SIZE = 50
JOB_BUDGET_SECONDS = 20
JOB_TIMEOUT_SECONDS = 180  # RQ ends a job that runs longer: far above the budget plus one SMTP timeout
# What the confirmation needs of its lead, handed back by the claim itself.
LEAD_MAIL_FIELDS = ("first_name", "organization_name", "masked_ref")


def _leased(table, now):
    return sa.and_(
        table.c.sent_at.is_(None),
        table.c.closed_at.is_(None),
        sa.or_(table.c.claimed_until.is_(None), table.c.claimed_until < now),
    )


@functools.cache
def _claim_statement(dialect: str, own: bool):
    """One UPDATE … FROM that takes rows with a lease and hands back what their mails need.

    own: the job's own mail, by id, whatever its attempts. Otherwise: due mail nobody has tried yet, oldest
    first, up to :limit, skipping rows another job is claiming (FOR UPDATE … SKIP LOCKED on PostgreSQL;
    SQLite has one writer at a time). The compare-and-set on the lease is the same either way."""
    table = OutboxMessage.__table__
    leads = Lead.__table__
    candidate = table.alias("candidate")
    now = sa.bindparam("now", type_=table.c.claimed_until.type)
    conditions = [candidate.c.kind.in_(sa.bindparam("kinds", expanding=True)), _leased(candidate, now)]
    if own:
        conditions.append(candidate.c.id == sa.bindparam("message_id", type_=table.c.id.type))
    else:
        conditions += [
            candidate.c.due_at.is_not(None),  # unsent rows only (on the due_at index)
            candidate.c.attempts == 0,  # a mail that failed waits for its own retry
            candidate.c.claimed_until.is_(None),
            candidate.c.send_after <= now,
        ]
    picked = (
        sa.select(candidate.c.id, *(leads.c[name].label(f"lead_{name}") for name in LEAD_MAIL_FIELDS))
        .select_from(candidate.outerjoin(leads, leads.c.id == candidate.c.lead_id))
        .where(*conditions)
    )
    if not own:
        picked = picked.order_by(candidate.c.due_at).limit(sa.bindparam("limit"))
    picked = picked.with_for_update(of=candidate, skip_locked=True).subquery("picked")
    if dialect == "sqlite":
        # SQLite's RETURNING cannot name the FROM clause's tables: read the lead by a subquery instead.
        lead_columns = [
            sa.select(leads.c[name]).where(leads.c.id == table.c.lead_id).scalar_subquery().label(f"lead_{name}")
            for name in LEAD_MAIL_FIELDS
        ]
    else:
        lead_columns = [picked.c[f"lead_{name}"] for name in LEAD_MAIL_FIELDS]
    return _lease(picked, lead_columns)


@functools.cache
def _siblings_statement():
    """A batched kind's other unsent rows for the same recipient, due or not: they go in the same mail. Rows
    another job is claiming are skipped (it sends them), so two jobs never wait on each other's locks."""
    table = OutboxMessage.__table__
    sibling = table.alias("sibling")
    now = sa.bindparam("now", type_=table.c.claimed_until.type)
    picked = (
        sa.select(sibling.c.id)
        .where(
            sibling.c.kind == sa.bindparam("batched_kind"),
            sibling.c.recipient == sa.bindparam("batch_recipient"),
            sibling.c.id.not_in(sa.bindparam("ids", expanding=True)),
            _leased(sibling, now),
        )
        .with_for_update(skip_locked=True)
        .subquery("picked")
    )
    return _lease(picked, [sa.null().label(f"lead_{name}") for name in LEAD_MAIL_FIELDS])


def _lease(picked, lead_columns: list):
    """The claim itself: the picked rows get a lease until :until and one more attempt, and come back whole,
    with the lead's mail fields beside them."""
    table = OutboxMessage.__table__
    return (
        sa.update(table)
        .where(table.c.id == picked.c.id)
        .values(claimed_until=sa.bindparam("until", type_=table.c.claimed_until.type), attempts=table.c.attempts + 1)
        .returning(*table.c, *lead_columns)
    )


def _claim(connection, message_id: uuid.UUID | None = None) -> list[list[sa.Row]]:
    """Take mail with a lease: the job's own (message_id) or a batch of others. Hands back one group of rows
    per mail to send: a batched kind's rows for one recipient go out as one mail."""
    now = utcnow()
    params = {"now": now, "until": now + send_lease(), "kinds": list(KINDS)}
    own = message_id is not None
    if own:
        params["message_id"] = message_id
    else:
        params["limit"] = CLAIM_BATCH_SIZE
    rows = connection.execute(_claim_statement(connection.dialect.name, own), params).all()
    groups: dict = {}
    for row in rows:
        key = (row.kind, row.recipient) if KINDS[row.kind].batched else row.id
        groups.setdefault(key, []).append(row)
    if own and rows and KINDS[rows[0].kind].batched:
        groups[(rows[0].kind, rows[0].recipient)] += connection.execute(
            _siblings_statement(),
            {
                **params,
                "batched_kind": rows[0].kind,
                "batch_recipient": rows[0].recipient,
                "ids": [row.id for row in rows],
            },
        ).all()
    connection.commit()
    return [sorted(group, key=lambda row: row.created_at) for group in groups.values()]


@functools.cache
def _sent_statements(dialect: str, kind_name: str) -> tuple:
    """Recording a send: one statement (with what the kind keeps elsewhere, in a CTE on PostgreSQL; SQLite
    runs the two in one transaction)."""
    table = OutboxMessage.__table__
    ids = sa.bindparam("ids", expanding=True)
    now = sa.bindparam("now", type_=table.c.sent_at.type)
    mark_sent = (
        sa.update(table)
        .where(table.c.id.in_(ids))
        .values(sent_at=now, due_at=None, claimed_until=None, last_error=None)
    )
    follow_up = SENT_FOLLOW_UPS.get(kind_name)
    if follow_up is None:
        return (mark_sent,)
    if dialect == "postgresql":
        sent = mark_sent.returning(table.c.lead_id).cte("sent")
        return (follow_up(sa.select(sent.c.lead_id), ids, now).add_cte(sent),)
    return mark_sent, follow_up(sa.select(table.c.lead_id).where(table.c.id.in_(ids)), ids, now)


# Kinds that keep state elsewhere (the lead's "confirmation sent"): kind -> a statement built from the sent
# rows' lead ids, their ids and the time, run with the send's record.
SENT_FOLLOW_UPS: dict[str, Callable] = {}


def on_sent(kind_name: str):
    """Register the statement that keeps a kind's state elsewhere in step with its sent rows:
    `follow_up(sent_lead_ids: Select, message_ids: BindParameter, now: BindParameter) -> Executable`."""

    def register(follow_up):
        SENT_FOLLOW_UPS[kind_name] = follow_up
        return follow_up

    return register


def _record_sent(connection, kind_name: str, message_ids: list[uuid.UUID]) -> None:
    params = {"ids": message_ids, "now": utcnow()}
    for statement in _sent_statements(connection.dialect.name, kind_name):
        connection.execute(statement, params)
    connection.commit()


def _update_rows(connection, message_ids: list[uuid.UUID], **values) -> None:
    table = OutboxMessage.__table__
    connection.execute(sa.update(table).where(table.c.id.in_(message_ids)).values(**values))
    connection.commit()


def _record_failure(connection, message_ids: list[uuid.UUID], attempts: int, error: Exception) -> None:
    # The sweep backs off along the retry schedule, and stays at its last step once it is used up.
    retry_in = _retry_delay(attempts) or timedelta(seconds=retry_intervals()[-1])
    backoff = min(retry_in, MAX_SWEEP_BACKOFF)
    _update_rows(
        connection,
        message_ids,
        claimed_until=None,
        # Leave room for the retry job to come first; the sweep only catches what Redis dropped.
        due_at=utcnow() + backoff + timedelta(seconds=30),
        last_error=f"{type(error).__name__}: {error}"[:500],
    )


def _hand_back(connection, message_ids: list[uuid.UUID]) -> None:
    """Rows this job claimed but will not try: free again, and still never tried."""
    table = OutboxMessage.__table__
    _update_rows(connection, message_ids, claimed_until=None, attempts=table.c.attempts - 1)


def send_message(message_id: str) -> str:
    """The RQ job. Safe to run twice, or beside other jobs: it sends only what it holds the lease on."""
    app = current_app._get_current_object() if has_app_context() else _job_app()
    with app.app_context():
        return _send(uuid.UUID(message_id))


@functools.cache
def _job_app():
    # Jobs open their own app context when the worker did not push one.
    from . import create_app

    return create_app()


@contextlib.contextmanager
def _job_connection():
    """One connection for the job's claims and records (and one more, on PostgreSQL, for a batch's
    SendRecorder). In autocommit on PostgreSQL: each statement commits itself, and no transaction stays
    open while SMTP talks."""
    with db.engine.connect() as connection:
        if connection.dialect.name == "postgresql":
            connection = connection.execution_options(isolation_level="AUTOCOMMIT")
        yield connection


def _send(message_id: uuid.UUID) -> str:
    """Send this job's mail, then every other due mail nobody has tried, each recorded right after its send.

    Before each send the job checks that the lease outlasts one more SMTP exchange; what it will not try it
    hands back, and it queues a successor when mail is left over."""
    started = time.monotonic()
    try:
        shared_redis().delete(_job_flag())  # before any claim: see _request_job
    except RedisError:
        pass  # the flag expires; meanwhile this job still serves what is due
    try:
        with _job_connection() as connection:
            groups = _claim(connection, message_id)
            outcome, handed_back = _deliver_all(connection, groups) if groups else ("skipped", False)
            while not handed_back:
                groups = _claim(connection)
                if not groups:
                    break
                if sum(len(group) for group in groups) >= CLAIM_BATCH_SIZE:
                    # More is waiting: a job for another worker, whose claims skip the rows this one holds.
                    _request_job(message_id, None, timedelta(0), trigger="backlog")
                handed_back = _deliver_all(connection, groups)[1]
                if not handed_back and time.monotonic() - started > JOB_BUDGET_SECONDS:
                    _request_job(message_id, None, timedelta(0), trigger="successor")  # it takes what is left
                    break
    finally:
        db.session.remove()
    return outcome


def _deliver_all(connection, groups: list[list[sa.Row]]) -> tuple[str, bool]:
    """Send each group in turn, until the lease runs short (the rest is handed back). Returns the first's
    outcome, and whether some were handed back. The first always goes: its lease was taken a moment ago."""
    margin = timedelta(seconds=3 * current_app.config["MAIL_TIMEOUT_SECONDS"])
    outcomes = []
    with _recorder_for(connection, groups) as recorder:
        for index, group in enumerate(groups):
            if index and utcnow() + margin > min(row.claimed_until for row in group):
                untried = [row.id for rest in groups[index:] for row in rest]
                _hand_back(connection, untried)
                log.warning(
                    "mail handed back, its lease ran short",
                    extra={"event": "mail_handed_back", "count": len(untried)},
                )
                _request_job(untried[0], None, timedelta(0), trigger="handed_back")
                return outcomes[0], True
            outcomes.append(_deliver(connection, group, recorder.record))
    return outcomes[0], False


@contextlib.contextmanager
def _recorder_for(connection, groups: list[list[sa.Row]]):
    """How a batch records its sends. On PostgreSQL, with more than one mail to send, a thread records them
    on a connection of its own, each right after its send and in order, so the commit's wait for the disk
    overlaps the next SMTP exchange instead of adding to it; it is never more than one send behind, and
    the batch ends only once every send is recorded. Otherwise (one mail; SQLite, which has one writer)
    the job records inline."""
    if len(groups) < 2 or connection.dialect.name != "postgresql":
        yield InlineRecorder(connection)
        return
    recorder = SendRecorder(current_app._get_current_object(), connection)
    try:
        yield recorder
    finally:
        recorder.close()


class InlineRecorder:
    """Records each send on the job's connection, right after it."""

    def __init__(self, connection) -> None:
        self.connection = connection

    def record(self, kind_name: str, ids: list[uuid.UUID], fields: dict) -> None:
        _record_and_log(self.connection, kind_name, ids, fields)


class SendRecorder(InlineRecorder):
    """Records sends in a thread of its own (see _recorder_for), never more than one behind: a send waits
    until the one before it is recorded. A record the thread could not make is not lost: the job's thread
    makes it on its own connection, and records inline from then on."""

    def __init__(self, app, connection) -> None:
        super().__init__(connection)
        self.pending: queue.Queue = queue.Queue(maxsize=1)
        self.handed_back: tuple | None = None
        self.broken = False  # set by the thread before it lets go of the record it could not make
        self.thread = threading.Thread(target=self._run, args=(app,), name="mail-recorder", daemon=True)
        self.thread.start()

    def record(self, kind_name: str, ids: list[uuid.UUID], fields: dict) -> None:
        self.pending.join()  # the send before this one is recorded (or handed back)
        self._record_handed_back()
        if self.broken:
            super().record(kind_name, ids, fields)
        else:
            self.pending.put((kind_name, ids, fields))

    def close(self) -> None:
        self.pending.join()
        if not self.broken:
            self.pending.put(None)
        self.thread.join()
        self._record_handed_back()

    def _record_handed_back(self) -> None:
        if self.handed_back is not None:
            item, self.handed_back = self.handed_back, None
            super().record(*item)

    def _run(self, app) -> None:
        with app.app_context(), contextlib.ExitStack() as resources:
            connection = None
            while (item := self.pending.get()) is not None:
                try:
                    connection = connection or resources.enter_context(_job_connection())
                    _record_and_log(connection, *item)
                except Exception as error:
                    log.warning(
                        "mail send recorded on the job's connection instead",
                        extra={"event": "mail_record_moved", "error": type(error).__name__},
                    )
                    self.handed_back, self.broken = item, True
                    return  # the thread ends; the job's thread records from here on
                finally:
                    self.pending.task_done()
            self.pending.task_done()


def _record_and_log(connection, kind_name: str, ids: list[uuid.UUID], fields: dict) -> None:
    _record_sent(connection, kind_name, ids)
    log.info("mail sent (%s)", kind_name, extra={"event": "mail_sent", **fields})


def _deliver(connection, rows: list[sa.Row], record_sent: Callable[[str, list[uuid.UUID], dict], None]) -> str:
    first = rows[0]
    kind_name, attempts = first.kind, max(row.attempts for row in rows)
    ids = [row.id for row in rows]
    # Ids and counts only: SMTP errors can quote the recipient's address, so only their class is logged.
    fields = {
        "kind": kind_name,
        "message_id": str(first.id),
        "batch_size": len(ids),
        "lead_id": str(first.lead_id) if first.lead_id else None,
        "booking_id": str(first.booking_id) if first.booking_id else None,
        "attempt": attempts,
    }
    if attempts > 1:
        log.info("mail retried", extra={"event": "mail_retried", **fields})
    try:
        try:
            mail = KINDS[kind_name].build(rows)
        finally:
            db.session.rollback()  # a builder that read through the session leaves no transaction open
        if mail is None:
            _update_rows(connection, ids, closed_at=utcnow(), closed_reason="gone", due_at=None, claimed_until=None)
            log.info("mail dropped, nothing left to send", extra={"event": "mail_dropped", **fields})
            return "gone"
        smtp_session.send(mail)
    except Exception as error:
        retry_in = _retry_delay(attempts)
        log.error(
            "mail failed",
            extra={
                "event": "mail_failed",
                **fields,
                "error": type(error).__name__,
                "smtp_code": getattr(error, "smtp_code", None),
                "retries_left": max(len(retry_intervals()) - attempts, 0),
                "retry_by": "rq" if retry_in is not None else "sweep",
            },
        )
        _record_failure(connection, ids, attempts, error)
        if retry_in is not None:
            # Its own job on RQ's schedule, whoever's job it failed in; the sweep is only the fallback.
            _enqueue(
                first.id,
                job_id_for(first.id, f"-retry-{attempts}"),
                trigger="retry",
                delay=retry_in,
                kind_name=kind_name,
            )
        return "failed"
    record_sent(kind_name, ids, fields)
    return "sent"


def _retry_delay(attempts: int) -> timedelta | None:
    """After the n-th failed attempt: the n-th retry interval, or None once they are used up (the sweep)."""
    intervals = retry_intervals()
    return timedelta(seconds=intervals[attempts - 1]) if attempts <= len(intervals) else None


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
