"""The production stack without Docker: Grafana's panels on the real engine, a real Prometheus
scraping a real worker, the alert rules under promtool, and `docker compose config` where the
compose plugin exists.

- Every ClickHouse panel of deploy/grafana/dashboards/gmv.json runs, expanded as the Grafana
  ClickHouse plugin expands it over the dashboard's default range (the last 7 days), through
  `gmv sql` on the session's serving `gmv demo` data set, and returns rows; the KPIs and the per-minute
  panels equal SQL on the facts.
- Debian's `prometheus`, started here on loopback with a config of its own (the repo's rules
  loaded), scrapes `gmv worker`'s /metrics while a file is produced to it; its per-topic counters
  equal what `gmv run` reports for the same file, and every Prometheus panel of the dashboard
  evaluates without error.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import urllib.error
import urllib.parse
import urllib.request
from datetime import UTC, datetime, timedelta

import pytest

from gmv.dashboards.grafana import dashboard, expand, panel_queries
from gmv.streams.settings import Settings
from gmv.tools.embedded import free_port
from gmv.tools.run import produce_file
from gmv.tools.sample import write_sample
from tests.integration.conftest import ROOT, fresh_env, gmv, own_engine, run_counts, sql
from tests.support.prometheus import Prometheus
from tests.support.waiting import wait_for, worker_stats

pytestmark = pytest.mark.integration
PROM_DIR = ROOT / "deploy" / "prometheus"


def binary(*names: str) -> str:
    for name in names:
        if shutil.which(name):
            return shutil.which(name)  # type: ignore[return-value]
    pytest.fail(f"{names[0]} is needed: apt-get install prometheus (.ci/run does)")


# -- Grafana ----------------------------------------------------------------------------------------
def grafana_queries(model: str = "linear") -> list[tuple[str, str, str]]:
    """(title, refId, SQL as the plugin would send it) for the dashboard's default range, now."""
    to = datetime.now(UTC)
    start = to - timedelta(days=7)
    assert dashboard()["time"] == {"from": "now-7d", "to": "now"}
    interval_s = max(1, int((to - start).total_seconds() / 1000))  # ~1,000 points, as Grafana picks
    return [(title, ref, expand(q, {"database": "gmv", "model": model}, start, to, interval_s))
            for title, ref, q in panel_queries(dashboard(), "grafana-clickhouse-datasource")]


def test_every_grafana_panel_query_returns_rows_on_demo_data(demo_data):
    env = demo_data["env"]
    queries = grafana_queries()
    assert len(queries) >= 13
    empty = []
    for title, ref, query in queries:
        proc = gmv(env, "sql", query, "--format", "json", check=False)
        assert proc.returncode == 0, f"{title} ({ref}) failed:\n{query}\n{proc.stderr}"
        if not json.loads(proc.stdout):
            empty.append(f"{title} ({ref})")
    assert not empty, f"panels with no rows on demo data: {empty}"


def test_grafana_kpis_and_minutes_equal_the_facts(demo_data):
    env = demo_data["env"]
    by_title = {(title, ref): q for title, ref, q in grafana_queries("linear")}
    kpis = sql(env, next(q for (t, _), q in by_title.items() if t.startswith("核心指标")))[0]
    facts = sql(env, "SELECT sumIf(credit_fen, kind = 'paid') AS paid, -sumIf(credit_fen, kind = 'refund') AS refunds, "
                     "uniqExactIf(order_id, kind = 'paid') AS orders FROM gmv.attributed_gmv WHERE model = 'linear' "
                     "AND event_time >= now() - INTERVAL 7 DAY")
    paid, refunds, orders = int(facts[0]["paid"]), int(facts[0]["refunds"]), int(facts[0]["orders"])
    assert paid > 0 and orders > 0
    assert round(float(kpis["GMV ¥"]) * 100) == paid
    assert round(float(kpis["退款 refunds ¥"]) * 100) == refunds
    assert int(kpis["订单 orders"]) == orders
    minutes = sql(env, by_title[next(k for k in by_title if k[0].startswith("每分钟GMV") and k[1] == "A")])
    assert round(sum(float(r["paid ¥"]) for r in minutes) * 100) == paid
    assert {r["stage"] for r in minutes} >= {"short_video", "live", "clip"}


