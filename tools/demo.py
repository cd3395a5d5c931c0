"""``gmv demo``: the whole product in one command, proving its numbers against ground truth.

Starts the embedded broker and ClickHouse under the data dir, the worker (which
serves the dashboard), and the simulator (a child process, so it has a core of
its own). Prints a progress line; Ctrl-C (or the end of ``--duration``) stops
the simulator, lets the worker consume everything it sent, attributes what is
pending, and prints a summary and the reconciliation line: the simulator's
ground truth against ``gmv.attributed_gmv``, net GMV in fen per model and
stage. Exit status 0 only when every cell matches to the fen.

A rerun on the same data dir continues the same story: ``demo.json`` in the data
dir remembers the scenario, seed, start and how many messages were emitted; the
simulator regenerates that prefix (for the ground truth) without re-sending it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from gmv.alerts.evaluator import AlertEvaluator
from gmv.alerts.service import attach_alerts, load_rules
from gmv.schemas.outputs import MODELS, STAGES
from gmv.streams.settings import Settings
from gmv.streams.worker import GmvWorker
from gmv.tools.embedded import free_port, port_open
from gmv.tools.run import wait_ready
from gmv.tools.runtime import Runtime, dashboard_link
from gmv.tools.signals import StopSignals
from gmv.tools.simulator import SCENARIOS, default_start

RECONCILE_SQL = ("SELECT model, stage, toInt64(sum(credit_fen)) AS net_fen FROM {db:Identifier}.attributed_gmv "
                 "WHERE startsWith(event_id, {prefix:String}) GROUP BY model, stage")


SCORES_SQL = ("SELECT toString(day), subject_kind, subject_id, score FROM {db:Identifier}.trust_scores "
              "ORDER BY day, subject_kind, subject_id")
SCORE_TOLERANCE = 1e-9


@dataclass
class ScoreReconciliation:
    """Every trust score (SPEC §7) of ``gmv.trust_scores`` against the simulator's ground truth."""

    truth: dict[tuple[str, str, str], float]
    clickhouse: dict[tuple[str, str, str], float]

    def mismatches(self) -> list[str]:
        out = []
        for key in sorted(self.truth.keys() | self.clickhouse.keys()):
            t, c = self.truth.get(key), self.clickhouse.get(key)
            if t is None or c is None or abs(t - c) > SCORE_TOLERANCE:
                day, kind, subject = key
                out.append(f"{kind} {subject} on {day}: truth {'-' if t is None else f'{t:.12g}'}, "
                           f"ClickHouse {'-' if c is None else f'{c:.12g}'}")
        return out

    def line(self) -> str:
        bad = self.mismatches()
        verdict = "MATCH" if not bad else f"MISMATCH in {len(bad)} scores"
        kinds = {k[1] for k in self.truth}
        return (f"reconciliation: scores {verdict}: {len(self.truth)} expected trust scores "
                f"({'/'.join(sorted(kinds)) or 'none'} × day), {len(self.clickhouse)} in gmv.trust_scores, "
                f"compared to {SCORE_TOLERANCE:g}")


ALERTS_SQL = ("SELECT rule, count() AS n, countIf(state = 'firing') FROM {db:Identifier}.alerts "
              "GROUP BY rule ORDER BY rule")


@dataclass
class DemoState:
    scenario: str
    seed: int
    start: str
    scale: float = 1.0
    emitted: int = 0

    @classmethod
    def load(cls, path: Path) -> DemoState | None:
        if not path.is_file():
            return None
        return cls(**json.loads(path.read_text()))

    def save(self, path: Path) -> None:
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(self)))
        tmp.replace(path)


@dataclass
class Reconciliation:
    truth: dict[str, dict[str, int]]
    clickhouse: dict[str, dict[str, int]]

    def mismatches(self) -> list[str]:
        out = []
        for m in MODELS:
            for s in STAGES:
                t, c = self.truth.get(m, {}).get(s, 0), self.clickhouse.get(m, {}).get(s, 0)
                if t != c:
                    out.append(f"{m}/{s}: truth {t} fen, ClickHouse {c} fen (diff {c - t:+d})")
        return out

    def line(self) -> str:
        t = sum(self.truth.get("last_touch", {}).values())
        c = sum(self.clickhouse.get("last_touch", {}).values())
        bad = self.mismatches()
        verdict = "MATCH" if not bad else f"MISMATCH in {len(bad)} cells"
        return (f"reconciliation: {verdict}: net GMV truth={t} fen clickhouse={c} fen diff={c - t} fen "
                f"({len(MODELS)} models x {len(STAGES)} stages compared to the fen)")


def _yuan(fen: int) -> str:
    return f"¥{fen / 100:,.2f}"


