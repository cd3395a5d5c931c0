"""What a user reads after a run of the incidents story, as they read it: an alert's evidence command
answers for the data it came from (run as printed, from a shell in another directory with none of the
run's GMV_* settings, it reads the run's ClickHouse and shows the alert's own minutes, in the
Asia/Shanghai time its message speaks); the listings say which day they are of, and a day without
data is an error naming the days with data."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import pytest

from tests.integration.conftest import (
    ROOT,
    fresh_env,
    gmv,
    own_engine,
    parse_run_json,
    remove_env,
    sql_rows,
)

pytestmark = pytest.mark.integration

START = "2026-11-20T00:00:00+08:00"
SPAN = re.compile(r"\((\d\d-\d\d \d\d:\d\d)–(\d\d:\d\d) CST\)")


def pretty_rows(text: str) -> list[dict[str, str]]:
    """The rows of ``--format pretty`` output (PrettyCompact: a boxed header, then ``N. │ a │ b │`` lines)."""
    lines = text.splitlines()
    header = [h.strip("─") for h in lines[0].strip().strip("┌┐").split("┬")]
    return [dict(zip(header, (c.strip() for c in line[line.index("│"):].strip().strip("│").split("│")),
                     strict=True)) for line in lines[1:] if "│" in line]


def in_span(minute: str, span: tuple[str, str]) -> bool:
    """``minute`` (YYYY-MM-DD HH:MM:SS) inside the message's ``MM-DD HH:MM–HH:MM`` span (end excluded)."""
    first, last = span
    return first <= minute[5:16] < f"{first[:6]}{last}"


@pytest.fixture(scope="module")
def incidents_run(backend, tmp_path_factory):
    """The incidents story replayed with `gmv run` into a data dir of its own: (env, the run's alerts)."""
    tmp = tmp_path_factory.mktemp("incidents")
    env = own_engine(fresh_env(backend), tmp / "data")
    events = tmp / "incidents.jsonl"
    subprocess.run([sys.executable, "-m", "gmv.tools.simulator", "--scenario", "incidents", "--start", START,
                    "--out", str(events)], env=env, cwd=ROOT, check=True, timeout=120, capture_output=True)
    run = parse_run_json(gmv(env, "run", "--events", str(events), "--json", "--quiet", process=True).stdout)
    yield env, run["alerts"]
    remove_env(env)


@pytest.fixture(scope="module")
def mixed_first_day(backend, tmp_path_factory):
    """The plain story's first 90,000 messages (its first day complete) replayed with `gmv run`: the env."""
    tmp = tmp_path_factory.mktemp("mixed")
    env = own_engine(fresh_env(backend), tmp / "data")
    events = tmp / "mixed.jsonl"
    subprocess.run([sys.executable, "-m", "gmv.tools.simulator", "--scenario", "mixed", "--start", START,
                    "--max-messages", "90000", "--out", str(events)], env=env, cwd=ROOT, check=True, timeout=120,
                   capture_output=True)
    gmv(env, "run", "--events", str(events), "--json", "--quiet", process=True)
    yield env
    remove_env(env)


def test_an_alerts_printed_command_run_from_another_directory_shows_that_alerts_minutes_in_cst(
        incidents_run, tmp_path):
    env, fired = incidents_run
    assert {a["rule"] for a in fired} >= {"live_no_orders", "refund_spike"}
    db = env["GMV_CLICKHOUSE_DATABASE"]
    alerts = sql_rows(gmv(env, "sql", f"SELECT rule, value, message, query FROM {db}.alerts", "--format", "json",
                          process=True).stdout)

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    shell_env = {k: v for k, v in os.environ.items() if not k.startswith("GMV_")}
    shell_env["PATH"] = f"{Path(sys.executable).parent}:{shell_env.get('PATH', '')}"
    checked = set()
    for a in alerts:
        shell = subprocess.run(["bash", "-c", a["query"]], env=shell_env, cwd=elsewhere, capture_output=True,
                               text=True, timeout=120)
        assert shell.returncode == 0, (a["query"], shell.stderr)
        rows = pretty_rows(shell.stdout)
        assert rows, (a["query"], shell.stdout)
        found = SPAN.search(a["message"])
        if a["rule"] not in ("live_no_orders", "refund_spike") or found is None:
            continue
        span = (found.group(1), found.group(2))
        window = [r for r in rows if in_span(r["minute_cst"], span)]
        assert window, (span, rows)  # the message's minutes are the rows' minutes: both CST
        if a["rule"] == "live_no_orders":
            assert all(r["orders"] in ("0", "ᴺᵁᴸᴸ") for r in window), window
            assert sum(int(r["enters"]) for r in window) >= 100
        else:
            assert sum(int(r["refund_fen"]) for r in window) == a["value"], (a, window)
        datetime.strptime(window[0]["minute_cst"], "%Y-%m-%d %H:%M:%S")
        checked.add(a["rule"])
    assert checked == {"live_no_orders", "refund_spike"}



