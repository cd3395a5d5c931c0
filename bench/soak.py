"""The soak benchmark (issue 31): ``python -m bench.soak`` or ``python -m bench --only soak [--quick]``.

An embedded broker and a real ``gmv worker`` process on a temporary data dir; ``--events`` valid events
(default 20M, ``--quick`` 2M; producer batches at full speed, event times dense within the last hour, so
nothing expires and every event stays retained state) fed in steps that the worker keeps up with.
Every ``--report-every`` events one JSON line (``figure: soak_step``): events consumed, the worker's
RSS (its process tree), the state metrics when the worker has them (``gmv_state_*``; bytes per retained
key = disk bytes / keys), disk bytes of ``<data_dir>/state``, throughput over the step, and the embedded
ClickHouse's share apart (its own memory tracker, its parts on disk). Then the worker is stopped and
restarted twice, each time with one new event waiting: (a) on the same data dir, (b) with
``<data_dir>/state`` deleted (a restore onto an empty local store from the changelog). Each restart's
line (``figure: soak_restart``) has the restore log line's seconds and records, the wall clock from spawn
to consuming again and to the new event stored, and records read vs live keys when the metrics exist.

Writes the JSON lines to ``bench-results/soak-<time>.jsonl`` and a PNG chart of RSS and throughput
against events consumed beside it (``--out``); both paths are printed at the end. Progress on stderr.
"""

from __future__ import annotations

import argparse
import json
import secrets
import shutil
import signal
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.common import emit
from bench.soak_worker import Feeder, SoakError, Worker, kafka_producer, say
from gmv.schemas.events import TOPIC_NAMES
from gmv.tools.embedded import EmbeddedKafka, ensure_topics, free_port
from gmv.tools.soak_events import PARTITIONS, SoakFeed, one_view
from gmv.tools.soak_readings import (
    du_bytes,
    restore_lines,
    state_figures,
    summarise,
    tree_rss_bytes,
    worker_env,
)

MB = 1024 * 1024
SOURCE_RETENTION_MS = 10 * 60_000  # the broker keeps no more of the feed than the worker may still need


@dataclass
class SoakOptions:
    events: int
    report_every: int
    cache_mb: int | None = None
    out: Path | None = None  # the chart; the JSON lines go beside it (.jsonl)
    keep: bool = False
    ahead: int = 300_000  # events produced but not yet consumed, at most (the broker holds no more)
    stall_s: float = 180.0  # no event consumed for this long: the soak stops with an error
    seed: int = 31
    span_days: float | None = None  # event times over this many days before now (default: the hour before)
    worker_env: dict[str, str] = field(default_factory=dict)  # more GMV_ settings for the worker (--worker-env)


def engine_figures(worker: Worker) -> dict[str, Any]:
    """The embedded ClickHouse's share: its memory tracker (what the engine allocated, inside the worker's RSS)
    and its active parts; None where the SQL endpoint does not answer."""
    out: dict[str, Any] = {"engine_tracked_bytes": None, "engine_parts": None, "engine_parts_bytes": None}
    mem = worker.sql("SELECT value FROM system.metrics WHERE metric = 'MemoryTracking'")
    if mem and mem.strip():
        out["engine_tracked_bytes"] = int(float(mem.split()[0]))
    parts = worker.sql("SELECT count(), sum(bytes_on_disk) FROM system.parts WHERE active")
    if parts and parts.strip():
        n, b = parts.split()[:2]
        out["engine_parts"], out["engine_parts_bytes"] = int(n), int(b)
    return out


def sample(worker: Worker, root: Path) -> dict[str, Any]:
    """What the worker holds now: RSS, state metrics, disk, the engine's share."""
    pid = worker.pid
    rss = tree_rss_bytes(pid) if pid else None
    text = worker.metrics()
    try:
        figures = state_figures(text or "")
    except ValueError:  # a scrape cut short: this step goes without state figures
        figures = state_figures("")
    return {"worker_rss_mb": round(rss / MB, 1) if rss else None, **figures,
            "state_dir_bytes": du_bytes(root / "state"), "clickhouse_dir_bytes": du_bytes(root / "clickhouse"),
            **engine_figures(worker)}


