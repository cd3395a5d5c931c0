"""A real Kafka-protocol broker and the real ClickHouse engine for integration tests.

With a Docker engine: testcontainers (Apache Kafka and ClickHouse server images).
Without one: the embedded pair (noida-db broker, chdb). Same tests, same
assertions; the session header says which backend ran. Each test gets its own
topics, consumer group and ClickHouse database, created fresh in this session.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from gmv.tools.embedded import EmbeddedKafka, free_port
from tests.support.alertmanager import Alertmanager, WebhookRecorder
from tests.support.in_process import may_run_here, run_in_process
from tests.support.waiting import wait_for

ROOT = Path(__file__).resolve().parents[2]
CLICKHOUSE_IMAGE = "clickhouse/clickhouse-server:26.9"


@dataclass
class Backend:
    name: str
    env: dict[str, str]


# The embedded engine this test process may open itself (the session backend's): set by `backend`.
_OWNED_DSN: list[str] = []


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
    dsn = f"chdb://{data_dir / 'clickhouse'}"
    _OWNED_DSN.append(dsn)
    try:
        yield Backend("embedded", {
            "GMV_DATA_DIR": str(data_dir),
            "GMV_KAFKA_BOOTSTRAP_SERVERS": bootstrap,
            "GMV_CLICKHOUSE_DSN": dsn,
        })
    finally:
        _OWNED_DSN.remove(dsn)
        broker.stop()


@pytest.fixture
def gmv_env(backend: Backend) -> dict[str, str]:
    """Environment of one test: its own topics, consumer group and a fresh database."""
    return fresh_env(backend)


@dataclass(frozen=True)
class Made:
    """What fresh_env made for a test, as it was made (a test may change its env afterwards)."""

    dsn: str
    password: str | None
    database: str
    bootstrap: str
    topic_prefix: str
    data_dir: str  # its workers' state stores are under <data_dir>/state/<topic prefix>...


# Everything fresh_env made in this process, in order: a test's is removed when it ends
# (`_remove_what_the_test_made`), a module fixture's when the module ends.
_MADE: list[Made] = []


@pytest.fixture(autouse=True)
def _remove_what_the_test_made() -> Iterator[None]:
    """The engine's idle upkeep grows with its tables (measured: 60 databases of ours cost a fifth
    of a core while nothing ran) and the broker's with the bytes it holds, so a test's database and
    topics go when it ends. This runs inside the module's and session's fixtures: what those made
    (before it started) stays until they end."""
    start = len(_MADE)
    yield
    remove_made(_MADE[start:])
    del _MADE[start:]


def remove_env(env: dict[str, str]) -> None:
    """For a module's fixture, when the module ends: removes what fresh_env made for ``env``."""
    made = [m for m in _MADE if m.database == env["GMV_CLICKHOUSE_DATABASE"]]
    remove_made(made)
    for m in made:
        _MADE.remove(m)


def remove_made(made: list[Made]) -> None:
    """Drops the databases (in an engine this process may open: the session's embedded one or a
    server; another process's engine is not running anymore) and deletes the topics of ``made``."""
    from kafka.admin import KafkaAdminClient
    from pydantic import SecretStr

    from gmv.sinks.clickhouse import connect

    owned = _OWNED_DSN[0] if _OWNED_DSN else None
    for dsn in {m.dsn for m in made if m.dsn == owned or not m.dsn.startswith("chdb://")}:
        mine = [m for m in made if m.dsn == dsn]
        client = connect(dsn, SecretStr(mine[0].password) if mine[0].password else None)
        try:
            for m in mine:
                client.command(f"DROP DATABASE IF EXISTS `{m.database}` SYNC")
        finally:
            client.close()
    for m in made:  # the state stores of its workers (a process still holding one leaves it: it dies with tmp)
        for store in (Path(m.data_dir) / "state").glob(f"{m.topic_prefix}*"):
            shutil.rmtree(store, ignore_errors=True)
    for bootstrap in {m.bootstrap for m in made}:
        admin = KafkaAdminClient(bootstrap_servers=bootstrap)
        try:
            prefixes = tuple(m.topic_prefix for m in made if m.bootstrap == bootstrap)
            if doomed := [t for t in admin.list_topics() if t.startswith(prefixes)]:
                admin.delete_topics(doomed)
        finally:
            admin.close()


