"""One outbox for every mail the site sends: writing the row.

A mail is a row in `outbox_messages` first, written in the same transaction as whatever caused it. After
the commit a job is queued (RQ only nudges), unless one is already waiting: a job sends every due mail it
finds, so a burst of bookings costs one job. The job claims rows with a compare-and-set lease (one
UPDATE … RETURNING that also hands back what the mail needs of its lead), builds each message with its
kind's builder, sends it over the kept-open SMTP session with no transaction open, and records the send
right after it. A failed mail gets its own retry job on RQ's schedule; the sweep re-enqueues whatever is
due and unsent (Redis lost the job, or the retries ran out). A row is sent at most once: only the holder of
its lease sends, and a sent row is never claimed again.

A new kind of mail is a builder wrapped in a `Kind` (mail/kind.py), listed in mail/kinds.py, and a call to
`add()` or `write()` here; never a copy of this. The job is in jobs.py, the nudge in dispatch.py, the sweep in
sweep.py. Some kinds are batched: a job claims every unsent row of that kind for the same recipient and sends them
as one mail (new-lead notifications arriving within a minute share one).
"""

import functools
import json
import logging
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa
from flask import current_app

from ..core.clock import utcnow
from ..extensions import db
from .kind import Kind
from .models import OutboxMessage

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CloseWhen:
    """A condition read by the statement that writes the row (write()): when it holds, the mail is written
    closed with `reason`. `condition(row)` builds the SQL from the new row's parameters, by column name (a
    cap on mail to one address reads row["recipient"], one mail per lead an hour row["lead_id"]);
    `params(now)` gives the values of any parameters of its own. Keep one instance per rule: the statement
    is built once for it.
    """

    reason: str
    condition: Callable[[Mapping[str, sa.BindParameter]], sa.ColumnElement[bool]]
    params: Callable[[datetime], dict] = lambda now: {}


@dataclass(frozen=True)
class Draft:
    """A mail to store: add()'s arguments as a value, for write()."""

    kind: Kind
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
    grace = timedelta(seconds=current_app.config["MAIL_SWEEP_GRACE_SECONDS"])
    closed = draft.closed_reason is not None
    send_after = now + draft.send_after
    return {
        "id": uuid.uuid4(),
        "kind": draft.kind.name,
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


@dataclass(frozen=True)
class WrittenMail:
    """A row write() stored, as it was written: the columns a caller reads (closed_at, id, kind…) without an ORM
    object per mail (a booking writes up to seven), planned for dispatch() as add()'s are."""

    id: uuid.UUID
    kind: str
    recipient: str
    lead_id: uuid.UUID | None
    booking_id: uuid.UUID | None
    user_id: uuid.UUID | None
    payload: str | None
    dedupe_key: str | None
    created_at: datetime
    send_after: datetime
    due_at: datetime | None
    attempts: int
    closed_at: datetime | None
    closed_reason: str | None

    @property
    def dispatch_plan(self) -> tuple:
        return (self.id, self.kind, self.send_after, self.closed_at is not None)


def _planned(message: OutboxMessage) -> OutboxMessage:
    # Kept outside the mapped state, which the caller's commit expires: dispatch() then needs no SELECT,
    # and works even if the row is gone by then (erased together with its lead).
    message.dispatch_plan = (message.id, message.kind, message.send_after, message.closed_at is not None)
    return message


def add(
    kind: Kind,
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
    draft = Draft(kind, recipient, lead_id, booking_id, user_id, payload, send_after, dedupe_key, closed_reason)
    message = OutboxMessage(**_row(draft, now or utcnow()))
    db.session.add(message)
    return _planned(message)


_COLUMNS = tuple(WrittenMail.__dataclass_fields__)  # the columns write() gives each row


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
            closes = sa.select(close_when.condition(values).label("closes")).subquery()
            values.update(
                due_at=sa.case((closes.c.closes, sa.null()), else_=values["due_at"]),
                closed_at=sa.case((closes.c.closes, values["created_at"]), else_=values["closed_at"]),
                closed_reason=sa.case((closes.c.closes, sa.literal(close_when.reason)), else_=values["closed_reason"]),
            )
            row = sa.select(*values.values()).select_from(closes)
        rows.append(row)
    source = rows[0] if len(rows) == 1 else sa.union_all(*rows)
    return sa.insert(table).from_select(_COLUMNS, source).returning(table.c.id, table.c.closed_at)


def write(drafts: list[Draft], now: datetime | None = None) -> list[WrittenMail]:
    """add() for several mails in one statement (Core, no unit of work), in the caller's transaction.

    The rows add() would write, except that a draft's CloseWhen is decided by the statement. Returns what was
    written (WrittenMail), planned for dispatch() as add()'s are.
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
        messages.append(WrittenMail(**row))
    return messages
