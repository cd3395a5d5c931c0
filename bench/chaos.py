"""Chaos runs against ground truth: ``python -m bench.chaos [--quick]`` (loopback only, bounded).

Each run starts an embedded broker under a fresh temp dir, a ``gmv worker`` (its own
chdb), and the simulator sending a stream with its ground truth; injects a fault;
waits until everything sent is consumed, attributed and in ClickHouse; then compares
``sum(credit_fen)`` per model and stage with the truth. Runs:

- ``kill9``: the worker is killed with SIGKILL three times at random points, and restarted;
- ``broker_restart``: the broker is stopped (SIGINT) mid-stream and started again;
- ``clickhouse_down``: ClickHouse writes fail for ~30 s (``tests.support.faulty_clickhouse``); the worker
  backs off with its offsets uncommitted, then recovers;
- ``rebalance``: a second worker joins mid-stream and leaves again (``sink_mode=topic``:
  the first worker owns the embedded ClickHouse and writes both workers' rows).

Each prints one JSON line; the last line is ``lost=<fen> duplicated=<fen> crashes=<n>``
over all runs: fen missing from, or extra in, ClickHouse summed over every model and
stage cell; crashes = worker exits we did not cause plus runs that did not converge.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

from gmv.tools.embedded import EmbeddedKafka, free_port

ROOT = Path(__file__).resolve().parent.parent


def log(msg: str) -> None:
    print(f"[chaos] {msg}", file=sys.stderr, flush=True)


class Run:
    """One run's broker, workers and simulator, all under one temp dir."""

    def __init__(self, name: str, events: int, rate: float, seed: int) -> None:
        self.name = name
        self.events = events
        self.rate = rate
        self.seed = seed
        self.dir = Path(tempfile.mkdtemp(prefix=f"gmv-chaos-{name}-"))
        self.broker = EmbeddedKafka(self.dir, free_port())
        self.bootstrap = self.broker.start()
        self.workers: dict[str, subprocess.Popen] = {}
        self.ports: dict[str, int] = {}
        self.unexpected_exits = 0
        self.sim: subprocess.Popen | None = None
        self.truth_path = self.dir / "truth.json"
        self.fault_file = self.dir / "clickhouse-down"

    def env(self, instance: str, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("GMV_")}
        env.update({
            "GMV_DATA_DIR": str(self.dir), "GMV_KAFKA_BOOTSTRAP_SERVERS": self.bootstrap,
            "GMV_APP_ID": "chaos", "GMV_WORKER_INSTANCE_ID": instance, "GMV_SESSION_TIMEOUT_S": "6",
            "GMV_ATTRIBUTION_DELAY": "2s", "GMV_LOG_LEVEL": "WARNING",
            "GMV_SINK_RETRY_FOR_S": "300",
        })
        env.update(extra)
        return env

    def start_worker(self, instance: str = "worker-0", **extra: str) -> None:
        port = self.ports.setdefault(instance, free_port())
        logf = open(self.dir / f"{instance}.log", "ab")
        self.workers[instance] = subprocess.Popen(
            # Every worker writes ClickHouse through the test-only faulty client: while the fault
            # file exists, its writes fail as a stopped server's would (tests/support).
            [sys.executable, "-m", "tests.support.faulty_clickhouse", str(self.fault_file), "worker",
             "--web-port", str(port)], cwd=ROOT,
            env=self.env(instance, **extra), stdout=logf, stderr=subprocess.STDOUT, start_new_session=True)

    def check_workers(self) -> None:
        for name, proc in list(self.workers.items()):
            if proc.poll() is not None:
                log(f"{self.name}: {name} exited on its own with {proc.returncode}; see {self.dir / (name + '.log')}")
                self.unexpected_exits += 1
                del self.workers[name]

    def kill_worker(self, instance: str = "worker-0") -> None:
        proc = self.workers.pop(instance)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()

    def stop_worker(self, instance: str, timeout: float = 60) -> None:
        proc = self.workers.pop(instance, None)
        if proc is None:
            return
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            rc = proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            rc = -9
        if rc != 0:
            log(f"{self.name}: {instance} stopped with exit {rc}")
            self.unexpected_exits += 1

    def start_simulator(self) -> None:
        self.sim = subprocess.Popen(
            [sys.executable, "-m", "gmv.tools.simulator", "--scenario", "mixed", "--scale", "4", "--seed",
             str(self.seed), "--start", "2026-11-01T00:00:00+08:00", "--kafka", self.bootstrap,
             "--max-messages", str(self.events), "--rate", str(self.rate), "--truth", str(self.truth_path),
             "--lookback-days", "7", "--half-life-hours", "24"],
            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=open(self.dir / "simulator.log", "ab"), start_new_session=True)

    def stats(self, instance: str = "worker-0") -> dict[str, Any] | None:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.ports[instance]}/gmv/stats/", timeout=5) as r:
                return json.loads(r.read())
        except Exception:
            return None

    def group_lag(self, group: str, topics: list[str]) -> int:
        from kafka import KafkaConsumer, TopicPartition

        c = KafkaConsumer(bootstrap_servers=self.bootstrap, group_id=group, enable_auto_commit=False)
        try:
            parts = [TopicPartition(t, p) for t in topics for p in (c.partitions_for_topic(t) or ())]
            ends = c.end_offsets(parts)
            return sum(max(0, ends[tp] - (c.committed(tp) or 0)) for tp in parts)
        finally:
            c.close()

    def describe_group(self, group: str) -> dict[str, Any]:
        """The group's state and members as the broker lists them (what a hang looks like)."""
        from kafka.admin import KafkaAdminClient

        admin = KafkaAdminClient(bootstrap_servers=self.bootstrap)
        try:
            g = admin.describe_consumer_groups([group])[0]
            return {"state": g.state, "members": sorted(m.member_id for m in g.members)}
        except Exception as e:  # a description that fails says so, the run is reported anyway
            return {"error": repr(e)}
        finally:
            admin.close()

    def wait_converged(self, timeout_s: float, owner: str = "worker-0", topic_mode: bool = False) -> bool:
        """Everything sent consumed and committed, nothing pending, (the rows topic written)."""
        deadline = time.monotonic() + timeout_s
        sources = ["gmv.views", "gmv.live_rooms", "gmv.orders", "gmv.rekeyed"]
        quiet_since = None
        while time.monotonic() < deadline:
            self.check_workers()
            if owner not in self.workers:
                self.start_worker(owner, **({"GMV_SINK_MODE": "topic"} if topic_mode else {}))
            st = self.stats(owner)
            ok = st is not None and self.sim is not None and self.sim.poll() is not None
            if ok:
                ok = (self.group_lag("chaos", sources) == 0 and st["pending_orders"] == 0
                      and st["held_refunds"] == 0 and len(st["partitions"]) == 4
                      and not st.get("refresh_pending"))  # markov credits restated for everything stored
            if ok and topic_mode:
                ok = self.group_lag("chaos-rows-writer", ["gmv.rows"]) == 0
            if ok:
                quiet_since = quiet_since or time.monotonic()
                if time.monotonic() - quiet_since > 3:  # held steady (no batch still being written)
                    return True
            else:
                quiet_since = None
            time.sleep(1)
        st = self.stats(owner) or {}
        log(f"{self.name}: did not converge: source lag {self.group_lag('chaos', sources)}, "
            f"partitions {st.get('partitions')}, pending {st.get('pending_orders')}/{st.get('held_refunds')}, "
            f"lag {st.get('lag')}, simulator {'done' if self.sim and self.sim.poll() is not None else 'running'}")
        return False

    def compare(self) -> dict[str, Any]:
        truth = json.loads(self.truth_path.read_text())["net_by_model_stage"]
        out = subprocess.run([sys.executable, "-m", "gmv.tools.cli", "sql",
                              "SELECT model, stage, toInt64(sum(credit_fen)) FROM gmv.attributed_gmv GROUP BY model, stage"],
                             cwd=ROOT, env=self.env("sql"), capture_output=True, text=True, timeout=120)
        if out.returncode != 0:
            raise RuntimeError(f"gmv sql failed: {out.stderr}")
        got: dict[str, dict[str, int]] = {}
        for line in out.stdout.splitlines():
            m, s, v = line.split("\t")
            got.setdefault(m, {})[s] = int(v)
        lost = dup = 0
        for m, stages in truth.items():
            for s, t in stages.items():
                c = got.get(m, {}).get(s, 0)
                lost += max(0, t - c)
                dup += max(0, c - t)
        return {"lost_fen": lost, "duplicated_fen": dup, "truth_net_fen": sum(truth["last_touch"].values()),
                "clickhouse_net_fen": sum(got.get("last_touch", {}).values())}

    def close(self, keep: bool) -> None:
        for name in list(self.workers):
            proc = self.workers.pop(name)
            with contextlib.suppress(Exception):
                os.killpg(proc.pid, signal.SIGTERM)
                proc.wait(30)
        if self.sim is not None and self.sim.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.sim.pid, signal.SIGKILL)
        self.broker.stop()
        if not keep:
            shutil.rmtree(self.dir, ignore_errors=True)


