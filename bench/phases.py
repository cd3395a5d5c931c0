"""The measured phases. Each returns its figure's fields; ``__main__`` prints them."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

from bench.common import PARTITIONS, TOPIC_NAMES, proc_cpu_s
from sinks.clickhouse import ClickHouseSink, migrate
from streams.embedded import ensure_topics
from streams.settings import Settings


def topics(prefix: str) -> list[str]:
    return [f"{prefix}{t}" for t in TOPIC_NAMES.values()]


def create_source_topics(bootstrap: str, prefix: str) -> None:
    ensure_topics(bootstrap, {t: PARTITIONS for t in topics(prefix)})


async def bare_consume(bootstrap: str, prefix: str, expected: int, broker_pid: int | None) -> dict[str, Any]:
    """Baseline: a bare aiokafka consume + json.loads loop over the same topics."""
    from aiokafka import AIOKafkaConsumer

    c = AIOKafkaConsumer(*topics(prefix), bootstrap_servers=bootstrap, group_id=f"bare-{uuid.uuid4().hex[:6]}",
                         auto_offset_reset="earliest", enable_auto_commit=False,
                         fetch_max_bytes=32 * 1024 * 1024, max_partition_fetch_bytes=8 * 1024 * 1024)
    await c.start()
    n = events = 0
    t0 = None
    cpu0 = proc_cpu_s(broker_pid) if broker_pid else None
    try:
        while n < expected:
            batch = await c.getmany(timeout_ms=500, max_records=5000)
            if t0 is None and batch:
                t0 = time.monotonic()
            for records in batch.values():
                for r in records:
                    try:
                        doc = json.loads(r.value)
                        events += len(doc) if isinstance(doc, list) else 1
                    except ValueError:
                        events += 1
                    n += 1
        seconds = time.monotonic() - (t0 or time.monotonic())
    finally:
        await c.stop()
    return {"messages": n, "events": events, "seconds": round(seconds, 3),
            "events_per_s": round(events / seconds) if seconds else None,
            "broker_cpu_s": _delta(broker_pid, cpu0)}


def faust_floor(bootstrap: str, prefix: str, expected: int, broker_pid: int | None) -> dict[str, Any]:
    """Baseline: a stock faust agent adding each event into one table (the framework floor).
    Runs in a child process (a faust worker owns its event loop)."""
    cpu0 = proc_cpu_s(broker_pid) if broker_pid else None
    out = subprocess.run([sys.executable, "-m", "bench.faust_floor", bootstrap, prefix, str(expected)],
                         capture_output=True, text=True, timeout=1800, cwd=Path(__file__).resolve().parent.parent)
    at = out.stdout.rfind('{"messages"')  # faust writes terminal control codes before it
    if out.returncode != 0 or at < 0:
        raise RuntimeError(f"the faust floor run failed (exit {out.returncode}): {out.stderr[-2000:]}")
    return {**json.loads(out.stdout[at:].splitlines()[0]), "broker_cpu_s": _delta(broker_pid, cpu0)}


def _delta(pid: int | None, before: float | None) -> float | None:
    after = proc_cpu_s(pid) if pid else None
    return round(after - before, 2) if after is not None and before is not None else None


def bench_settings(bootstrap: str, dsn: str, prefix: str, **over: Any) -> Settings:
    tag = prefix.strip(".").replace("-", "_")
    return Settings(kafka_bootstrap_servers=bootstrap, clickhouse_dsn=dsn, topic_prefix=prefix,
                    app_id=f"bench-{tag}-{uuid.uuid4().hex[:6]}", clickhouse_database=f"bench_{tag}",
                    partitions=PARTITIONS, worker_instance_id=f"bench-{uuid.uuid4().hex[:6]}", **over)


async def pipeline(settings: Settings, bootstrap: str, client, broker_pid: int | None,
                   events: int, profile: Path | None = None) -> dict[str, Any]:
    """The full job — validate, dedup, attribute, rollups, sink — over the pre-produced topics,
    from partitions assigned to everything consumed, attributed and flushed."""
    from streams.app import GmvWorker
    from streams.runtime import Runtime

    s = settings
    ensure_topics(bootstrap, Runtime(s).topic_partitions(), compacted=frozenset({s.changelog_topic}))
    migrate(client, s.clickhouse_database)
    sink = ClickHouseSink(lambda: client, s.clickhouse_database)
    worker = GmvWorker(s, bootstrap, sink)
    task = await worker.start()
    prof = None
    try:
        while not worker.ready.is_set():
            if task.done() or worker.crashed:
                raise RuntimeError(f"worker failed to start: {worker.crash_reason()}")
            await asyncio.sleep(0.02)
        if profile is not None:
            import cProfile

            prof = cProfile.Profile()
            prof.enable()
        cpu0 = proc_cpu_s(broker_pid) if broker_pid else None
        t0 = time.monotonic()
        srcs = [*s.source_topics, s.rekeyed_topic]
        while await worker.unconsumed(srcs) > 0:
            if worker.crashed:
                raise RuntimeError(worker.crash_reason())
            await asyncio.sleep(0.05)
        t_consumed = time.monotonic()
        # Hour/day rollups refresh on their own every 5 s; the minute rollups are part of the run.
        await worker.drain(final=True, coarse=False)
        drain_s = time.monotonic() - t_consumed
        # From the first message handed to the pipeline (the loop may be busy with it before
        # this coroutine runs again) to everything attributed and flushed.
        seconds = time.monotonic() - min(t0, worker.first_batch_at or t0)
        broker = _delta(broker_pid, cpu0)
    finally:
        if prof is not None:
            prof.disable()
            prof.dump_stats(str(profile))
        await worker.stop()
    c = worker.counters.summary()
    return {"messages": sum(worker.seen_msgs.values()), "events": c["received"], "accepted": c["accepted"],
            "duplicates": c["duplicates"], "dead_lettered": c["dead_lettered"], "seconds": round(seconds, 3),
            "events_per_s": round(c["received"] / seconds) if seconds else None, "batches": worker.batches,
            "rows_written": sink.rows_written, "broker_cpu_s": broker, "expected_events": events,
            "drain_s": round(drain_s, 3), "seconds_in": {k: round(v, 2) for k, v in worker.timings.items()}}


def profile_target() -> Path | None:
    p = os.environ.get("GMV_BENCH_PROFILE")
    return Path(p) if p else None
