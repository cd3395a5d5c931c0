"""`gmv demo` end to end, and the dashboard in a real headless Chromium.

The session's shared demo (``serving_demo``: bounded, then kept serving) is read: its
reconciliation lines must match, the page's figures must equal `gmv sql` on the facts at the
same moment (the demo has drained, so nothing moves), every panel must hold
data, Ctrl-C must stop everything, and a rerun on the same data dir must
continue the story and match again. The screenshot is saved under
``test-artifacts/`` for CI to keep.

What the page shows is checked in its DOM: every table fits its panel at 1400 and 1500 px,
alerts carry their clock and fired/resolved times, an empty table says "暂无数据 no data",
figures (GPM too) have thousands separators, the status line keeps this process's counters
apart from all-time ones, and the funnel's log axis is ticked at powers of ten. A demo may
fire no alert, so the same page is also drawn from a canned payload (``dashboard_data`` over
canned rows, served with the real static files): alerts on both clocks, a whole-day window,
a window across midnight, ¥1.2M rows with GPM in the thousands, and a page with no data at all.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import threading
from datetime import datetime
from html.parser import HTMLParser
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tests.integration.conftest import ROOT, gmv, sql
from tests.support.web import get_json, printed_dashboard_link
from tests.unit.test_dashboard_display import canned_dashboard

pytestmark = pytest.mark.integration
ARTIFACTS = ROOT / "test-artifacts"
MODEL = "linear"
PANELS = ("kpis", "panel-minute", "panel-orders", "panel-funnel", "panel-paths", "panel-lives", "panel-stage-worth",
          "panel-accounts", "panel-skus", "panel-shop-scores")
TABLES = ("table-alerts", "table-shop-scores", "table-score-movers", "table-lives", "table-accounts", "table-skus")
ALERT_COLUMNS = ["state", "rule", "subject", "window", "fired", "resolved", "message"]
NO_DATA = "暂无数据 no data"
CLOCKS = {"event": "事件时间 event time", "wall": "系统时间 wall clock"}
INSTANT = re.compile(r"^\d\d-\d\d \d\d:\d\d:\d\d$")  # an Asia/Shanghai wall time, as the page writes it


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
        self.panel_rows: dict[str, int] = {}  # every panel's data-rows (alerts and movers too)
        self.heads: dict[str, list[str]] = {}  # table id -> its columns' data-col
        self.body: dict[str, list[dict]] = {}  # table id -> rows: {"attrs", "cells": {col: text}, "clocks"}
        self.kpi_text: dict[str, str] = {}  # KPI key -> the value as shown
        self.worth: dict[tuple[str, str], tuple[float, int]] = {}  # (subject, stage) -> (removal effect, at stake)
        self.status: dict[str, dict[str, str]] = {}  # status-line scope -> its data-* and "text"
        self.loaded = False
        self.minute_band = 0
        self._table: str | None = None
        self._cell: tuple[dict, str] | None = None
        self._kpi: str | None = None
        self._scope: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "body" and a.get("data-loaded") == "1":
            self.loaded = True
        if "data-key" in a and "data-value" in a:
            self.kpis[a["data-key"]] = a["data-value"]
        if a.get("id") in PANELS and "data-rows" in a:
            self.rows[a["id"]] = int(a["data-rows"])
        if a.get("id") == "panel-minute":
            self.minute_band = int(a.get("data-band") or 0)  # minutes drawn with an expected band
        if a.get("id") == "panel-funnel":
            self.funnel = {k: v for k, v in a.items() if k.startswith("data-") and k != "data-rows"}
        if "data-rows" in a and a.get("id", "").startswith("panel-"):
            self.panel_rows[a["id"]] = int(a["data-rows"])
        if tag == "div" and "data-key" in a:
            self._kpi = a["data-key"]
        if tag == "div" and a.get("class") == "value" and self._kpi:
            self.kpi_text[self._kpi] = ""
        if tag == "span" and "data-scope" in a:
            self._scope = a["data-scope"]
            self.status[self._scope] = {**a, "text": ""}
        if tag == "table":
            self._table = a.get("id")
            self.fits[self._table or ""] = a.get("data-fits", "")
            self.table_rows[self._table or ""] = []
            self.heads[self._table or ""] = []
            self.body[self._table or ""] = []
        if self._table and tag == "th":
            self.heads[self._table].append(a.get("data-col", ""))
        if self._table and tag == "tr" and ("data-id" in a or "data-empty" in a):
            self.body[self._table].append({"attrs": a, "cells": {}, "clocks": []})
        if self._table and tag == "td" and self.body[self._table]:
            row = self.body[self._table][-1]
            self._cell = (row, a.get("data-col", ""))
            row["cells"][self._cell[1]] = ""
        if self._table == "table-stage-worth" and "data-stage" in a and self.body[self._table]:
            subject = self.body[self._table][-1]["attrs"]["data-id"]
            self.worth[(subject, a["data-stage"])] = (float(a["data-re"]), int(a["data-at-stake-fen"]))
        if self._table and tag == "span" and "data-clock" in a and self.body[self._table]:
            self.body[self._table][-1]["clocks"].append(a["data-clock"])
        if tag == "tr" and self._table and "data-id" in a:
            if "data-net-fen" in a:
                self.table_rows[self._table].append((a["data-id"], int(a["data-net-fen"])))
            if "data-score" in a:
                self.scores.setdefault(self._table, []).append((a["data-id"], float(a["data-score"])))

    def handle_endtag(self, tag: str) -> None:
        if tag == "td":
            self._cell = None
        elif tag == "table":
            self._table = None
        elif tag == "span":
            self._scope = None
        elif tag == "div" and self._kpi and self._kpi in self.kpi_text:
            self._kpi = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            row, col = self._cell
            row["cells"][col] += data
        if self._scope is not None:
            self.status[self._scope]["text"] += data
        if self._kpi is not None and self._kpi in self.kpi_text:
            self.kpi_text[self._kpi] += data

    def rows_of(self, table: str) -> list[dict]:
        """A table's item rows (not its "no data" row)."""
        return [r for r in self.body.get(table, []) if "data-empty" not in r["attrs"]]

    def empty_rows(self, table: str) -> list[dict]:
        return [r for r in self.body.get(table, []) if r["attrs"].get("data-empty") == "1"]


