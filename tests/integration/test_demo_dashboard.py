"""`gmv demo` end to end, and the dashboard in a real headless Chromium.

One demo runs for the module (bounded, then kept serving): its reconciliation
line must match, the page's figures must equal `gmv sql` on the facts at the
same moment (the demo has drained, so nothing moves), every panel must hold
data, Ctrl-C must stop everything, and a rerun on the same data dir must
continue the story and match again. The screenshot is saved under
``test-artifacts/`` for CI to keep.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from html.parser import HTMLParser

import pytest

from gmv.tools.embedded import free_port
from tests.integration.conftest import ROOT, Backend, fresh_env, gmv, sql
from tests.support.web import get_json, printed_dashboard_link

pytestmark = pytest.mark.integration
ARTIFACTS = ROOT / "test-artifacts"
MODEL = "linear"
PANELS = ("kpis", "panel-minute", "panel-orders", "panel-funnel", "panel-paths", "panel-lives",
          "panel-accounts", "panel-skus", "panel-shop-scores")


def chromium() -> str:
    for name in (os.environ.get("GMV_CHROMIUM", ""), "chromium", "chromium-browser", "google-chrome"):
        if name and shutil.which(name):
            return shutil.which(name)  # type: ignore[return-value]
    pytest.fail("headless Chromium is needed for the dashboard test: apt-get install chromium (.ci/run does)")


def run_chromium(url: str, *extra: str, width: int = 1500) -> str:
    profile = tempfile.mkdtemp(prefix="gmv-chromium-")
    try:
        proc = subprocess.run(
            [chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={profile}", f"--window-size={width},1300", "--virtual-time-budget=8000", *extra, url],
            capture_output=True, text=True, errors="replace", timeout=120)
        assert proc.returncode == 0, proc.stderr[-2000:]
        return proc.stdout
    finally:
        shutil.rmtree(profile, ignore_errors=True)


class DomFigures(HTMLParser):
    """Collects the data-* attributes the page sets on what it shows."""

    def __init__(self) -> None:
        super().__init__()
        self.kpis: dict[str, str] = {}
        self.rows: dict[str, int] = {}
        self.funnel: dict[str, str] = {}
        self.table_rows: dict[str, list[tuple[str, int]]] = {}
        self.scores: dict[str, list[tuple[str, float]]] = {}
        self.fits: dict[str, str] = {}  # table id -> "1" if it fits its panel without scrolling
        self.loaded = False
        self._table: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "body" and a.get("data-loaded") == "1":
            self.loaded = True
        if "data-key" in a and "data-value" in a:
            self.kpis[a["data-key"]] = a["data-value"]
        if a.get("id") in PANELS and "data-rows" in a:
            self.rows[a["id"]] = int(a["data-rows"])
        if a.get("id") == "panel-funnel":
            self.funnel = {k: v for k, v in a.items() if k.startswith("data-") and k != "data-rows"}
        if tag == "table":
            self._table = a.get("id")
            self.fits[self._table or ""] = a.get("data-fits", "")
            self.table_rows[self._table or ""] = []
        if tag == "tr" and self._table and "data-id" in a:
            if "data-net-fen" in a:
                self.table_rows[self._table].append((a["data-id"], int(a["data-net-fen"])))
            if "data-score" in a:
                self.scores.setdefault(self._table, []).append((a["data-id"], float(a["data-score"])))


@pytest.fixture(scope="module")
def demo(backend: Backend, tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("demo")
    env = fresh_env(backend)
    env["GMV_DATA_DIR"] = str(data_dir)
    if backend.name == "embedded":
        env["GMV_CLICKHOUSE_DSN"] = f"chdb://{data_dir / 'clickhouse'}"  # this demo owns its own engine
    port = free_port()
    log = open(data_dir / "demo.log", "w+")
    proc = subprocess.Popen([sys.executable, "-m", "gmv.tools.cli", "demo", "--duration", "20", "--rate", "1500",
                             "--keep-serving", "--web-port", str(port)], env=env, cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=log, text=True, start_new_session=True)
    lines: list[str] = []
    deadline = time.monotonic() + 300
    try:
        assert proc.stdout is not None
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            lines.append(line)
            if line.startswith("reconciliation: scores"):  # the last of the two lines
                break
        yield {"proc": proc, "env": env, "port": port, "stdout": lines, "data_dir": data_dir, "log": log}
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGINT)
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        log.close()


def _log_tail(demo: dict) -> str:
    demo["log"].flush()
    return (demo["data_dir"] / "demo.log").read_text(errors="replace")[-3000:]


def test_demo_reconciles_to_the_fen(demo):
    out = "".join(demo["stdout"])
    recon = [ln for ln in demo["stdout"] if ln.startswith("reconciliation:")]
    assert recon, f"no reconciliation line; stdout:\n{out}\nlog:\n{_log_tail(demo)}"
    assert recon[0].startswith("reconciliation: MATCH"), out
    m = re.search(r"truth=(\d+) fen clickhouse=(\d+) fen diff=0 fen", recon[0])
    assert m and m.group(1) == m.group(2) and int(m.group(1)) > 0, recon[0]
    assert len(recon) == 2 and recon[1].startswith("reconciliation: scores MATCH"), out
    n = re.search(r"(\d+) expected trust scores .*, (\d+) in gmv.trust_scores", recon[1])
    assert n and n.group(1) == n.group(2) and int(n.group(1)) > 0, recon[1]
    assert "summary:" in out and "orders" in out


def page_url(demo: dict) -> str:
    """The dashboard link the demo printed (its token in the fragment: no extra step for the user),
    with the model chosen."""
    return printed_dashboard_link(_log_tail_all(demo)).replace("/dashboard/#", f"/dashboard/?model={MODEL}#")


def _log_tail_all(demo: dict) -> str:
    demo["log"].flush()
    return (demo["data_dir"] / "demo.log").read_text(errors="replace")


def test_dashboard_shows_what_sql_says(demo):
    env = demo["env"]
    db = env["GMV_CLICKHOUSE_DATABASE"]
    dom_html = run_chromium(page_url(demo), "--dump-dom")
    dom = DomFigures()
    dom.feed(dom_html)
    assert dom.loaded, f"the page never rendered its data:\n{dom_html[:3000]}"
    # Same moment: the demo has drained and only serves now, so SQL sees what the page saw.
    facts = sql(env, f"SELECT sumIf(credit_fen, kind = 'paid') AS gmv, -sumIf(credit_fen, kind = 'refund') AS refunds, "
                     f"sum(credit_fen) AS net, countIf(kind = 'paid' AND is_conversion = 1) AS orders, "
                     f"uniqExactIf(user_id, kind = 'paid' AND is_conversion = 1) AS buyers "
                     f"FROM {db}.attributed_gmv WHERE model = '{MODEL}'")[0]
    assert int(dom.kpis["net_fen"]) == int(facts["net"]) > 0
    assert int(dom.kpis["gmv_fen"]) == int(facts["gmv"])
    assert int(dom.kpis["refund_fen"]) == int(facts["refunds"]) > 0
    assert int(dom.kpis["orders"]) == int(facts["orders"])
    assert int(dom.kpis["buyers"]) == int(facts["buyers"])
    assert int(dom.kpis["aov_fen"]) == round(int(facts["gmv"]) / int(facts["orders"]))
    funnel = sql(env, "SELECT countIf(action = 'view') AS views, countIf(action = 'view' AND engaged = 1) AS engaged, "
                      f"countIf(action = 'enter') AS enters FROM {db}.funnel_events")[0]
    assert int(dom.funnel["data-views"]) == int(funnel["views"]) > 0
    assert int(dom.funnel["data-engaged-views"]) == int(funnel["engaged"]) > 0
    assert int(dom.funnel["data-live-enters"]) == int(funnel["enters"]) > 0
    assert int(dom.funnel["data-orders"]) == int(facts["orders"])
    lives = sql(env, f"SELECT touch_content_id AS id, sum(credit_fen) AS net FROM {db}.attributed_gmv "
                     f"WHERE model = '{MODEL}' AND stage = 'live' GROUP BY id ORDER BY net DESC LIMIT 3")
    shown = dom.table_rows["table-lives"][:3]
    assert [int(r["net"]) for r in lives] == [n for _, n in shown]
    skus = sql(env, f"SELECT sku_id AS id, sum(credit_fen) AS net FROM {db}.attributed_gmv WHERE model = '{MODEL}' "
                    "GROUP BY id ORDER BY net DESC LIMIT 1")
    assert dom.table_rows["table-skus"][0] == (skus[0]["id"], int(skus[0]["net"]))
    shops = sql(env, f"SELECT subject_id AS id, score FROM {db}.trust_scores WHERE subject_kind = 'shop' AND day = "
                     f"(SELECT max(day) FROM {db}.trust_scores) ORDER BY score DESC, id")
    assert [(r["id"], float(r["score"])) for r in shops] == dom.scores["table-shop-scores"] != []
    empty = [p for p in PANELS if dom.rows.get(p, 0) <= 0]
    assert not empty, f"panels without data: {empty}"
    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "dashboard.png"
    shot.unlink(missing_ok=True)
    run_chromium(page_url(demo), f"--screenshot={shot}")
    assert shot.is_file() and shot.stat().st_size > 20_000, "the screenshot is missing or blank"


def test_top_tables_fit_their_panels_at_1400_px(demo):
    dom = DomFigures()
    dom.feed(run_chromium(page_url(demo), "--dump-dom", width=1400))
    assert dom.loaded
    tops = {t: dom.fits.get(t) for t in ("table-lives", "table-accounts", "table-skus")}
    assert tops == dict.fromkeys(tops, "1"), f"tables that need a horizontal scrollbar at 1400 px: {tops}"


def test_per_minute_panels_end_at_the_watermark_with_every_minute(demo):
    env, port = demo["env"], demo["port"]
    db = env["GMV_CLICKHOUSE_DATABASE"]
    data = get_json(port, f"/gmv/dashboard/data/?model={MODEL}", env)
    minutes = data["per_minute"]
    # 180 whole minutes, one per minute (an empty one is a zero), ending at the attribution watermark
    assert len(minutes) == 180
    assert [b["t"] - a["t"] for a, b in zip(minutes, minutes[1:], strict=False)] == [60] * 179
    end = datetime.fromisoformat(data["window_end"]).timestamp()
    assert minutes[-1]["t"] + 60 == end <= data["watermark_ms"] / 1000 < end + 60
    assert any(m["gmv_fen"] == 0 for m in minutes) or all(m["gmv_fen"] > 0 for m in minutes)
    # paid and refunds apart, each as the facts say for the window (refunds on their own minute)
    first, stop = minutes[0]["t"], end
    facts = sql(env, f"SELECT sumIf(credit_fen, kind = 'paid') AS paid, -sumIf(credit_fen, kind = 'refund') AS refunds "
                     f"FROM {db}.attributed_gmv WHERE model = '{MODEL}' AND event_time >= toDateTime({first}) "
                     f"AND event_time < toDateTime({int(stop)})")[0]
    assert sum(m["gmv_fen"] for m in minutes) == int(facts["paid"]) > 0
    assert sum(m["refund_fen"] for m in minutes) == int(facts["refunds"])
    assert all(m["net_fen"] == m["gmv_fen"] - m["refund_fen"] for m in minutes)
    assert all(m["gmv_fen"] == sum(m[f"gmv_{s}"] for s in data["stages"]) for m in minutes)


def test_model_switch_changes_stage_split_not_total(demo):
    env = demo["env"]
    db = env["GMV_CLICKHOUSE_DATABASE"]
    per_model = sql(env, "SELECT model, sum(credit_fen) AS net, sumIf(credit_fen, stage = 'live') AS live "
                         f"FROM {db}.attributed_gmv GROUP BY model")
    assert len(per_model) == 5
    assert len({int(r["net"]) for r in per_model}) == 1  # every model credits the same fen in all
    assert len({int(r["live"]) for r in per_model}) > 1  # ... split differently over the stages


def test_ctrl_c_stops_everything_and_a_rerun_continues(demo):
    proc, env, data_dir = demo["proc"], demo["env"], demo["data_dir"]
    os.killpg(proc.pid, signal.SIGINT)
    assert proc.wait(90) == 0, _log_tail(demo)

    def leftovers() -> list[str]:
        return subprocess.run(["pgrep", "-f", str(data_dir)], capture_output=True, text=True).stdout.split()

    # the demo has returned; its children (broker, simulator) were stopped before it did
    assert not leftovers(), f"processes left running: {leftovers()}"
    first = (data_dir / "demo.json").read_text()
    again = gmv(env, "demo", "--duration", "8", "--rate", "1500", timeout=300)
    assert "continuing the story after" in again.stderr
    assert re.search(r"^reconciliation: MATCH", again.stdout, re.M), again.stdout + again.stderr[-2000:]
    emitted_before = int(re.search(r'"emitted": (\d+)', first).group(1))
    emitted_after = int(re.search(r'"emitted": (\d+)', (data_dir / "demo.json").read_text()).group(1))
    assert emitted_after > emitted_before
