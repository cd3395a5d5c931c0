"""The measured phases. Each returns its figure's fields; ``__main__`` prints them."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
import uuid
from datetime import UTC
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from bench.common import PARTITIONS, TOPIC_NAMES, proc_cpu_s
from gmv.sinks.clickhouse import ClickHouseSink
from gmv.sinks.migrations import migrate
from gmv.streams.settings import Settings
from gmv.tools.embedded import ensure_topics, free_port


def topics(prefix: str) -> list[str]:
    return [f"{prefix}{t}" for t in TOPIC_NAMES.values()]


def create_source_topics(bootstrap: str, prefix: str) -> None:
    ensure_topics(bootstrap, {t: PARTITIONS for t in topics(prefix)})


def drop_topics(bootstrap: str, prefix: str) -> None:
    """Delete a finished phase's topics (its sources, journal, DLQ...). The embedded broker's
    background upkeep costs CPU in proportion to the bytes it holds (measured: ~0.4 s of CPU per
    second of writes with 30 MB stored), so a phase must not tax the ones after it."""
    from kafka.admin import KafkaAdminClient

    admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="gmv-bench")
    try:
        mine = [t for t in admin.list_topics() if t.startswith(prefix)]
        if mine:
            admin.delete_topics(mine)
    finally:
        admin.close()


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
    result = _child_result("bench.faust_floor", [bootstrap, prefix, str(expected)], "the faust floor run")
    return {**result, "broker_cpu_s": _delta(broker_pid, cpu0)}


def _child_result(module: str, args: list[str], what: str) -> dict[str, Any]:
    """Run ``python -m module args``; its result is the JSON after ``RESULT `` in its output
    (faust writes terminal control codes before it)."""
    out = subprocess.run([sys.executable, "-m", module, *args], capture_output=True, text=True, timeout=1800,
                         cwd=Path(__file__).resolve().parent.parent)
    at = out.stdout.rfind("RESULT ")
    if out.returncode != 0 or at < 0:
        raise RuntimeError(f"{what} failed (exit {out.returncode}): {out.stderr[-3000:]}")
    return json.loads(out.stdout[at + len("RESULT "):].splitlines()[0])


def _delta(pid: int | None, before: float | None) -> float | None:
    after = proc_cpu_s(pid) if pid else None
    return round(after - before, 2) if after is not None and before is not None else None


def bench_settings(bootstrap: str, dsn: str, prefix: str, **over: Any) -> Settings:
    tag = prefix.strip(".").replace("-", "_")
    if dsn.startswith("chdb://"):  # the bench's temporary root (the worker keeps faust's directory there)
        over.setdefault("data_dir", Path(dsn.removeprefix("chdb://")).parent)
    return Settings(kafka_bootstrap_servers=bootstrap, clickhouse_dsn=dsn, topic_prefix=prefix,
                    app_id=f"bench-{tag}-{uuid.uuid4().hex[:6]}", clickhouse_database=f"bench_{tag}",
                    partitions=PARTITIONS, worker_instance_id=f"bench-{uuid.uuid4().hex[:6]}", **over)


async def pipeline(settings: Settings, bootstrap: str, client, broker_pid: int | None,
                   events: int, profile: Path | None = None, alerts: str = "off") -> dict[str, Any]:
    """The full job — validate, dedup, attribute, rollups, sink — over the pre-produced topics,
    from partitions assigned to everything consumed, attributed and flushed. ``alerts``: off (no
    evaluator), up (the evaluator delivering to a webhook on loopback), down (its Alertmanager and
    webhook refuse connections the whole run)."""
    from gmv.tools.launch import Launch, LaunchOptions, tune_gc

    tune_gc()  # as the worker's entry point does
    receiver = None
    if alerts == "off":
        settings = settings.model_copy(update={"alerts": False})
    else:
        if alerts == "up":
            receiver = _Webhook()
            url = f"http://127.0.0.1:{receiver.port}/hook"
        else:
            url = f"http://127.0.0.1:{free_port()}/hook"  # nothing listens there
        settings = settings.model_copy(update={"alertmanager_url": url.removesuffix("/hook"),
                                               "alert_webhook_url": SecretStr(url)})
    launch = Launch(settings, LaunchOptions())  # the same assembly as gmv worker, run and demo
    prof = None
    try:
        s = launch.open()
        worker = await launch.start()
        sink = worker.sink
        if profile is not None:
            import cProfile

            prof = cProfile.Profile()
            prof.enable()
        cpu0 = proc_cpu_s(broker_pid) if broker_pid else None
        own0, main0 = _own_cpu_s(), time.thread_time()
        t0 = time.monotonic()
        srcs = [*s.source_topics, s.rekeyed_topic]
        while await worker.unconsumed(srcs) > 0:
            if worker.crashed:
                raise RuntimeError(worker.crash_reason())
            await asyncio.sleep(0.05)
        t_consumed = time.monotonic()
        # Hour/day rollups refresh on their own every 5 s; the minute rollups are part of the run.
        await worker.drain(final=True)
        drain_s = time.monotonic() - t_consumed
        # From the first message handed to the pipeline (the loop may be busy with it before
        # this coroutine runs again) to everything attributed and flushed.
        seconds = time.monotonic() - min(t0, worker.stats.first_batch_at or t0)
        broker = _delta(broker_pid, cpu0)
        # The worker's CPU: all of it (its threads: ClickHouse parsing inserts and running refreshes,
        # the sink's JSON) and the event loop's thread alone (decoding, state, attribution, encoding).
        worker_cpu, loop_cpu = _own_cpu_s() - own0, time.thread_time() - main0
    finally:
        if prof is not None:
            prof.disable()
            prof.dump_stats(str(profile))
        await launch.stop()
        launch.close()
        if receiver is not None:
            receiver.stop()
    c = worker.status(extra=False).summary()
    return {"messages": sum(worker.stats.seen_msgs.values()), "events": c["received"], "accepted": c["accepted"],
            "duplicates": c["duplicates"], "dead_lettered": c["dead_lettered"], "seconds": round(seconds, 3),
            "events_per_s": round(c["received"] / seconds) if seconds else None, "batches": worker.stats.batches,
            "rows_written": sink.rows_written, "rows_by_table": dict(sink.rows_by_table), "broker_cpu_s": broker,
            "worker_cpu_s": round(worker_cpu, 2), "loop_cpu_s": round(loop_cpu, 2), "expected_events": events,
            "drain_s": round(drain_s, 3), "seconds_in": {k: round(v, 2) for k, v in worker.stats.seconds_in.items()}}


def _own_cpu_s() -> float:
    import resource

    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


class _Webhook:
    """A loopback webhook that answers 200 to every POST (a receiver that is up)."""

    def __init__(self) -> None:
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        class Ok(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                self.rfile.read(int(self.headers.get("Content-Length", 0)))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                return None

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Ok)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def pipeline_in_worker(bootstrap: str, broker_pid: int | None, prefix: str, dsn: str, events: int,
                       profile: Path | None = None, alerts: str = "off") -> dict[str, Any]:
    """``pipeline`` in a fresh process (``bench.worker_run``): each figure starts clean."""
    return _child_result("bench.worker_run", [bootstrap, str(broker_pid or 0), prefix, dsn, str(events),
                                              str(profile or ""), alerts], "the pipeline run")


def pipeline_runs(bootstrap: str, broker_pid: int | None, prefix: str, root: Path, events: int, runs: int,
                  phase: str) -> dict[str, Any]:
    """``runs`` pipeline runs over the same topics, each a fresh worker process with its own
    consumer group and ClickHouse path; the median run's fields, plus every run's rate."""
    from bench.common import progress

    results = []
    for i in range(runs):
        progress(f"the full pipeline ({phase}), run {i + 1} of {runs} (a fresh worker process)")
        results.append(pipeline_in_worker(bootstrap, broker_pid, prefix, f"chdb://{root / f'clickhouse-{phase}-{i}'}",
                                          events, profile_target(f"{phase}.{i}")))
    ranked = sorted(results, key=lambda r: r["events_per_s"] or 0)
    median = ranked[len(ranked) // 2]
    return {**median, "runs": [r["events_per_s"] for r in results], "reported": "median of runs"}


def profile_target(phase: str) -> Path | None:
    """``GMV_BENCH_PROFILE=/tmp/prof`` writes cProfile stats of each pipeline run to ``/tmp/prof.<phase>``."""
    p = os.environ.get("GMV_BENCH_PROFILE")
    return Path(f"{p}.{phase}") if p else None


def sink_throughput(client, db: str, rows_n: int) -> dict[str, Any]:
    """The project's sink vs a raw clickhouse-connect insert of the same attributed_gmv rows."""
    from datetime import UTC, datetime, timedelta

    from gmv.schemas.catalogue import ATTRIBUTED_GMV

    migrate(client, db)
    t = datetime(2026, 11, 1, tzinfo=UTC)

    def row(i: int, when: Any) -> tuple:
        stamp = when(i)
        return (f"e{i}", f"o{i}", "paid", "linear", i % 3, int(i % 3 == 2), "live", f"a{i % 50}", f"L{i % 20}",
                f"t{i}", 1, "public", stamp, stamp, stamp, f"u{i % 5000}", "s1", "a1", f"k{i % 30}", "live",
                1000 + i % 777, "short_video>live", 3, when(0))

    # The same rows in each one's own shape: times as the pipeline's rows carry them (exact epoch
    # seconds, see gmv.streams.core.state.row_time) for the sink; datetimes for the native insert.
    t_s = t.timestamp()
    ours_rows = [row(i, lambda k: t_s + k) for i in range(rows_n)]
    rows = [row(i, lambda k: t + timedelta(seconds=k)) for i in range(rows_n)]
    sink = ClickHouseSink(lambda: client, db, tables=[ATTRIBUTED_GMV])
    t0 = time.perf_counter()
    for i in range(0, rows_n, 50_000):
        sink.add(ATTRIBUTED_GMV.name, ours_rows[i:i + 50_000])
        sink.flush_sync()
    ours = time.perf_counter() - t0
    t0 = time.perf_counter()
    for i in range(0, rows_n, 50_000):
        client.insert(ATTRIBUTED_GMV.store, rows[i:i + 50_000], database=db, column_names=ATTRIBUTED_GMV.column_names,
                      column_type_names=ATTRIBUTED_GMV.column_types)
    raw = time.perf_counter() - t0
    return {"rows": rows_n, "sink_rows_per_s": round(rows_n / ours), "raw_insert_rows_per_s": round(rows_n / raw),
            "ratio": round(raw / ours, 2)}


