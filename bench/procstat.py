"""CPU time of server processes, read from /proc (Linux): what a request costs, whoever sends it.

Two kinds of components:

- a process tree we started (gunicorn master + workers, `python worker.py` + RQ's scheduler fork,
  redis-server): utime+stime+cutime+cstime summed over the live tree. A child that exits is reaped
  by its parent inside the tree, whose cutime/cstime then holds it, so the sum never loses time.
- processes we did not start and whose parent is outside our view (PostgreSQL backends): tracked
  per pid by a sampler thread that remembers each one's last reading, so a backend that exits
  during a phase still counts with what it had used by its last sample.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def _stat_fields(pid: int) -> list[str] | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            raw = handle.read().decode("ascii", "replace")
    except OSError:
        return None
    # The command name (field 2) is in parentheses and may contain spaces; fields follow the last ')'.
    return raw[raw.rindex(")") + 2 :].split()


def process_cpu(pid: int, with_children: bool = True) -> float | None:
    """Seconds of CPU of one process (all its threads), plus its reaped children's if asked."""
    fields = _stat_fields(pid)
    if fields is None:
        return None
    # After the name: state(3) ppid(4) ... utime(14) stime(15) cutime(16) cstime(17) → indexes 11..14.
    ticks = int(fields[11]) + int(fields[12])
    if with_children:
        ticks += int(fields[13]) + int(fields[14])
    return ticks / CLOCK_TICKS


def process_identity(pid: int) -> tuple[int, int] | None:
    """(pid, start time in ticks): stays the same only for one process, even if the pid is reused."""
    fields = _stat_fields(pid)
    return None if fields is None else (pid, int(fields[19]))


def _parents() -> dict[int, int]:
    parents = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            fields = _stat_fields(int(entry))
            if fields is not None:
                parents[int(entry)] = int(fields[1])
    return parents


def process_tree(root: int) -> list[int]:
    """root and all its live descendants."""
    children: dict[int, list[int]] = {}
    for pid, parent in _parents().items():
        children.setdefault(parent, []).append(pid)
    tree, stack = [], [root]
    while stack:
        pid = stack.pop()
        tree.append(pid)
        stack.extend(children.get(pid, []))
    return tree


def tree_cpu(roots: list[int]) -> float:
    total = 0.0
    for root in roots:
        for pid in process_tree(root):
            total += process_cpu(pid) or 0.0
    return total


def pids_named(prefix: str) -> list[int]:
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/comm") as handle:
                if handle.read().strip().startswith(prefix):
                    pids.append(int(entry))
        except OSError:
            continue
    return pids


class TrackedPids:
    """CPU of a changing set of processes we did not start (e.g. PostgreSQL backends of one database).

    `list_pids` is asked for the current set at every sample; each process's latest reading is kept,
    so one that exits between two samples loses at most one sampling interval of its time.
    """

    def __init__(self, list_pids: Callable[[], list[int]]) -> None:
        self.list_pids = list_pids
        self.latest: dict[tuple[int, int], float] = {}
        self.lock = threading.Lock()

    def sample(self) -> None:
        try:
            pids = self.list_pids()
        except Exception:  # a failed listing only skips one sample
            return
        readings = {}
        for pid in pids:
            identity = process_identity(pid)
            seconds = process_cpu(pid, with_children=False)
            if identity is not None and seconds is not None:
                readings[identity] = seconds
        with self.lock:
            self.latest.update(readings)

    def snapshot(self) -> dict[tuple[int, int], float]:
        self.sample()
        with self.lock:
            return dict(self.latest)


class CpuMeter:
    """Named components; `read()` gives a reading, `delta(a, b)` the CPU seconds spent in between.

    A counter is any function returning cumulative CPU seconds (e.g. `tree_cpu` of processes we
    started); tracked components are `TrackedPids`, sampled in the background between readings.
    """

    def __init__(self, interval: float = 0.2) -> None:
        self.counters: dict[str, Callable[[], float]] = {}
        self.tracked: dict[str, TrackedPids] = {}
        self.interval = interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def add_tree(self, name: str, roots: Callable[[], list[int]]) -> None:
        self.counters[name] = lambda: tree_cpu(roots())

    def add_counter(self, name: str, seconds: Callable[[], float]) -> None:
        self.counters[name] = seconds

    def add_tracked(self, name: str, list_pids: Callable[[], list[int]]) -> None:
        self.tracked[name] = TrackedPids(list_pids)

    def start(self) -> CpuMeter:
        if self.tracked and self._thread is None:
            self._thread = threading.Thread(target=self._run, name="cpu-sampler", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            for tracked in self.tracked.values():
                tracked.sample()

    def read(self) -> dict:
        reading: dict = {"at": time.monotonic()}
        for name, seconds in self.counters.items():
            reading[name] = seconds()
        for name, tracked in self.tracked.items():
            reading[name] = tracked.snapshot()
        return reading

    @staticmethod
    def delta(before: dict, after: dict) -> dict[str, float]:
        result = {}
        for name, value in after.items():
            if name == "at":
                continue
            if isinstance(value, dict):
                start = before.get(name, {})
                # A process first seen after `before` started from zero within the interval.
                result[name] = sum(max(seconds - start.get(key, 0.0), 0.0) for key, seconds in value.items())
            else:
                result[name] = max(value - before.get(name, 0.0), 0.0)
        result["wall"] = after["at"] - before["at"]
        return result
