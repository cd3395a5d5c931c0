"""A real Kafka-protocol broker and the real ClickHouse engine for integration tests.

With a Docker engine: testcontainers (Apache Kafka and ClickHouse server images).
Without one: the embedded pair (noida-db broker, chdb). Same tests, same
assertions; the session header says which backend ran. Each test gets its own
topics, consumer group and ClickHouse database, created fresh in this session.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from gmv.tools.embedded import EmbeddedKafka

ROOT = Path(__file__).resolve().parents[2]
CLICKHOUSE_IMAGE = "clickhouse/clickhouse-server:26.9"


@dataclass
class Backend:
    name: str
    env: dict[str, str]


def _docker_engine_answers() -> bool:
    if os.environ.get("GMV_TEST_BACKEND") == "embedded":
        return False
    try:
        import docker

        docker.from_env(timeout=3).ping()
        return True
    except Exception:
        return False


_BACKEND_NAME = "testcontainers" if _docker_engine_answers() else "embedded"


def pytest_report_header(config):
    return f"gmv integration backend: {_BACKEND_NAME}"


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    """Also at the end: a run from the repository root loads this conftest after the header."""
    terminalreporter.write_line(f"gmv integration backend: {_BACKEND_NAME}"
                                + (" (testcontainers: Kafka and the compose ClickHouse server image)"
                                   if _BACKEND_NAME == "testcontainers" else
                                   " (noida-db broker and chdb)"))


@pytest.fixture(scope="session")
def backend(tmp_path_factory) -> Iterator[Backend]:
    data_dir = tmp_path_factory.mktemp("gmv-data")
    if _BACKEND_NAME == "testcontainers":
        from testcontainers.clickhouse import ClickHouseContainer
        from testcontainers.kafka import KafkaContainer

        # The ClickHouse server of docker-compose.yml (the embedded engine's 26.x line).
        with KafkaContainer().with_kraft() as kafka, ClickHouseContainer(CLICKHOUSE_IMAGE) as ch:
            host, port = ch.get_container_host_ip(), ch.get_exposed_port(8123)
            yield Backend("testcontainers", {
                "GMV_DATA_DIR": str(data_dir),
                "GMV_KAFKA_BOOTSTRAP_SERVERS": kafka.get_bootstrap_server(),
                "GMV_CLICKHOUSE_DSN": f"http://{ch.username}@{host}:{port}",
                "GMV_CLICKHOUSE_PASSWORD": ch.password,
            })
        return
    broker = EmbeddedKafka(data_dir)
    bootstrap = broker.start()
    try:
        yield Backend("embedded", {
            "GMV_DATA_DIR": str(data_dir),
            "GMV_KAFKA_BOOTSTRAP_SERVERS": bootstrap,
            "GMV_CLICKHOUSE_DSN": f"chdb://{data_dir / 'clickhouse'}",
        })
    finally:
        broker.stop()


@pytest.fixture
def gmv_env(backend: Backend) -> dict[str, str]:
    """Environment of one test: its own topics, consumer group and a fresh database."""
    return fresh_env(backend)


def fresh_env(backend: Backend) -> dict[str, str]:
    """Own topics, consumer group and ClickHouse database on the session's backend."""
    tag = uuid.uuid4().hex[:8]
    env = {k: v for k, v in os.environ.items() if not k.startswith("GMV_")}
    env.update(backend.env)
    env.update({
        "GMV_TOPIC_PREFIX": f"t{tag}.",
        "GMV_APP_ID": f"gmv-test-{tag}",
        "GMV_CLICKHOUSE_DATABASE": f"gmv_test_{tag}",
        "GMV_SESSION_TIMEOUT_S": "6",
        "GMV_LOG_LEVEL": os.environ.get("GMV_TEST_LOG_LEVEL", "WARNING"),
    })
    return env


def gmv(env: dict[str, str], *args: str, timeout: float = 300, check: bool = True) -> subprocess.CompletedProcess:
    """Run the ``gmv`` command as a user would."""
    proc = subprocess.run([sys.executable, "-m", "gmv.tools.cli", *args], env=env, cwd=ROOT,
                          capture_output=True, text=True, errors="replace", timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"gmv {' '.join(args)} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}")
    return proc


def sql(env: dict[str, str], query: str) -> list[dict]:
    out = gmv(env, "sql", query, "--format", "json").stdout
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def run_counts(env: dict[str, str], path: Path) -> dict:
    return parse_run_json(gmv(env, "run", "--events", str(path), "--json", "--quiet").stdout)


def parse_run_json(stdout: str) -> dict:
    """The `gmv run --json` report (faust may write terminal control codes before it)."""
    return json.loads(stdout[stdout.rindex('{"lines"'):].splitlines()[0])


@pytest.fixture(scope="session")
def demo_data(backend: Backend, tmp_path_factory):
    """One `gmv demo --duration 45` data set in database ``gmv`` (as the cookbook and the Grafana
    dashboard name it), shared by the tests that only read it."""
    data_dir = tmp_path_factory.mktemp("cookbook")
    env = fresh_env(backend)
    env["GMV_DATA_DIR"] = str(data_dir)
    env["GMV_CLICKHOUSE_DATABASE"] = "gmv"  # the cookbook names its database
    if backend.name == "embedded":
        env["GMV_CLICKHOUSE_DSN"] = f"chdb://{data_dir / 'clickhouse'}"
    else:
        pytest.skip("the cookbook and Grafana name database gmv: run on a server of its own")
    proc = subprocess.run([sys.executable, "-m", "gmv.tools.cli", "demo", "--duration", "45"], env=env, cwd=ROOT,
                          capture_output=True, text=True, errors="replace", timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    truth = json.loads((data_dir / "demo-truth.json").read_text())
    return {"env": env, "truth": truth["expected_cookbook"]}