def dashboard_p95(client, dsn: str, db: str, facts: int, runs: int = 40) -> dict[str, Any]:
    """p95 of one dashboard refresh (every panel) over ``facts`` attributed rows (synthetic, in SQL): the
    dashboard as it is (rollups only) beside the one before it (``bench.dashboard_before``: top-N and path
    panels over the facts), alternating on the same data, each through a read-only client as the worker's
    page is served."""
    from bench import dashboard_before
    from gmv.dashboards.queries import dashboard_data, json_rows
    from gmv.schemas.catalogue import ATTRIBUTED_GMV
    from gmv.sinks.levels import level_statements
    from gmv.sinks.readonly import ReadonlyClients

    migrate(client, db)
    cols = ", ".join(ATTRIBUTED_GMV.column_names)
    client.command(
        f"INSERT INTO `{db}`.`{ATTRIBUTED_GMV.store}` ({cols}) SELECT concat('e', toString(intDiv(number, 15))), "
        "concat('o', toString(intDiv(number, 15))), if(number % 97 = 0, 'refund', 'paid'), "
        "['last_touch','first_touch','linear','position_based','time_decay'][1 + intDiv(number, 3) % 5], "
        "number % 3, number % 3 = 2, ['short_video','live','clip','shelf'][1 + number % 4], "
        "concat('a', toString(number % 60)), concat('L', toString(number % 400)), toString(number), number % 2, "
        "'public', toDateTime64('2026-11-01 00:00:00', 3, 'UTC') + intDiv(number, 40), "
        "toDateTime64('2026-11-01 00:00:00', 3, 'UTC') + intDiv(number, 40), "
        "toDateTime64('2026-11-01 00:00:00', 3, 'UTC') + intDiv(number, 40), concat('u', toString(number % 200000)), "
        "concat('s', toString(number % 5)), concat('a', toString(number % 60)), concat('k', toString(number % 300)), "
        "'live', if(number % 97 = 0, -100, 1000 + number % 5000), 'short_video>live', 3, now64(6) "
        f"FROM numbers({facts})", settings={"max_insert_threads": 2})
    client.command(
        f"INSERT INTO `{db}`.`gmv_minute_store` SELECT toStartOfMinute(event_time) AS minute, model, stage, channel, "
        "traffic, shop_id, seller_id, touch_account_id, is_self, sumIf(credit_fen, kind = 'paid'), "
        "-sumIf(credit_fen, kind = 'refund'), sum(credit_fen), countIf(kind = 'paid' AND is_conversion = 1), "
        "countIf(kind = 'refund' AND is_conversion = 1), uniqStateIf(user_id, kind = 'paid' AND is_conversion = 1), "
        f"now64(6) FROM `{db}`.`{ATTRIBUTED_GMV.store}` GROUP BY minute, model, stage, channel, traffic, shop_id, "
        "seller_id, touch_account_id, is_self")

    # The worker's rollups of those facts, by the statements it runs (every minute touched once).
    t0 = time.perf_counter()
    minutes = {r[0] for r in client.query(
        f"SELECT DISTINCT toStartOfMinute(event_time) FROM `{db}`.`{ATTRIBUTED_GMV.store}`").result_rows}
    minutes = {m.replace(tzinfo=UTC) if m.tzinfo is None else m for m in minutes}
    for sql, params in level_statements(db, minutes):
        client.command(sql, parameters=params)
    rollups_s = time.perf_counter() - t0
    # Time a steady state: the inserts above leave background merges running for a while.
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and client.query(
            "SELECT count() FROM system.merges WHERE database = {db:String}", parameters={"db": db}).result_rows[0][0]:
        time.sleep(0.5)

    queries: dict[str, int] = {}

    readers = ReadonlyClients(dsn)  # as the worker serves its page
    # The worker passes its attribution watermark: here every fact is attributed.
    watermark_ms = client.query(f"SELECT toUnixTimestamp64Milli(max(event_time)) FROM `{db}`.`{ATTRIBUTED_GMV.store}`"
                                ).result_rows[0][0]
    current = "now"

    def run(q: str, params: dict) -> list[dict]:
        queries[current] = queries.get(current, 0) + 1
        return json_rows(readers.run(q, "jsonl", params))

    refreshes = {"now": lambda model: dashboard_data(run, db, model, watermark_ms),
                 "before": lambda model: dashboard_before.dashboard_data(run, db, model)}
    times: dict[str, list[float]] = {"now": [], "before": []}
    for i in range(runs + 2):
        for current, refresh in refreshes.items():
            t0 = time.perf_counter()
            refresh(("linear", "last_touch")[i % 2])
            if i >= 2:  # two warm-up runs each
                times[current].append(time.perf_counter() - t0)

    def pct(xs: list[float], q: float) -> float:
        xs = sorted(xs)
        return round(xs[min(len(xs) - 1, int(q * len(xs)))] * 1000, 1)

    readers.close()
    return {"facts": facts, "runs": runs, "p50_ms": pct(times["now"], 0.5), "p95_ms": pct(times["now"], 0.95),
            "queries_per_refresh": queries["now"] // (runs + 2),
            "before_p50_ms": pct(times["before"], 0.5), "before_p95_ms": pct(times["before"], 0.95),
            "before_queries_per_refresh": queries["before"] // (runs + 2),
            "p95_ratio_before_over_now": round(pct(times["before"], 0.95) / max(pct(times["now"], 0.95), 0.1), 1),
            "rollups_built_s": round(rollups_s, 1)}


