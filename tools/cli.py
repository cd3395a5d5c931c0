"""The ``gmv`` command: demo, run, sql, alerts, scores, worker, explain, simulate, schema."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import logging
import sys
from collections.abc import Callable
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from gmv.alerts.exceptions import AlertError
from gmv.schemas.events import EVENT_TYPES
from gmv.streams.settings import Settings

SCENARIO_NAMES = ("mixed", "cold_start", "takeoff", "clip_tail", "incidents")  # gmv.tools.simulator.SCENARIOS


def _duration(text: str) -> timedelta:
    """'5s', '7d', '24h', '1500ms' or plain seconds."""
    from gmv.streams.settings import parse_duration

    parsed = parse_duration(text)
    if parsed is None:
        raise argparse.ArgumentTypeError(f"not a duration: {text!r} (use e.g. 5s, 30m, 24h, 7d)")
    return parsed


def _param(text: str) -> tuple[str, str]:
    name, sep, value = text.partition("=")
    if not sep or not name:
        raise argparse.ArgumentTypeError(f"--param wants NAME=VALUE, got {text!r}")
    return name, value


def _common(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("settings (flags override GMV_* environment variables)")
    g.add_argument("--data-dir", type=Path, help="data dir of the embedded broker and ClickHouse (GMV_DATA_DIR)")
    g.add_argument("--kafka", dest="kafka_bootstrap_servers", help="Kafka bootstrap servers; unset = embedded")
    g.add_argument("--clickhouse-dsn", help="chdb:///abs/path or http(s)://user@host:port")
    g.add_argument("--database", dest="clickhouse_database", help="ClickHouse database (default gmv)")
    g.add_argument("--partitions", type=int, help="partitions per topic (default 4)")
    g.add_argument("--engaged-ms", type=int, help="watch time that makes a view a touchpoint (default 3000)")
    g.add_argument("--lookback", type=_duration, help="attribution lookback (default 7d)")
    g.add_argument("--half-life", type=_duration, help="time-decay half life (default 24h)")
    g.add_argument("--attribution-delay", type=_duration, help="wait before attributing an order (default 5s)")
    g.add_argument("--log-level", help="worker log level (default WARNING)")
    g.add_argument("--alert-rules", type=Path, help="TOML file of alert rules (GMV_ALERT_RULES)")


def _settings(args: argparse.Namespace) -> Settings:
    keys = ("data_dir", "kafka_bootstrap_servers", "clickhouse_dsn", "clickhouse_database", "partitions",
            "engaged_ms", "lookback", "half_life", "attribution_delay", "log_level", "alert_rules")
    overrides = {k: getattr(args, k) for k in keys if getattr(args, k, None) is not None}
    return Settings(**overrides)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gmv", description="Real-time GMV attribution for live-stream e-commerce.")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("run", help="produce a JSONL file of events, process all of it, print the counts")
    p.add_argument("--events", type=Path, required=True, help="one event (or JSON array of events) per line")
    p.add_argument("--json", action="store_true", help="print the counts as JSON")
    p.add_argument("--quiet", action="store_true", help="no progress lines")
    _common(p)

    p = sub.add_parser("sql", help="read-only SQL against the configured ClickHouse")
    p.add_argument("query")
    p.add_argument("--param", action="append", default=[], metavar="NAME=VALUE", type=_param,
                   help="a value for a {NAME:Type} placeholder in the query (repeatable)")
    p.add_argument("--format", default="tsv", choices=["tsv", "tsvh", "json", "pretty", "csv"],
                   help="tsv (default), tsvh (with header), json (one object per row), pretty, csv")
    _common(p)

    p = sub.add_parser("load-dim", help="load dimension data (account bindings, SKU catalog) from CSV or JSONL; "
                                        "a file with any bad line loads nothing")
    p.add_argument("kind", choices=["accounts", "skus"], help="accounts: account→shop bindings with brand and role; "
                   "skus: the SKUs each shop listed per day")
    p.add_argument("file", type=Path, help=".csv with a header row, or .jsonl (one object per line)")
    _common(p)

    p = sub.add_parser("alerts", help="open and recent alerts (gmv alerts rules: the effective rules)")
    p.add_argument("what", nargs="?", default="list", choices=["list", "rules"])
    p.add_argument("--open", action="store_true", help="only alerts still firing")
    p.add_argument("--since", type=_duration, default=timedelta(days=1),
                   help="fired within this long (default 1d; e.g. 30m, 7d)")
    p.add_argument("--rule", help="only this rule")
    p.add_argument("--limit", type=int, default=100)
    p.add_argument("--format", default="table", choices=["table", "json"])
    _common(p)

    p = sub.add_parser("scores", help="trust scores (SPEC §7): a shop's, account's or SKU's with its inputs and how "
                                      "it was computed; with none, every shop's and the day's movers")
    who = p.add_mutually_exclusive_group()
    who.add_argument("--shop", help="商号体验分 of this shop_id")
    who.add_argument("--account", help="带货口碑分 of this selling account (seller_id)")
    who.add_argument("--sku", help="商品分 of this sku_id")
    p.add_argument("--day", type=date.fromisoformat, help="Asia/Shanghai day YYYY-MM-DD (default: the latest)")
    p.add_argument("--format", default="text", choices=["text", "json"])
    _common(p)

    p = sub.add_parser("worker", help="the long-running pipeline worker")
    p.add_argument("--web-port", type=int, default=None, help="port of the dashboard/API (default 6066)")
    _common(p)

    p = sub.add_parser("explain", help="how an order's GMV was attributed: path, weights, credits, refunds")
    p.add_argument("order_id")
    _common(p)

    p = sub.add_parser("demo", help="the whole pipeline with a simulator and the dashboard, reconciled to the fen")
    p.add_argument("--duration", type=float, help="stop after this many seconds, reconcile, exit 0 only on a match")
    p.add_argument("--scenario", choices=sorted(SCENARIO_NAMES), help="simulator preset (default mixed; "
                   "`gmv simulate --list` describes them)")
    p.add_argument("--seed", type=int, help="simulator seed (default 1)")
    p.add_argument("--scale", type=float, help="simulator audience multiplier (default 4; incidents: 1)")
    p.add_argument("--rate", type=float, default=1500.0, help="messages/s the simulator sends (default 1500)")
    p.add_argument("--web-port", type=int, help="dashboard port (default 6066, or a free one if taken)")
    p.add_argument("--keep-serving", action="store_true",
                   help="after --duration, keep the dashboard up until Ctrl-C")
    _common(p)

    sub.add_parser("simulate", help="the load generator: a scenario to JSONL or Kafka, with its ground truth "
                                    "(gmv simulate --help)", add_help=False)

    p = sub.add_parser("schema", help="print the JSON Schema of each event type, for producers")
    p.add_argument("--event-type", choices=sorted(EVENT_TYPES), help="only this one")
    return parser


def main(argv: list[str] | None = None, wrap_client: Callable[[Any], Any] | None = None) -> int:
    """``wrap_client``: wraps the ClickHouse client the sink writes through (tests and the chaos
    harness inject outages with it; the installed ``gmv`` command passes none)."""
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["simulate"]:
        from gmv.tools.simulator.cli import main as simulate

        return simulate(argv[1:])
    args = build_parser().parse_args(argv)
    try:
        return _dispatch(args, wrap_client)
    except ValidationError as e:
        print(f"gmv: invalid setting: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("gmv: interrupted", file=sys.stderr)
        return 130
    except Exception as e:  # a clear one-line error, not a traceback, for expected failures
        from clickhouse_connect.driver.exceptions import ClickHouseError

        if isinstance(e, ClickHouseError):
            msg = str(e).splitlines()[0]
            hint = " (gmv sql is read-only: it runs SELECT/SHOW/DESCRIBE only)" if "READONLY" in msg else ""
            print(f"gmv {args.command}: ClickHouse refused the query: {msg}{hint}", file=sys.stderr)
            return 1
        if isinstance(e, (RuntimeError, FileNotFoundError, ValueError, OSError, AlertError)):
            print(f"gmv {args.command}: {e}", file=sys.stderr)
            return 1
        raise


def _dispatch(args: argparse.Namespace, wrap_client: Callable[[Any], Any] | None = None) -> int:
    if args.command == "schema":
        from gmv.schemas.events import event_json_schemas

        schemas: Any = event_json_schemas()
        if args.event_type:
            schemas = schemas[args.event_type]
        print(json.dumps(schemas, indent=2, ensure_ascii=False))
        return 0
    settings = _settings(args)
    _setup_logging(settings.log_level)
    if args.command == "sql":
        from gmv.tools.runtime import query_readonly

        params = dict(args.param)
        sys.stdout.buffer.write(query_readonly(settings, args.query, args.format, params))
        sys.stdout.flush()
        return 0
    if args.command == "alerts":
        from gmv.tools.alerts_cli import list_alerts, print_rules

        return print_rules(settings) if args.what == "rules" else list_alerts(settings, args)
    if args.command == "load-dim":
        from gmv.tools.load_dim import main as load_dim

        return load_dim(settings, args.kind, args.file)
    if args.command == "scores":
        from gmv.tools.scores_cli import show_scores

        return show_scores(settings, args)
    if args.command == "run":
        tune_gc()
        return _cmd_run(settings, args)
    if args.command == "explain":
        from gmv.tools.explain import explain_order

        print(explain_order(settings, args.order_id))
        return 0
    if args.command == "demo":
        from gmv.tools.demo import Demo

        tune_gc()
        return asyncio.run(Demo(settings, args.scenario, args.seed, args.rate, args.duration,
                                args.keep_serving, args.web_port, args.scale, wrap_client).run())
    if args.command == "worker":
        tune_gc()
        return asyncio.run(_cmd_worker(settings, args.web_port, wrap_client))
    raise AssertionError(args.command)


def _setup_logging(level: str) -> None:
    logging.basicConfig(level=getattr(logging, level.upper(), logging.WARNING),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # kafka-python warns about its own slow polls and retries; they are not the user's business.
    logging.getLogger("kafka").setLevel(logging.ERROR)


def _cmd_run(settings: Settings, args: argparse.Namespace) -> int:
    from gmv.tools.run import run_file

    report = asyncio.run(run_file(settings, args.events, progress=not args.quiet))
    c = report.counts
    if args.json:
        print(json.dumps(report.as_dict()))
    else:
        rate = c["received"] / report.seconds if report.seconds else 0.0
        print(f"gmv run: {args.events}: {report.lines} lines, {c['received']} events in "
              f"{report.seconds:.1f}s ({rate:,.0f} events/s)")
        for topic, outcomes in report.per_topic.items():
            print(f"  {topic:<20} " + "  ".join(f"{k}={v}" for k, v in outcomes.items()))
        print(f"received={c['received']} accepted={c['accepted']} duplicates={c['duplicates']} "
              f"dead_lettered={c['dead_lettered']}")
        fired = [a for a in report.alerts if a["state"] == "firing"]
        if report.alerts:
            print(f"alerts: {len(fired)} fired, {len(report.alerts) - len(fired)} resolved in this run "
                  "(gmv alerts lists them)")
    balanced = c["received"] == c["accepted"] + c["duplicates"] + c["dead_lettered"]
    return 0 if balanced else 3


async def _cmd_worker(settings: Settings, web_port: int | None,
                      wrap_client: Callable[[Any], Any] | None = None) -> int:
    from gmv.alerts.service import attach_alerts, load_rules
    from gmv.streams.worker import GmvWorker
    from gmv.tools.runtime import ClickHouseBusy, Runtime, dashboard_link
    from gmv.tools.signals import StopSignals

    rules = load_rules(settings) if settings.alerts else None  # a bad rules file stops us before anything starts
    runtime = Runtime(settings, wrap_client)
    evaluator = None
    try:
        owns_clickhouse = True
        try:
            runtime.open_clickhouse(wait_s=15.0 if settings.sink_mode == "direct" else 1.0)
        except ClickHouseBusy:
            if settings.sink_mode != "topic":
                raise
            owns_clickhouse = False  # another worker owns the embedded engine and writes our rows
        bootstrap = runtime.open_kafka()
        settings = runtime.settings  # partitions may follow topics a producer created first
        port = web_port or settings.web_port or 6066
        worker = GmvWorker(settings, bootstrap, runtime.sink() if owns_clickhouse else None,
                           runtime.sql_runner() if owns_clickhouse else None, web_port=port)
        if rules is not None and owns_clickhouse:
            evaluator = attach_alerts(worker, rules)
        if settings.sink_mode == "topic":
            role = "writes ClickHouse for every worker" if owns_clickhouse else "hands its rows to the writer"
            print(f"gmv worker: sink_mode=topic; this worker {role} (topic {settings.rows_topic})",
                  file=sys.stderr, flush=True)
        runtime.advertise(port)
        def left() -> str:
            if runtime.kafka is not None:
                runtime.kafka.stop(wait=6.0)  # bounded: SIGINT, 6 s, then SIGKILL
            return f"{worker.loop.uncommitted():,} messages are not committed and will be re-processed at the next start"

        signals = StopSignals("worker", left).install()
        print(f"gmv worker: consuming {', '.join(settings.source_topics)} from {bootstrap}; "
              f"dashboard on {dashboard_link(settings, port)} ; Ctrl-C stops", file=sys.stderr, flush=True)
        if settings.metrics_port:
            print(f"gmv worker: Prometheus metrics on http://{settings.web_host}:{settings.metrics_port}/metrics",
                  file=sys.stderr, flush=True)
        task = await worker.start()
        while not signals.requested.is_set() and not task.done() and not worker.crashed:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(signals.requested.wait(), 1.0)
        if worker.crashed:
            await worker.stop()
            print(f"gmv worker: stopped after an error: {worker.crash_reason()}", file=sys.stderr)
            return 1
        signals.arm_watchdog(settings.stop_timeout_s + 15)
        line = await worker.shutdown(drain=False, timeout_s=settings.stop_timeout_s)
        signals.disarm()
        print(f"gmv worker: {signals.signal_name or 'stop'}: {line}", file=sys.stderr, flush=True)
        return 0
    finally:
        if evaluator is not None:
            await evaluator.close()
        runtime.close()


def tune_gc() -> None:
    """For a process that runs the worker: the stream state is millions of long-lived, acyclic
    objects, and the default collector thresholds rescan them every few thousand allocations
    (a large share of the hot loop's time: README, Performance). Collect rarely; objects from start-up
    (modules, faust) are frozen out of every scan."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(100_000, 50, 100)


if __name__ == "__main__":
    sys.exit(main())
