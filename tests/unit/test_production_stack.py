"""The compose stack as files: every service and volume named and wired, ports on loopback only,
secrets from the environment, the files it mounts present, and the Grafana dashboard the one
``gmv.dashboards.grafana`` generates. (Running it needs a Docker engine: tests/integration checks
``docker compose config`` where the plugin exists, and every panel's SQL on the real engine.)"""

from __future__ import annotations

import json
import re
from importlib.metadata import version
from pathlib import Path

import pytest
import yaml

from gmv.dashboards.grafana import CLICKHOUSE, PROMETHEUS, dashboard, expand, panel_queries

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"
KAFKA_3 = ROOT / "deploy" / "compose.kafka-3.yml"
SERVICES = {"kafka", "clickhouse", "worker", "simulator", "prometheus", "grafana"}
VOLUMES = {"kafka-data", "clickhouse-data", "prometheus-data", "grafana-data"}


def load(path: Path) -> dict:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def compose() -> dict:
    return load(COMPOSE)


def _named_volumes(service: dict) -> set[str]:
    return {v.split(":", 1)[0] for v in service.get("volumes", []) if not v.startswith((".", "/"))}


def test_compose_names_every_service_and_volume(compose):
    assert set(compose["services"]) == SERVICES
    assert set(compose["volumes"]) == VOLUMES
    used = set().union(*(_named_volumes(s) for s in compose["services"].values()))
    assert used == VOLUMES  # every declared volume is used, every used one declared


def test_compose_publishes_ports_on_loopback_only(compose):
    for name, service in compose["services"].items():
        for port in service.get("ports", []):
            assert str(port).startswith("127.0.0.1:"), f"{name} publishes {port} beyond loopback"


def test_compose_long_running_services_have_healthchecks(compose):
    for name, service in compose["services"].items():
        if name != "simulator":  # a load generator, started on demand (profile "load")
            assert service.get("healthcheck", {}).get("test"), f"{name} has no healthcheck"
    assert compose["services"]["simulator"]["profiles"] == ["load"]


def test_compose_takes_every_secret_from_the_environment():
    text = COMPOSE.read_text(encoding="utf-8")
    secrets = re.findall(r"^\s*(\w*(?:PASSWORD|TOKEN)\w*):\s*(.+)$", text, re.M)
    assert len(secrets) >= 5
    for key, value in secrets:
        assert re.fullmatch(r"\$\{\w+(:\?[^}]*)?\}", value.strip().strip('"')), f"{key} is not taken from the environment: {value}"
    example = (ROOT / "deploy" / "env.example").read_text()
    for needed in set(re.findall(r"\$\{(\w+):\?", text)):
        assert f"{needed}=" in example, f"deploy/env.example does not mention {needed}"
    assert ".env" in (ROOT / ".gitignore").read_text().split()


def test_compose_worker_scales_with_dynamic_membership_and_writes_clickhouse_directly(compose):
    worker = compose["services"]["worker"]
    env = worker["environment"]
    assert env["GMV_WORKER_INSTANCE_ID"] == ""  # no static member id: replicas come and go
    assert env["GMV_SINK_MODE"] == "direct"
    assert env["GMV_CLICKHOUSE_DSN"].startswith("http://") and "@clickhouse:8123" in env["GMV_CLICKHOUSE_DSN"]
    assert env["GMV_KAFKA_BOOTSTRAP_SERVERS"] == "kafka:9092"
    assert env["GMV_METRICS_PORT"] == 9108 and env["GMV_WEB_HOST"] == "0.0.0.0"
    assert worker["ports"] == ["127.0.0.1::6066"]  # one host port per replica: --scale works
    assert "container_name" not in worker


def test_compose_clickhouse_is_the_26_line_of_the_embedded_engine(compose):
    image = compose["services"]["clickhouse"]["image"]
    assert image.startswith("clickhouse/clickhouse-server:")
    tag = image.rsplit(":", 1)[1]
    engine = version("chdb-core").split(".")
    assert tag.split(".")[:2] == engine[:2], f"{image} does not match the embedded engine {'.'.join(engine)}"
    conftest = (ROOT / "tests" / "integration" / "conftest.py").read_text()
    assert f'CLICKHOUSE_IMAGE = "{image}"' in conftest  # testcontainers runs the same server
    assert compose["services"]["kafka"]["image"].startswith("apache/kafka:")
    assert compose["services"]["kafka"]["environment"]["KAFKA_PROCESS_ROLES"] == "broker,controller"


def test_compose_mounts_files_that_exist(compose):
    for name, service in compose["services"].items():
        for volume in service.get("volumes", []):
            if volume.startswith("./"):
                assert (ROOT / volume.split(":", 1)[0]).exists(), f"{name} mounts a missing {volume}"


def test_three_broker_variant_adds_two_brokers_and_points_workers_at_all_three(compose):
    over = load(KAFKA_3)
    brokers = {n for n in {**compose["services"], **over["services"]} if n.startswith("kafka")}
    assert brokers == {"kafka", "kafka-2", "kafka-3"}
    voters = over["x-kafka-env"]["KAFKA_CONTROLLER_QUORUM_VOTERS"]
    assert voters == "1@kafka:9093,2@kafka-2:9093,3@kafka-3:9093"
    assert over["services"]["worker"]["environment"]["GMV_KAFKA_BOOTSTRAP_SERVERS"].count(":9092") == 3
    assert over["services"]["worker"]["environment"]["GMV_REPLICATION_FACTOR"] == 3
    for name in ("kafka-2", "kafka-3"):
        assert all(str(p).startswith("127.0.0.1:") for p in over["services"][name]["ports"])
        assert _named_volumes(over["services"][name]) <= set(over["volumes"])


