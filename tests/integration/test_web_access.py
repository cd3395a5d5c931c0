"""Access to a running worker's web endpoints (issue: a DNS-rebinding page or anything on the
network could run SQL over all GMV data): no token -> 401, wrong Host or Origin -> 403, the
right token on a loopback Host -> 200; `gmv sql` and the printed dashboard link still work
with no extra step, and SQL stays read-only whoever asks."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import urllib.error
import urllib.request

import pytest

from gmv.tools.embedded import free_port
from gmv.tools.sample import write_sample
from tests.integration.conftest import ROOT, fresh_env, gmv, own_engine, run_counts
from tests.support.waiting import wait_for, worker_stats
from tests.support.web import printed_dashboard_link, web_token

pytestmark = pytest.mark.integration


def call(port: int, path: str, headers: dict[str, str], body: dict | None = None) -> tuple[int, bytes]:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=data, headers=headers,
                                 method="POST" if body is not None else "GET")
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


@pytest.fixture(scope="module")
def worker(backend, tmp_path_factory):
    """A `gmv worker` with the embedded default's generated token, over a small stored file."""
    data_dir = tmp_path_factory.mktemp("access")
    env = own_engine(fresh_env(backend), data_dir)  # its own data dir: the token is generated there
    path = data_dir / "few.jsonl"
    write_sample(path, events=40, bad_per_kind=0)
    run_counts(env, path)
    port = free_port()
    log = open(data_dir / "worker.log", "w+")
    proc = subprocess.Popen([sys.executable, "-m", "gmv.tools.cli", "worker", "--web-port", str(port)], env=env,
                            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=log, text=True)
    try:
        wait_for(lambda: (proc.poll() is None or pytest.fail((data_dir / "worker.log").read_text()))
                 and (worker_stats(port) or {}).get("partitions"), 90, "the worker to own its partitions", 0.5)
        yield {"env": env, "port": port, "db": env["GMV_CLICKHOUSE_DATABASE"], "log": data_dir / "worker.log"}
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(60)
        log.close()
    assert proc.returncode == 0


def _sql_body(db: str) -> dict:
    return {"query": f"SELECT toInt64(sum(credit_fen)) AS s FROM {db}.attributed_gmv", "format": "json"}


def test_the_token_is_generated_into_the_data_dir_readable_by_its_owner_only(worker):
    token_file = ROOT.joinpath(worker["env"]["GMV_DATA_DIR"], "web-token")
    assert len(token_file.read_text().strip()) >= 40
    assert token_file.stat().st_mode & 0o077 == 0


def test_no_token_gets_401_on_every_data_endpoint(worker):
    port, db = worker["port"], worker["db"]
    for path, body in (("/gmv/sql/", _sql_body(db)), ("/gmv/dashboard/data/?model=linear", None)):
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": f"Basic {web_token(worker['env'])}"}):
            status, text = call(port, path, headers, body)
            assert status == 401, (path, headers, status, text)
            assert b"bearer token" in text and b"credit_fen" not in text


def test_a_foreign_host_or_origin_gets_403_even_with_the_token(worker):
    """The DNS-rebinding request of the issue: Host rebind.evil.example, a foreign Origin."""
    port, db = worker["port"], worker["db"]
    auth = {"Authorization": f"Bearer {web_token(worker['env'])}"}
    for headers in ({"Host": "rebind.evil.example"}, {"Host": f"rebind.evil.example:{port}"},
                    {"Host": f"127.0.0.1:{port}", "Origin": "http://rebind.evil.example"}):
        for path, body in (("/gmv/sql/", _sql_body(db)), ("/gmv/dashboard/data/?model=linear", None),
                           ("/dashboard/", None), ("/gmv/stats/", None)):
            status, text = call(port, path, {**auth, **headers}, body)
            assert status == 403, (path, headers, status)
            assert b"not allowed" in text


def test_the_token_on_a_loopback_host_gets_the_figures_and_sql_stays_read_only(worker):
    port, db, env = worker["port"], worker["db"], worker["env"]
    auth = {"Authorization": f"Bearer {web_token(env)}", "Host": f"localhost:{port}"}
    status, text = call(port, "/gmv/sql/", auth, _sql_body(db))
    assert status == 200 and json.loads(text)[0]["s"] != "0"
    status, text = call(port, "/gmv/dashboard/data/?model=linear", auth)
    assert status == 200 and json.loads(text)["kpis"]["gmv_fen"] > 0
    status, text = call(port, "/gmv/sql/", auth, {"query": f"DROP TABLE {db}.events"})
    assert status == 400 and b"DROP is not a read" in text
    # the page and its files carry no data: no token needed (the page takes it from the link)
    assert call(port, "/dashboard/", {})[0] == 200
    assert call(port, "/dashboard/static/dashboard.js", {})[0] == 200
    assert call(port, "/gmv/stats/", {})[0] == 200  # healthchecks: counters only


def test_gmv_sql_and_the_printed_link_work_with_no_extra_step(worker):
    env, db, port = worker["env"], worker["db"], worker["port"]
    if env["GMV_CLICKHOUSE_DSN"].startswith("chdb://"):  # forwarded to the worker that owns the engine
        done = gmv(env, "sql", f"SELECT count() AS n FROM {db}.events", "--format", "json")
        assert json.loads(done.stdout)[0]["n"] == 40
    link = printed_dashboard_link(worker["log"].read_text())
    assert link == f"http://127.0.0.1:{port}/dashboard/#token={web_token(env)}"
    js = call(port, "/dashboard/static/dashboard.js", {})[1].decode()
    assert 'get("token")' in js and '"Bearer " + TOKEN' in js  # the page sends what the link carries


def test_a_configured_token_is_required_and_never_printed(backend, tmp_path):
    env = own_engine(fresh_env(backend), tmp_path)
    env.update({"GMV_WEB_TOKEN": "configured-secret-0123456789", "GMV_WEB_ALLOWED_HOSTS": "dash.example.com"})
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "gmv.tools.cli", "worker", "--web-port", str(port)], env=env,
                            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: (proc.poll() is None or pytest.fail(proc.stderr.read()))
                 and (worker_stats(port) or {}).get("partitions"), 90, "the worker to own its partitions", 0.5)
        headers = {"Authorization": "Bearer configured-secret-0123456789", "Host": "dash.example.com"}
        assert call(port, "/gmv/dashboard/data/?model=linear", headers)[0] == 200
        assert call(port, "/gmv/dashboard/data/?model=linear", {**headers, "Host": "other.example"})[0] == 403
        assert not (tmp_path / "web-token").exists()
    finally:
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0
    assert "configured-secret" not in err and "#token=<GMV_WEB_TOKEN>" in err