def dom_of(url: str, width: int = 1500) -> DomFigures:
    dom = DomFigures()
    html = run_chromium(url, "--dump-dom", width=width)
    dom.feed(html)
    assert dom.loaded, f"the page never rendered its data:\n{html[:3000]}"
    return dom


@pytest.fixture
def demo(serving_demo: dict) -> dict:
    """The session's serving demo (tests/integration/conftest.py): reconciled, drained, serving."""
    return serving_demo


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
    assert not [ln for ln in recon if "MISMATCH" in ln], out
    scores = next(ln for ln in recon if ln.startswith("reconciliation: scores MATCH"))
    n = re.search(r"(\d+) expected trust scores .*, (\d+) in gmv.trust_scores", scores)
    assert n and n.group(1) == n.group(2) and int(n.group(1)) > 0, scores
    assert any(ln.startswith("reconciliation: markov model MATCH") for ln in recon), out
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
    # what each stage is worth: the markov model of the latest day, platform and shops, and RE x 28-day GMV
    model = sql(env, f"SELECT shop_id, stage, removal_effect AS re FROM {db}.markov_model "
                     f"WHERE day = (SELECT max(day) FROM {db}.markov_model)")
    window_gmv = {r["shop_id"]: int(r["g"]) for r in sql(env, f"SELECT shop_id, sum(gmv_fen) AS g FROM {db}.shop_gmv_day "
                                                              f"WHERE day > (SELECT max(day) FROM {db}.markov_model) - 28 "
                                                              "GROUP BY shop_id")}
    assert ("", "live") in dom.worth and len(dom.worth) >= 8
    for r in model:
        shown = dom.worth.get((r["shop_id"], r["stage"]))
        if shown is None:
            continue  # a shop below the top 8
        gmv = window_gmv.get(r["shop_id"], 0) if r["shop_id"] else sum(window_gmv.values())
        assert shown == (float(r["re"]), round(float(r["re"]) * gmv)), r
    empty = [p for p in PANELS if dom.rows.get(p, 0) <= 0]
    assert not empty, f"panels without data: {empty}"
    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "dashboard.png"
    shot.unlink(missing_ok=True)
    run_chromium(page_url(demo), f"--screenshot={shot}")
    assert shot.is_file() and shot.stat().st_size > 20_000, "the screenshot is missing or blank"