def wait_ready(worker: Worker, timeout_s: float) -> None:
    """Until the worker owns every partition (so the first step's throughput is not its start-up)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        worker.check()
        st = worker.stats()
        if st and len(st.get("partitions", ())) == PARTITIONS:
            return
        time.sleep(0.2)
    raise SoakError(f"the worker did not own its {PARTITIONS} partitions within {timeout_s:.0f}s; see {worker.log_path}: "
                    f"{worker.log_tail()}")


def soak_feed(o: SoakOptions, worker: Worker, root: Path, bootstrap: str, lines: list[dict[str, Any]]) -> None:
    """Feed every event, one line per ``report_every`` consumed (added to ``lines`` as they come)."""
    span = {} if o.span_days is None else {"span_ms": int(o.span_days * 86_400_000)}
    feed = SoakFeed(o.events, int(time.time() * 1000), seed=o.seed, **span)
    consumed = 0
    feeder = Feeder(bootstrap, feed, lambda: consumed, o.ahead)
    checkpoints = sorted({*range(o.report_every, o.events, o.report_every), o.events})
    t0 = t_step = last_progress = time.monotonic()
    c_step = 0
    feeder.start()
    try:
        while checkpoints:
            worker.check()
            if feeder.error is not None:
                raise SoakError(f"producing failed: {feeder.error!r}")
            st = worker.stats()
            now = time.monotonic()
            got = st["counters"]["received"] if st else consumed
            if got > consumed:
                consumed, last_progress = got, now
            elif now - last_progress > o.stall_s:
                raise SoakError(f"the worker consumed nothing for {o.stall_s:.0f}s at {consumed:,} of {o.events:,} "
                                f"events ({feeder.produced:,} produced); see {worker.log_path}: {worker.log_tail()}")
            if consumed >= checkpoints[0]:
                while checkpoints and consumed >= checkpoints[0]:
                    checkpoints.pop(0)
                s = sample(worker, root)
                c = st["counters"] if st else {}
                line = emit("soak_step", events_consumed=consumed, events_produced=feeder.produced,
                            elapsed_s=round(now - t0, 1),
                            events_per_s=round((consumed - c_step) / (now - t_step)) if now > t_step else None,
                            events_per_s_overall=round(consumed / (now - t0)) if now > t0 else None,
                            # Produced, not yet consumed: near 0 means the feed, not the worker, set the pace.
                            backlog_events=feeder.produced - consumed,
                            accepted=c.get("accepted"), duplicates=c.get("duplicates"),
                            dead_lettered=c.get("dead_lettered"), **s)
                lines.append(line)
                say(f"{consumed:,} events consumed: RSS {s['worker_rss_mb']} MB, {line['events_per_s']}/s over the "
                    f"step, state keys {s['state_keys']}, state dir {s['state_dir_bytes']}")
                t_step, c_step = now, consumed  # the sample above took time: the worker went on meanwhile
            time.sleep(0.5)
    finally:
        feeder.stopping.set()
        feeder.join(30)
    say(f"fed {feed.counts}")


def restart(worker: Worker, bootstrap: str, kind: str, timeout_s: float) -> dict[str, Any]:
    """Spawn the worker on the stopped one's data dir with one new event waiting; time it to consuming
    again and to that event stored."""
    eid = f"soak-restart-{worker.starts}-{secrets.token_hex(4)}"
    marker = one_view(eid, int(time.time() * 1000))
    t_spawn = worker.spawn()
    producer = kafka_producer(bootstrap)
    try:
        producer.send("gmv.views", value=b"[" + marker.value + b"]", partition=marker.partition)
        producer.flush()
    finally:
        producer.close()
    consuming = stored = None
    deadline = t_spawn + timeout_s
    while stored is None:
        worker.check()
        now = time.monotonic()
        if now > deadline:
            raise SoakError(f"restart ({kind}): the new event was not stored within {timeout_s:.0f}s; see "
                            f"{worker.log_path}: {worker.log_tail()}")
        st = worker.stats()
        if consuming is None and st and st["counters"]["received"] > 0:
            consuming = now - t_spawn
        if consuming is not None:
            found = worker.sql("SELECT count() FROM gmv.events_store WHERE event_type = 'view' "
                               "AND event_id = {id:String}", {"id": eid})
            if found and found.strip() not in ("", "0"):
                stored = time.monotonic() - t_spawn
        time.sleep(0.1)
    text = worker.metrics() or ""
    found_lines = restore_lines(worker.log_path.read_text(errors="replace"))
    try:
        figures = state_figures(text)
    except ValueError:  # a scrape cut short: this restart goes without state figures
        figures = state_figures("")
    st = worker.stats() or {}
    return {
        "restart": kind, "spawn_to_consuming_s": round(consuming or 0.0, 2), "spawn_to_new_event_stored_s": round(stored, 2),
        "restore_line_seconds": round(sum(x.seconds for x in found_lines), 2) if found_lines else None,
        "restore_line_records": sum(x.records for x in found_lines) if found_lines else None,
        "restore_line_form": found_lines[0].form if found_lines else None,
        "restore_records_read": figures["restore_records_read"], "restore_records_live": figures["restore_records_live"],
        "restore_metric_seconds": figures["restore_seconds"], "state_keys": figures["state_keys"],
        "records_read_per_live_key": round(figures["restore_records_read"] / figures["state_keys"], 3)
        if figures["restore_records_read"] is not None and figures["state_keys"] else None,
        "reprocessed_events": max(0, st.get("counters", {}).get("received", 1) - 1),
        "worker_rss_mb": round((tree_rss_bytes(worker.pid) or 0) / MB, 1) if worker.pid else None,
    }


def chart(lines: list[dict[str, Any]], path: Path, title: str) -> Path:
    """RSS and throughput against events consumed, one PNG."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as e:
        raise SoakError("the chart needs matplotlib: pip install -e '.[bench]' (the JSON lines are written)") from e
    xs = [ln["events_consumed"] / 1e6 for ln in lines]
    fig, ax = plt.subplots(figsize=(9, 5), dpi=110)
    ax.plot(xs, [ln["worker_rss_mb"] for ln in lines], "o-", color="tab:red", label="worker RSS (MB)")
    engine = [ln.get("engine_tracked_bytes") for ln in lines]
    if any(v is not None for v in engine):
        ax.plot(xs, [v / MB if v is not None else None for v in engine], "s--", color="tab:orange",
                label="embedded ClickHouse tracked (MB)")
    ax.set_xlabel("events consumed (millions)")
    ax.set_ylabel("MB")
    ax.set_ylim(bottom=0)
    ax2 = ax.twinx()
    ax2.plot(xs, [ln["events_per_s"] for ln in lines], "^-", color="tab:blue", label="throughput (events/s)")
    ax2.set_ylabel("events/s over the step")
    ax2.set_ylim(bottom=0)
    handles = ax.get_legend_handles_labels()[0] + ax2.get_legend_handles_labels()[0]
    ax.legend(handles, [h.get_label() for h in handles], loc="upper center", bbox_to_anchor=(0.5, -0.12), ncol=3,
              frameon=False)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path


