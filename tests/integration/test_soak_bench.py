"""The soak benchmark as its user runs it (``python -m bench --only soak``; issue 31): a line per step, both
restarts timed, the chart and the lines written where asked, and nothing left running. (Its figures are the
benchmark's to measure, not a test's: nothing here asserts a time.)"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]


def _processes_under(path: str) -> list[str]:
    found = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                if path in (proc / "cmdline").read_bytes().decode(errors="replace"):
                    found.append(proc.name)
            except OSError:
                continue
    return found


def test_the_soak_reports_each_step_times_both_restarts_draws_its_chart_and_leaves_nothing_running(tmp_path):
    out = tmp_path / "results" / "soak.png"
    r = subprocess.run([sys.executable, "-m", "bench", "--only", "soak", "--events", "20000", "--report-every", "5000",
                        "--ahead", "4000", "--out", str(out)], cwd=ROOT, capture_output=True, text=True, timeout=400)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "events consumed: RSS" in r.stderr and "restart (b):" in r.stderr  # progress on stderr
    summary = r.stdout.strip().splitlines()[-1]
    assert f"chart={out}" in summary and f"lines={out.with_suffix('.jsonl')}" in summary
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    lines = [json.loads(x) for x in out.with_suffix(".jsonl").read_text().splitlines()]
    steps = [x for x in lines if x["figure"] == "soak_step"]
    assert len(steps) >= 2 and steps[-1]["events_consumed"] == 20_000
    assert [x["events_consumed"] for x in steps] == sorted(x["events_consumed"] for x in steps)
    assert steps[-1]["accepted"] == 20_000 and steps[-1]["dead_lettered"] == 0  # every soak event is valid
    assert all(x["worker_rss_mb"] > 50 and x["events_per_s"] > 0 for x in steps)
    assert steps[-1]["clickhouse_dir_bytes"] > 0 and steps[-1]["engine_parts"] > 0

    restarts = [x for x in lines if x["figure"] == "soak_restart"]
    assert [x["restart"] for x in restarts] == ["same_data_dir", "empty_local_store"]
    for x in restarts:
        assert x["spawn_to_new_event_stored_s"] >= x["spawn_to_consuming_s"] > 0
        assert x["restore_line_form"] == "changelog" and x["state_keys"] > 0
    same, empty = restarts
    # the same disk: the store holds the changelog (nothing to read); an empty one reads it back
    assert same["restore_records_read"] == 0 < same["restore_records_live"]
    assert empty["restore_records_read"] >= empty["restore_records_live"] > 0
    assert lines[-1]["figure"] == "soak_summary" and lines[-1]["events"] == 20_000

    root = re.search(r"worker on (\S+) \(web", r.stderr).group(1)
    assert not Path(root).exists()  # the temporary data dir is gone (no --keep)
    assert _processes_under(root) == []  # the broker and every worker stopped