def _sleep_until(t: float, run: Run) -> None:
    while time.monotonic() < t:
        run.check_workers()
        time.sleep(0.2)


def chaos_kill9(run: Run, rng: random.Random, stream_s: float) -> dict[str, Any]:
    run.start_worker()
    time.sleep(4)
    run.start_simulator()
    t0 = time.monotonic()
    kills = sorted(rng.uniform(0.15, 0.9) * stream_s for _ in range(3))
    for at in kills:
        _sleep_until(t0 + at, run)
        log(f"kill9: SIGKILL the worker at {at:.1f}s")
        run.kill_worker()
        run.start_worker()
    return {"kills_at_s": [round(k, 1) for k in kills]}


def chaos_broker_restart(run: Run, rng: random.Random, stream_s: float) -> dict[str, Any]:
    run.start_worker()
    time.sleep(4)
    run.start_simulator()
    assert run.sim is not None
    run.sim.wait()  # the whole stream is on the broker; the restart hits the consumer mid-stream
    at = time.monotonic()
    time.sleep(1.0)
    log("broker_restart: SIGINT the broker mid-consumption")
    port = run.broker.port
    run.broker.stop()
    down = time.monotonic()
    time.sleep(3)
    run.broker = EmbeddedKafka(run.dir, port)
    run.broker.start()
    return {"down_s": round(time.monotonic() - down, 1), "stopped_after_s": round(down - at, 1)}


