"""Hostile input interleaved with valid events, end to end (the full 10k count: `python -m bench.hostile`)."""

from __future__ import annotations

import pytest

from gmv.tools.hostile import SQLISH, write
from tests.integration.conftest import run_counts, sql

pytestmark = pytest.mark.integration


def test_hostile_input_is_all_accounted_for_and_every_valid_event_counts(gmv_env, tmp_path):
    path = tmp_path / "hostile.jsonl"
    expected = write(path, count=1500, seed=29)
    assert len(expected["kinds"]) >= 15  # every kind of hostile input is in the mix
    counts = run_counts(gmv_env, path)  # exits 0: no crash, and the counts balance
    assert counts["received"] == expected["hostile"] + expected["valid"]
    assert counts["accepted"] == expected["valid"]
    assert counts["dead_lettered"] == expected["hostile"]
    assert counts["duplicates"] == 0
    db = gmv_env["GMV_CLICKHOUSE_DATABASE"]
    dead = sql(gmv_env, f"SELECT count() AS n, countIf(reason = '') AS no_reason FROM {db}.dead_letters")[0]
    assert int(dead["n"]) == expected["hostile"] and int(dead["no_reason"]) == 0
    # SQL-looking ids are data: stored literally, the tables intact.
    stored = {r["event_id"] for r in sql(gmv_env, f"SELECT event_id FROM {db}.events WHERE event_id NOT LIKE 'ok-%'")}
    assert any(e.startswith(SQLISH[0]) for e in stored)
    assert int(sql(gmv_env, f"SELECT count() AS n FROM {db}.attributed_gmv")[0]["n"]) > 0
