"""Child processes that end with the gmv process that started them, however it ends.

A worker or demo killed with SIGKILL runs no clean-up: its embedded broker and its simulator
would live on as orphans (the broker holding its port and data dir). Linux's
``PR_SET_PDEATHSIG`` has the kernel signal the child when its parent dies. The kernel ties it to
the *thread* that forked the child: start children from a thread that lives as long as they
should (the main thread; never a pool thread that may exit first). Elsewhere than Linux this does
nothing, and the clean stop (``EmbeddedKafka.stop``) remains the only one.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import signal
import sys
from collections.abc import Callable

PR_SET_PDEATHSIG = 1


def die_with_parent(sig: signal.Signals = signal.SIGTERM) -> Callable[[], None] | None:
    """A ``preexec_fn`` that asks the kernel to send ``sig`` to the child when its parent dies
    (None where that cannot be asked: not Linux)."""
    if not sys.platform.startswith("linux"):
        return None
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    parent = os.getpid()

    def preexec() -> None:
        libc.prctl(PR_SET_PDEATHSIG, int(sig), 0, 0, 0)
        if os.getppid() != parent:  # the parent died before the request took hold
            os.kill(os.getpid(), sig)

    return preexec
