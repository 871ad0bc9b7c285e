"""Child processes that never outlive us: the broker, and the workers ``signalhub up`` starts.

On Linux ``PR_SET_PDEATHSIG`` makes the kernel kill the child when its parent dies, even by
SIGKILL. It fires when the *thread* that spawned the child exits, so a long-lived child must be
spawned from a thread that lives as long as it should (the embedded broker has an owner thread).
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
from collections.abc import Callable

__all__ = ["child_preexec"]

_PR_SET_PDEATHSIG = 1


def child_preexec(parent_pid: int) -> Callable[[], None] | None:
    """A ``preexec_fn`` asking the kernel to SIGKILL the child when its parent thread dies.

    libc is loaded here, before the fork, so the child only makes one system call.
    """
    if not sys.platform.startswith("linux"):
        return None
    libc = ctypes.CDLL(None, use_errno=True)
    prctl = libc.prctl

    def preexec() -> None:
        prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if os.getppid() != parent_pid:  # the parent died between fork and prctl
            os.kill(os.getpid(), signal.SIGKILL)

    return preexec
