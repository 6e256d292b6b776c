"""DataLoader worker set-up: a worker never outlives the process that started it."""

from __future__ import annotations

import ctypes
import signal
import sys

PR_SET_PDEATHSIG = 1  # linux/prctl.h


def die_with_parent(worker_id: int) -> None:
    """`worker_init_fn`: on Linux the kernel sends SIGKILL to this worker when its parent dies
    (even by SIGKILL, which leaves no chance to stop the workers); elsewhere it does nothing."""
    if not sys.platform.startswith("linux"):
        return
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
