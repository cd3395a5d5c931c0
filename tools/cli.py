"""The ``gmv`` command: demo, run, sql, alerts, scores, worker, explain, simulate, schema."""

from __future__ import annotations

import argparse
import asyncio
import difflib
import json
import logging
import sys
from collections.abc import Callable
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from gmv.alerts.rules import BUSINESS_RULES, PIPELINE_RULES
from gmv.schemas.errors import GmvError
from gmv.schemas.events import EVENT_TYPES
from gmv.sinks.readonly import SqlFailed, sql_error_text
from gmv.sinks.sql_formats import JSON_HELP
from gmv.streams.settings import Settings
from gmv.tools.flags import PIPELINE, add_setting_flags, duration, settings_from
from gmv.tools.launch import tune_gc

SCENARIO_NAMES = ("mixed", "cold_start", "takeoff", "clip_tail", "incidents", "routines", "stage_worth")  # = simulator SCENARIOS (a unit test checks)
RULE_NAMES = (*BUSINESS_RULES, *PIPELINE_RULES)


def _param(text: str) -> tuple[str, str]:
    name, sep, value = text.partition("=")
    if not sep or not name:
        raise argparse.ArgumentTypeError(f"--param wants NAME=VALUE, got {text!r}")
    return name, value


def _rule(text: str) -> str:
    if text not in RULE_NAMES:
        close = difflib.get_close_matches(text, RULE_NAMES, n=1)
        hint = f"did you mean {close[0]}? " if close else ""
        raise argparse.ArgumentTypeError(f"unknown rule {text!r}; {hint}rules: {', '.join(RULE_NAMES)}")
    return text


def _command(sub: argparse._SubParsersAction, name: str, summary: str, description: str,
             groups: tuple[str, ...] = ()) -> argparse.ArgumentParser:
    """A subcommand with its one-line summary, its description, and the setting flags it uses."""
    p = sub.add_parser(name, help=summary, description=description)
    p.set_defaults(setting_groups=groups)
    _setting_flags.append((p, groups))
    return p


