"""The RQ job that sends mail: it claims rows with a lease, builds each with its kind's builder, sends it over
the kept-open SMTP session with no transaction open, and records the send right after it."""

import contextlib
import functools
import logging
import queue
import threading
import time
import uuid
from collections.abc import Callable
from datetime import timedelta

import sqlalchemy as sa
from flask import current_app
from redis.exceptions import RedisError
from rq.job import Job

from ..core.clock import utcnow
from ..core.redis_client import shared_redis
from ..extensions import db
from ..leads.models import Lead
from ..mail.dispatch import enqueue, job_flag, job_id_for, request_job
from ..mail.models import OutboxMessage
from ..mail.smtp import smtp_session
from ..mail.timing import MAX_SWEEP_BACKOFF, retry_delay, retry_intervals, send_lease
from .kinds import KINDS

log = logging.getLogger(__name__)


# A job claims the mail it was queued for, then every other due mail nobody has tried yet, this many at a
# time, until none is left or its time is up (then it queues its successor).
CLAIM_BATCH_SIZE = 50
JOB_BUDGET_SECONDS = 20
# What the confirmation needs of its lead, handed back by the claim itself.
LEAD_MAIL_FIELDS = ("first_name", "organization_name", "masked_ref")


def _leased(table, now):
    return sa.and_(
        table.c.sent_at.is_(None),
        table.c.closed_at.is_(None),
        sa.or_(table.c.claimed_until.is_(None), table.c.claimed_until < now),
    )


