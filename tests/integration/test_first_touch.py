"""Where a user first touches the product, driven as the user does: `gmv sql` against a serving
worker (a refused request never leaks into the next, and the dashboard still answers), the lag a
restarted worker reports, a web port that is taken, and the CLI's error paths."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from kafka import KafkaProducer

from gmv.tools.embedded import free_port
from tests.integration.conftest import ROOT, fresh_env, gmv, own_engine, run_counts
from tests.support.waiting import wait_for, worker_stats
from tests.support.web import get_json

pytestmark = pytest.mark.integration


def _events(n: int, tag: str, t0_ms: int = 1_764_000_000_000) -> list[dict]:
    return [{"event_type": "view", "event_id": f"{tag}-{i}", "event_time": t0_ms + i, "user_id": f"u{i % 50}",
             "video_id": "v1", "author_id": "a1", "kind": "short_video", "watch_ms": 5000, "shop_id": "s1"}
            for i in range(n)]


def _write(path: Path, events: list[dict]) -> Path:
    path.write_text("".join(json.dumps(e) + "\n" for e in events))
    return path


class Worker:
    """`gmv worker` in a process of its own, as a user starts it."""

    def __init__(self, env: dict[str, str], port: int) -> None:
        self.port = port
        self.proc = subprocess.Popen([sys.executable, "-m", "gmv.tools.cli", "worker", "--web-port", str(port)],
                                     env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)

    def stats(self) -> dict:
        def ready() -> dict | None:
            assert self.proc.poll() is None, self.proc.stderr.read()  # type: ignore[union-attr]
            s = worker_stats(self.port)
            return s if s and s.get("partitions") and s.get("lag", -1) >= 0 else None
        return wait_for(ready, 90, "the worker to own its partitions and know its lag", poll_s=0.3)

    def stop(self) -> None:
        self.proc.send_signal(2)
        self.proc.wait(60)


@pytest.fixture
def worker_env(backend, tmp_path: Path) -> Iterator[tuple[dict[str, str], Worker]]:
    env = own_engine(fresh_env(backend), tmp_path)
    w = Worker(env, free_port())
    try:
        w.stats()
        yield env, w
    finally:
        w.stop()


def test_a_refused_or_multi_statement_request_never_leaks_into_the_next_and_the_dashboard_still_answers(
        worker_env):
    env, w = worker_env
    db = env["GMV_CLICKHOUSE_DATABASE"]
    two = gmv(env, "sql", f"SELECT 7; INSERT INTO {db}.dim_accounts (account_id) VALUES ('x')", check=False)
    assert two.returncode == 1 and "one statement per request" in two.stderr, two.stderr
    write = gmv(env, "sql", f"INSERT INTO {db}.dim_accounts (account_id) VALUES ('x')", check=False)
    assert write.returncode == 1 and "read-only" in write.stderr, write.stderr
    assert gmv(env, "sql", "SELECT 8").stdout == "8\n"  # nothing left over from the refused requests
    both = gmv(env, "sql", "SELECT 1; SELECT 2", check=False)
    assert both.returncode == 1 and "one statement per request" in both.stderr and both.stdout == ""
    assert gmv(env, "sql", "SELECT 9;").stdout == "9\n"  # one statement with its semicolon is fine
    verb = gmv(env, "sql", "SELEC 1", check=False)  # a misspelt verb is refused before ClickHouse
    assert verb.returncode == 1 and verb.stderr.count("\n") == 1 and "SELEC is not a read" in verb.stderr, verb.stderr
    typo = gmv(env, "sql", "SELECT (1", check=False)
    assert typo.returncode == 1 and typo.stderr.count("\n") == 1, typo.stderr
    assert "Syntax error" in typo.stderr and "FORMAT" not in typo.stderr and "Expected one of" not in typo.stderr
    assert get_json(w.port, "/gmv/dashboard/data/?model=linear", env)["model"] == "linear"  # the page still works
    assert gmv(env, "sql", f"SELECT count() FROM {db}.dim_accounts").stdout == "0\n"  # nothing was written


def test_a_restarted_worker_reports_only_what_waits_as_lag(backend, tmp_path: Path):
    env = own_engine(fresh_env(backend), tmp_path)
    assert run_counts(env, _write(tmp_path / "a.jsonl", _events(2000, "a")))["accepted"] == 2000  # consumed, committed
    w = Worker(env, free_port())
    try:
        assert w.stats()["lag"] == 0  # a restart on a consumed topic: nothing waits (it said 2,000)
    finally:
        w.stop()
    # more arrives while no worker runs: the next one reports that much, then consumes it
    producer = KafkaProducer(bootstrap_servers=env["GMV_KAFKA_BOOTSTRAP_SERVERS"])
    for e in _events(300, "b", 1_764_000_100_000):
        producer.send(f"{env['GMV_TOPIC_PREFIX']}views", key=e["user_id"].encode(), value=json.dumps(e).encode())
    producer.flush()
    producer.close()
    w = Worker(env, free_port())
    try:
        assert w.stats()["lag"] <= 300  # at most what arrived since, never the topic's length (2,300)
        wait_for(lambda: (worker_stats(w.port) or {}).get("lag") == 0, 60, "the new messages to be consumed")
    finally:
        w.stop()


@pytest.mark.parametrize("how", ["flag", "variable"])
def test_a_worker_whose_web_port_is_taken_exits_at_once_with_one_line_naming_it(backend, tmp_path: Path,
                                                                                how: str):
    env = own_engine(fresh_env(backend), tmp_path)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        args = ["worker", "--web-port", str(port)] if how == "flag" else ["worker"]
        if how == "variable":
            env["GMV_WEB_PORT"] = str(port)
        t0 = time.monotonic()
        proc = gmv(env, *args, timeout=60, check=False)
    assert proc.returncode == 1 and time.monotonic() - t0 < 30
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert f"port {port}" in lines[0] and ("--web-port" if how == "flag" else "GMV_WEB_PORT") in lines[0]


def test_cli_errors_are_one_line_that_says_what_to_do(backend, tmp_path: Path):
    env = fresh_env(backend)
    run_counts(env, _write(tmp_path / "a.jsonl", _events(10, "c")))
    missing = gmv(env, "explain", "nosuch", check=False)
    assert missing.returncode == 1 and "order 'nosuch': no attributed GMV" in missing.stderr
    nowhere = tmp_path / "nowhere"
    sql = gmv(env, "sql", "SELECT 1", "--data-dir", str(nowhere), "--clickhouse-dsn", f"chdb://{nowhere}/ch",
              check=False)
    assert sql.returncode == 1 and "no embedded ClickHouse" in sql.stderr
    assert not nowhere.exists()  # a reader creates nothing
    down = gmv({**env, "GMV_CLICKHOUSE_DSN": f"http://127.0.0.1:{free_port()}"}, "sql", "SELECT 1", check=False)
    assert down.returncode == 1 and down.stderr.count("\n") == 1 and "WARNING" not in down.stderr, down.stderr
    kafka = gmv({**own_engine(env, tmp_path / "own"), "GMV_STARTUP_WAIT_S": "1"}, "worker", "--kafka", "127.0.0.1:1", "--web-port",
                str(free_port()), check=False, timeout=60)
    assert kafka.returncode == 1 and "(--kafka)" in kafka.stderr and "GMV_KAFKA_BOOTSTRAP_SERVERS" not in kafka.stderr
