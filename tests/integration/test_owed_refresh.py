"""The slow refresh a worker owed when it was killed is done by the next start.

A fast refresh writes the journal marks once ClickHouse holds the records' rows and their minute
rollups, after recording in ``refresh_owed`` what the slow refresh (markov credits, levels, trust
scores) still owes for them (``gmv.sinks.owed``). Killed there, the worker leaves records confirmed (a
restart re-emits nothing of theirs) and their slow work undone: the next start takes it up.
"""

from __future__ import annotations

import json
import signal
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from gmv.streams.faults import EXIT_CODE
from gmv.tools.sample import write_sample
from tests.integration.conftest import fresh_env, gmv, own_engine, run_counts, sql, sql_rows
from tests.integration.test_crash_rerun import SNAPSHOTS
from tests.support.faulty_worker import start_faulty_worker
from tests.support.producing import produce_events
from tests.support.waiting import wait_for, worker_stats

pytestmark = pytest.mark.integration

# What the slow refresh writes beside SNAPSHOTS' credits, markov models, scores and turns: the levels.
LEVELS = {
    "gmv_day": "SELECT toString(day) AS d, model, stage, sum(gmv_fen) AS g, sum(refund_fen) AS r, sum(orders) AS o "
               "FROM {db}.gmv_day GROUP BY d, model, stage ORDER BY d, model, stage",
    "funnel_hour": "SELECT toString(hour) AS h, stage, sum(views) AS v, sum(engaged_views) AS e "
                   "FROM {db}.funnel_hour GROUP BY h, stage ORDER BY h, stage",
}
OPEN = "SELECT count() AS n FROM {db}.refresh_owed WHERE closed = 0"


def _snapshots(env: dict[str, str]) -> dict[str, list[dict]]:
    db = env["GMV_CLICKHOUSE_DATABASE"]
    return {name: sql_rows(gmv(env, "sql", q.format(db=db), "--format", "json").stdout)
            for name, q in {**SNAPSHOTS, **LEVELS}.items()}


def _shifted(src: Path, dst: Path, tag: str, days: int) -> None:
    """``src``'s events on another day, under ids of their own."""
    out = []
    for line in src.read_text().splitlines():
        e = json.loads(line)
        e["event_id"] = f"{tag}-{e['event_id']}"
        if "order_id" in e:
            e["order_id"] = f"{tag}-{e['order_id']}"
        e["event_time"] = (datetime.fromisoformat(e["event_time"]) + timedelta(days=days)).isoformat()
        out.append(json.dumps(e))
    dst.write_text("\n".join(out) + "\n")


def test_a_worker_killed_after_marks_that_owe_the_slow_refresh_leaves_it_to_the_next_start(backend, tmp_path):
    first, later = tmp_path / "first.jsonl", tmp_path / "later.jsonl"
    write_sample(first, events=300, bad_per_kind=0)
    _shifted(first, later, "later", days=3)  # days the first events' slow work does not cover
    clean = fresh_env(backend)
    run_counts(clean, first)
    run_counts(clean, later)
    want = _snapshots(clean)
    assert want["credits"] and want["markov"] and want["scores"] and want["gmv_day"] and want["funnel_hour"]

    env = own_engine(fresh_env(backend), tmp_path / "data")
    env["GMV_FAULT_CRASH_AT"] = "after_owed_marks:1"
    env["GMV_ATTRIBUTION_DELAY"] = "100ms"  # orders attributed (their marks due) well within the slow interval
    worker, port = start_faulty_worker(env, tmp_path / "never-down")
    head, rest = tmp_path / "head.jsonl", tmp_path / "rest.jsonl"
    lines = first.read_text().splitlines(keepends=True)
    head.write_text(lines[0])
    rest.write_text("".join(lines[1:]))
    try:
        # The first refresh of a run is a slow one (none ran yet): once it is done, the rest's refreshes
        # come within the slow interval (5 s), and the first of them with marks due owes the slow work.
        produce_events(env["GMV_KAFKA_BOOTSTRAP_SERVERS"], env["GMV_TOPIC_PREFIX"], head)
        wait_for(lambda: (s := worker_stats(port) or {}).get("counters", {}).get("accepted", 0) >= 1
                 and s.get("refresh_pending") is False, 60, "the first event stored and refreshed")
        produce_events(env["GMV_KAFKA_BOOTSTRAP_SERVERS"], env["GMV_TOPIC_PREFIX"], rest)
        out, err = worker.communicate(timeout=120)  # a bound against hanging, not a timing measurement
    finally:
        if worker.poll() is None:
            worker.send_signal(signal.SIGKILL)
            worker.wait()
    assert worker.returncode == EXIT_CODE, err[-2000:]
    del env["GMV_FAULT_CRASH_AT"], env["GMV_ATTRIBUTION_DELAY"]
    db = env["GMV_CLICKHOUSE_DATABASE"]
    assert sql(env, OPEN.format(db=db))[0]["n"] >= 1  # killed with the first events' slow work owed

    # The next start: whatever of the first events was not stored, the later ones, and what was owed.
    run_counts(env, later)
    assert _snapshots(env) == want
    assert sql(env, OPEN.format(db=db))[0]["n"] == 0