_setting_flags: list[tuple[argparse.ArgumentParser, tuple[str, ...]]] = []


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="gmv", description="Real-time GMV attribution for live-stream e-commerce: every fen of GMV credited "
                                "to short video, live, clip and shelf, exact in ClickHouse.",
        epilog="Settings are GMV_* environment variables; each command's --help lists the flags it takes. "
               "All of them: docs/configuration.md.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _setting_flags.clear()

    p = _command(sub, "demo", "the whole product with a simulator and the dashboard, reconciled to the fen",
                 "Starts an embedded Kafka-protocol broker and ClickHouse under the data dir, the worker with its "
                 "dashboard, and the simulator; prints progress. Ctrl-C (or the end of --duration) stops the "
                 "simulator, drains, and compares ClickHouse with the simulator's ground truth: exit 0 only on a "
                 "match. A rerun on the same data dir continues the story.", (*PIPELINE, "web"))
    p.add_argument("--duration", type=float, metavar="SECONDS",
                   help="stop after this many seconds, reconcile, exit 0 only on a match")
    p.add_argument("--scenario", choices=sorted(SCENARIO_NAMES), help="simulator preset (default mixed; "
                   "`gmv simulate --list` describes them)")
    p.add_argument("--seed", type=int, help="simulator seed (default 1)")
    p.add_argument("--scale", type=float, help="simulator audience multiplier (default 4; incidents: 1)")
    p.add_argument("--rate", type=float, default=1500.0, help="messages/s the simulator sends (default 1500)")
    p.add_argument("--keep-serving", action="store_true",
                   help="after --duration, keep the dashboard up until Ctrl-C")
    p.add_argument("--incident-pause", type=float, metavar="SECONDS",
                   help="incidents scenario: how long the sender pauses to show a consumer lag (default 45)")

    p = _command(sub, "run", "produce a JSONL file of events, process all of it, print the counts",
                 "Produces every line of FILE (one event, or a JSON array of events, per line) to the source "
                 "topics, runs the pipeline until all of it is consumed, attributed and stored, and prints the "
                 "counts: received = accepted + duplicates + dead-lettered. Running the same file again is a "
                 "replay: it changes no total.", PIPELINE)
    p.add_argument("--events", type=Path, required=True, metavar="FILE",
                   help="one event (or JSON array of events) per line")
    p.add_argument("--json", action="store_true", help="print the counts as JSON")
    p.add_argument("--quiet", action="store_true", help="no progress lines")

    p = _command(sub, "sql", "read-only SQL against the configured ClickHouse",
                 "Runs one read statement (SELECT, WITH, SHOW, DESCRIBE, EXPLAIN, EXISTS) and prints its rows; "
                 "anything else (KILL, SYSTEM, SET, a SETTINGS clause, file()/url()/s3()/remote()...) is refused "
                 "before ClickHouse sees it. Each query runs under the operator's limits: GMV_SQL_MAX_EXECUTION_S "
                 "(30 s), GMV_SQL_MAX_MEMORY_MB (2048), GMV_SQL_MAX_RESULT_ROWS (1,000,000) and _MB (256), "
                 "GMV_SQL_MAX_CONCURRENT (2) at once; a tripped limit is an error naming it, never a shorter "
                 "answer. While a demo or worker owns the embedded ClickHouse it asks that process over loopback, "
                 "and that process's limits apply; Ctrl-C cancels the query there too.",
                 ("clickhouse",))
    p.add_argument("query", help="one statement; values as {name:Type} placeholders filled by --param")
    p.add_argument("--param", action="append", default=[], metavar="NAME=VALUE", type=_param,
                   help="a value for a {NAME:Type} placeholder in the query (repeatable)")
    p.add_argument("--format", default="tsv", choices=["tsv", "tsvh", "json", "jsonl", "pretty", "csv"],
                   help=f"tsv (default), tsvh (with header), {JSON_HELP}, pretty, csv")

    p = _command(sub, "explain", "how an order's GMV was attributed: path, weights, credits, refunds",
                 "Shows one order's path (every touch with its time, stage, account and content), each model's "
                 "credits in fen with their shares, and every refund's split. Exit 1 if the order is not stored.",
                 ("clickhouse",))
    p.add_argument("order_id", help="the order's order_id")

    p = _command(sub, "alerts", "open and recent alerts (`gmv alerts rules`: the effective rules)",
                 "gmv alerts [list]: the alerts fired recently, open ones first. gmv alerts rules: the rules in "
                 "effect (the built-in defaults, or GMV_ALERT_RULES / --alert-rules over them).")
    what = p.add_subparsers(dest="what", metavar="{list,rules}")
    lp = what.add_parser("list", help="open and recent alerts (the default)",
                         description="The alerts fired recently, open ones first, as a table or JSON; each has a "
                                     "`query` (--format json or jsonl) that shows the numbers behind it.")
    lp.set_defaults(setting_groups=("clickhouse",))
    _setting_flags.append((lp, ("clickhouse",)))
    lp.add_argument("--open", action="store_true", help="only alerts still firing")
    lp.add_argument("--since", type=duration, default=timedelta(days=1), metavar="DURATION",
                    help="fired within this long (default 1d; e.g. 30m, 7d)")
    lp.add_argument("--rule", type=_rule, help=f"only this rule ({', '.join(RULE_NAMES)})")
    lp.add_argument("--limit", type=int, default=100, metavar="N", help="at most N alerts (default 100)")
    lp.add_argument("--format", default="table", choices=["table", "json", "jsonl"],
                    help=f"table (default), or every field, the query included, as {JSON_HELP}")
    rp = what.add_parser("rules", help="the effective rules, as TOML",
                         description="Prints the rules in effect as TOML: the built-in defaults, with the rules "
                                     "file (GMV_ALERT_RULES / --alert-rules) over them.")
    rp.set_defaults(setting_groups=("alerts",))
    _setting_flags.append((rp, ("alerts",)))

    p = _command(sub, "scores", "trust scores: a shop's, account's or SKU's with its inputs; with none, every shop's",
                 "商品分 (SKU), 带货口碑分 (selling account) and 商号体验分 (shop), 0-5, over the 30 days ending "
                 "with the day (Asia/Shanghai), with every input of the formula and how it became the score.",
                 ("clickhouse",))
    who = p.add_mutually_exclusive_group()
    who.add_argument("--shop", help="商号体验分 of this shop_id")
    who.add_argument("--account", help="带货口碑分 of this selling account (seller_id)")
    who.add_argument("--sku", help="商品分 of this sku_id")
    p.add_argument("--day", type=date.fromisoformat, metavar="YYYY-MM-DD",
                   help="Asia/Shanghai day (default: the latest)")
    p.add_argument("--format", default="text", choices=["text", "json", "jsonl"],
                   help=f"text (default), {JSON_HELP}")

    p = _command(sub, "attribution", "the markov model: what each stage is worth, per shop and day",
                 "The data-driven (markov) model of a shop on a day: its journeys and conversions, the transition "
                 "counts of the chain, P(conversion) and each stage's removal effect, exact and as a decimal. "
                 "Without --shop, every shop's removal effects of the day side by side.", ("clickhouse",))
    p.add_argument("--shop", help="the shop_id ('' for the platform); default: every shop side by side")
    p.add_argument("--day", type=date.fromisoformat, metavar="YYYY-MM-DD",
                   help="Asia/Shanghai day (default: the latest)")
    p.add_argument("--format", default="text", choices=["text", "json", "jsonl"],
                   help=f"text (default), {JSON_HELP}")

    p = _command(sub, "load-dim", "load dimension data (account bindings, SKU catalog) from CSV or JSONL",
                 "Validates the whole file first; a file with any bad line loads nothing and names each bad line. "
                 "A good file is one insert; loading again replaces rows by identity.", ("clickhouse",))
    p.add_argument("kind", choices=["accounts", "skus"], help="accounts: account→shop bindings with brand and role; "
                   "skus: the SKUs each shop listed per day")
    p.add_argument("file", type=Path, help=".csv with a header row, or .jsonl (one object per line)")

    p = _command(sub, "reconcile", "compare a simulator truth file with what ClickHouse holds",
                 "Compares the ground truth that `gmv simulate --truth FILE` wrote with ClickHouse, after `gmv run` "
                 "or a worker stored the same events: net GMV per model and stage to the fen, every trust score, "
                 "and the expected alerts. Exit 1 on any mismatch.", ("clickhouse",))
    p.add_argument("truth", type=Path, help="the truth JSON from gmv simulate --truth")
    p.add_argument("--no-alerts", action="store_true", help="do not compare alerts (the run evaluated none)")

    p = _command(sub, "worker", "the long-running pipeline worker",
                 "Consumes the source topics, attributes and stores into ClickHouse, serves the dashboard, the "
                 "read-only SQL endpoint and (GMV_METRICS_PORT) Prometheus metrics. Ctrl-C or SIGTERM stops it "
                 "after storing what it holds.", (*PIPELINE, "web"))

    sub.add_parser("simulate", help="the load generator: a scenario to JSONL or Kafka, with its ground truth "
                                    "(gmv simulate --help)", add_help=False)

    p = _command(sub, "schema", "print the JSON Schema of each event type, for producers",
                 "Prints the JSON Schema of the event contract (one schema per event type): what a producer's "
                 "message must hold to be accepted.")
    p.add_argument("--event-type", choices=sorted(EVENT_TYPES), help="only this one")
    for command, groups in _setting_flags:
        add_setting_flags(command, groups)
    return parser


