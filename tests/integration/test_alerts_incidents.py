"""The incidents preset through the real broker, ClickHouse and Alertmanager: exactly the expected
alerts, each in time, once, resolved; a replay of the same events fires the same business alert ids,
and a second replay adds none."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
from kafka import KafkaConsumer

from gmv.alerts.rules import AlertConfig
from gmv.tools.embedded import free_port
from tests.integration.conftest import (
    ROOT,
    fresh_env,
    gmv,
    own_engine,
    parse_run_json,
    sql,
)
from tests.support.alertmanager import WebhookRecorder
from tests.support.waiting import wait_for

pytestmark = pytest.mark.integration

RULES = """
evaluation_interval_s = 1
[rules.dead_letter_rate]
window_s = 10
[rules.consumer_lag]
max_age_s = 4
"""
MINUTE_MS = 60_000
LIVE_RULE_WINDOW = {"live_no_orders": AlertConfig().rules.live_no_orders.minutes,
                    "live_gmv_drop": AlertConfig().rules.live_gmv_drop.window_minutes,
                    "refund_spike": AlertConfig().rules.refund_spike.window_minutes}
ALERT_COLUMNS = ("alert_id, rule, subject_kind, subject_id, state, clock, toUnixTimestamp64Milli(window_start) AS ws, "
                 "toUnixTimestamp64Milli(window_end) AS we, toUnixTimestamp64Milli(resolved_window_end) AS rwe, "
                 "toUnixTimestamp64Milli(fired_at) AS fired, message, query")


def _expected_subject(a: dict, prefix: str) -> tuple[str, str]:
    if a["rule"] == "dead_letter_rate":
        return a["rule"], f"{prefix}views"
    if a["rule"] == "consumer_lag":
        return a["rule"], "worker-0"
    return a["rule"], a["subject_id"]


def test_the_incidents_demo_fires_exactly_the_expected_alerts_in_time_once_pages_each_and_resolves(
        backend, tmp_path, receivers):
    """`gmv demo --scenario incidents` as a user runs it, with a real Alertmanager routed to a webhook:
    the story ends and the demo says so, its alerts reconcile with the truth's expected alerts, every
    alert reaches Alertmanager's receiver as firing, every alert's query runs from a shell as printed,
    and a rerun with nothing left to send says so and reconciles again."""
    recorder, am = receivers
    data_dir = tmp_path / "demo"
    env = own_engine(fresh_env(backend), data_dir)
    env.update({"GMV_ALERT_RULES": str(tmp_path / "rules.toml"), "GMV_ALERTMANAGER_URL": am.url,
                "GMV_ALERT_WEBHOOK_URL": recorder.url("/hook"), "GMV_ALERT_RESEND_S": "2",
                "GMV_ALERT_MIN_FIRING_S": "3"})
    (tmp_path / "rules.toml").write_text(RULES)
    # kept serving once reconciled: the questions below go to it (the alerts' own commands at once)
    out_path, err_path = tmp_path / "demo.out", tmp_path / "demo.err"
    with open(out_path, "w") as out_fh, open(err_path, "w") as err_fh:
        demo = subprocess.Popen([sys.executable, "-m", "gmv.tools.cli", "demo", "--scenario", "incidents", "--rate",
                                 "3000", "--incident-pause", "10", "--keep-serving", "--web-port", str(free_port())],
                                env=env, cwd=ROOT, stdout=out_fh, stderr=err_fh, text=True, start_new_session=True)
    try:
        wait_for(lambda: "the dashboard stays up" in err_path.read_text() or demo.poll() is not None, 400,
                 "the demo to end its story, reconcile and serve", poll_s=0.5)
        stdout, stderr = out_path.read_text(), err_path.read_text()
        assert demo.poll() is None, (stdout + stderr)[-4000:]
        rows = _check_the_demo(env, stdout, stderr, data_dir, recorder)
    finally:
        if demo.poll() is None:
            os.killpg(demo.pid, signal.SIGINT)
            try:
                demo.wait(90)
            except subprocess.TimeoutExpired:
                os.killpg(demo.pid, signal.SIGKILL)
                demo.wait()
    assert demo.returncode == 0, err_path.read_text()[-3000:]  # Ctrl-C ends a serving demo cleanly
    truth = json.loads((data_dir / "demo-truth.json").read_text())

    # a rerun has nothing left to send: it says so, and reconciles what is stored again
    again = gmv(env, "demo", "--web-port", str(free_port()), timeout=300, check=False)
    assert again.returncode == 0, (again.stdout + again.stderr)[-3000:]
    assert "sent in full by earlier runs" in again.stderr and "reconciliation: MATCH" in again.stdout

    # a replay of the same events: the same business alert ids; a second replay adds none
    events = tmp_path / "incidents.jsonl"
    subprocess.run([sys.executable, "-m", "gmv.tools.simulator", "--scenario", "incidents", "--start", truth["start"],
                    "--out", str(events)], env=env, cwd=ROOT, check=True, timeout=120, capture_output=True)
    replay_env = fresh_env(backend)
    first_run = parse_run_json(gmv(replay_env, "run", "--events", str(events), "--json", "--quiet").stdout)
    business = {r["alert_id"] for r in rows if r["clock"] == "event"}
    assert {a["alert_id"] for a in first_run["alerts"] if a["state"] == "firing"} == business
    replay_db = replay_env["GMV_CLICKHOUSE_DATABASE"]
    assert {r["alert_id"] for r in sql(replay_env, f"SELECT alert_id FROM {replay_db}.alerts")} == business
    stored = sql(replay_env, f"SELECT count() AS n FROM {replay_db}.alerts_store")[0]["n"]
    second_run = parse_run_json(gmv(replay_env, "run", "--events", str(events), "--json", "--quiet").stdout)
    assert second_run["alerts"] == []
    assert sql(replay_env, f"SELECT count() AS n FROM {replay_db}.alerts_store")[0]["n"] <= stored  # no row written
    assert {r["alert_id"] for r in sql(replay_env, f"SELECT alert_id FROM {replay_db}.alerts")} == business


def _check_the_demo(env: dict[str, str], stdout: str, stderr: str, data_dir: Path,
                    recorder: WebhookRecorder) -> list[dict]:
    """What the serving demo printed, stored and sent; returns its alerts as gmv.alerts holds them."""
    out = stdout + stderr
    assert "the scenario's story ended after" in stderr, stderr[-2000:]
    assert "reconciliation: alerts MATCH: 5 expected" in stdout, stdout[-2000:]
    assert "\x1b[" not in out and "\b" not in out  # no terminal escapes in a command's output
    prefix, db = env["GMV_TOPIC_PREFIX"], env["GMV_CLICKHOUSE_DATABASE"]

    truth = json.loads((data_dir / "demo-truth.json").read_text())
    expected = Counter(_expected_subject(a, prefix) for a in truth["expected_alerts"])
    assert len(expected) == 5  # the preset's five incidents, every one sent in full
    rows = sql(env, f"SELECT {ALERT_COLUMNS} FROM {db}.alerts ORDER BY we")
    # exactly the expected alerts, each once, each resolved: nothing spurious, nothing again in its cooldown
    assert Counter((r["rule"], r["subject_id"]) for r in rows) == expected
    assert all(r["state"] == "resolved" for r in rows), rows
    by_rule = {r["rule"]: r for r in rows}
    for a in truth["expected_alerts"]:
        if a["clock"] != "event":
            continue
        r = by_rule[a["rule"]]
        window = LIVE_RULE_WINDOW[a["rule"]] * MINUTE_MS
        # fired within two evaluation periods (event-time minutes) of the first window the incident fills
        assert a["starts_at_ms"] < r["we"] <= a["starts_at_ms"] + window + 2 * MINUTE_MS, (a, r)
        # resolved within two minutes of the first window clear of the incident
        assert a["ends_at_ms"] < r["rwe"] <= a["ends_at_ms"] + window + 2 * MINUTE_MS, (a, r)
        assert r["query"].startswith("gmv sql ") and r["message"]
    # the dead letters were noticed within two evaluation periods of the burst being stored
    dl = by_rule["dead_letter_rate"]
    first = sql(env, f"SELECT toUnixTimestamp64Milli(received_at) AS t FROM {db}.dead_letters "
                     f"WHERE source_topic = '{prefix}views' ORDER BY received_at LIMIT 1 OFFSET 99")[0]["t"]
    assert dl["fired"] - first <= 2 * 1000 + 1000  # 2 samples of 1 s, plus the write that counts them

    # every alert reached Alertmanager's receiver as firing (on-call was paged), and resolved
    paged = lambda: {a["labels"]["alert_id"] for a in recorder.alerts("/am") if a["status"] == "firing"}  # noqa: E731
    wait_for(lambda: paged() >= {r["alert_id"] for r in rows}, 30, "a firing notification of every alert")
    wait_for(lambda: {a["labels"]["alert_id"] for a in recorder.alerts("/am") if a["status"] == "resolved"}
             >= {r["alert_id"] for r in rows}, 60, "a resolved notification of every alert")
    # the plain webhook got every change; the topic carries them
    hooked = Counter((a["labels"]["alert_id"], a["status"]) for a in recorder.alerts("/hook"))
    for r in rows:
        assert hooked[(r["alert_id"], "firing")] >= 1 and hooked[(r["alert_id"], "resolved")] >= 1, r
    consumer = KafkaConsumer(f"{prefix}alerts", bootstrap_servers=env["GMV_KAFKA_BOOTSTRAP_SERVERS"],
                             auto_offset_reset="earliest", consumer_timeout_ms=5000)
    on_topic = {(json.loads(m.value)["alert_id"], json.loads(m.value)["state"]) for m in consumer}
    consumer.close()
    assert on_topic == {(r["alert_id"], s) for r in rows for s in ("firing", "resolved")}

    # the numbers behind each alert: its query, run from a shell exactly as printed (all at once: the
    # serving demo answers them), answers with rows
    shell_env = {**env, "PATH": f"{Path(sys.executable).parent}:{env.get('PATH', '')}"}
    shells = [(r, subprocess.Popen(["bash", "-c", r["query"]], env=shell_env, cwd=ROOT, stdout=subprocess.PIPE,
                                   stderr=subprocess.PIPE, text=True)) for r in rows]
    for r, shell in shells:
        out_text, err_text = shell.communicate(timeout=60)
        assert shell.returncode == 0, (r["rule"], r["query"], err_text)
        assert sum("│" in line for line in out_text.splitlines()) >= 1, (r["rule"], out_text)  # rows
    return rows