async def freshness(settings: Settings, bootstrap: str, client, dsn: str, data, rate: float,
                    seconds: float) -> dict[str, Any]:
    """At a fixed produce rate: p50/p99 of (visible in the funnel_minute rollup - produce time)."""
    import threading

    from kafka import KafkaProducer

    from gmv.sinks.readonly import run_readonly_sql
    from gmv.tools.launch import Launch, LaunchOptions, tune_gc

    tune_gc()  # as the worker's entry point does
    launch = Launch(settings.model_copy(update={"alerts": False}), LaunchOptions())
    s = launch.open()
    worker = await launch.start()
    views = [(k, v) for et, k, v in data.messages if et == "view" and k is not None][: int(rate * seconds)]
    produced: list[float] = []
    from gmv.sinks.clickhouse import connect

    reader = connect(dsn)  # its own session: the worker's client stays the worker's

    def produce() -> None:
        p = KafkaProducer(bootstrap_servers=bootstrap, linger_ms=5, acks=1, compression_type="lz4")
        t0 = time.monotonic()
        for i, (k, v) in enumerate(views):
            ahead = t0 + i / rate - time.monotonic()
            if ahead > 0:
                time.sleep(ahead)
            p.send(f"{s.topic_prefix}views", key=k, value=v)
            produced.append(time.monotonic())
        p.flush()
        p.close()

    th = threading.Thread(target=produce)
    th.start()
    seen: list[tuple[float, int]] = []
    q = f"SELECT toUInt64(sum(views)) FROM `{s.clickhouse_database}`.funnel_minute WHERE stage != 'live'"
    deadline = time.monotonic() + seconds + 30
    # The simulator re-sends ~1% of events (duplicates count once): expect the distinct ones.
    distinct = len({json.loads(v)["event_id"] for _, v in views})
    while time.monotonic() < deadline:
        n = int((await asyncio.to_thread(run_readonly_sql, reader, q, "tsv")).strip() or 0)
        seen.append((time.monotonic(), n))
        if n >= distinct and not th.is_alive():
            break
        await asyncio.sleep(0.1)
    th.join()
    await launch.stop()
    launch.close()
    reader.close()
    lags = []
    j = 0
    for k, t_prod in enumerate(produced[: distinct], start=1):
        while j < len(seen) and seen[j][1] < k:
            j += 1
        if j < len(seen):
            lags.append(seen[j][0] - t_prod)
    lags.sort()
    pct = lambda p: round(lags[min(len(lags) - 1, int(p * len(lags)))], 3) if lags else None  # noqa: E731
    return {"rate_per_s": rate, "seconds": seconds, "events": len(views), "measured": len(lags),
            "p50_s": pct(0.50), "p99_s": pct(0.99), "max_s": round(lags[-1], 3) if lags else None,
            "rollup_interval_s": s.rollup_interval_s, "batches": worker.stats.batches,
            "seconds_in": {k: round(v, 2) for k, v in worker.stats.seconds_in.items()}}