class Demo:
    def __init__(self, settings: Settings, scenario: str | None, seed: int | None, rate: float,
                 duration: float | None, keep_serving: bool = False, web_port: int | None = None,
                 scale: float | None = None, wrap_client: Callable[[Any], Any] | None = None) -> None:
        self.settings = settings
        self.scenario_arg, self.seed_arg, self.scale_arg = scenario, seed, scale
        self.rate = rate
        self.duration = duration
        self.keep_serving = keep_serving
        self.web_port = web_port
        self.wrap_client = wrap_client
        self.stop = asyncio.Event()
        self.state_path = settings.data_path / "demo.json"
        self.truth_path = settings.data_path / "demo-truth.json"
        self._sql_runner: Any = None
        self.emitted = 0

    def _state(self) -> DemoState:
        state = DemoState.load(self.state_path)
        if state is None:
            name = self.scenario_arg or "mixed"
            days = SCENARIOS[name].days
            return DemoState(name, self.seed_arg if self.seed_arg is not None else 1, default_start(days).isoformat(),
                             self.scale_arg if self.scale_arg is not None else SCENARIOS[name].demo_scale)
        if (self.scenario_arg and self.scenario_arg != state.scenario) or \
                (self.seed_arg is not None and self.seed_arg != state.seed) or \
                (self.scale_arg is not None and self.scale_arg != state.scale):
            raise RuntimeError(
                f"{self.settings.data_path} holds the demo of scenario {state.scenario!r} (seed {state.seed}, "
                f"scale {state.scale:g}); a rerun continues it. For another scenario, seed or scale, use another "
                "--data-dir")
        return state

    async def run(self) -> int:
        s = self.settings
        s.data_path.mkdir(parents=True, exist_ok=True)
        state = self._state()
        scenario = SCENARIOS[state.scenario]
        rules = load_rules(s) if s.alerts else None  # a bad rules file stops us before anything starts
        runtime = Runtime(s, self.wrap_client)
        evaluator: AlertEvaluator | None = None
        sim: subprocess.Popen | None = None
        worker: GmvWorker | None = None

        def left() -> str:
            if sim is not None and sim.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(sim.pid, signal.SIGKILL)
            if runtime.kafka is not None:
                runtime.kafka.stop(wait=6.0)  # bounded: SIGINT, 6 s, then SIGKILL
            pending = worker.loop.uncommitted() if worker is not None else 0
            return (f"{pending:,} messages are not committed and will be re-processed when the demo continues "
                    "(nothing is lost; no reconciliation this time)")

        signals = StopSignals("demo", left).install()
        self.stop = signals.requested
        try:
            print(f"gmv demo: scenario {scenario.name!r} ({scenario.title}), seed {state.seed}; "
                  f"data in {s.data_path}", file=sys.stderr, flush=True)
            runtime.open_clickhouse()
            self._load_dimensions(runtime, state)
            bootstrap = runtime.open_kafka()
            self.settings = s = runtime.settings  # partitions may follow existing topics
            port = self.web_port or s.web_port or (6066 if not port_open(s.web_host, 6066) else free_port())
            self._sql_runner = runtime.sql_runner()
            worker = GmvWorker(s, bootstrap, runtime.sink(), self._sql_runner, web_port=port)
            if rules is not None:
                evaluator = attach_alerts(worker, rules)
            runtime.advertise(port)
            task = await worker.start()
            await wait_ready(worker, task)
            url = dashboard_link(s, port)
            print(f"gmv demo: dashboard on {url}  (gmv sql works meanwhile; Ctrl-C stops)", file=sys.stderr,
                  flush=True)
            resumed = state.emitted
            if resumed:
                print(f"gmv demo: continuing the story after {resumed:,} messages sent by earlier runs",
                      file=sys.stderr, flush=True)
            sim = self._start_simulator(bootstrap, state)
            progress = asyncio.create_task(self._read_progress(sim, state))
            await self._watch(worker, task, sim, resumed)
            # The simulator has stopped: let the worker take in all it sent, then attribute the rest.
            if sim.poll() is None:
                sim.send_signal(signal.SIGINT)
            await asyncio.to_thread(sim.wait, 60)
            await progress
            if sim.returncode != 0:
                raise RuntimeError(f"the simulator failed (exit {sim.returncode}); see its error above")
            truth = json.loads(self.truth_path.read_text())
            state.emitted = truth["emitted"]
            state.save(self.state_path)
            if signals.signal_name == "SIGTERM":
                # Asked to stop, not to finish: store what is in hand (unless ClickHouse is failing), no drain.
                signals.arm_watchdog(s.stop_timeout_s + 15)
                line = await worker.shutdown(drain=False, timeout_s=s.stop_timeout_s)
                signals.disarm()
                print(f"gmv demo: SIGTERM: {line}; not reconciled", file=sys.stderr, flush=True)
                return 1
            failing = worker.sink_failing_for()
            if failing is not None:
                print(f"gmv demo: ClickHouse writes have been failing for {failing:.0f}s; the demo waits for them "
                      "to recover before it reconciles. Ctrl-C again (or SIGTERM) stops now: nothing is lost, "
                      "the next run continues", file=sys.stderr, flush=True)
            print("gmv demo: simulator stopped; consuming what it sent, then attributing pending orders",
                  file=sys.stderr, flush=True)
            await self._wait_consumed(worker, task)
            await worker.drain(final=True)
            if evaluator is not None:
                await evaluator.finish()
            rec = await self._reconcile(runtime, state)
            scores = await self._reconcile_scores()
            self._summary(worker, truth, rec)
            for bad in scores.mismatches()[:20]:
                print(f"  mismatch {bad}")
            print(scores.line(), flush=True)
            if evaluator is not None:
                await self._alerts_summary(state)
            ok = not rec.mismatches() and not scores.mismatches()
            if self.keep_serving and not worker.crashed:
                self.stop.clear()
                signals.signal_name = ""
                print(f"gmv demo: the dashboard stays up on {url}; Ctrl-C to exit", file=sys.stderr, flush=True)
                await self.stop.wait()
            return 0 if ok else 1
        finally:
            if sim is not None and sim.poll() is None:
                sim.send_signal(signal.SIGINT)
                try:
                    sim.wait(20)
                except subprocess.TimeoutExpired:
                    sim.kill()
                    sim.wait()
            if worker is not None:
                worker.abort()  # whatever is still in flight is not waited for (uncommitted: nothing lost)
                await worker.stop()
            if evaluator is not None:
                await evaluator.close()
            runtime.close()

    def _load_dimensions(self, runtime: Runtime, state: DemoState) -> None:
        """The scenario's account bindings and SKU catalog, written under the data dir (as ``gmv
        simulate --dims`` would) and loaded as ``gmv load-dim`` would: the cookbook views need them."""
        from gmv.tools.load_dim import insert_rows, validate_file
        from gmv.tools.simulator.cli import write_dimension_files
        from gmv.tools.simulator.world import World

        world = World(SCENARIOS[state.scenario].scaled(state.scale), state.seed, datetime.fromisoformat(state.start))
        for kind, path in write_dimension_files(world.dimensions(), self.settings.data_path / "dims").items():
            rows, errors = validate_file(kind, path)
            if errors:
                raise RuntimeError(f"the simulator's {kind} file does not validate: {errors[0]}")
            insert_rows(runtime.client, self.settings.clickhouse_database, kind, rows)
        print(f"gmv demo: dimension data loaded from {self.settings.data_path / 'dims'} "
              "(account bindings, SKU catalog; gmv load-dim)", file=sys.stderr, flush=True)

    def _start_simulator(self, bootstrap: str, state: DemoState) -> subprocess.Popen:
        s = self.settings
        cmd = [sys.executable, "-m", "gmv.tools.simulator", "--scenario", state.scenario, "--seed", str(state.seed),
               "--start", state.start, "--kafka", bootstrap, "--topic-prefix", s.topic_prefix,
               "--scale", str(state.scale), "--rate", str(self.rate), "--skip", str(state.emitted), "--truth", str(self.truth_path),
               "--engaged-ms", str(s.engaged_ms), "--lookback-days", str(s.lookback.total_seconds() / 86400),
               "--half-life-hours", str(s.half_life.total_seconds() / 3600), "--progress"]
        if self.duration is not None:
            cmd += ["--duration", str(self.duration)]
        # Its own session: a Ctrl-C reaches the demo, which stops the simulator in order.
        return subprocess.Popen(cmd, stdout=subprocess.PIPE, start_new_session=True)

    async def _read_progress(self, sim: subprocess.Popen, state: DemoState) -> None:
        assert sim.stdout is not None
        while True:
            line = await asyncio.to_thread(sim.stdout.readline)
            if not line:
                return
            with contextlib.suppress(ValueError, KeyError):
                self.emitted = int(json.loads(line)["emitted"])
                if self.emitted > state.emitted:
                    state.emitted = self.emitted  # a crash of the demo resumes near here
                    state.save(self.state_path)

    async def _watch(self, worker: GmvWorker, task: asyncio.Task, sim: subprocess.Popen, resumed: int) -> None:
        t0 = time.monotonic()
        last_t, last_received, last_emitted = t0, 0, resumed
        while not self.stop.is_set() and sim.poll() is None:
            if worker.crashed or task.done():
                raise RuntimeError(f"the worker stopped: {worker.crash_reason()}")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stop.wait(), 2.0)
            now = time.monotonic()
            c = worker.counters.summary()
            dt = max(now - last_t, 1e-6)
            sent_rate = (max(self.emitted, resumed) - last_emitted) / dt
            rate = (c["received"] - last_received) / dt
            last_t, last_received, last_emitted = now, c["received"], max(self.emitted, resumed)
            gmv = await self._net_so_far()
            print(f"  {now - t0:5.0f}s  sent {self.emitted:>9,} ({sent_rate:6,.0f}/s)  consumed {c['received']:>9,} "
                  f"({rate:6,.0f}/s)  lag {worker.lag():>6,}  net GMV {_yuan(gmv)}  "
                  f"dead letters {c['dead_lettered']:,}", file=sys.stderr, flush=True)

    async def _net_so_far(self) -> int:
        try:
            out = await asyncio.to_thread(self._sql, "SELECT toInt64(sum(credit_fen)) FROM {db:Identifier}.attributed_gmv "
                                                     "WHERE model = 'last_touch'", {})
            return int(out.strip() or 0)
        except Exception:
            return 0

    def _sql(self, query: str, params: dict[str, Any]) -> bytes:
        return self._sql_runner(query, "tsv", {"db": self.settings.clickhouse_database, **params})

    async def _wait_consumed(self, worker: GmvWorker, task: asyncio.Task, timeout_s: float = 300) -> None:
        deadline = time.monotonic() + timeout_s
        topics = [*self.settings.source_topics, self.settings.rekeyed_topic]
        while True:
            behind = await worker.unconsumed(topics)
            if behind == 0:
                return
            if worker.crashed or task.done():
                raise RuntimeError(f"the worker stopped before consuming everything: {worker.crash_reason()}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"{behind} messages still unconsumed after {timeout_s:.0f}s")
            await asyncio.sleep(0.2)

    async def _reconcile(self, runtime: Runtime, state: DemoState) -> Reconciliation:
        truth = json.loads(self.truth_path.read_text())["net_by_model_stage"]
        prefix = f"{state.scenario[:3]}{state.seed}-"
        out = await asyncio.to_thread(self._sql, RECONCILE_SQL, {"prefix": prefix})
        ch: dict[str, dict[str, int]] = {}
        for line in out.decode().splitlines():
            model, stage, fen = line.split("\t")
            ch.setdefault(model, {})[stage] = int(fen)
        return Reconciliation(truth, ch)

    async def _reconcile_scores(self) -> ScoreReconciliation:
        truth = json.loads(self.truth_path.read_text()).get("expected_scores", [])
        out = await asyncio.to_thread(self._sql, SCORES_SQL, {})
        ch = {}
        for line in out.decode().splitlines():
            day, kind, subject, value = line.split("\t")
            ch[(day, kind, subject)] = float(value)
        return ScoreReconciliation({(d, k, s): v for d, k, s, v in truth}, ch)

    async def _alerts_summary(self, state: DemoState) -> None:
        """The alerts of this demo's data: per rule, how many fired and how many are still open."""
        out = await asyncio.to_thread(self._sql, ALERTS_SQL, {})
        lines = [line.split("\t") for line in out.decode().splitlines()]
        if not lines:
            print("alerts: none fired")
            return
        print("alerts: " + ", ".join(f"{rule} {n} ({open_} open)" for rule, n, open_ in lines)
              + "  (gmv alerts lists them)")

    def _summary(self, worker: GmvWorker, truth: dict[str, Any], rec: Reconciliation) -> None:
        c = worker.counters.summary()
        msgs = truth.get("messages", {})
        print(f"summary: this run consumed received={c['received']} accepted={c['accepted']} "
              f"duplicates={c['duplicates']} dead_lettered={c['dead_lettered']}; the simulator emitted "
              f"{truth['emitted']:,} messages in all ({msgs.get('duplicate', 0):,} re-sent duplicates, "
              f"{msgs.get('malformed', 0):,} malformed)")
        print(f"summary: {truth['orders']:,} orders, gross {_yuan(truth['gross_fen'])}, refunds "
              f"{_yuan(truth['refund_fen'])} ({truth['refunds']:,}), net {_yuan(truth['net_fen'])}")
        for m in MODELS:
            cells = "  ".join(f"{st}={rec.clickhouse.get(m, {}).get(st, 0)}" for st in STAGES)
            print(f"  {m:<15} {cells}")
        for bad in rec.mismatches()[:20]:
            print(f"  mismatch {bad}")
        print(rec.line(), flush=True)


