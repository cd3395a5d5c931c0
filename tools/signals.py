"""Stop signals for the long-running commands (``gmv worker``, ``gmv demo``).

The first SIGINT or SIGTERM asks for a graceful stop (``requested``): the command stores
and commits what it holds, within ``Settings.stop_timeout_s``. A second signal ends the
process at once, after one line saying what is left: nothing unstored was committed, so
the next start re-processes it. A watchdog ends the process too if the graceful stop
itself hangs (a ClickHouse call that never returns cannot be interrupted from Python).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import threading
from collections.abc import Callable


class StopSignals:
    def __init__(self, command: str, left: Callable[[], str]) -> None:
        self.command = command
        self.left = left  # one line: what the next start will re-process
        self.requested = asyncio.Event()
        self.signal_name = ""
        self._watchdog: threading.Timer | None = None

    def install(self) -> StopSignals:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError):
                loop.add_signal_handler(sig, self._on_signal, sig)
        return self

    def _on_signal(self, sig: signal.Signals) -> None:
        if not self.requested.is_set():
            self.signal_name = sig.name
            self.requested.set()
            return
        self.exit_now(f"second {sig.name}")

    def arm_watchdog(self, seconds: float) -> None:
        """Exit after ``seconds`` whatever the graceful stop is doing."""
        self._watchdog = threading.Timer(seconds, self.exit_now, args=(f"still stopping after {seconds:.0f}s",))
        self._watchdog.daemon = True
        self._watchdog.start()

    def disarm(self) -> None:
        if self._watchdog is not None:
            self._watchdog.cancel()

    def exit_now(self, why: str) -> None:
        try:
            left = self.left()
        except Exception:  # whatever state the process is in, it must still exit
            left = "what was not committed is re-processed at the next start"
        print(f"gmv {self.command}: {why}: exiting now; {left}", file=sys.stderr, flush=True)
        os._exit(130)
