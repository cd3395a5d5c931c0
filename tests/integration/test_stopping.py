"""Stopping, whatever ClickHouse does: a stop signal during an outage ends the process at once,
commits nothing it has not stored, says what is left, and the next start loses nothing.
And faust, which hosts the worker, leaves no consumer group of its own on the broker."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest
from kafka.admin import KafkaAdminClient

from gmv.tools.embedded import free_port
from gmv.tools.sample import write_sample
from tests.integration.conftest import ROOT, fresh_env, gmv, own_engine, run_counts, sql
from tests.support.faulty_worker import committed, start_faulty_worker
from tests.support.producing import produce_events
from tests.support.waiting import wait_for, worker_stats

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("signals", [("SIGTERM",), ("SIGINT", "SIGINT")], ids=["sigterm", "ctrl-c-twice"])
def test_a_stop_signal_during_a_clickhouse_outage_ends_the_worker_and_commits_nothing_unstored(
        backend, tmp_path, signals):
    env = own_engine(fresh_env(backend), tmp_path / "data")  # the worker process opens the engine
    env["GMV_SINK_RETRY_FOR_S"] = "600"  # the outage would hold a write for ten minutes
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    events = tmp_path / "events.jsonl"
    expected = write_sample(events, events=2000, bad_per_kind=0)
    down = tmp_path / "clickhouse-down"
    worker, port = start_faulty_worker(env, down)
    try:
        down.touch()  # schema and topics in place, nothing consumed or committed yet: ClickHouse goes down
        produce_events(env["GMV_KAFKA_BOOTSTRAP_SERVERS"], env["GMV_TOPIC_PREFIX"], events)
        wait_for(lambda: ((worker_stats(port) or {}).get("sink_failing_s") or 0) > 1, 90, "ClickHouse writes to fail")
        for name in signals:
            os.killpg(worker.pid, getattr(signal, name))
        # A bound against hanging, not a timing measurement: a worker that waited for the outage
        # would sit in its 600 s retry budget.
        out, err = worker.communicate(timeout=60)
    finally:
        if worker.poll() is None:
            os.killpg(worker.pid, signal.SIGKILL)
            worker.wait()
    assert "not committed" in err and "re-process" in err, err[-2000:]
    # SIGTERM: a stop that abandons the failing write (0); a second Ctrl-C may cut even that short (130)
    assert worker.returncode in ((0,) if signals == ("SIGTERM",) else (0, 130)), err[-2000:]
    assert committed(env) == 0  # nothing was stored, so nothing was committed

    down.unlink()  # ClickHouse is back: the next start takes up everything the stopped one held
    counts = run_counts(env, empty)
    assert counts["received"] == expected["received"]
    assert counts["accepted"] == expected["accepted"] and counts["dead_lettered"] == expected["dead_lettered"]
    db = env["GMV_CLICKHOUSE_DATABASE"]
    assert sql(env, f"SELECT count() AS n FROM {db}.events")[0]["n"] == expected["accepted"]


def test_the_worker_host_leaves_no_consumer_group_of_its_own(backend, tmp_path):
    env = fresh_env(backend)
    path = tmp_path / "few.jsonl"
    write_sample(path, events=50, bad_per_kind=0)
    run_counts(env, path)
    run_counts(env, path)  # two processes, one after the other
    admin = KafkaAdminClient(bootstrap_servers=env["GMV_KAFKA_BOOTSTRAP_SERVERS"])
    try:
        groups = {g["group_id"] if isinstance(g, dict) else g[0] for g in admin.list_groups()}
    finally:
        admin.close()
    tag = env["GMV_APP_ID"]
    assert tag in groups  # the ingest loop's group, the one the offsets live in
    assert {g for g in groups if g.startswith(tag)} == {tag}, groups


def test_gmv_demo_stops_on_a_second_ctrl_c_during_an_outage_and_the_next_run_reconciles(backend, tmp_path):
    data_dir = tmp_path / "demo"
    env = own_engine(fresh_env(backend), data_dir)
    down = tmp_path / "clickhouse-down"
    port = free_port()
    demo = subprocess.Popen(
        [sys.executable, "-m", "tests.support.faulty_clickhouse", str(down), "demo", "--duration", "120",
         "--rate", "800", "--web-port", str(port)],
        env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        wait_for(lambda: ((worker_stats(port) or {}).get("counters") or {}).get("received", 0) > 500, 120,
                 "the demo to consume")
        down.touch()
        wait_for(lambda: ((worker_stats(port) or {}).get("sink_failing_s") or 0) > 1, 60, "ClickHouse writes to fail")
        os.killpg(demo.pid, signal.SIGINT)  # the first asks to finish: the demo waits for ClickHouse ...
        wait_for(lambda: (worker_stats(port) or {}).get("sink_failing_s") is not None, 30, "the demo to keep waiting")
        os.killpg(demo.pid, signal.SIGINT)  # ... the second ends it now
        out, err = demo.communicate(timeout=60)  # a bound against hanging, not a timing measurement
    finally:
        if demo.poll() is None:
            os.killpg(demo.pid, signal.SIGKILL)
            demo.wait()
    assert demo.returncode == 130, err[-3000:]
    assert "second SIGINT" in err and "not committed" in err, err[-3000:]
    assert "reconciliation:" not in out
    left = subprocess.run(["pgrep", "-f", str(data_dir)], capture_output=True, text=True).stdout.split()
    assert not left, f"processes left running: {left}"

    down.unlink()
    again = gmv(env, "demo", "--duration", "5", "--rate", "800", timeout=300)
    assert "continuing the story after" in again.stderr
    assert "reconciliation: MATCH" in again.stdout, again.stdout + again.stderr[-2000:]


def _children(pid: int) -> list[int]:
    """The processes whose parent is ``pid`` (from /proc: no ps needed)."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = open(f"/proc/{entry}/stat").read()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry))
    return found