def fresh_env(backend: Backend) -> dict[str, str]:
    """Own topics, consumer group and ClickHouse database on the session's backend (the database is
    dropped when the test, or the fixture, that asked for it ends)."""
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
    _MADE.append(Made(env["GMV_CLICKHOUSE_DSN"], env.get("GMV_CLICKHOUSE_PASSWORD"), env["GMV_CLICKHOUSE_DATABASE"],
                      env["GMV_KAFKA_BOOTSTRAP_SERVERS"], env["GMV_TOPIC_PREFIX"], env["GMV_DATA_DIR"]))
    return env


def own_engine(env: dict[str, str], data_dir: Path) -> dict[str, str]:
    """``env`` with a data dir of its own and, on the embedded backend, an engine of its own: for
    tests whose ``gmv worker``/``demo`` process must open ClickHouse itself (the session's engine
    belongs to this test process once an in-process command used it)."""
    env = {**env, "GMV_DATA_DIR": str(data_dir)}
    if env["GMV_CLICKHOUSE_DSN"].startswith("chdb://"):
        env["GMV_CLICKHOUSE_DSN"] = f"chdb://{data_dir / 'clickhouse'}"
    return env


def gmv(env: dict[str, str], *args: str, timeout: float = 300, check: bool = True,
        process: bool = False) -> subprocess.CompletedProcess:
    """Run the ``gmv`` command as a user would: in this process where the process is not what is
    tested (tests/support/in_process.py), else as a process of its own (always with ``process``)."""
    if not process and may_run_here(env, args, _OWNED_DSN[0] if _OWNED_DSN else None):
        proc = run_in_process(env, args, timeout)
    else:
        proc = subprocess.run([sys.executable, "-m", "gmv.tools.cli", *args], env=env, cwd=ROOT,
                              capture_output=True, text=True, errors="replace", timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"gmv {' '.join(args)} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}")
    return proc


def gmv_batch(env: dict[str, str], *commands: tuple[str, ...], timeout: float = 600) -> list[subprocess.CompletedProcess]:
    """Several ``gmv`` commands in a row, each checked: in this process where ``gmv`` would run
    them here, else all in one process of their own (one start-up instead of one per command, on
    an engine that process then owns)."""
    owned = _OWNED_DSN[0] if _OWNED_DSN else None
    if all(may_run_here(env, args, owned) for args in commands):
        done = [run_in_process(env, args, timeout) for args in commands]
    else:
        proc = subprocess.run([sys.executable, "-m", "tests.support.in_process"], env=env, cwd=ROOT,
                              input=json.dumps([list(args) for args in commands]), capture_output=True, text=True,
                              errors="replace", timeout=timeout)
        assert proc.returncode == 0, proc.stderr[-3000:]
        done = [subprocess.CompletedProcess(["gmv", *args], d["returncode"], d["stdout"], d["stderr"])
                for args, d in zip(commands, json.loads(proc.stdout.strip().splitlines()[-1]), strict=True)]
    for d in done:
        if d.returncode != 0:
            raise AssertionError(f"{' '.join(d.args)} exited {d.returncode}:\n{d.stdout}\n{d.stderr}")
    return done


def sql_rows(stdout: str) -> list[dict]:
    """The rows of ``gmv sql --format json`` output (one document: an array of row objects)."""
    return json.loads(stdout)


def sql(env: dict[str, str], query: str) -> list[dict]:
    return sql_rows(gmv(env, "sql", query, "--format", "json").stdout)


def run_counts(env: dict[str, str], path: Path) -> dict:
    return parse_run_json(gmv(env, "run", "--events", str(path), "--json", "--quiet").stdout)


def parse_run_json(stdout: str) -> dict:
    """The `gmv run --json` report (faust may write terminal control codes before it)."""
    return json.loads(stdout[stdout.rindex('{"lines"'):].splitlines()[0])