def test_prometheus_scrapes_every_worker_replica_and_loads_the_rules(compose):
    config = load(ROOT / "deploy" / "prometheus" / "prometheus.yml")
    job = next(j for j in config["scrape_configs"] if j["job_name"] == "gmv-worker")
    sd = job["dns_sd_configs"][0]
    assert sd["names"] == ["worker"] and sd["port"] == compose["services"]["worker"]["environment"]["GMV_METRICS_PORT"]
    mounted = compose["services"]["prometheus"]["volumes"]
    assert "./deploy/prometheus/rules.yml:/etc/prometheus/rules.yml:ro" in mounted
    assert config["rule_files"] == ["/etc/prometheus/rules.yml"]


def test_grafana_provisions_both_data_sources_and_the_generated_dashboard(compose):
    committed = json.loads((ROOT / "deploy" / "grafana" / "dashboards" / "gmv.json").read_text(encoding="utf-8"))
    assert committed == dashboard(), "regenerate: python -m gmv.dashboards.grafana > deploy/grafana/dashboards/gmv.json"
    sources = load(ROOT / "deploy" / "grafana" / "provisioning" / "datasources" / "datasources.yml")["datasources"]
    assert {(s["type"], s["uid"]) for s in sources} == {(CLICKHOUSE["type"], CLICKHOUSE["uid"]),
                                                        (PROMETHEUS["type"], PROMETHEUS["uid"])}
    ch = next(s for s in sources if s["type"] == CLICKHOUSE["type"])
    assert ch["secureJsonData"]["password"] == "$GMV_GRAFANA_CLICKHOUSE_PASSWORD"
    assert "GRANT SELECT ON gmv.*" in (ROOT / "deploy" / "clickhouse" / "users.d" / "readers.xml").read_text()
    assert "GF_INSTALL_PLUGINS" in compose["services"]["grafana"]["environment"]


def test_grafana_dashboard_has_the_built_in_pages_panels_and_a_pipeline_row():
    model = dashboard()
    titles = " | ".join(p["title"] for p in model["panels"])
    for panel in ("KPIs", "Alerts", "Shop scores", "movers", "GMV per minute", "orders and refunds per minute",
                  "Funnel", "Path mix", "Dead letters", "Top live rooms", "Top accounts", "Top SKUs"):
        assert panel in titles, panel
    rows = [p["title"] for p in model["panels"] if p["type"] == "row"]
    assert len(rows) == 2 and "Pipeline" in rows[1]
    assert len(panel_queries(model, "prometheus")) >= 6
    assert {v["name"] for v in model["templating"]["list"]} == {"database", "model"}


def test_grafana_expansion_refuses_macros_and_variables_it_does_not_know():
    from datetime import UTC, datetime

    t = datetime(2026, 11, 30, tzinfo=UTC)
    with pytest.raises(ValueError, match="timeGroup"):
        expand("SELECT $__timeGroup(minute, '1m')", {}, t, t, 60)
    with pytest.raises(ValueError, match="shop"):
        expand("SELECT * FROM t WHERE shop = '${shop}'", {}, t, t, 60)
    assert expand("WHERE $__timeFilter(m) AND d = '${model}'", {"model": "linear"}, t, t, 60) == (
        f"WHERE m >= toDateTime({int(t.timestamp())}) AND m <= toDateTime({int(t.timestamp())}) AND d = 'linear'")


def test_the_servers_reader_profiles_carry_the_workers_own_limits_and_no_session_can_raise_them():
    import xml.etree.ElementTree as ET

    from gmv.streams.settings import Settings

    root = ET.parse(ROOT / "deploy" / "clickhouse" / "users.d" / "readers.xml").getroot()
    users = {u.tag: u.findtext("profile") for u in root.find("users")}
    assert users == {"grafana": "gmv_dashboard", "analyst": "gmv_analyst"}
    for profile, limits in (("gmv_analyst", Settings().adhoc_limits), ("gmv_dashboard", Settings().dashboard_limits)):
        p = root.find(f"profiles/{profile}")
        assert p.findtext("readonly") == "1"
        core = ("max_execution_time", "timeout_overflow_mode", "max_memory_usage", "max_result_rows",
                "max_result_bytes", "result_overflow_mode")
        wanted = {k: v for k, v in limits.clickhouse_settings().items() if k in core}
        for name, value in wanted.items():
            assert p.findtext(name) == str(value if not isinstance(value, float) else int(value)), (profile, name)
            rule = p.find(f"constraints/{name}")
            assert rule is not None, (profile, name)  # every limit constrained
            assert rule.find("const") is not None or rule.findtext("max") == p.findtext(name), (profile, name)
    assert root.findtext("profiles/gmv_analyst/max_concurrent_queries_for_user") == str(Settings().sql_max_concurrent)


def test_grafanas_gmv_per_minute_panel_draws_the_seasonal_band_unstacked_behind_the_bars():
    from gmv.dashboards.grafana import EXPECTED_BAND

    panel = next(p for p in dashboard()["panels"] if "GMV per minute" in p["title"])
    assert [t["rawSql"] for t in panel["targets"]][-1] == EXPECTED_BAND.strip()
    overrides = {o["matcher"]["options"]: {p["id"]: p["value"] for p in o["properties"]}
                 for o in panel["fieldConfig"]["overrides"]}
    low, high = "预期下沿 expected paid low ¥", "预期上沿 expected paid high ¥"
    assert set(overrides) == {low, high}
    assert all(o["custom"]["stacking"] == {"mode": "none"} for o in overrides.values())
    assert overrides[high]["custom"]["fillBelowTo"] == low
    assert "1.4826" in EXPECTED_BAND and "n >= 5" in EXPECTED_BAND  # the rules' statistic and min days
