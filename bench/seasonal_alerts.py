"""Today's business rules against seasonal baselines on a stored story (not a test).

``python -m bench.seasonal_alerts --dsn chdb:///path/clickhouse --database gmv --truth truth.json``
judges every minute of the story's rollups twice, from ``alerts_judged_from_ms`` of its truth file
(the routines preset: day 8), once with ``seasonal = false`` on every rule and once with the
defaults, and prints for each: the planned incidents found and the other pages. It also times one
evaluation as the worker runs it (one minute judged, with the rollup reads of a week of history).

``python -m bench.seasonal_alerts --dsn chdb:///tmp/x/clickhouse --synthetic-rooms 1000`` fills a
database of its own (``bench_seasonal``) with 8 days of minute rollups of that many live rooms
(3 hours on air a day, two rooms per shop) and times one evaluation with and without the seasonal
history (the median of 7, each a different minute of today's 3 hours).
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
        out += j.judge_minutes(a, b, lives, shops, now, store.history(a, b, j.history_reach(), j.seasonal_shifts(), j.seasonal_subjects(a, b, lives, shops)))
    return [x for x in out if x.resolved_at is None and x.rule in SEASONAL_RULES]


def one_evaluation(store: AlertStore, minute: int) -> float:
    """Seconds for one evaluation of one minute as the worker runs it: series, history, judging."""
    j = BusinessJudge(AlertConfig(), store.database)
    j.start(minute, [])
    t0 = time.perf_counter()
    lives, shops = store.series(minute - j.lookback_minutes(), minute)
    j.judge_minutes(minute, minute, lives, shops, datetime.now(UTC),
                    store.history(minute, minute, j.history_reach(), j.seasonal_shifts(),
                                  j.seasonal_subjects(minute, minute, lives, shops)))
    return time.perf_counter() - t0


SYNTHETIC_DAYS, ON_AIR_MINUTES = 8, 180


def fill_synthetic(dsn: str, database: str, rooms: int) -> int:
    """8 days of rollups of ``rooms`` live rooms, generated in ClickHouse; returns the last minute."""
    from gmv.sinks.migrations import migrate

    client = connect(dsn)
    migrate(client, database)
    start = (int(time.time()) // 86_400 - SYNTHETIC_DAYS) * 86_400 + 11 * 3_600  # 19:00 CST, 8 days ago
    n = rooms * SYNTHETIC_DAYS * ON_AIR_MINUTES
    rows = ("SELECT toDateTime({start:UInt32} + intDiv(number, {per_day:UInt64}) * 86400 "
            "+ (number % {on_air:UInt64}) * 60, 'UTC') AS minute, intDiv(number % {per_day:UInt64}, {on_air:UInt64}) AS room, number "
            "FROM numbers({n:UInt64})")
    params = {"start": start, "per_day": rooms * ON_AIR_MINUTES, "on_air": ON_AIR_MINUTES, "n": n}
    client.command(
        f"INSERT INTO {database}.funnel_minute_store SELECT minute, 'live', concat('anchor', toString(room)), "
        "concat('L', toString(room), '-', toString(toDate(minute))), concat('shop', toString(intDiv(room, 2))), "
        "'public', 20, 20, 20 + room % 7, arrayReduce('uniqState', ['u']), now64(6) FROM (" + rows + ")",
        parameters=params)
    client.command(
        f"INSERT INTO {database}.content_minute_store SELECT minute, 'live', "
        "concat('L', toString(room), '-', toString(toDate(minute))), concat('shop', toString(intDiv(room, 2))), "
        "concat('anchor', toString(room)), "
        # every room's daily routine: its last 5 minutes on air sell nothing (a worst case: every
        # room is unusual against the hour before there, and its history is read)
        "if(number % {on_air:UInt64} >= {on_air:UInt64} - 5, 0, 90000 + (room * 7919 + toUInt32(minute)) % 40000), 0, "
        "if(number % {on_air:UInt64} >= {on_air:UInt64} - 5, 0, 5), 0, "
        "arrayReduce('uniqState', ['u']), now64(6) FROM (" + rows + ")", parameters=params)
    client.command(
        f"INSERT INTO {database}.gmv_minute_store SELECT minute, 'last_touch', 'live', 'live', 'public', "
        "concat('shop', toString(intDiv(room, 2))), concat('anchor', toString(room)), concat('anchor', toString(room)), "
        "1, 90000, (room + toUInt32(minute)) % 3 * 1000, 89000, 5, 0, arrayReduce('uniqState', ['u']), now64(6) "
        "FROM (" + rows + ")", parameters=params)
    client.close()
    return (start + (SYNTHETIC_DAYS - 1) * 86_400) // 60 + ON_AIR_MINUTES - 1


def synthetic(dsn: str, rooms: int) -> None:
    database = "bench_seasonal"
    t0 = time.perf_counter()
    last = fill_synthetic(dsn, database, rooms)
    print(f"filled {rooms:,} live rooms x {SYNTHETIC_DAYS} days x {ON_AIR_MINUTES} min of rollups in "
          f"{time.perf_counter() - t0:.0f} s")
    store = AlertStore(lambda: connect(dsn), database)
    off = AlertConfig.model_validate({"rules": {r: {"seasonal": False} for r in SEASONAL_RULES}})
    cases = (("a usual minute", [last - 20 * k for k in range(1, 8)]),
             ("every room's routine (unusual against the hour before)", [last] * 7))
    for name, config in (("seasonal = false", off), ("7 days of history", AlertConfig())):
        for case, minutes in cases:
            secs, fired = [], 0
            for minute in minutes:
                j = BusinessJudge(config, database)
                j.start(minute, [])
                t1 = time.perf_counter()
                lives, shops = store.series(minute - j.lookback_minutes(), minute)
                fired = len(j.judge_minutes(minute, minute, lives, shops, datetime.now(UTC),
                                            store.history(minute, minute, j.history_reach(), j.seasonal_shifts(),
                                                          j.seasonal_subjects(minute, minute, lives, shops))))
                secs.append(time.perf_counter() - t1)
            print(f"one evaluation of one minute, {len(lives):,} live rooms, {name}, {case}: median "
                  f"{sorted(secs)[3] * 1000:.0f} ms (min {min(secs) * 1000:.0f}, max {max(secs) * 1000:.0f}); "
                  f"{fired:,} alerts")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dsn", required=True)
    ap.add_argument("--database", default="gmv")
    ap.add_argument("--truth", type=Path)
    ap.add_argument("--synthetic-rooms", type=int, help="time one evaluation over this many synthetic live rooms")
    a = ap.parse_args()
    if a.synthetic_rooms:
        return synthetic(a.dsn, a.synthetic_rooms)
    if a.truth is None:
        ap.error("give --truth (a stored story) or --synthetic-rooms N")
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
