"""Waiting and racing, done one way in every test: poll a condition up to a deadline (never sleep a fixed
time and hope), and start threads at one instant with a barrier. (A browser for a server a test started is
helpers/gunicorn_client.py's Browser.)"""

import threading
import time

import sqlalchemy as sa

from meander_site.extensions import db


def wait_until(predicate, timeout: float = 10.0, what: str = "the condition", diagnostics=None, interval=0.02):
    """Poll `predicate` until it returns something truthy and return that; fail with `what` (and the
    output of `diagnostics()`, e.g. a process's log) once `timeout` seconds have passed."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            detail = f"\n{diagnostics()}" if diagnostics else ""
            raise AssertionError(f"timed out after {timeout}s waiting for: {what}{detail}")
        time.sleep(interval)


def run_together(count: int, work, timeout: float = 60.0) -> list:
    """Run work(n, barrier) in `count` threads; each calls barrier.wait() right before the step that races.
    Returns the results in thread order, or raises the first error a thread raised."""
    barrier = threading.Barrier(count, timeout=20)
    results: list = [None] * count
    errors: list[BaseException] = []

    def target(n: int) -> None:
        try:
            results[n] = work(n, barrier)
        except BaseException as error:  # reported after join
            errors.append(error)
            barrier.abort()

    threads = [threading.Thread(target=target, args=(n,)) for n in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=timeout)
    assert not any(thread.is_alive() for thread in threads), f"a thread still runs after {timeout}s"
    if errors:
        raise errors[0]
    return results


def waiting_for_locks(app) -> int:
    """PostgreSQL: how many of this database's sessions wait for a lock now (a row's, or an advisory one)."""
    with app.app_context(), db.engine.connect() as connection:
        return connection.scalar(
            sa.text(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'"
            )
        )
