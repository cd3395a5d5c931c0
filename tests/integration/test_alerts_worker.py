"""The evaluator inside `gmv worker`: receivers down for a while stall nothing and get every alert
once back; pipeline alerts a previous run left firing resolve at the next start."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from gmv.tools.embedded import free_port
from tests.integration.conftest import ROOT, gmv, own_engine, sql
from tests.support.alertmanager import Alertmanager, WebhookRecorder
from tests.support.waiting import wait_for, worker_stats

pytestmark = pytest.mark.integration

START = "2026-11-20T00:00:00+08:00"
# Long enough for several failed deliveries per receiver (GMV_ALERT_RETRY_MAX_S=2 below); the 30 s
# this test once waited showed nothing more, the backoff is capped at that maximum.
DOWN_S = 10.0

STALE = r'''
import sys
from datetime import UTC, datetime, timedelta
from gmv.alerts.model import Alert, Evidence
from gmv.alerts.store import AlertStore
from gmv.sinks.clickhouse import connect
from gmv.sinks.migrations import migrate
from gmv.streams.settings import Settings

s = Settings()
client = connect(s.resolved_clickhouse_dsn, s.clickhouse_password)
migrate(client, s.clickhouse_database)
t = datetime.now(UTC) - timedelta(hours=1)
stale = Alert("sink_failing", "critical", "pipeline", "worker-0", 40, 30, t - timedelta(seconds=40), t, "wall", t,
              "left firing by a run that crashed", Evidence("SELECT 1"))
AlertStore(lambda: client, s.clickhouse_database).write([stale])
client.close()
print(stale.alert_id)
'''


def test_receivers_down_stall_nothing_and_get_every_alert_when_back(gmv_env, tmp_path: Path):
    env = own_engine(gmv_env, tmp_path / "data")  # the worker process opens the engine
    db, prefix = env["GMV_CLICKHOUSE_DATABASE"], env["GMV_TOPIC_PREFIX"]
    stale_id = subprocess.run([sys.executable, "-c", STALE], env=env, cwd=ROOT, check=True, capture_output=True,
                              text=True, timeout=120).stdout.strip().splitlines()[-1]
    rules = tmp_path / "rules.toml"
    rules.write_text("evaluation_interval_s = 1\n")
    hook = WebhookRecorder()  # both receivers down: nothing listens on their ports yet
    am_hook = WebhookRecorder().start()
    am = Alertmanager(tmp_path / "am", am_hook.url("/am"))
    env.update({"GMV_ALERT_RULES": str(rules), "GMV_ALERTMANAGER_URL": am.url,
                "GMV_ALERT_WEBHOOK_URL": hook.url("/hook"), "GMV_ALERT_RETRY_MAX_S": "2", "GMV_ALERT_MIN_FIRING_S": "3"})
    truth_path = tmp_path / "truth.json"
    subprocess.run([sys.executable, "-m", "gmv.tools.simulator", "--scenario", "incidents", "--start", START,
                    "--kafka", env["GMV_KAFKA_BOOTSTRAP_SERVERS"], "--topic-prefix", prefix, "--rate", "50000",
                    "--incident-pause", "0", "--truth", str(truth_path)], env=env, cwd=ROOT, check=True, timeout=300,
                   capture_output=True)
    sent = sum(n for kind, n in json.loads(truth_path.read_text())["messages"].items() if kind != "pause")
    port = free_port()
    down_since = time.monotonic()
    worker = subprocess.Popen([sys.executable, "-m", "gmv.tools.cli", "worker", "--web-port", str(port)], env=env,
                              cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        def consumed() -> bool:
            assert worker.poll() is None, worker.stderr.read()
            stats = worker_stats(port) or {}
            return stats.get("counters", {}).get("received", 0) >= sent and stats.get("lag") == 0

        # the whole backlog is ingested, and the business alerts are stored, while both receivers are down
        wait_for(consumed, 240, "the worker to ingest everything with its receivers down", poll_s=0.5)
        business = wait_for(lambda: sql(env, f"SELECT alert_id, state FROM {db}.alerts WHERE clock = 'event'"
                                             " AND state = 'resolved'"), 60, "the business alerts", poll_s=0.5)
        assert not hook.bodies
        receivers = wait_for(lambda: {k: v for k, v in (worker_stats(port) or {})["alerts"]["receivers"].items()
                                      if v["failures"] > 0}, 30, "the stats to show the receivers failing")
        assert all(v["queued"] > 0 and v["delivered"] == 0 for v in receivers.values()) and len(receivers) == 2
        time.sleep(max(0.0, DOWN_S - (time.monotonic() - down_since)))  # the outage lasts DOWN_S
        hook.start()
        am.start()
        ids = {r["alert_id"] for r in business}

        def delivered() -> bool:
            got = {(a["labels"]["alert_id"], a["status"]) for a in hook.alerts("/hook")}
            return all((i, s) in got for i in ids for s in ("firing", "resolved"))

        wait_for(delivered, 60, "the webhook to get every queued alert change", poll_s=0.5)
        # they fired and resolved while Alertmanager was down: it still gets each as firing (for
        # GMV_ALERT_MIN_FIRING_S), so on-call is paged for it, and resolves it when that passes
        wait_for(lambda: {a["labels"]["alert_id"] for a in am_hook.alerts("/am") if a["status"] == "firing"} >= ids,
                 60, "Alertmanager to page for every queued alert")
        wait_for(lambda: {a["labels"]["alert_id"] for a in am_hook.alerts("/am") if a["status"] == "resolved"} >= ids,
                 60, "Alertmanager to resolve them")
        def stale_state() -> str:
            out = gmv(env, "sql", f"SELECT state FROM {db}.alerts WHERE alert_id = {{id:String}}", "--param",
                      f"id={stale_id}").stdout.strip()
            return out if out == "resolved" else ""

        wait_for(stale_state, 30, "the pipeline alert left firing by an earlier run to resolve", poll_s=0.5)
    finally:
        worker.send_signal(signal.SIGINT)
        worker.wait(60)
        hook.stop()
        am.stop()
        am_hook.stop()
    assert worker.returncode == 0, worker.stderr.read()[-3000:]