def _alive(pid: int) -> bool:
    try:
        state = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_a_demo_killed_with_sigkill_leaves_no_broker_or_simulator_running(backend, tmp_path):
    """`kill -9` of a demo runs none of its clean-up: its embedded broker and its simulator must go
    with it anyway (the kernel's parent-death signal), not live on as orphans holding a port."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GMV_")}
    env["GMV_DATA_DIR"] = str(tmp_path / "data")  # everything embedded: its own broker and engine
    port = free_port()
    demo = subprocess.Popen([sys.executable, "-m", "gmv.tools.cli", "demo", "--rate", "300", "--web-port", str(port)],
                            env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    children: list[int] = []
    try:
        wait_for(lambda: ((worker_stats(port) or {}).get("counters") or {}).get("accepted", 0) > 0, 120,
                 "the demo to consume")
        children = _children(demo.pid)
        assert len(children) >= 2, children  # the broker and the simulator
        os.kill(demo.pid, signal.SIGKILL)
        demo.wait(10)
        wait_for(lambda: not any(_alive(c) for c in children), 30, "the demo's children to end with it")
    finally:
        if demo.poll() is None:
            os.killpg(demo.pid, signal.SIGKILL)
            demo.wait()
        for child in children:  # never leave one running, even when the test failed
            if _alive(child):
                os.killpg(child, signal.SIGKILL)


def test_a_stop_whose_rollup_refresh_cannot_end_in_time_says_what_the_next_start_redoes_and_it_does(
        backend, tmp_path):
    """Everything is stored and committed, but the refresh the marks follow is still running at the
    stop timeout: the stop says so (not "everything is stored" alone), and the next start re-emits the
    unconfirmed records' rows and refreshes their rollups, so the facts and rollups agree again."""
    env = own_engine(fresh_env(backend), tmp_path / "data")
    env["GMV_STOP_TIMEOUT_S"] = "3"
    env["GMV_ATTRIBUTION_DELAY"] = "1s"
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    events = tmp_path / "events.jsonl"
    expected = write_sample(events, events=2000, bad_per_kind=0)
    fault = tmp_path / "clickhouse-down"  # never made: only its ".slow" twin is
    worker, port = start_faulty_worker(env, fault)
    try:
        fault.with_name(fault.name + ".slow").write_text("8")  # every refresh statement now takes 8 s more
        produce_events(env["GMV_KAFKA_BOOTSTRAP_SERVERS"], env["GMV_TOPIC_PREFIX"], events)
        wait_for(lambda: committed(env) == expected["received"], 90, "every event stored and committed")
        wait_for(lambda: ((worker_stats(port) or {}).get("state") or {}).get("keys", {}).get("pending", 0) > 0, 60,
                 "attributions whose marks wait for the refresh")
        os.killpg(worker.pid, signal.SIGINT)
        out, err = worker.communicate(timeout=90)
    finally:
        if worker.poll() is None:
            os.killpg(worker.pid, signal.SIGKILL)
            worker.wait()
    assert worker.returncode == 0, err[-2000:]
    line = next(ln for ln in err.splitlines() if "SIGINT: stopped" in ln)
    assert "everything consumed is stored and committed, but ClickHouse's last writes and rollup refresh did not " \
        "finish within 3s" in line and "re-emits the rows of" in line and "GMV_STOP_TIMEOUT_S" in line, line

    fault.with_name(fault.name + ".slow").unlink()
    counts = run_counts(env, empty)
    assert counts["received"] == 0  # nothing was left to re-process: only re-emitted and refreshed
    db = env["GMV_CLICKHOUSE_DATABASE"]
    facts = sql(env, f"SELECT sum(credit_fen) AS s, count() AS n FROM {db}.attributed_gmv WHERE model = 'linear'")[0]
    rolled = sql(env, f"SELECT sum(net_fen) AS s FROM {db}.gmv_minute WHERE model = 'linear'")[0]
    assert facts["n"] > 0 and int(rolled["s"]) == int(facts["s"])
    assert sql(env, f"SELECT count() AS n FROM {db}.events")[0]["n"] == expected["accepted"]