def chaos_clickhouse_down(run: Run, rng: random.Random, stream_s: float, outage_s: float) -> dict[str, Any]:
    run.start_worker()
    time.sleep(4)
    run.start_simulator()
    time.sleep(stream_s * 0.3)
    log(f"clickhouse_down: ClickHouse writes fail for {outage_s:.0f}s")
    run.fault_file.touch()
    _sleep_until(time.monotonic() + outage_s, run)
    run.fault_file.unlink()
    return {"outage_s": outage_s}


def chaos_rebalance(run: Run, rng: random.Random, stream_s: float) -> dict[str, Any]:
    run.start_worker("worker-0", GMV_SINK_MODE="topic")
    time.sleep(4)
    run.start_simulator()
    time.sleep(stream_s * 0.2)
    log("rebalance: a second worker joins")
    # A scale-out worker: dynamic membership, so its leaving rebalances at once (a static member's
    # partitions would wait for its session to lapse).
    run.start_worker("worker-1", GMV_SINK_MODE="topic", GMV_WORKER_INSTANCE_ID="")
    joined = time.monotonic()
    seen_split = False
    while time.monotonic() - joined < max(15.0, stream_s * 0.4):
        st1 = run.stats("worker-1")
        if st1 and st1.get("partitions"):
            seen_split = True
        run.check_workers()
        time.sleep(0.5)
    log("rebalance: the second worker leaves")
    st1 = run.stats("worker-1") or {}
    run.stop_worker("worker-1")
    return {"second_worker_owned_partitions": seen_split, "second_worker_received": st1.get("counters", {}).get("received")}


def main() -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.chaos", description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="smaller streams: all runs in under 10 minutes")
    ap.add_argument("--events", type=int, help="messages per run (default 200k; quick 40k)")
    ap.add_argument("--only", nargs="*", choices=["kill9", "broker_restart", "clickhouse_down", "rebalance"])
    ap.add_argument("--seed", type=int, default=5)
    ap.add_argument("--keep", action="store_true", help="keep each run's temp dir (logs, data)")
    a = ap.parse_args()
    events = a.events or (40_000 if a.quick else 200_000)
    rate = 4000.0
    stream_s = events / rate
    outage = 30.0
    rng = random.Random(a.seed)
    runs = a.only or ["kill9", "broker_restart", "clickhouse_down", "rebalance"]
    total_lost = total_dup = crashes = 0
    t_all = time.monotonic()
    for name in runs:
        run = Run(name, events, rate, a.seed)
        t0 = time.monotonic()
        log(f"{name}: {events:,} messages at {rate:,.0f}/s under {run.dir}")
        try:
            if name == "kill9":
                info = chaos_kill9(run, rng, stream_s)
            elif name == "broker_restart":
                info = chaos_broker_restart(run, rng, stream_s)
            elif name == "clickhouse_down":
                info = chaos_clickhouse_down(run, rng, stream_s, outage)
            else:
                info = chaos_rebalance(run, rng, stream_s)
            converged = run.wait_converged(240 + outage, topic_mode=name == "rebalance")
            figures = run.compare() if converged else {"lost_fen": None, "duplicated_fen": None}
            crashed = run.unexpected_exits + (0 if converged else 1)
            line = {"run": name, "events": events, **info, "converged": converged, **figures,
                    "unexpected_worker_exits": run.unexpected_exits, "seconds": round(time.monotonic() - t0, 1)}
            print(json.dumps(line), flush=True)
            total_lost += figures["lost_fen"] or 0
            total_dup += figures["duplicated_fen"] or 0
            crashes += crashed
        finally:
            run.close(a.keep)
    log(f"all runs in {time.monotonic() - t_all:.0f}s")
    print(f"lost={total_lost} duplicated={total_dup} crashes={crashes}", flush=True)
    return 0 if total_lost == total_dup == crashes == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
