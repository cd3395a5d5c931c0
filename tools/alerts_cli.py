"""``gmv alerts``: open and recent alerts as a table or JSON; ``gmv alerts rules``: the effective rules."""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime

from gmv.alerts.model import as_utc, shanghai_minute
from gmv.alerts.rules import load_config
from gmv.sinks.sql_formats import dump
from gmv.streams.settings import Settings

LIST_SQL = """
SELECT alert_id, rule, severity, subject_kind, subject_id, state, value, threshold, window_start, window_end,
       clock, fired_at, resolved_at, message, query
FROM {db:Identifier}.alerts
WHERE fired_at >= {since:DateTime64(3, 'UTC')} AND (NOT {open_only:Bool} OR state = 'firing')
  AND ({rule:String} = '' OR rule = {rule:String})
ORDER BY state = 'firing' DESC, fired_at DESC, alert_id
LIMIT {limit:UInt32}
"""


def print_rules(settings: Settings) -> int:
    rules = load_config(settings.alert_rules)  # a bad file fails here, before anything is printed
    source = f"from {settings.alert_rules}" if settings.alert_rules else "built-in defaults (set GMV_ALERT_RULES to change)"
    print(f"# effective alert rules: {source}")
    print(rules.to_toml(), end="")
    return 0


def list_alerts(settings: Settings, args: argparse.Namespace) -> int:
    since = datetime.now(UTC) - args.since
    params = {"db": settings.clickhouse_database, "since": since.strftime("%Y-%m-%d %H:%M:%S"),
              "open_only": "true" if args.open else "false", "rule": args.rule or "", "limit": str(args.limit)}
    from gmv.tools.runtime import query_readonly

    raw = query_readonly(settings, LIST_SQL, "jsonl", params)
    rows = [json.loads(line) for line in raw.decode().splitlines() if line.strip()]
    if args.format in ("json", "jsonl"):
        sys.stdout.write(dump(rows, args.format))
        return 0
    if not rows:
        print(f"no {'open ' if args.open else ''}alerts fired since {_local(since.isoformat())}")
        return 0
    header = ("STATE", "SEVERITY", "RULE", "SUBJECT", "WINDOW (CST)", "FIRED (CST)", "RESOLVED", "ALERT_ID")
    table = [header] + [(r["state"], r["severity"], r["rule"], f"{r['subject_kind']}:{r['subject_id']}",
                         _window(r["window_start"], r["window_end"]), _local(r["fired_at"]),
                         _local(r["resolved_at"]) if r["resolved_at"] else "-", r["alert_id"]) for r in rows]
    widths = [max(len(str(row[i])) for row in table) for i in range(len(header))]
    for row in table:
        print("  ".join(str(v).ljust(w) for v, w in zip(row, widths, strict=True)).rstrip())
    open_ = [r for r in rows if r["state"] == "firing"]
    print(f"\n{len(open_)} open, {len(rows) - len(open_)} resolved; the numbers behind one: "
          "gmv alerts --format json (its `query`)")
    for r in open_[:10]:
        print(f"  {r['rule']} {r['subject_id']}: {r['message']}")
    return 0


def _window(start: str, end: str) -> str:
    """An alert's window as the dashboard writes it: a day score's reads '12-04 (全天 whole day)'."""
    from gmv.dashboards.queries import window_text

    return window_text(_epoch_ms(start), _epoch_ms(end))[0]


def _epoch_ms(text: str) -> int:
    t = as_utc(datetime.fromisoformat(str(text).replace(" ", "T")))
    return round(t.timestamp() * 1000)


def _local(text: str) -> str:
    """A time as ClickHouse prints it (UTC), as the tables show times: Asia/Shanghai."""
    return shanghai_minute(as_utc(datetime.fromisoformat(str(text).replace(" ", "T"))))
