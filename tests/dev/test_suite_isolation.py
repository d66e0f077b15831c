"""The suite's own isolation (tests/helpers/services.py): test processes, of one run or of two checkouts, never
share a Redis database nor flush anyone else's, and a PostgreSQL restart waits for every test using the server."""

import os
import threading
import uuid

import pytest
import redis
from helpers.services import PostgresServerLock, RedisDatabaseClaim
from helpers.waiting import wait_until

from meander_site.dev.embedded import EmbeddedRedis

pytestmark = pytest.mark.subprocess  # a redis-server of their own


@pytest.fixture
def server(scratch_dir):
    with EmbeddedRedis(scratch_dir / f"claims-{uuid.uuid4().hex[:6]}.sock") as server:
        yield server


def database(server, number: int) -> redis.Redis:
    return redis.Redis.from_url(f"{server.url}?db={number}")


def test_worker_n_gets_the_base_minus_n_and_two_runs_asking_for_one_number_get_one_each(server):
    with RedisDatabaseClaim(server.url, base=15, preferred=14) as gw1:
        assert gw1.number == 14
        with (
            RedisDatabaseClaim(server.url, base=15, preferred=15) as gw0,
            RedisDatabaseClaim(server.url, base=15, preferred=15) as other_checkouts_gw0,
        ):
            assert gw0.number == 15
            assert other_checkouts_gw0.number == 13  # 15 and 14 are held
            assert gw0.url.endswith("db=15") and other_checkouts_gw0.url.endswith("db=13")


def test_a_database_holding_someone_elses_keys_is_neither_taken_nor_flushed(server):
    theirs = database(server, 15)
    theirs.set("their:key", "kept")

    with RedisDatabaseClaim(server.url, base=15, preferred=15) as claim:
        assert claim.number == 14

    assert theirs.get("their:key") == b"kept"


def test_the_database_redis_url_names_is_never_claimed(server):
    with RedisDatabaseClaim(f"{server.url}?db=15", base=15, preferred=15) as claim:
        assert claim.number == 14


def test_a_release_empties_the_database_and_frees_its_number(server):
    with RedisDatabaseClaim(server.url, base=15, preferred=15) as claim:
        database(server, claim.number).set("left:behind", "1")

    assert database(server, 15).dbsize() == 0
    with RedisDatabaseClaim(server.url, base=15, preferred=15) as again:
        assert again.number == 15


def test_the_number_of_a_run_that_died_is_taken_again_once_its_claim_has_expired(server):
    dead = RedisDatabaseClaim(server.url, base=15, preferred=15).acquire()
    dead._stop.set()  # the process died: nothing renews the claim, nothing releases it
    dead._renewer.join(timeout=5)
    database(server, 15).set("left:behind", "1")

    with RedisDatabaseClaim(server.url, base=15, preferred=15) as blocked:
        assert blocked.number == 14, "a live claim is respected"
    database(server, 15).delete(RedisDatabaseClaim.CLAIM_KEY)  # what its expiry does

    with RedisDatabaseClaim(server.url, base=15, preferred=15) as claim:
        assert claim.number == 15
        assert database(server, 15).get("left:behind") is None, "the dead run's leftovers are gone"


# --- the PostgreSQL server, shared and alone ------------------------------------------------------------


def blocked_waiters(path) -> int:
    """How many flock(2) requests wait on `path` (the kernel lists them in /proc/locks with "->")."""
    inode = os.stat(path).st_ino
    with open("/proc/locks") as locks:
        return sum(1 for line in locks if "->" in line and line.split()[-3].endswith(f":{inode}"))


def test_a_restart_waits_for_the_tests_holding_the_server_and_later_tests_wait_for_the_restart():
    # Three test processes' views of one (imaginary) server: each has its own lock files open.
    url = f"postgresql://postgres@lock-test-{uuid.uuid4().hex[:8]}:5432/postgres"
    running, restarting, arriving = PostgresServerLock(url), PostgresServerLock(url), PostgresServerLock(url)
    order: list[str] = []
    restart_done = threading.Event()

    def restart():
        with restarting.alone():
            order.append("restart")
        restart_done.set()

    def arrive():
        with arriving.shared():
            order.append("later test")

    try:
        with running.shared():
            restarter = threading.Thread(target=restart)
            restarter.start()
            wait_until(lambda: blocked_waiters(running._lock_path) == 1, 10, "the restart to wait for the running test")
            newcomer = threading.Thread(target=arrive)
            newcomer.start()
            wait_until(lambda: blocked_waiters(running._gate_path) == 1, 10, "the later test to queue at the gate")
            order.append("running test ends")
        assert restart_done.wait(10), "the restart ran once the running test ended"
        newcomer.join(timeout=10)
        restarter.join(timeout=10)
        assert order == ["running test ends", "restart", "later test"]
    finally:
        for path in (running._lock_path, running._gate_path):
            path.unlink(missing_ok=True)


def test_a_fixture_inside_a_test_holding_the_server_does_not_queue_behind_a_restart():
    url = f"postgresql://postgres@lock-test-{uuid.uuid4().hex[:8]}:5432/postgres"
    test_process, restarting = PostgresServerLock(url), PostgresServerLock(url)

    def restart():
        with restarting.alone():
            pass

    try:
        with test_process.shared():
            restarter = threading.Thread(target=restart)
            restarter.start()
            wait_until(lambda: blocked_waiters(test_process._lock_path) == 1, 10, "the restart to wait at the gate")
            # With the gate held by the waiting restart, a second shared hold from this process would deadlock
            # (the restart waits for this process, this process for the gate): it is counted, not taken again.
            nested = threading.Thread(target=lambda: test_process.shared().__enter__(), daemon=True)
            nested.start()
            nested.join(timeout=10)
            assert not nested.is_alive(), "the nested hold queued behind the restart: a deadlock"
        restarter.join(timeout=10)
        assert not restarter.is_alive(), "the restart got the server once the test ended"
    finally:
        for path in (test_process._lock_path, test_process._gate_path):
            path.unlink(missing_ok=True)