def main(argv: list[str] | None = None, wrap_client: Callable[[Any], Any] | None = None) -> int:
    """``wrap_client``: wraps the ClickHouse client the sink writes through (tests and the chaos
    harness inject outages with it; the installed ``gmv`` command passes none)."""
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["simulate"]:
        from gmv.tools.simulator.cli import main as simulate

        return simulate(argv[1:])
    if argv[:1] == ["alerts"] and (len(argv) == 1 or argv[1] not in ("list", "rules", "-h", "--help")):
        argv = ["alerts", "list", *argv[1:]]  # `gmv alerts` alone lists them
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

        if isinstance(e, SqlFailed | ClickHouseError):
            text = str(e) if isinstance(e, SqlFailed) else sql_error_text(e)
            print(f"gmv {args.command}: ClickHouse refused the query: {text}", file=sys.stderr)
            return 1
        if isinstance(e, GmvError | OSError):  # a file the user named, a port: their OS's words are clear
            print(f"gmv {args.command}: {e}", file=sys.stderr)
            return 1
        raise  # a bug: its traceback


def _dispatch(args: argparse.Namespace, wrap_client: Callable[[Any], Any] | None = None) -> int:
    if args.command == "schema":
        from gmv.schemas.json_schema import event_json_schemas

        schemas: Any = event_json_schemas()
        if args.event_type:
            schemas = schemas[args.event_type]
        print(json.dumps(schemas, indent=2, ensure_ascii=False))
        return 0
    settings = settings_from(args)
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
    if args.command == "attribution":
        from gmv.tools.markov_cli import show_model
        from gmv.tools.runtime import query_readonly

        def rows(q: str, p: dict[str, Any]) -> list[dict[str, Any]]:
            return [json.loads(line) for line in query_readonly(settings, q, "jsonl", p).decode().splitlines() if line]

        return show_model(settings, rows, args.shop, args.day.isoformat() if args.day else "", args.format)
    if args.command == "reconcile":
        return _cmd_reconcile(settings, args.truth, alerts=not args.no_alerts)
    if args.command == "run":
        tune_gc()
        return _cmd_run(settings, args)
    if args.command == "explain":
        from gmv.tools.explain import OrderNotFound, explain_order

        try:
            print(explain_order(settings, args.order_id))
        except OrderNotFound as e:
            print(f"gmv explain: {e}", file=sys.stderr)
            return 1
        return 0
    if args.command == "demo":
        from gmv.tools.demo import Demo
        from gmv.tools.demo_story import DemoOptions

        tune_gc()
        options = DemoOptions(args.scenario, args.seed, args.scale, args.rate, args.duration, args.keep_serving,
                              args.incident_pause)
        return asyncio.run(Demo(settings, options, wrap_client).run())
    if args.command == "worker":
        from gmv.tools.worker_cmd import run_worker

        tune_gc()
        return asyncio.run(run_worker(settings, wrap_client))
    raise AssertionError(args.command)


def _cmd_reconcile(settings: Settings, truth_path: Path, alerts: bool) -> int:
    from gmv.alerts.rules import load_config
    from gmv.tools.reconcile import load_truth, reconcile
    from gmv.tools.runtime import query_readonly

    truth = load_truth(truth_path)
    lag_max_age_s = load_config(settings.alert_rules).rules.consumer_lag.max_age_s if alerts else None
    report = reconcile(lambda q, p: query_readonly(settings, q, "tsv", p), settings.clickhouse_database, truth,
                       settings.topic_prefix, settings.worker_instance_id, alerts, lag_max_age_s)
    for line in report.lines():
        print(line)
    return 0 if report.ok else 1


def _setup_logging(level: str) -> None:
    logging.basicConfig(level=getattr(logging, level.upper(), logging.WARNING),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # kafka-python warns about its own slow polls and retries, clickhouse-connect about each failed
    # connection attempt; they are not the user's business: the commands say what failed in one line.
    logging.getLogger("kafka").setLevel(logging.ERROR)
    logging.getLogger("clickhouse_connect").setLevel(logging.ERROR)
    logging.getLogger("urllib3").setLevel(logging.ERROR)


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


if __name__ == "__main__":
    sys.exit(main())