@functools.cache
def _claim_statement(mode: str):
    """One UPDATE … FROM that takes rows with a lease and hands back what their mails need. The mode says
    which rows:

    "own": the job's own mail, by id, whatever its attempts; for a batched kind, with every other unsent row
      of that kind for the same recipient, due or not: they go out as one mail.
    "batch": the unsent rows of one batched kind for one recipient (:batched_kind, :batch_recipient), to go
      with the batched rows a "due" claim took.
    "due": due mail nobody has tried yet, oldest first, up to :limit.

    "own" and "batch" wait for rows another job is claiming, in id order, and then leave them to it: two jobs
    that each hold a row of one batch must not split it into two mails. "due" skips them (FOR UPDATE … SKIP
    LOCKED on PostgreSQL; SQLite has one writer at a time). The compare-and-set on the lease is the same."""
    table = OutboxMessage.__table__
    leads = Lead.__table__
    candidate = table.alias("candidate")
    now = sa.bindparam("now", type_=table.c.claimed_until.type)
    conditions = [candidate.c.kind.in_(sa.bindparam("kinds", expanding=True)), _leased(candidate, now)]
    if mode == "own":
        message_id = sa.bindparam("message_id", type_=table.c.id.type)
        own = table.alias("own")
        batched_kinds = [name for name, kind in KINDS.items() if kind.batched]
        conditions.append(
            sa.or_(
                candidate.c.id == message_id,
                sa.and_(
                    candidate.c.kind.in_(batched_kinds),
                    candidate.c.kind == sa.select(own.c.kind).where(own.c.id == message_id).scalar_subquery(),
                    candidate.c.recipient == sa.select(own.c.recipient).where(own.c.id == message_id).scalar_subquery(),
                ),
            )
        )
    elif mode == "batch":
        conditions += [
            candidate.c.kind == sa.bindparam("batched_kind"),
            candidate.c.recipient == sa.bindparam("batch_recipient"),
        ]
    else:
        conditions += [
            candidate.c.due_at.is_not(None),  # unsent rows only (on the due_at index)
            candidate.c.attempts == 0,  # a mail that failed waits for its own retry
            candidate.c.claimed_until.is_(None),
            candidate.c.send_after <= now,
        ]
    picked = sa.select(candidate.c.id).where(*conditions)
    if mode == "due":
        picked = picked.order_by(candidate.c.due_at).limit(sa.bindparam("limit"))
        picked = picked.with_for_update(of=candidate, skip_locked=True)
    else:
        picked = picked.order_by(candidate.c.id).with_for_update(of=candidate)
    picked = picked.subquery("picked")
    # The lead's fields by a lookup per row, not a join: before the tables have planner statistics (a new
    # database, a bulk load autovacuum has not analyzed yet) PostgreSQL planned the join as a scan of the whole
    # leads index for every claimed row. A lookup by primary key has that one plan whatever the statistics say
    # (and SQLite's RETURNING cannot name a FROM clause's tables anyway).
    lead_columns = [
        sa.select(leads.c[name]).where(leads.c.id == table.c.lead_id).scalar_subquery().label(f"lead_{name}")
        for name in LEAD_MAIL_FIELDS
    ]
    return _lease(picked, lead_columns)


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
    per mail to send: a batched kind's rows for one recipient go out as one mail, all of them claimed
    together (see the "batch" claim)."""
    now = utcnow()
    params = {"now": now, "until": now + send_lease(), "kinds": list(KINDS)}
    if message_id is None:
        rows = connection.execute(_claim_statement("due"), {**params, "limit": CLAIM_BATCH_SIZE}).all()
    else:
        rows = connection.execute(_claim_statement("own"), {**params, "message_id": message_id}).all()
        if rows and message_id not in {row.id for row in rows}:
            # Its mail went out in another job's batch: what arrived since waits for its own window.
            _hand_back(connection, [row.id for row in rows])
            rows = []
    groups: dict = {}
    for row in rows:
        key = (row.kind, row.recipient) if KINDS[row.kind].batched else row.id
        groups.setdefault(key, []).append(row)
    for key, group in groups.items():
        if message_id is None and isinstance(key, tuple):
            group += _claim_batch(connection, params, *key)  # the batch's rows that were not due yet
    connection.commit()
    return [sorted(group, key=lambda row: row.created_at) for group in groups.values()]


def _claim_batch(connection, params: dict, kind_name: str, recipient: str) -> list[sa.Row]:
    statement = _claim_statement("batch")
    return connection.execute(statement, {**params, "batched_kind": kind_name, "batch_recipient": recipient}).all()


@functools.cache
def _sent_statements(dialect: str, kind_name: str) -> tuple:
    """Recording a send: one statement (on PostgreSQL, what the kind keeps elsewhere in a CTE, after its leads
    are locked; SQLite runs the two in one transaction)."""
    table = OutboxMessage.__table__
    ids = sa.bindparam("ids", expanding=True)
    now = sa.bindparam("now", type_=table.c.sent_at.type)
    mark_sent = (
        sa.update(table)
        .where(table.c.id.in_(ids))
        .values(sent_at=now, due_at=None, claimed_until=None, last_error=None)
    )
    follow_up = KINDS[kind_name].on_sent
    if follow_up is None:
        return (mark_sent,)
    # The sent rows' leads, as the claim handed them back: a list, not a subquery, so the statements below look
    # their leads up by primary key whatever the planner's statistics say.
    lead_ids = sa.bindparam("lead_ids", expanding=True)
    if dialect == "postgresql":
        # What the kind keeps in step reads the lead's other rows: two jobs recording two mails of one lead at
        # once would each see the other's as unsent in their statement's snapshot, and neither would set it.
        # So the sent rows' leads are locked first, in a statement of their own: the record that waits for
        # the lock then reads, in READ COMMITTED, a snapshot that holds the other job's committed send.
        # (SQLite has one writer: the second record's first write waits for the first one's commit.)
        leads = Lead.__table__
        locked_leads = sa.select(leads.c.id).where(leads.c.id.in_(lead_ids)).order_by(leads.c.id).with_for_update()
        # The send is marked in the follow-up's own statement (a WITH runs its UPDATE whether or not it is read).
        sent = mark_sent.returning(table.c.id).cte("sent")
        return locked_leads, follow_up(lead_ids, ids, now).add_cte(sent)
    return mark_sent, follow_up(lead_ids, ids, now)


def _record_sent(connection, kind_name: str, rows: list[sa.Row]) -> None:
    params = {
        "ids": [row.id for row in rows],
        "lead_ids": sorted({row.lead_id for row in rows if row.lead_id is not None}),
        "now": utcnow(),
    }
    statements = _sent_statements(connection.dialect.name, kind_name)
    with _one_transaction(connection, len(statements) > 1):
        for statement in statements:
            connection.execute(statement, params)


@contextlib.contextmanager
def _one_transaction(connection, needed: bool):
    """Commit what runs inside as one transaction: the job's PostgreSQL connection is in autocommit (each
    statement its own), which would release a lock taken by one statement before the next one runs."""
    autocommit = needed and connection.get_execution_options().get("isolation_level") == "AUTOCOMMIT"
    if autocommit:
        connection.execution_options(isolation_level="READ COMMITTED")
    try:
        yield
        connection.commit()
    except BaseException:
        connection.rollback()
        raise
    finally:
        if autocommit:
            connection.execution_options(isolation_level="AUTOCOMMIT")


def _update_rows(connection, message_ids: list[uuid.UUID], **values) -> None:
    table = OutboxMessage.__table__
    connection.execute(sa.update(table).where(table.c.id.in_(message_ids)).values(**values))
    connection.commit()


def _record_failure(connection, message_ids: list[uuid.UUID], attempts: int, error: Exception) -> None:
    # The sweep backs off along the retry schedule, and stays at its last step once it is used up.
    retry_in = retry_delay(attempts) or timedelta(seconds=retry_intervals()[-1])
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
    """The RQ job (dispatch.SEND_JOB names it). Safe to run twice, or beside other jobs: it sends only what it
    holds the lease on. Runs in the worker's app context (worker.py pushes it)."""
    with current_app.app_context():
        return _send(uuid.UUID(message_id))