def scaling(events: int, workers: int, bound_s: float = 600.0) -> dict[str, Any]:
    """1 vs 2 ``gmv worker`` processes (sink_mode=topic: the first owns chdb and writes every row)
    over the same pre-produced stream; from start to everything consumed and written. A run not done
    within ``bound_s`` is reported as a hang (``completed`` false) with the group's state."""
    from bench.chaos import Run

    run = Run(f"scale{workers}", events, rate=1e9, seed=11)
    healthy = False
    try:
        from gmv.tools.runtime import Runtime

        s = Settings(kafka_bootstrap_servers=run.bootstrap, app_id="chaos", partitions=PARTITIONS)
        ensure_topics(run.bootstrap, Runtime(s).topic_partitions(), compacted=frozenset({s.changelog_topic}))
        run.start_simulator()
        assert run.sim is not None
        run.sim.wait()
        t0 = time.monotonic()
        run.start_worker("worker-0", GMV_SINK_MODE="topic")
        if workers == 2:
            run.start_worker("worker-1", GMV_SINK_MODE="topic", GMV_WORKER_INSTANCE_ID="")
        sources = ["gmv.views", "gmv.live_rooms", "gmv.orders", "gmv.rekeyed"]
        deadline = t0 + bound_s
        completed = False
        while time.monotonic() < deadline:
            time.sleep(0.5)
            run.check_workers()
            if "worker-0" not in run.workers:
                raise RuntimeError(f"the scaling run's worker exited; see {run.dir}")
            if run.group_lag("chaos", sources) == 0 and run.group_lag("chaos-rows-writer", ["gmv.rows"]) == 0:
                completed = True
                break
        seconds = time.monotonic() - t0
        per_worker = {name: (run.stats(name) or {}).get("counters", {}).get("received") for name in run.workers}
        out = {"workers": workers, "events": events, "completed": completed, "seconds_incl_startup": round(seconds, 2),
               "events_per_s": round(events / seconds) if completed else None, "received_per_worker": per_worker,
               "exits": run.unexpected_exits}
        if not completed:
            out["group"] = run.describe_group("chaos")
        healthy = completed and not run.unexpected_exits
        return out
    finally:
        run.close(keep=not healthy)  # a hang or a worker that exited keeps its logs (run.dir)


