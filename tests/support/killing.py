"""`gmv run` killed with SIGKILL mid-run: once some of its batches are committed, not all."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from kafka.admin import KafkaAdminClient

from tests.support.waiting import wait_for

ROOT = Path(__file__).resolve().parents[2]


def kill_gmv_run_mid_way(env: dict[str, str], path: Path) -> int:
    """Start `gmv run --events path`, kill -9 it once part of the input is committed; returns how
    many messages were committed then (0 < n < lines, or the assertion says why not)."""
    lines = sum(1 for line in path.open("rb") if line.strip())
    proc = subprocess.Popen([sys.executable, "-m", "gmv.tools.cli", "run", "--events", str(path)], env=env, cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    admin = KafkaAdminClient(bootstrap_servers=env["GMV_KAFKA_BOOTSTRAP_SERVERS"])

    def committed_mid_run() -> int:
        if proc.poll() is not None:
            return -1  # finished before it could be killed: fails below
        try:
            offsets = admin.list_group_offsets(env["GMV_APP_ID"]).get(env["GMV_APP_ID"], {})
        except Exception:  # the group does not exist yet
            offsets = {}
        done = sum(max(m.offset, 0) for m in offsets.values())
        return done if 0 < done < lines else 0

    try:
        committed = wait_for(committed_mid_run, 180, "a partial commit of the run", poll_s=0.02)
    finally:
        admin.close()
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL, "the run ended before it could be killed"
    assert 0 < committed < lines  # it really died mid-run, with part of the input committed
    return committed
