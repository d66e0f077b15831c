"""What the engine does on its connections beyond SQLAlchemy's defaults."""

import select
import time

import sqlalchemy as sa


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