# -- Prometheus ---------------------------------------------------------------------------------------
def test_promtool_passes_the_alert_rule_tests():
    promtool = binary("promtool")
    check = subprocess.run([promtool, "check", "rules", "rules.yml"], cwd=PROM_DIR, capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
    assert "SUCCESS: 7 rules found" in check.stdout
    tested = subprocess.run([promtool, "test", "rules", "rules_test.yml"], cwd=PROM_DIR, capture_output=True,
                            text=True, timeout=120)
    assert tested.returncode == 0, tested.stdout + tested.stderr
    assert "SUCCESS" in tested.stdout


def _per_topic(samples: list[dict], prefix: str) -> dict[str, int]:
    return {s["metric"]["topic"].removeprefix(prefix): int(float(s["value"][1])) for s in samples}


def test_prometheus_scrapes_a_worker_and_its_counters_equal_the_gmv_run_counts(backend, tmp_path):
    events = tmp_path / "events.jsonl"
    write_sample(events, events=3_000, bad_per_kind=3, duplicates=25)
    expected_env = fresh_env(backend)
    expected = run_counts(expected_env, events)  # what `gmv run` reports for this file
    assert expected["dead_lettered"] > 0 and expected["duplicates"] > 0

    env = own_engine(fresh_env(backend), tmp_path / "data")  # the worker process opens the engine
    prefix = env["GMV_TOPIC_PREFIX"]
    web_port, metrics_port = free_port(), free_port()
    env["GMV_METRICS_PORT"] = str(metrics_port)
    worker = subprocess.Popen([sys.executable, "-m", "gmv.tools.cli", "worker", "--web-port", str(web_port)], env=env,
                              cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    prometheus = Prometheus(tmp_path / "prometheus")
    try:
        wait_for(lambda: (worker.poll() is None or pytest.fail(worker.stderr.read()))
                 and (worker_stats(web_port) or {}).get("partitions"), 90, "the worker to own its partitions", 0.5)
        prometheus.start("gmv-worker", [f"127.0.0.1:{metrics_port}"], [PROM_DIR / "rules.yml"])
        settings = Settings(_env_file=None, **{k[4:].lower(): v for k, v in env.items() if k.startswith("GMV_")})
        produce_file(settings, env["GMV_KAFKA_BOOTSTRAP_SERVERS"], events, progress=False)

        def scraped_all() -> bool:
            got = prometheus.query("sum(gmv_events_received_total)")
            return bool(got) and int(float(got[0]["value"][1])) == expected["received"]

        wait_for(scraped_all, 120, f"prometheus to see {expected['received']} events received", 1.0)
        per_topic = {k.removeprefix(expected_env["GMV_TOPIC_PREFIX"]): v for k, v in expected["per_topic"].items()}
        for outcome, metric in (("accepted", "gmv_events_accepted_total"), ("duplicate", "gmv_events_duplicate_total"),
                                ("dead_letter", "gmv_events_dead_lettered_total")):
            got = _per_topic(prometheus.query(metric), prefix)
            want = {topic: counts[outcome] for topic, counts in per_topic.items()}
            assert got == want, (metric, got, want)
        totals = {name: int(float(prometheus.query(f"sum({metric})")[0]["value"][1])) for name, metric in (
            ("accepted", "gmv_events_accepted_total"), ("duplicates", "gmv_events_duplicate_total"),
            ("dead_lettered", "gmv_events_dead_lettered_total"))}
        assert totals == {k: expected[k] for k in totals}
        assert totals["accepted"] + totals["duplicates"] + totals["dead_lettered"] == expected["received"]

        # the other series are there and sensible
        rows = {s["metric"]["table"]: float(s["value"][1]) for s in prometheus.query("gmv_sink_rows_total")}
        assert rows.get("events", 0) == expected["accepted"] and rows.get("dead_letters", 0) == expected["dead_lettered"]
        assert float(prometheus.query("gmv_batch_messages_count")[0]["value"][1]) >= 1
        assert float(prometheus.query("gmv_sink_flush_seconds_count")[0]["value"][1]) >= 1
        assert float(prometheus.query("gmv_clickhouse_write_failures_total")[0]["value"][1]) == 0
        assert float(prometheus.query("gmv_partitions_owned")[0]["value"][1]) == int(env.get("GMV_PARTITIONS", 4))
        wait_for(lambda: sum(float(s["value"][1]) for s in prometheus.query("gmv_consumer_lag_messages")) == 0,
                 60, "the lag to reach 0", 1.0)
        assert prometheus.query("up{job='gmv-worker'}")[0]["value"][1] == "1"

        # every Prometheus panel of the Grafana dashboard evaluates; the rules loaded and are healthy
        for title, ref, expr in panel_queries(dashboard(), "prometheus"):
            try:
                prometheus.query(expr)
            except urllib.error.HTTPError as e:  # a PromQL error
                pytest.fail(f"Grafana panel {title!r} ({ref}): {expr}: {e.read().decode()}")
        # rate() needs two scrapes of a series: the events panel has data once a second one is in
        wait_for(lambda: prometheus.query("sum(rate(gmv_events_accepted_total[1m]))"), 30,
                 "the events-per-second panel to have data", 1.0)
        rules = [r for g in prometheus.api("rules")["groups"] for r in g["rules"]]
        assert len(rules) == 7 and all(r["health"] != "err" for r in rules), rules
        # the worker's own view agrees with Prometheus's
        stats = worker_stats(web_port) or {}
        assert stats["counters"]["received"] == expected["received"]
    finally:
        prometheus.stop()
        worker.send_signal(signal.SIGINT)
        worker.wait(60)
    assert worker.returncode == 0, worker.stderr.read()[-3000:]


# -- docker compose --------------------------------------------------------------------------------
def test_docker_compose_config_passes_where_the_plugin_exists():
    docker = shutil.which("docker")
    if docker is None or subprocess.run([docker, "compose", "version"], capture_output=True).returncode != 0:
        pytest.skip("no `docker compose` plugin here; tests/unit/test_production_stack.py checks the file itself")
    env = {**os.environ, "GMV_CLICKHOUSE_PASSWORD": "x", "GMV_GRAFANA_CLICKHOUSE_PASSWORD": "y", "GMV_ANALYST_CLICKHOUSE_PASSWORD": "a",
           "GMV_GRAFANA_ADMIN_PASSWORD": "z", "GMV_WEB_TOKEN": "t"}
    for files in (["-f", "docker-compose.yml"], ["-f", "docker-compose.yml", "-f", "deploy/compose.kafka-3.yml"]):
        done = subprocess.run([docker, "compose", *files, "--profile", "load", "config", "--quiet"], cwd=ROOT, env=env,
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
    missing = subprocess.run([docker, "compose", "config", "--quiet"], cwd=ROOT, capture_output=True, text=True,
                             env={k: v for k, v in os.environ.items() if not k.startswith("GMV_")}, timeout=120)
    assert missing.returncode != 0 and "GMV_" in missing.stderr  # a missing secret is named, not defaulted
