"""What the engine does on its connections beyond SQLAlchemy's defaults, and values read once per transaction."""

import select
import time
from collections.abc import Callable
from typing import TypeVar

import sqlalchemy as sa
from sqlalchemy.orm import Session, scoped_session

T = TypeVar("T")


def ping_stale_connections(engine: sa.Engine, idle_seconds: float) -> None:
    """Hand out no dead pooled connection, without pool_pre_ping's round trip on every checkout.

    SQLAlchemy's custom pessimistic disconnect handling: a checkout listener that raises
    DisconnectionError makes the pool retry with a fresh connection. It raises when the server has spoken
    on an idle connection (a restart or a terminated backend sends its FATAL and closes: free to see,
    one poll of the socket), and when a ping fails on a connection idle for more than `idle_seconds`
    (what a silent network drop would leave). A connection in steady use is never pinged.
    """
    if engine.dialect.name == "sqlite":
        return

    @sa.event.listens_for(engine, "checkin")
    def _note_return(_dbapi_connection, record):
        record.info["returned_at"] = time.monotonic()

    @sa.event.listens_for(engine, "checkout")
    def _check(dbapi_connection, record, _proxy):
        returned_at = record.info.get("returned_at")
        if returned_at is None:
            return  # just connected
        if _server_has_spoken(dbapi_connection):
            raise sa.exc.DisconnectionError("the server closed or is closing the connection")
        if time.monotonic() - returned_at <= idle_seconds:
            return
        try:
            engine.dialect.do_ping(dbapi_connection)
        except engine.dialect.loaded_dbapi.Error as error:
            raise sa.exc.DisconnectionError(str(error)) from error


def _server_has_spoken(dbapi_connection) -> bool:
    """An idle connection's socket has nothing to read unless the server sent something (or hung up)."""
    fileno = getattr(dbapi_connection, "fileno", None)
    if fileno is None:
        return False
    poller = select.poll()  # not select(): it cannot watch a descriptor numbered 1024 or higher
    try:
        poller.register(fileno(), select.POLLIN)
    except Exception:  # psycopg raises its own error once it knows the connection is closed
        return True
    return bool(poller.poll(0))


def tune_sqlite(engine: sa.Engine) -> None:
    if engine.dialect.name != "sqlite":
        return

    @sa.event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, _record):
        cursor = dbapi_connection.cursor()
        # WAL lets the worker and web processes read while one writes; busy_timeout makes writers queue.
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA busy_timeout=15000")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()
        # SQLite's lower() knows only ASCII; search must find «Øyvind» when typed «øyvind».
        dbapi_connection.create_function("lower", 1, _unicode_lower, deterministic=True)


def _unicode_lower(value):
    return value.lower() if isinstance(value, str) else value


# session.info's key for the values read once per transaction (per_transaction).
_PER_TRANSACTION = "meander_per_transaction"


def _session(session: Session | scoped_session) -> Session:
    return session() if isinstance(session, scoped_session) else session


def per_transaction(session: Session | scoped_session, key: str, read: Callable[[], T]) -> T:
    """`read()` once per transaction of `session`: a value several steps of one request need (the team's settings,
    the slot rules, the hosts), read by the first and reused by the rest until the transaction ends (commit or
    rollback). What one transaction read once is also what the rest of it decides on. A change made through
    the session in that transaction calls `forget_per_transaction` for the next read to see it."""
    session = _session(session)
    transaction = session.get_transaction()
    kept = session.info.get(_PER_TRANSACTION)
    if transaction is not None and kept is not None and kept[0] is transaction and key in kept[1]:
        return kept[1][key]
    value = read()
    # The read began the transaction if none was open: the value belongs to that one.
    transaction = session.get_transaction()
    if transaction is not None:
        if kept is None or kept[0] is not transaction:
            kept = (transaction, {})
            session.info[_PER_TRANSACTION] = kept
        kept[1][key] = value
    return value


def read_in_this_transaction(session: Session | scoped_session, key: str):
    """What per_transaction keeps for `key` in the open transaction; None when it has not been read in it."""
    session = _session(session)
    kept = session.info.get(_PER_TRANSACTION)
    transaction = session.get_transaction()
    if transaction is None or kept is None or kept[0] is not transaction:
        return None
    return kept[1].get(key)


def forget_per_transaction(session: Session | scoped_session, key: str) -> None:
    kept = _session(session).info.get(_PER_TRANSACTION)
    if kept is not None:
        kept[1].pop(key, None)