@pytest.mark.parametrize("width", [1400, 1500])
def test_every_table_fits_its_panel(demo, width):
    dom = dom_of(page_url(demo), width)
    fits = {t: dom.fits.get(t) for t in TABLES}
    assert fits == dict.fromkeys(TABLES, "1"), f"tables that need a horizontal scrollbar at {width} px: {fits}"


def _check_alert_rows(dom: DomFigures) -> list[dict]:
    """The alerts table as any page shows it: fired and resolved columns, each row's window marked
    by its clock, fired a wall time, resolved '—' exactly while firing. Returns the rows."""
    assert dom.heads["table-alerts"] == ALERT_COLUMNS
    rows = dom.rows_of("table-alerts")
    assert len(rows) == dom.panel_rows["panel-alerts"]
    for r in rows:
        a, cells = r["attrs"], r["cells"]
        assert a["data-clock"] in CLOCKS and r["clocks"] == [a["data-clock"]], r
        assert cells["window"].endswith(CLOCKS[a["data-clock"]]), r
        assert a["data-window-kind"] in ("day", "days", "within_day", "across_midnight"), r
        assert "00:00–00:00" not in cells["window"], r
        assert INSTANT.match(cells["fired"]), r
        assert (cells["resolved"] == "—") == (a["data-state"] == "firing"), r
        assert cells["resolved"] == "—" or INSTANT.match(cells["resolved"]), r
    return rows


def test_alerts_show_their_clock_and_when_they_fired_and_resolved(demo):
    env = demo["env"]
    db = env["GMV_CLICKHOUSE_DATABASE"]
    dom = dom_of(page_url(demo), 1400)
    rows = _check_alert_rows(dom)
    stored = {r["alert_id"]: r for r in sql(env, f"SELECT alert_id, clock, state FROM {db}.alerts")}
    shown = get_json(demo["port"], f"/gmv/dashboard/data/?model={MODEL}", env)["alerts"]
    assert [r["attrs"]["data-id"] for r in rows] == [a["id"] for a in shown]
    for r in rows:
        s = stored[r["attrs"]["data-id"]]
        assert (r["attrs"]["data-clock"], r["attrs"]["data-state"]) == (s["clock"], s["state"])
    if not rows:  # this demo fired none: the panel says so
        assert [r["cells"] for r in dom.empty_rows("table-alerts")][0][""].startswith(NO_DATA)


def test_an_empty_table_says_no_data(demo):
    dom = dom_of(page_url(demo))
    for table in TABLES:
        panel = "panel-" + table.removeprefix("table-")
        items, empty = dom.rows_of(table), dom.empty_rows(table)
        assert len(items) == dom.panel_rows[panel], table
        if items:
            assert not empty, f"{table} has rows and a no-data row"
        else:
            assert len(empty) == 1 and empty[0]["cells"][""].startswith(NO_DATA), (table, dom.body[table])


