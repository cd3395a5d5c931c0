"""Start-up in any order (compose starts services in any order): a worker waits for Kafka and
ClickHouse with backoff, one line per attempt naming the setting and the address, then exits
non-zero with one clear line; a broker that comes up while it waits is used. Several workers
migrating one database at once: one applies the migrations, the others wait."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import threading

import pytest

from gmv.sinks.migrations import LATEST
from gmv.tools.embedded import EmbeddedKafka, free_port
from gmv.tools.sample import write_sample
from tests.integration.conftest import ROOT, fresh_env, own_engine
from tests.support.producing import produce_events
from tests.support.waiting import wait_for, worker_stats

pytestmark = pytest.mark.integration


def _check_waiting_lines(stderr: str, what: str, setting: str, address: str, budget: str,
                         debug_log: bool = False) -> None:
    """Nothing but the attempt lines and the final one (at the default log level: with DEBUG
    logging on, other loggers' lines are allowed between them)."""
    lines = [ln for ln in stderr.splitlines() if ln.strip() and (not debug_log or ln.startswith("gmv"))]
    assert "Traceback" not in stderr, stderr
    *attempts, last = lines
    assert 2 <= len(attempts) <= 12, stderr  # backoff: a handful of attempts, not a flood
    for n, line in enumerate(attempts, start=1):
        assert line.startswith(f"gmv: waiting for {what} at {address} ({setting}): attempt {n}: "), line
        assert "next in" in line
    assert re.fullmatch(rf"gmv worker: {what} at {re.escape(address)} \({setting}\) did not answer within {budget}s "
                        r"\(\d+ attempts; last: .+\); check that it is up and reachable from here, or raise "
                        r"GMV_STARTUP_WAIT_S", last), last


def test_unreachable_kafka_gives_one_line_per_attempt_then_one_clear_line_and_a_non_zero_exit(backend, tmp_path):
    port = free_port()  # nothing listens there
    env = own_engine(fresh_env(backend), tmp_path)
    env.update({"GMV_KAFKA_BOOTSTRAP_SERVERS": f"127.0.0.1:{port}", "GMV_STARTUP_WAIT_S": "4"})
    done = subprocess.run([sys.executable, "-m", "gmv.tools.cli", "worker"], env=env, cwd=ROOT, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 1
    _check_waiting_lines(done.stderr, "Kafka", "GMV_KAFKA_BOOTSTRAP_SERVERS", f"127.0.0.1:{port}", "4")
    assert "Connection refused" in done.stderr


def test_unreachable_clickhouse_server_gives_one_line_per_attempt_then_a_non_zero_exit(backend, tmp_path):
    port = free_port()
    env = own_engine(fresh_env(backend), tmp_path)
    env.update({"GMV_CLICKHOUSE_DSN": f"http://gmv:dsn-pw-not-shown@127.0.0.1:{port}",
                "GMV_CLICKHOUSE_PASSWORD": "pw-not-shown", "GMV_STARTUP_WAIT_S": "3", "GMV_LOG_LEVEL": "DEBUG"})
    done = subprocess.run([sys.executable, "-m", "gmv.tools.cli", "worker"], env=env, cwd=ROOT, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 1
    _check_waiting_lines(done.stderr, "ClickHouse", "GMV_CLICKHOUSE_DSN", f"http://gmv:***@127.0.0.1:{port}", "3",
                         debug_log=True)
    assert "pw-not-shown" not in done.stdout + done.stderr


def test_a_worker_started_before_its_broker_waits_for_it_and_then_consumes(backend, tmp_path):
    port = free_port()
    env = own_engine(fresh_env(backend), tmp_path / "worker")
    env.update({"GMV_KAFKA_BOOTSTRAP_SERVERS": f"127.0.0.1:{port}", "GMV_STARTUP_WAIT_S": "120"})
    web_port = free_port()
    log_path = tmp_path / "worker.log"
    with open(log_path, "w") as log:
        worker = subprocess.Popen([sys.executable, "-m", "gmv.tools.cli", "worker", "--web-port", str(web_port)],
                                  env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=log, text=True)
    broker = None
    try:
        wait_for(lambda: "attempt 2:" in log_path.read_text(), 60, "the worker to wait for Kafka", 0.2)
        assert worker.poll() is None
        broker = EmbeddedKafka(tmp_path / "broker", port)  # the broker comes up late, on the address given
        broker.start()
        wait_for(lambda: (worker.poll() is None or pytest.fail(log_path.read_text()))
                 and (worker_stats(web_port) or {}).get("partitions"), 120, "the worker to own its partitions", 0.5)
        events = tmp_path / "events.jsonl"
        expected = write_sample(events, events=200, bad_per_kind=0)
        produce_events(f"127.0.0.1:{port}", env["GMV_TOPIC_PREFIX"], events)
        wait_for(lambda: (worker_stats(web_port) or {}).get("counters", {}).get("accepted") == expected["accepted"],
                 120, f"the worker to store {expected['accepted']} events", 0.5)
    finally:
        worker.send_signal(signal.SIGINT)
        worker.wait(60)
        if broker is not None:
            broker.stop()
    assert worker.returncode == 0, log_path.read_text()[-3000:]
    assert "Traceback" not in log_path.read_text()


def _migrate_at_once(env: dict[str, str], n: int, mode: str) -> dict:
    """``n`` migrators on clients of their own, started at one barrier, on the test's database
    (``stale``: one migrator, and a lock table left by one killed while holding it)."""
    from pydantic import SecretStr

    from gmv.sinks.clickhouse import connect
    from gmv.sinks.migrations import LOCK_TABLE, migrate

    dsn, db = env["GMV_CLICKHOUSE_DSN"], env["GMV_CLICKHOUSE_DATABASE"]
    pw = SecretStr(env["GMV_CLICKHOUSE_PASSWORD"]) if env.get("GMV_CLICKHOUSE_PASSWORD") else None
    clients = [connect(dsn, pw) for _ in range(n)]
    said: list[str] = []
    results: list[int] = []
    errors: list[str] = []
    if mode == "stale":
        clients[0].command(f"CREATE DATABASE IF NOT EXISTS `{db}`")
        clients[0].command(f"CREATE TABLE `{db}`.`{LOCK_TABLE}` (owner String) ENGINE = Memory")
    start = threading.Barrier(n)

    def run(client) -> None:
        start.wait()
        try:
            results.append(migrate(client, db, lock_wait_s=1.0 if mode == "stale" else 300.0, on_wait=said.append))
        except Exception as e:
            errors.append(repr(e))

    threads = [threading.Thread(target=run, args=(c,)) for c in clients]
    for t in threads:
        t.start()
    for t in threads:
        t.join(300)
    c = clients[0]
    counts = c.query(f"SELECT version, count() FROM `{db}`.schema_migrations GROUP BY version ORDER BY version"
                     ).result_rows
    lock = c.query("SELECT count() FROM system.tables WHERE database = {d:String} AND name = {n:String}",
                   parameters={"d": db, "n": LOCK_TABLE}).result_rows[0][0]
    for client in clients:
        client.close()
    return {"results": results, "errors": errors, "said": said, "counts": [list(r) for r in counts], "lock_left": lock}


def test_workers_migrating_at_once_apply_each_migration_once_and_the_others_wait(backend):
    env = fresh_env(backend)  # migrators are clients: this process's engine, a database of its own
    out = _migrate_at_once(env, 4, "race")
    assert out["errors"] == []
    assert out["results"] == [LATEST] * 4
    # without the lock every racer inserted its own row per version (and ran the DDL and backfills again)
    assert out["counts"] == [[v, 1] for v in range(1, LATEST + 1)]
    assert out["said"] and all("another process is migrating" in s for s in out["said"])
    assert out["lock_left"] == 0


def test_a_lock_left_by_a_killed_migrator_is_taken_over(backend):
    env = fresh_env(backend)
    out = _migrate_at_once(env, 1, "stale")
    assert out["errors"] == [] and out["results"] == [LATEST]
    assert out["counts"] == [[v, 1] for v in range(1, LATEST + 1)]
    assert any("taking it over" in s for s in out["said"])
    assert out["lock_left"] == 0