def scaling_summary(runs: dict[int, list[dict[str, Any]]]) -> dict[str, Any]:
    """Completed runs and hangs per worker count, their median rates, and 2 workers over 1."""
    def median(xs: list[float]) -> float | None:
        xs, n = sorted(xs), len(xs)
        return None if not n else xs[n // 2] if n % 2 else (xs[n // 2 - 1] + xs[n // 2]) / 2

    rates = {w: [r["events_per_s"] for r in rs if r["completed"]] for w, rs in runs.items()}
    one, two = median(rates[1]), median(rates[2])
    return {"scaling_runs": len(runs[2]), "scaling_hangs": sum(not r["completed"] for rs in runs.values() for r in rs),
            "one_worker_events_per_s": one, "two_workers_events_per_s": two,
            "scaling_ratio": round(two / one, 2) if one and two else None,
            "two_worker_rates": rates[2]}


def alert_receivers(bootstrap: str, broker_pid: int | None, prefix: str, root: Path, events: int,
                    runs: int) -> dict[str, Any]:
    """Producer batches through the pipeline without the alert evaluator, with it and its receivers
    up, and with them down the whole run: interleaved fresh worker processes, medians."""
    from bench.common import progress

    rates: dict[str, list[int]] = {"off": [], "up": [], "down": []}
    for i in range(runs):
        for mode in rates:
            progress(f"alert receivers {mode}, run {i + 1} of {runs}")
            r = pipeline_in_worker(bootstrap, broker_pid, prefix, f"chdb://{root / f'clickhouse-alerts-{mode}-{i}'}",
                                   events, alerts=mode)
            rates[mode].append(r["events_per_s"] or 0)
    median = {mode: sorted(v)[len(v) // 2] for mode, v in rates.items()}
    return {"events_per_s": median, "runs": rates,
            "down_vs_off": round(median["down"] / median["off"], 3) if median["off"] else None,
            "up_vs_off": round(median["up"] / median["off"], 3) if median["off"] else None}