def run(o: SoakOptions) -> dict[str, Any]:
    """The whole soak; returns its summary (the paths written among it)."""
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    png = (o.out or Path("bench-results") / f"soak-{stamp}.png").resolve()
    jsonl = png.with_suffix(".jsonl")
    root = Path(tempfile.mkdtemp(prefix="gmv-soak-"))
    broker = EmbeddedKafka(root, free_port())
    worker: Worker | None = None
    lines: list[dict[str, Any]] = []
    _stop_on_sigterm()
    try:
        bootstrap = broker.start()
        ensure_topics(bootstrap, {f"gmv.{t}": PARTITIONS for t in TOPIC_NAMES.values()}, retention_ms=SOURCE_RETENTION_MS)
        worker = Worker(root, bootstrap, o.cache_mb, o.worker_env)
        say(f"broker on {bootstrap}; worker on {root} (web {worker.web_port}, metrics {worker.metrics_port}); "
            f"{o.events:,} events, a line every {o.report_every:,}")
        worker.spawn()
        wait_ready(worker, 180)
        soak_feed(o, worker, root, bootstrap, lines)
        # Let the last batch's offsets be committed and the orders attributed before the stop.
        time.sleep(3)
        say("stopping the worker (SIGINT) for restart (a): same data dir")
        stop_s = worker.stop()
        lines.append(emit("soak_restart", stop_s=round(stop_s, 2), **restart(worker, bootstrap, "same_data_dir", 600)))
        say(f"restart (a): {_brief(lines[-1])}")
        stop_s = worker.stop()
        had_store = (root / "state").exists()
        shutil.rmtree(root / "state", ignore_errors=True)
        say(f"restart (b): <data_dir>/state {'deleted' if had_store else 'absent (no local store)'}; restore from "
            "the changelog")
        lines.append(emit("soak_restart", stop_s=round(stop_s, 2), local_store_deleted=had_store,
                          **restart(worker, bootstrap, "empty_local_store", 900)))
        say(f"restart (b): {_brief(lines[-1])}")
    except BaseException:
        say(f"stopped before the end; the lines so far are in {jsonl}")
        raise
    finally:
        if worker is not None:
            worker.stop()
        broker.stop()
        jsonl.parent.mkdir(parents=True, exist_ok=True)
        jsonl.write_text("".join(json.dumps(ln) + "\n" for ln in lines))
        if o.keep:
            say(f"kept {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)
    steps = [ln for ln in lines if ln["figure"] == "soak_step"]
    chart(steps, png, f"gmv soak: {o.events:,} events" + (f", GMV_STATE_CACHE_MB={o.cache_mb}" if o.cache_mb else ""))
    with open(jsonl, "a") as f:
        f.write(json.dumps(emit("soak_summary", **summarise(lines))) + "\n")
    return {"chart": str(png), "lines": str(jsonl), **summarise(lines)}




def _stop_on_sigterm() -> None:
    """SIGTERM unwinds like Ctrl-C, so the finally blocks stop the worker and the broker (their own sessions:
    nothing else would)."""
    def handler(signum: int, frame: object) -> None:
        raise SystemExit(128 + signum)

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, handler)


