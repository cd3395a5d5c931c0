"""`gmv simulate` to JSONL, `gmv run` on it: ClickHouse equals the simulator's ground truth to the fen."""

from __future__ import annotations

import json

import pytest

from tests.integration.conftest import gmv, run_counts, sql

pytestmark = pytest.mark.integration


def test_batch_replay_of_a_simulated_story_matches_ground_truth(gmv_env, tmp_path):
    events, truth_path = tmp_path / "clip_tail.jsonl", tmp_path / "truth.json"
    gmv(gmv_env, "simulate", "--scenario", "clip_tail", "--seed", "3", "--start", "2026-11-01T00:00:00+08:00",
        "--max-messages", "25000", "--out", str(events), "--truth", str(truth_path))
    truth = json.loads(truth_path.read_text())
    counts = run_counts(gmv_env, events)
    assert counts["received"] == truth["emitted"] == 25000
    assert counts["dead_lettered"] == truth["messages"].get("malformed", 0) > 0
    assert counts["duplicates"] > 0
    db = gmv_env["GMV_CLICKHOUSE_DATABASE"]
    rows = sql(gmv_env, f"SELECT model, stage, sum(credit_fen) AS fen FROM {db}.attributed_gmv GROUP BY model, stage")
    got: dict[str, dict[str, int]] = {}
    for r in rows:
        got.setdefault(r["model"], {})[r["stage"]] = int(r["fen"])
    want = {m: {s: v for s, v in stages.items() if v != 0} for m, stages in truth["net_by_model_stage"].items()}
    got = {m: {s: v for s, v in stages.items() if v != 0} for m, stages in got.items()}
    assert got == want
    assert sum(want["linear"].values()) == truth["net_fen"] > 0
