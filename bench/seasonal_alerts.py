"""Today's business rules against seasonal baselines on a stored story (not a test).

``python -m bench.seasonal_alerts --dsn chdb:///path/clickhouse --database gmv --truth truth.json``
judges every minute of the story's rollups twice, from ``alerts_judged_from_ms`` of its truth file
(the routines preset: day 8), once with ``seasonal = false`` on every rule and once with the
defaults, and prints for each: the planned incidents found and the other pages. It also times one
evaluation as the worker runs it (one minute judged, with the rollup reads of a week of history).
"""

from __future__ import annotations

import argparse
import json
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

from gmv.alerts.judging import BusinessJudge
from gmv.alerts.rules import AlertConfig
from gmv.alerts.store import AlertStore
from gmv.sinks.clickhouse import connect

SEASONAL_RULES = ("live_gmv_drop", "live_no_orders", "refund_spike")
CHUNK = 24 * 60


def judge(store: AlertStore, config: AlertConfig, first: int, last: int) -> list:
    j = BusinessJudge(config, store.database)
    j.start(first, [])
    now = datetime.now(UTC)
    out = []
    while (chunk := j.next_chunk(last, CHUNK)) is not None:
        a, b = chunk
        lives, shops = store.series(a - j.lookback_minutes(), b)
        out += j.judge_minutes(a, b, lives, shops, now, store.history(a, b, j.lookback_minutes(), j.seasonal_shifts()))
    return [x for x in out if x.resolved_at is None and x.rule in SEASONAL_RULES]


def one_evaluation(store: AlertStore, minute: int) -> float:
    """Seconds for one evaluation of one minute as the worker runs it: series, history, judging."""
    j = BusinessJudge(AlertConfig(), store.database)
    j.start(minute, [])
    t0 = time.perf_counter()
    lives, shops = store.series(minute - j.lookback_minutes(), minute)
    j.judge_minutes(minute, minute, lives, shops, datetime.now(UTC),
                    store.history(minute, minute, j.lookback_minutes(), j.seasonal_shifts()))
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dsn", required=True)
    ap.add_argument("--database", default="gmv")
    ap.add_argument("--truth", type=Path, required=True)
    a = ap.parse_args()
    truth = json.loads(a.truth.read_text())
    start = int(datetime.fromisoformat(truth["start"]).timestamp()) // 60
    first = (truth.get("alerts_judged_from_ms") or start * 60_000) // 60_000
    store = AlertStore(lambda: connect(a.dsn), a.database)
    last = int(store._rows("SELECT toUInt32(max(minute)) FROM {db:Identifier}.gmv_minute", {})[0][0]) // 60
    expected = Counter((x["rule"], x["subject_id"]) for x in truth["expected_alerts"] if x["clock"] == "event")
    off = AlertConfig.model_validate({"rules": {r: {"seasonal": False} for r in SEASONAL_RULES}})
    print(f"judged {(last - first + 1) / 1440:.1f} days from {datetime.fromtimestamp(first * 60, UTC):%Y-%m-%d %H:%M} "
          f"UTC; {sum(expected.values())} planned incident alerts")
    print("| rules | planned incident alerts fired | other pages |")
    print("|---|---|---|")
    for name, config in (("today's (seasonal = false)", off), ("seasonal (defaults)", AlertConfig())):
        fired = Counter((x.rule, x.subject_id) for x in judge(store, config, first, last))
        found = sum(min(n, fired[k]) for k, n in expected.items())
        other = sum(fired.values()) - found
        kinds = Counter(r for (r, s), n in fired.items() for _ in range(n - min(n, expected[(r, s)])))
        print(f"| {name} | {found} of {sum(expected.values())} | {other} ({', '.join(f'{k} {v}' for k, v in sorted(kinds.items())) or 'none'}) |")
    secs = sorted(one_evaluation(store, last - 60 * k) for k in range(5))
    print(f"one evaluation (one minute, 7 days of history read from the rollups): median {secs[2] * 1000:.0f} ms")


if __name__ == "__main__":
    main()
