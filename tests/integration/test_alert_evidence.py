"""An alert's evidence command answers for the data it came from: run as printed, from a shell in
another directory with none of the run's GMV_* settings, it reads the run's ClickHouse and shows the
alert's own minutes, in the Asia/Shanghai time its message speaks."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import pytest

from tests.integration.conftest import ROOT, fresh_env, gmv, own_engine, parse_run_json, sql_rows

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


def test_an_alerts_printed_command_run_from_another_directory_shows_that_alerts_minutes_in_cst(backend, tmp_path):
    data_dir = tmp_path / "data"
    env = own_engine(fresh_env(backend), data_dir)
    events = tmp_path / "incidents.jsonl"
    subprocess.run([sys.executable, "-m", "gmv.tools.simulator", "--scenario", "incidents", "--start", START,
                    "--out", str(events)], env=env, cwd=ROOT, check=True, timeout=120, capture_output=True)
    run = parse_run_json(gmv(env, "run", "--events", str(events), "--json", "--quiet", process=True).stdout)
    assert {a["rule"] for a in run["alerts"]} >= {"live_no_orders", "refund_spike"}
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