def _brief(line: dict[str, Any]) -> str:
    return (f"consuming after {line['spawn_to_consuming_s']}s, new event stored after "
            f"{line['spawn_to_new_event_stored_s']}s; restore line {line['restore_line_records']} records in "
            f"{line['restore_line_seconds']}s")


def options(events: int | None, quick: bool, report_every: int | None = None, **kw: Any) -> SoakOptions:
    n = events or (2_000_000 if quick else 20_000_000)
    return SoakOptions(events=n, report_every=report_every or max(1, n // 10), **kw)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.soak", description=__doc__.split("\n\n")[0])
    add_arguments(ap)
    a = ap.parse_args(argv)
    return run_from_args(a)


def add_arguments(ap: argparse.ArgumentParser, events_flag: bool = True) -> None:
    if events_flag:
        ap.add_argument("--events", type=int, help="events to feed (default 20M; --quick 2M)")
        ap.add_argument("--quick", action="store_true", help="2M events")
        ap.add_argument("--keep", action="store_true", help="keep the temporary data dir (logs, state)")
    ap.add_argument("--report-every", type=int, help="events between two lines (default a tenth of --events)")
    ap.add_argument("--ahead", type=int, default=300_000,
                    help="events produced ahead of the worker at most: the broker holds no more (default 300k)")
    ap.add_argument("--cache-mb", type=int, help="GMV_STATE_CACHE_MB for the worker (default: the worker's own)")
    ap.add_argument("--span-days", type=float,
                    help="spread event times over this many days before now (default: the hour before). ClickHouse "
                         "restates a day's markov credits as it grows, so millions of events in one day slow the "
                         "soak down; past GMV_DEDUP_HORIZON or GMV_LOOKBACK, raise them (--worker-env) or state expires")
    ap.add_argument("--worker-env", action="append", default=[], metavar="GMV_NAME=VALUE",
                    help="a setting for the worker, e.g. GMV_DEDUP_HORIZON=5m GMV_LOOKBACK=5m "
                         "GMV_WEIGHTS_RETENTION=5m for a soak whose state expires (repeatable)")
    ap.add_argument("--out", type=Path, help="the chart's path (default bench-results/soak-<time>.png; the JSON "
                                             "lines go beside it as .jsonl)")


def run_from_args(a: argparse.Namespace) -> int:
    if any(v is not None and v < 1 for v in (a.events, a.report_every, a.ahead)):
        print("python -m bench.soak: --events, --report-every and --ahead must be at least 1", file=sys.stderr)
        return 2
    try:
        more = worker_env(a.worker_env)
    except ValueError as e:
        print(f"python -m bench.soak: {e}", file=sys.stderr)
        return 2
    o = options(a.events, a.quick, a.report_every, cache_mb=a.cache_mb, out=a.out, keep=a.keep, ahead=a.ahead,
                span_days=a.span_days, worker_env=more)
    try:
        summary = run(o)
    except SoakError as e:
        print(f"python -m bench.soak: {e}", file=sys.stderr)
        return 1
    print(summary_line(summary), flush=True)
    return 0




def summary_line(summary: dict[str, Any]) -> str:
    keys = ("rss_mb_first_step", "rss_mb_last_step", "rss_mb_per_million_events", "events_per_s_overall",
            "bytes_per_key", "restart_same_dir_s", "restore_empty_store_s", "chart", "lines")
    return " ".join(f"{k}={summary.get(k)}" for k in keys)


if __name__ == "__main__":
    raise SystemExit(main())
