"""The plain story pages no one: the whole `mixed` story (as `gmv demo` tells it, at its demo scale)
replayed with `gmv run`, every business rule judged over every minute of it, stores no alert of a rule
the story plans no incident for, and nothing critical."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.integration.conftest import ROOT, fresh_env, gmv, own_engine, parse_run_json, sql_rows

pytestmark = pytest.mark.integration

START = "2026-11-20T00:00:00+08:00"


def test_the_whole_mixed_story_fires_no_live_or_refund_alert_and_nothing_critical(backend, tmp_path):
    env = own_engine(fresh_env(backend), tmp_path / "data")
    events = tmp_path / "mixed.jsonl"
    subprocess.run([sys.executable, "-m", "gmv.tools.simulator", "--scenario", "mixed", "--scale", "4", "--start",
                    START, "--out", str(events)], env=env, cwd=ROOT, check=True, timeout=300, capture_output=True)
    run = parse_run_json(gmv(env, "run", "--events", str(events), "--json", "--quiet", timeout=900,
                             process=True).stdout)
    assert run["accepted"] > 300_000  # the whole story, its three days
    db = env["GMV_CLICKHOUSE_DATABASE"]
    alerts = sql_rows(gmv(env, "sql", f"SELECT rule, severity, subject_id, message FROM {db}.alerts",
                          "--format", "json", process=True).stdout)
    # shop_score_drop (a warning): two shops' 商号体验分 is below 3.5 on the story's first day, as the
    # README says; the rules of rooms and refunds, which the story plans no incident for, stay quiet
    assert [a for a in alerts if a["rule"] != "shop_score_drop"] == []
    assert [a for a in alerts if a["severity"] == "critical"] == []