def test_figures_and_gpm_have_thousands_separators(demo):
    dom = dom_of(page_url(demo))
    k = dom.kpis
    for key in ("net_fen", "gmv_fen", "refund_fen", "aov_fen"):
        assert dom.kpi_text[key] == f"¥{int(k[key]) / 100:,.2f}", key
    assert dom.kpi_text["orders"] == f"{int(k['orders']):,}"
    assert dom.kpi_text["gpm_yuan"] == f"¥{float(k['gpm_yuan']):,.2f}"
    data = get_json(demo["port"], f"/gmv/dashboard/data/?model={MODEL}", demo["env"])
    for table, key in (("table-lives", "top_lives"), ("table-accounts", "top_accounts"), ("table-skus", "top_skus")):
        cells = [r["cells"]["gpm_yuan"] for r in dom.rows_of(table)]
        assert cells == [f"{r['gpm_yuan']:,.2f}" for r in data[key]] != [], table


def test_the_status_line_keeps_this_process_apart_from_all_time(demo):
    env = demo["env"]
    db = env["GMV_CLICKHOUSE_DATABASE"]
    dom = dom_of(page_url(demo))
    process, all_time = dom.status["process"], dom.status["all-time"]
    counters = get_json(demo["port"], "/gmv/stats/", env)["counters"]  # the demo has drained: they hold still
    assert int(process["data-received"]) == counters["received"] > 0
    assert int(process["data-dead-letters"]) == counters["dead_lettered"]
    assert process["text"].startswith("本进程 this process:") and "received" in process["text"]
    assert f"{counters['received']:,}" in process["text"]
    stored = int(sql(env, f"SELECT count() AS n FROM {db}.dead_letters")[0]["n"])
    assert int(all_time["data-dead-letters"]) == stored
    assert all_time["text"] == f"累计 all time: 死信 dead letters {stored:,}"
    assert dom.status["watermark"]["text"].startswith("已归因至 attributed to ")


def _powers_of_ten(labels: str) -> list[int]:
    scale = {"": 1, "k": 10**3, "M": 10**6, "B": 10**9}
    values = [int(m.group(1)) * scale[m.group(2)] for m in (re.fullmatch(r"(\d+)([kMB]?)", t) for t in labels.split(","))
              if m]
    assert len(values) == len(labels.split(",")), labels
    return values


def test_the_funnel_axis_is_log_ticked_at_powers_of_ten(demo):
    dom = dom_of(page_url(demo), 1400)
    f = dom.funnel
    assert f["data-scale"] == "logarithmic" and "对数刻度 log scale" in f["data-axis-title"]
    ticks = _powers_of_ten(f["data-ticks"])
    assert ticks == [10**i for i in range(len(ticks))] and len(ticks) >= 2
    largest = max(int(f[k]) for k in ("data-views", "data-engaged-views", "data-live-enters", "data-orders"))
    assert ticks[-1] >= largest > ticks[-1] // 10 or largest < 10


# -- the same page over a canned payload: what a short demo may not show (alerts, big numbers, nothing) --

STATIC = ROOT / "dashboards" / "static"


