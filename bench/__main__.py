"""``python -m bench [--quick]``: every figure side by side on one embedded broker and ClickHouse.

One JSON line per figure on stdout, then the summary line:
``floor_ratio=<pipeline/stock faust> bare_ratio=<pipeline/bare> events_per_s=<n>
batched_events_per_s=<n> p99_freshness_s=<x>``. Progress goes to stderr.

``--only soak`` runs the soak benchmark (``bench/soak.py``: its own broker and worker, millions of
events, two timed restarts, a chart); it is not in the default set.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import sys
import tempfile
import time
from pathlib import Path

from bench import phases, soak
from bench.common import Dataset, emit, produce, progress
from gmv.sinks.clickhouse import connect
from gmv.tools.embedded import EmbeddedKafka


def main() -> int:
    ap = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="smaller counts: under 5 minutes")
    ap.add_argument("--events", type=int, help="messages per throughput run (default 200k, quick 60k)")
    ap.add_argument("--only", nargs="*", help="run only these figures (throughput, batched, alerts, freshness, "
                                               "sink, dashboard, scaling; and soak, which the default set leaves "
                                               "out: 20M events take over 10 minutes)")
    ap.add_argument("--runs", type=int, default=3,
                    help="pipeline runs per throughput figure; the median is reported (default 3: this "
                         "machine's speed drifts by ±20%% between runs)")
    ap.add_argument("--keep", action="store_true", help="keep the temporary data dir")
    ap.add_argument("--scaling-runs", type=int, default=1,
                    help="repeat the scaling figure (1 then 2 workers) this many times, each bounded: a run that "
                         "does not finish within --scaling-bound-s counts as a hang; prints every run and a summary")
    ap.add_argument("--scaling-bound-s", type=float, default=120.0,
                    help="longest a scaling run may take before it counts as a hang (default 120)")
    ap.add_argument("--scaling-events", type=int, default=None,
                    help="pre-produced events per scaling run (default: --events, at most 60k, where start-up and "
                         "the first rebalance weigh in; 200k+ shows the steady state)")
    ap.add_argument("--soak-events", type=int, help="events the soak feeds (default 20M, quick 2M; with --only soak "
                                                    "alone, --events says it too)")
    soak.add_arguments(ap, events_flag=False)
    a = ap.parse_args()
    n = a.events or (60_000 if a.quick else 200_000)
    only = set(a.only or ["throughput", "batched", "alerts", "freshness", "sink", "dashboard", "scaling"])
    if only == {"soak"}:  # its own broker and worker: nothing of the shared run below
        return _soak(a, a.soak_events or a.events)
    root = Path(tempfile.mkdtemp(prefix="gmv-bench-"))
    broker = EmbeddedKafka(root)
    summary: dict[str, float | None] = {}
    t_start = time.monotonic()
    try:
        bootstrap = broker.start()
        pid = broker.proc.pid if broker.proc else None
        dsn = f"chdb://{root / 'clickhouse'}"
        client = connect(dsn)
        progress(f"broker on {bootstrap}, ClickHouse at {dsn}; generating {n:,} simulator messages")
        data = Dataset.generate(n)
        if "throughput" in only:
            phases.create_source_topics(bootstrap, "b1.")
            progress("producing one event per message")
            produce(bootstrap, "b1.", data)
            progress("bare aiokafka consume + json.loads")
            bare = asyncio.run(phases.bare_consume(bootstrap, "b1.", len(data.messages), pid))
            emit("bare_consume", **bare)
            progress("stock faust agent + table (the floor)")
            floor = phases.faust_floor(bootstrap, "b1.", len(data.messages), pid)
            emit("faust_floor", **floor)
            full = phases.pipeline_runs(bootstrap, pid, "b1.", root, n, a.runs, "single")
            emit("pipeline", **full)
            summary["events_per_s"] = full["events_per_s"]
            summary["floor_ratio"] = round(full["events_per_s"] / floor["events_per_s"], 2)
            summary["bare_ratio"] = round(full["events_per_s"] / bare["events_per_s"], 3)
            phases.drop_topics(bootstrap, "b1.")
        if "batched" in only:
            phases.create_source_topics(bootstrap, "b2.")
            progress("producing JSON-array producer batches (up to 1,000 events per message)")
            msgs = produce(bootstrap, "b2.", data, batched=True)
            bare_b = asyncio.run(phases.bare_consume(bootstrap, "b2.", msgs, pid))
            emit("bare_consume_batched", **bare_b)
            full_b = phases.pipeline_runs(bootstrap, pid, "b2.", root, n, a.runs, "batched")
            emit("pipeline_batched", **full_b)
            summary["batched_events_per_s"] = full_b["events_per_s"]
            phases.drop_topics(bootstrap, "b2.")
        if "alerts" in only:
            phases.create_source_topics(bootstrap, "b4.")
            progress("producer batches, for the pipeline with and without alert receivers")
            produce(bootstrap, "b4.", data, batched=True)
            emit("alert_receivers", **phases.alert_receivers(bootstrap, pid, "b4.", root, n, a.runs))
            phases.drop_topics(bootstrap, "b4.")
        if "freshness" in only:
            rate, secs = 3000.0, (10.0 if a.quick else 30.0)
            progress(f"freshness at {rate:,.0f} events/s for {secs:.0f}s")
            s = phases.bench_settings(bootstrap, dsn, "b3.")
            fresh = asyncio.run(phases.freshness(s, bootstrap, client, dsn, data, rate, secs))
            emit("freshness", **fresh)
            summary["p99_freshness_s"] = fresh["p99_s"]
            phases.drop_topics(bootstrap, "b3.")
        if "sink" in only:
            progress("sink vs raw insert")
            emit("sink", **phases.sink_throughput(client, "bench_sink", 200_000 if a.quick else 1_000_000))
        if "dashboard" in only:
            facts = 2_000_000 if a.quick else 10_000_000
            progress(f"dashboard queries over {facts:,} attributed facts")
            emit("dashboard", **phases.dashboard_p95(client, dsn, "bench_dash", facts))
        client.close()
    finally:
        broker.stop()
        if not a.keep:
            shutil.rmtree(root, ignore_errors=True)
    if "scaling" in only:
        runs: dict[int, list[dict]] = {1: [], 2: []}
        for k in range(a.scaling_runs):
            for workers in (1, 2):
                progress(f"scaling: {workers} worker(s), sink_mode=topic (one ClickHouse writer), run {k + 1} of "
                         f"{a.scaling_runs}")
                result = phases.scaling(a.scaling_events or min(n, 60_000), workers, bound_s=a.scaling_bound_s)
                runs[workers].append(result)
                emit("scaling", run=k + 1, **result)
        summary.update(phases.scaling_summary(runs))
        if a.scaling_runs > 1:
            emit("scaling_summary", **phases.scaling_summary(runs))
    if "soak" in only and _soak(a, a.soak_events) != 0:
        return 1
    progress(f"done in {time.monotonic() - t_start:.0f}s")
    keys = ("floor_ratio", "bare_ratio", "events_per_s", "batched_events_per_s", "p99_freshness_s", "scaling_ratio",
            "scaling_hangs")
    print(" ".join(f"{k}={summary.get(k)}" for k in keys), flush=True)
    return 0


def _soak(a: argparse.Namespace, events: int | None) -> int:
    try:
        more = soak.worker_env(a.worker_env)
    except ValueError as e:
        print(f"python -m bench: soak: {e}", file=sys.stderr)
        return 2
    try:
        result = soak.run(soak.options(events, a.quick, a.report_every, cache_mb=a.cache_mb, out=a.out, keep=a.keep,
                                       ahead=a.ahead, span_days=a.span_days, worker_env=more))
    except soak.SoakError as e:
        print(f"python -m bench: soak: {e}", file=sys.stderr)
        return 1
    print(soak.summary_line(result), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
