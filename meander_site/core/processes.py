"""Child processes that never outlive us: used by the worker (RQ's scheduler), `make run` and the tests."""

import ctypes
import ctypes.util
import os
import signal
import sys

_PR_SET_PDEATHSIG = 1
_libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True) if sys.platform == "linux" else None


def die_with_parent() -> None:
    """preexec_fn: have the kernel SIGTERM this child when the spawning thread of its parent dies.

    A safety net for when our parent is SIGKILLed and cannot clean up. Linux only; no-op elsewhere.
    """
    if _libc is None:
        return
    parent = os.getppid()
    _libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    # The parent may already have died between fork() and prctl(); nobody would signal us then.
    if os.getppid() != parent:
        os._exit(1)
