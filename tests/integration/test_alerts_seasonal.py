"""The routines preset through the real broker, ClickHouse and Alertmanager: two weeks of daily
routines (a warm-up without orders, a flash sale then GMV falling back, a room off air for a break,
a morning refund batch) and three incidents on the last days. Judged from day 8, once a week of
history exists, every planned incident pages and no routine does; the first days page for the
routines while the seasonal baselines' history is short, and say so."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from datetime import datetime

import pytest

from gmv.tools.embedded import free_port
from tests.integration.conftest import ROOT, fresh_env, gmv, own_engine, parse_run_json, sql
from tests.support.waiting import wait_for

pytestmark = pytest.mark.integration

RULES = "evaluation_interval_s = 1\n"
SEASONAL = ("live_gmv_drop", "live_no_orders", "refund_spike")


def _ms(iso: str) -> int:
    return int(datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp() * 1000)


def test_judged_from_day_eight_every_planned_incident_pages_and_no_daily_routine_does(backend, tmp_path, receivers):
    recorder, am = receivers
    data_dir = tmp_path / "demo"
    env = own_engine(fresh_env(backend), data_dir)
    (tmp_path / "rules.toml").write_text(RULES)
    env.update({"GMV_ALERT_RULES": str(tmp_path / "rules.toml"), "GMV_ALERTMANAGER_URL": am.url,
                "GMV_ALERT_RESEND_S": "2", "GMV_ALERT_MIN_FIRING_S": "3"})
    demo = gmv(env, "demo", "--scenario", "routines", "--rate", "6000", "--web-port", str(free_port()),
               timeout=900, check=False, process=True)
    out = demo.stdout + demo.stderr
    # every reconciliation line MATCHes: GMV, trust scores (a review once judged an orphan while its
    # order was on its way to a caught-up topic made them miss by ~1e-3), markov and alerts
    assert demo.returncode == 0 and "reconciliation: MATCH: net GMV" in demo.stdout, out[-4000:]
    truth = json.loads((data_dir / "demo-truth.json").read_text())
    judged_from = truth["alerts_judged_from_ms"]
    expected = Counter((a["rule"], a["subject_id"]) for a in truth["expected_alerts"])
    assert sum(expected.values()) == 5 and {r for r, _ in expected} == set(SEASONAL)  # three incidents
    # gmv demo reconciles the alerts with the truth: a routine that pages would be a MISMATCH
    assert "reconciliation: alerts MATCH: 5 expected" in demo.stdout, out[-4000:]
    assert "while the seasonal baselines' history was built, not compared" in demo.stdout

    db = env["GMV_CLICKHOUSE_DATABASE"]
    rows = sql(env, f"SELECT alert_id, rule, subject_id, message, toUnixTimestamp64Milli(window_end) AS we "
                    f"FROM {db}.alerts WHERE clock = 'event'")
    judged = [r for r in rows if r["we"] >= judged_from and r["rule"] in SEASONAL]
    assert Counter((r["rule"], r["subject_id"]) for r in judged) == expected
    assert all("the same minutes on the previous 7 days" in r["message"] for r in judged), judged
    # before, the routines paged while the history was short, and the alerts said so
    learning = [r for r in rows if r["we"] < judged_from and r["rule"] in SEASONAL]
    assert {r["rule"] for r in learning} == set(SEASONAL)
    assert all("no seasonal baseline yet" in r["message"] for r in learning), learning

    # Alertmanager's receiver was paged for exactly the planned incidents of the judged days
    def paged() -> Counter:
        return Counter((a["labels"]["alertname"], a["labels"]["subject_id"]) for a in recorder.alerts("/am")
                       if a["status"] == "firing" and a["annotations"]["clock"] == "event"
                       and _ms(a["annotations"]["window_end"]) >= judged_from)
    wait_for(lambda: set(paged()) >= set(expected), 60, "Alertmanager to page for every planned incident")
    assert set(paged()) == set(expected)

    # a replay of the stored rollups (a fresh judge catching up a day at a time, in a process of its
    # own) fires the same alert_ids as the demo's worker did while the story streamed in
    replay = subprocess.run([sys.executable, "-m", "tests.support.rejudge", env["GMV_CLICKHOUSE_DSN"], db], env=env,
                            cwd=ROOT, capture_output=True, text=True, timeout=300, check=True)
    assert set(json.loads(replay.stdout)) == {r["alert_id"] for r in rows if r["rule"] in SEASONAL}

    # and a replay of the same events with `gmv run` (which catches up at most 7 days back: the judged
    # days) fires the same alert_ids there
    events = tmp_path / "routines.jsonl"
    subprocess.run([sys.executable, "-m", "gmv.tools.simulator", "--scenario", "routines", "--start", truth["start"],
                    "--out", str(events)], env=env, cwd=ROOT, check=True, timeout=300, capture_output=True)
    replayed = parse_run_json(gmv(fresh_env(backend), "run", "--events", str(events), "--json", "--quiet",
                                  timeout=600).stdout)
    assert {a["alert_id"] for a in replayed["alerts"] if a["state"] == "firing" and a["rule"] in SEASONAL
            and _ms(a["window_end"]) >= judged_from} == {r["alert_id"] for r in judged}