@pytest.fixture(scope="module")
def canned_page():
    """The real page and static files, its data from ``dashboard_data`` over canned rows."""
    served: dict[str, object] = {}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server's name)
            path = self.path.split("?")[0]
            if path == "/dashboard/":
                body, kind = (STATIC / "index.html").read_bytes(), "text/html"
            elif path.startswith("/dashboard/static/") and (STATIC / path.rsplit("/", 1)[1]).is_file():
                name = path.rsplit("/", 1)[1]
                body = (STATIC / name).read_bytes()
                kind = {"css": "text/css", "html": "text/html"}.get(name.rsplit(".", 1)[1], "application/javascript")
            elif path in ("/gmv/dashboard/data/", "/gmv/stats/"):
                body, kind = json.dumps(served[path]).encode(), "application/json"
            else:
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()

    def show(full: bool) -> str:
        served["/gmv/dashboard/data/"] = canned_dashboard(full)
        served["/gmv/stats/"] = {"counters": {"received": 1_234_567 if full else 0, "dead_lettered": 89 if full else 0},
                                 "lag": 0}
        return f"http://127.0.0.1:{server.server_address[1]}/dashboard/?model=last_touch#token=canned"

    try:
        yield show
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize("width", [1400, 1500])
def test_canned_alerts_wrap_inside_the_panel_and_read_by_their_clock(canned_page, width):
    url = canned_page(True)
    dom = dom_of(url, width)
    fits = {t: dom.fits.get(t) for t in TABLES}  # with ¥1.2M rows too
    assert fits == dict.fromkeys(TABLES, "1"), f"tables that need a horizontal scrollbar at {width} px: {fits}"
    rows = {r["attrs"]["data-id"]: r for r in _check_alert_rows(dom)}
    assert list(rows) == ["lag1", "day1", "night1"]  # as dashboard_data gave them
    day, night, lag = rows["day1"], rows["night1"], rows["lag1"]
    assert day["attrs"]["data-window-kind"] == "day"
    assert day["cells"]["window"] == "12-01 (全天 whole day)" + CLOCKS["event"]
    assert night["attrs"]["data-window-kind"] == "across_midnight"
    assert night["cells"]["window"] == "12-01 23:55–12-02 00:05" + CLOCKS["event"]
    assert (night["cells"]["fired"], night["cells"]["resolved"]) == ("12-02 00:05:30", "12-02 00:09:01")
    assert lag["cells"]["window"] == "12-02 01:33:05–01:33:50" + CLOCKS["wall"]
    assert (lag["attrs"]["data-clock"], lag["cells"]["resolved"]) == ("wall", "—")
    # GPM in the thousands, separated like every other figure; the funnel ticked up to 1M
    assert dom.kpi_text["gpm_yuan"] == "¥8,765.44"
    assert [r["cells"]["gpm_yuan"] for r in dom.rows_of("table-lives")] == ["8,765.44"]
    assert dom.kpi_text["net_fen"] == "¥1,234,557.89"
    assert dom.funnel["data-ticks"] == "1,10,100,1k,10k,100k,1M"
    assert dom.minute_band == dom.rows["panel-minute"] == 180  # the seasonal band behind every minute
    # one day of scores: no movers, and the panel says so
    assert dom.panel_rows["panel-score-movers"] == 0
    assert dom.empty_rows("table-score-movers")[0]["cells"][""].startswith(NO_DATA)
    assert dom.status["process"]["text"].startswith("本进程 this process: 已接收 received 1,234,567, 死信 dead letters 89")
    assert dom.status["all-time"]["text"] == "累计 all time: 死信 dead letters 12,345"
    if width == 1400:
        ARTIFACTS.mkdir(exist_ok=True)
        shot = ARTIFACTS / "dashboard-canned.png"
        shot.unlink(missing_ok=True)
        run_chromium(url, f"--screenshot={shot}", width=width)
        assert shot.is_file() and shot.stat().st_size > 20_000


def test_canned_empty_page_says_no_data_in_every_table(canned_page):
    dom = dom_of(canned_page(False), 1400)
    for table in TABLES:
        panel = "panel-" + table.removeprefix("table-")
        assert dom.panel_rows[panel] == 0, table
        assert not dom.rows_of(table) and len(dom.empty_rows(table)) == 1, table
        assert dom.empty_rows(table)[0]["cells"][""].startswith(NO_DATA), table
        assert dom.fits[table] == "1", table
    assert dom.heads["table-alerts"] == ALERT_COLUMNS
    assert dom.status["all-time"]["text"] == "累计 all time: 死信 dead letters 0"


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
    assert {r["model"] for r in per_model} == {"last_touch", "first_touch", "linear", "position_based", "time_decay",
                                               "markov"}
    assert len({int(r["net"]) for r in per_model}) == 1  # every model credits the same fen in all
    assert len({int(r["live"]) for r in per_model}) > 1  # ... split differently over the stages


@pytest.mark.stops_the_serving_demo
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