@pytest.fixture(scope="session")
def serving_demo(backend: Backend, tmp_path_factory) -> Iterator[dict]:
    """One `gmv demo --duration 30 --keep-serving` for the session, in database ``gmv`` (as the
    cookbook and the Grafana dashboard name it), with an engine of its own: its story ends, it
    drains and reconciles, then only serves, so what the tests read does not move. Shared by every
    test that only reads it; the one test that stops it (marked ``stops_the_serving_demo``) runs
    after all of them (``pytest_collection_modifyitems`` below)."""
    if backend.name != "embedded":
        pytest.skip("the cookbook and Grafana name database gmv: run on a server of its own")
    _only_one_serving_demo(tmp_path_factory)
    data_dir = tmp_path_factory.mktemp("demo")
    env = own_engine(fresh_env(backend), data_dir)
    env["GMV_CLICKHOUSE_DATABASE"] = "gmv"
    port = free_port()
    log_path = data_dir / "demo.log"
    log = open(log_path, "w+")
    # --scale 1: a quarter of the demo's audience, so 30 s reach the story's third day (day-over-day
    # panels, the score alerts); at the default scale the rooms that sell steadily fill the first day
    proc = subprocess.Popen([sys.executable, "-m", "gmv.tools.cli", "demo", "--duration", "30", "--rate", "1500",
                             "--scale", "1", "--keep-serving", "--web-port", str(port)], env=env, cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=log, text=True, start_new_session=True)
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(iter(proc.stdout.readline, "")), daemon=True)  # type: ignore[union-attr]
    reader.start()
    try:
        wait_for(lambda: "the dashboard stays up" in log_path.read_text(errors="replace") or proc.poll() is not None,
                 300, "the demo to reconcile and serve", poll_s=0.3)
        assert proc.poll() is None, "".join(lines)[-2000:] + log_path.read_text(errors="replace")[-3000:]
        truth = json.loads((data_dir / "demo-truth.json").read_text())
        yield {"proc": proc, "env": env, "port": port, "stdout": lines, "data_dir": data_dir, "log": log,
               "log_path": log_path, "truth": truth}
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGINT)
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        log.close()


def _only_one_serving_demo(tmp_path_factory) -> None:
    """Under pytest-xdist, the demo's tests must all run in one worker (their xdist_group): a second
    worker starting a demo of its own means the grouping broke, and this says so instead of paying
    for a second demo and a stop test that races the readers of the other."""
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    if worker is None:
        return
    claim = tmp_path_factory.getbasetemp().parent / "serving-demo.worker"
    try:
        with open(claim, "x") as fh:
            fh.write(worker)
    except FileExistsError:
        pytest.fail(f"the serving demo's tests ran in xdist workers {claim.read_text()} and {worker}: "
                    "--dist loadgroup did not keep their xdist_group together (pytest-xdist 3.8 with "
                    "pytest >= 9.2 ignores groups; the test extras pin pytest below 9.2)")


@pytest.fixture(scope="session")
def demo_data(serving_demo: dict) -> dict:
    """The serving demo's data, and the simulator's truth for the cookbook's marked answers."""
    return {"env": serving_demo["env"], "truth": serving_demo["truth"]["expected_cookbook"]}


@pytest.hookimpl(tryfirst=True)  # before pytest-xdist reads the groups
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Every test of the shared demo in one xdist group (one process starts it, runs them all, in
    this order); the test that stops it after every other test, so after all its readers."""
    for item in items:
        if "serving_demo" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.xdist_group("serving_demo"))
    items.sort(key=lambda item: item.get_closest_marker("stops_the_serving_demo") is not None)


@pytest.fixture
def receivers(tmp_path: Path):
    """A webhook recorder behind Debian's real Alertmanager (on loopback): (recorder, alertmanager)."""
    rec = WebhookRecorder().start()
    am = Alertmanager(tmp_path / "am", rec.url("/am")).start()
    yield rec, am
    am.stop()
    rec.stop()
