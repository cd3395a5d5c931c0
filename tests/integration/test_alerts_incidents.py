"""The incidents preset through the real broker, ClickHouse and Alertmanager: exactly the expected
alerts, each in time, once, resolved; a replay of the same events fires the same business alert ids,
and a second replay adds none."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
from kafka import KafkaConsumer

from gmv.alerts.rules import AlertConfig
from gmv.tools.embedded import free_port
from tests.integration.conftest import ROOT, fresh_env, gmv, parse_run_json, sql
from tests.support.alertmanager import Alertmanager, WebhookRecorder
from tests.support.waiting import wait_for, worker_stats
from tests.support.web import get_json

pytestmark = pytest.mark.integration

START = "2026-11-20T00:00:00+08:00"
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


@pytest.fixture
def receivers(tmp_path: Path):
    rec = WebhookRecorder().start()
    am = Alertmanager(tmp_path / "am", rec.url("/am")).start()
    yield rec, am
    am.stop()
    rec.stop()


def test_the_incidents_fire_exactly_the_expected_alerts_in_time_once_and_resolve(backend, tmp_path, receivers):
    recorder, am = receivers
    env = fresh_env(backend)
    rules = tmp_path / "rules.toml"
    rules.write_text(RULES)
    prefix, db = env["GMV_TOPIC_PREFIX"], env["GMV_CLICKHOUSE_DATABASE"]
    env.update({"GMV_ALERT_RULES": str(rules), "GMV_ALERTMANAGER_URL": am.url,
                "GMV_ALERT_WEBHOOK_URL": recorder.url("/hook"), "GMV_ALERT_RESEND_S": "2"})
    port = free_port()
    worker = subprocess.Popen([sys.executable, "-m", "gmv.tools.cli", "worker", "--web-port", str(port)], env=env,
                              cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    truth_path = tmp_path / "truth.json"
    try:
        wait_for(lambda: (worker.poll() is None or pytest.fail(worker.stderr.read()))
                 and (worker_stats(port) or {}).get("partitions"), 90, "the worker to own its partitions", poll_s=0.5)
        subprocess.run([sys.executable, "-m", "gmv.tools.simulator", "--scenario", "incidents", "--start", START,
                        "--kafka", env["GMV_KAFKA_BOOTSTRAP_SERVERS"], "--topic-prefix", prefix, "--rate", "1500",
                        "--incident-pause", "10", "--truth", str(truth_path)], env=env, cwd=ROOT, check=True,
                       timeout=400, capture_output=True)
        truth = json.loads(truth_path.read_text())
        expected = Counter(_expected_subject(a, prefix) for a in truth["expected_alerts"])
        assert len(expected) == 5  # the preset's five incidents, every one sent in full

        def all_resolved() -> list[dict]:
            assert worker.poll() is None, worker.stderr.read()
            rows = sql(env, f"SELECT {ALERT_COLUMNS} FROM {db}.alerts ORDER BY we")
            got = Counter((r["rule"], r["subject_id"]) for r in rows)
            return rows if set(got) >= set(expected) and all(r["state"] == "resolved" for r in rows) else []

        rows = wait_for(all_resolved, 180, "every expected alert to fire and resolve", poll_s=1.0)
        panel = get_json(port, "/gmv/dashboard/data/?model=last_touch", env)["alerts"]  # its SQL on the real engine
        assert {(a["id"], a["rule"], a["state"]) for a in panel} == {(r["alert_id"], r["rule"], "resolved")
                                                                      for r in rows}
    finally:
        worker.send_signal(signal.SIGINT)
        worker.wait(60)
    assert worker.returncode == 0, worker.stderr.read()[-3000:]

    # exactly the expected alerts, each once: nothing spurious, nothing again within its cooldown
    assert Counter((r["rule"], r["subject_id"]) for r in rows) == expected
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

    # the plain webhook got every change; the topic carries them; Alertmanager took them and notified
    hooked = Counter((a["labels"]["alert_id"], a["status"]) for a in recorder.alerts("/hook"))
    for r in rows:
        assert hooked[(r["alert_id"], "firing")] >= 1 and hooked[(r["alert_id"], "resolved")] >= 1, r
    consumer = KafkaConsumer(f"{prefix}alerts", bootstrap_servers=env["GMV_KAFKA_BOOTSTRAP_SERVERS"],
                             auto_offset_reset="earliest", consumer_timeout_ms=5000)
    on_topic = {(json.loads(m.value)["alert_id"], json.loads(m.value)["state"]) for m in consumer}
    consumer.close()
    assert on_topic == {(r["alert_id"], s) for r in rows for s in ("firing", "resolved")}
    assert am.received("firing") >= len(rows) and am.received("resolved") >= len(rows)
    notified = {(a["labels"]["alert_id"], a["status"]) for a in wait_for(
        lambda: [a for a in recorder.alerts("/am") if a["labels"]["alertname"] == "dead_letter_rate" and a["status"] == "resolved"], 30, "Alertmanager's resolved notification")}
    assert (dl["alert_id"], "resolved") in notified
    assert any(a["labels"]["alert_id"] == dl["alert_id"] and a["status"] == "firing" for a in recorder.alerts("/am"))

    # a replay of the same events: the same business alert ids; a second replay adds none
    events = tmp_path / "incidents.jsonl"
    subprocess.run([sys.executable, "-m", "gmv.tools.simulator", "--scenario", "incidents", "--start", START,
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