# Jobs queued by an earlier release name the function where it lived then; after a deploy the worker still runs
# them (each names a mail, or before migration 0007 its booking, which the migrated row kept as its id).
LEGACY_SEND_JOBS = frozenset({"meander_site.outbox.send_message", "meander_site.confirmations.send_confirmation"})


class MailJob(Job):
    """RQ's job, resolving the send job's earlier names (the worker and its queue dequeue these)."""

    @property
    def func(self):
        if self.func_name in LEGACY_SEND_JOBS:
            return send_message
        return super().func


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
        shared_redis().delete(job_flag())  # before any claim: see _request_job
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
                    request_job(message_id, None, timedelta(0), trigger="backlog")
                handed_back = _deliver_all(connection, groups)[1]
                if not handed_back and time.monotonic() - started > JOB_BUDGET_SECONDS:
                    request_job(message_id, None, timedelta(0), trigger="successor")  # it takes what is left
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
                request_job(untried[0], None, timedelta(0), trigger="handed_back")
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

    def record(self, kind_name: str, rows: list[sa.Row], fields: dict) -> None:
        _record_and_log(self.connection, kind_name, rows, fields)


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

    def record(self, kind_name: str, rows: list[sa.Row], fields: dict) -> None:
        self.pending.join()  # the send before this one is recorded (or handed back)
        self._record_handed_back()
        if self.broken:
            super().record(kind_name, rows, fields)
        else:
            self.pending.put((kind_name, rows, fields))

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


def _record_and_log(connection, kind_name: str, rows: list[sa.Row], fields: dict) -> None:
    _record_sent(connection, kind_name, rows)
    log.info("mail sent (%s)", kind_name, extra={"event": "mail_sent", **fields})


def _deliver(connection, rows: list[sa.Row], record_sent: Callable[[str, list[sa.Row], dict], None]) -> str:
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
        if KINDS[kind_name].deliver is not None:
            try:
                closed_reason = KINDS[kind_name].deliver(rows)
            finally:
                db.session.rollback()  # what the delivery recorded it committed itself
            if closed_reason is not None:
                _update_rows(
                    connection, ids, closed_at=utcnow(), closed_reason=closed_reason, due_at=None, claimed_until=None
                )
                log.info(
                    "message closed undelivered", extra={"event": "message_closed", "reason": closed_reason, **fields}
                )
                return closed_reason
            record_sent(kind_name, rows, fields)
            return "sent"
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
        retry_in = retry_delay(attempts)
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
            enqueue(
                first.id,
                job_id_for(first.id, f"-retry-{attempts}"),
                trigger="retry",
                delay=retry_in,
                kind_name=kind_name,
            )
        return "failed"
    record_sent(kind_name, rows, fields)
    return "sent"
