"""Run a ``gmv`` command inside the test process, as ``gmv.tools.cli.main`` with the test's
environment, its stdout and stderr captured: the same code as the installed command without the
2-3 s of a new interpreter, imports and engine start-up.

Only where the process itself is not under test (``IN_PROCESS``), and only on a ClickHouse this
process may open: chdb opens one data path per process, so the session's embedded engine belongs
to the test process once any in-process command touched it, and every other embedded data path
(a test's own worker, a demo) is left to the processes that own it. ``gmv sql`` on such a path
runs here while its owner serves SQL: the command then asks the owner over loopback, as it does
from any other process, and opens nothing.
"""

from __future__ import annotations

import contextlib
import faulthandler
import gc
import io
import logging
import os
import subprocess
import sys
import traceback
from pathlib import Path

# Commands whose process is not the subject: they compute and print. `worker`, `demo` and
# `simulate` stay real processes (signals, start-up, their output streams are what is tested).
IN_PROCESS = frozenset({"run", "sql", "explain", "scores", "attribution", "alerts", "reconcile", "load-dim"})
# Flags that point a command at another broker, engine or data dir than its environment names.
_ELSEWHERE = ("--data-dir", "--clickhouse-dsn", "--kafka")


def may_run_here(env: dict[str, str], args: tuple[str, ...], owned_dsn: str | None) -> bool:
    """True when ``gmv *args`` with ``env`` can run in this process: an in-process command on a
    ClickHouse server, or on the one embedded engine this process owns (``owned_dsn``)."""
    if not args or args[0] not in IN_PROCESS or any(a.startswith(_ELSEWHERE) for a in args):
        return False
    dsn = env.get("GMV_CLICKHOUSE_DSN", "")
    if not dsn:
        return False  # the data dir's own embedded engine: another path than the session's
    if not dsn.startswith("chdb://") or dsn == owned_dsn:
        return True
    return args[0] == "sql" and _served_elsewhere(Path(dsn.removeprefix("chdb://")))


def _served_elsewhere(path: Path) -> bool:
    """Another process holds the engine at ``path`` and has said where it serves SQL."""
    from gmv.tools.embedded import ClickHouseOwnership

    ownership = ClickHouseOwnership(path)
    if not path.exists() or ownership.try_acquire():
        ownership.release()
        return False
    owner = ownership.owner() or {}
    return bool(owner.get("web_port")) and owner.get("pid") != os.getpid()


def run_in_process(env: dict[str, str], args: tuple[str, ...], timeout: float) -> subprocess.CompletedProcess:
    """``gmv *args`` as ``cli.main``; a hang past ``timeout`` ends the test run with every
    thread's traceback (a subprocess would be killed; here nothing else can stop it)."""
    from gmv.tools import cli

    saved_env = os.environ.copy()
    thresholds = gc.get_threshold()
    out = io.TextIOWrapper(io.BytesIO(), encoding="utf-8", errors="replace", write_through=True)
    err = io.StringIO()
    handler = logging.StreamHandler(err)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    level = root.level
    os.environ.clear()
    os.environ.update(env)
    root.addHandler(handler)
    root.setLevel(getattr(logging, env.get("GMV_LOG_LEVEL", "WARNING").upper(), logging.WARNING))
    faulthandler.dump_traceback_later(timeout, exit=True, file=sys.__stderr__)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                rc = cli.main(list(args))
            except SystemExit as e:  # argparse's usage errors and --help
                rc = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
            except BaseException:  # what a real process would show: its traceback, exit 1
                traceback.print_exc(file=err)
                rc = 1
    finally:
        faulthandler.cancel_dump_traceback_later()
        os.environ.clear()
        os.environ.update(saved_env)
        root.removeHandler(handler)
        root.setLevel(level)
        gc.unfreeze()  # `gmv run` tunes the collector for a long-lived worker; not for pytest
        gc.set_threshold(*thresholds)
    return subprocess.CompletedProcess(["gmv", *args], rc, out.buffer.getvalue().decode("utf-8", "replace"),
                                       err.getvalue())


def main() -> int:
    """``python -m tests.support.in_process``: the ``gmv`` commands of a JSON list on stdin, one
    after the other in this one process (which then owns the environment's embedded engine); a
    JSON list of their ``{"returncode", "stdout", "stderr"}`` on stdout."""
    import json

    commands = json.loads(sys.stdin.read())
    env = dict(os.environ)
    done = [run_in_process(env, tuple(args), timeout=600) for args in commands]
    print(json.dumps([{"returncode": d.returncode, "stdout": d.stdout, "stderr": d.stderr} for d in done]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