def test_scores_of_a_day_without_scores_is_an_error_naming_the_days_that_have_them(incidents_run):
    env, _ = incidents_run
    days = [r["day"] for r in sql_rows(gmv(env, "sql", "SELECT DISTINCT toString(day) AS day FROM "
                                           f"{env['GMV_CLICKHOUSE_DATABASE']}.trust_scores ORDER BY day",
                                           "--format", "json", process=True).stdout)]
    assert days
    proc = gmv(env, "scores", "--day", "1999-01-01", check=False, process=True)
    assert proc.returncode == 1 and proc.stdout == "", proc
    assert proc.stderr.strip().splitlines() == [
        f"gmv scores: no shop scores on 1999-01-01 (Asia/Shanghai); the days with scores: {', '.join(days)} "
        f"(gmv scores --day {days[-1]})"]
    # as an unknown shop is (the listing a user compares it with)
    assert gmv(env, "scores", "--shop", "nosuchshop", check=False, process=True).returncode == 1
    assert f"商号体验分 on {days[-1]}" in gmv(env, "scores", "--day", days[-1], process=True).stdout


def test_attribution_says_which_day_its_removal_effects_are_of(incidents_run):
    env, _ = incidents_run
    latest = sql_rows(gmv(env, "sql", f"SELECT toString(max(day)) AS d FROM {env['GMV_CLICKHOUSE_DATABASE']}"
                                      ".markov_model", "--format", "json", process=True).stdout)[0]["d"]
    out = gmv(env, "attribution", process=True).stdout
    assert out.splitlines()[0].startswith(f"removal effect per stage and shop on {latest} (Asia/Shanghai"), out


def test_alerts_lists_a_day_scores_window_as_the_whole_day(mixed_first_day):
    env = mixed_first_day
    out = gmv(env, "alerts", "--since", "30d", "--rule", "shop_score_drop", process=True).stdout
    lines = [line for line in out.splitlines() if line.startswith(("firing", "resolved"))]
    assert lines and all("(全天 whole day)" in line and "00:00–00:00" not in line for line in lines), out


def test_json_is_one_document_and_jsonl_one_object_per_line_in_every_command(incidents_run):
    env, _ = incidents_run
    db = env["GMV_CLICKHOUSE_DATABASE"]
    query = f"SELECT rule, alert_id FROM {db}.alerts ORDER BY alert_id"
    document = json.loads(gmv(env, "sql", query, "--format", "json", process=True).stdout)
    lines = gmv(env, "sql", query, "--format", "jsonl", process=True).stdout.splitlines()
    assert len(document) >= 2 and document == [json.loads(line) for line in lines]
    for command in (("alerts", "--since", "30d"), ("scores",), ("attribution",)):
        document = json.loads(gmv(env, *command, "--format", "json", process=True).stdout)
        lines = gmv(env, *command, "--format", "jsonl", process=True).stdout.splitlines()
        assert isinstance(document, list) and len(document) >= 2, command
        assert document == [json.loads(line) for line in lines], command
    for command in (("sql",), ("alerts", "list"), ("scores",), ("attribution",)):
        shown = " ".join(gmv(env, *command, "--help", process=True).stdout.split())
        assert "json (one JSON document: an array of objects, one per row), jsonl (one JSON object per line)" \
            in shown, command
