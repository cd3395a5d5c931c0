"""Security end to end: secrets never printed, and the web port bound to loopback by default."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest

from gmv.tools.embedded import free_port
from tests.integration.conftest import ROOT, gmv, own_engine, run_counts
from tests.support.waiting import wait_for

pytestmark = pytest.mark.integration


def test_clickhouse_password_never_appears_in_output():
    env = {k: v for k, v in os.environ.items() if not k.startswith("GMV_")}
    env.update({"GMV_CLICKHOUSE_DSN": "http://alice:hunter2@127.0.0.1:1", "GMV_CLICKHOUSE_PASSWORD": "s3cretpw",
                "GMV_LOG_LEVEL": "DEBUG"})
    proc = gmv(env, "sql", "SELECT 1", check=False, timeout=60)
    assert proc.returncode != 0 and "cannot reach ClickHouse" in proc.stderr
    assert "s3cretpw" not in proc.stdout + proc.stderr and "hunter2" not in proc.stdout + proc.stderr


def _listening(port: int) -> set[str]:
    """Local addresses of the sockets listening on ``port`` (IPv4 and IPv6), from /proc/net."""
    found: set[str] = set()
    for table, width in (("/proc/net/tcp", 8), ("/proc/net/tcp6", 32)):
        try:
            lines = open(table).read().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            local, state = line.split()[1], line.split()[3]
            addr, hexport = local.split(":")
            if state == "0A" and int(hexport, 16) == port and len(addr) == width:
                if width == 8:
                    found.add(".".join(str(int(addr[i:i + 2], 16)) for i in (6, 4, 2, 0)))
                else:
                    found.add("::1" if addr == "0" * 24 + "01000000" else addr)
    return found


def test_the_worker_listens_on_loopback_only_by_default(gmv_env, tmp_path):
    gmv_env = own_engine(gmv_env, tmp_path / "data")  # the worker process opens the engine
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    run_counts(gmv_env, empty)  # topics and schema in place
    port, metrics_port = free_port(), free_port()
    worker = subprocess.Popen([sys.executable, "-m", "gmv.tools.cli", "worker", "--web-port", str(port)],
                              env={**gmv_env, "GMV_METRICS_PORT": str(metrics_port)}, cwd=ROOT,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        bound = wait_for(lambda: _listening(port) or (worker.poll() is not None and {"exited"}), 90,
                         "the worker's web port to listen")
        assert "exited" not in bound, worker.stderr.read() if worker.stderr else ""
        assert bound == {"127.0.0.1"}
        assert wait_for(lambda: _listening(metrics_port), 30, "the metrics port to listen") == {"127.0.0.1"}
    finally:
        worker.send_signal(signal.SIGINT)
        worker.wait(60)
