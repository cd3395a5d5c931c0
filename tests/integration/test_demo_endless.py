"""`gmv demo` without --duration, as README's tour runs it: its world goes on after the scenario's days
(here sent fast until it catches up with the clock, then in real time), Ctrl-C prints the summary and
MATCH lines, and a rerun continues the same world and matches again."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from gmv.tools.embedded import free_port
from tests.integration.conftest import ROOT, fresh_env, own_engine
from tests.support.waiting import wait_for
from tests.support.web import get_json

pytestmark = pytest.mark.integration

LIVE = "the story caught up with the clock; its world goes on in real time"
PROGRESS = re.compile(r"^\s+\d+s  sent\s+([\d,]+) ", re.M)
STORY = re.compile(r"the story so far: ([\d,]+) messages")
MATCHES = ("reconciliation: MATCH: net GMV", "reconciliation: scores MATCH", "reconciliation: markov model MATCH",
           "reconciliation: alerts MATCH")


def _last_minute(port: int, env: dict[str, str]) -> str:
    minutes = get_json(port, "/gmv/dashboard/data/?model=last_touch", env)["per_minute"]
    return minutes[-1]["label"] if minutes else ""


def _until_ctrl_c(env: dict[str, str], tmp: Path, name: str, *args: str, panels: bool = False) -> tuple[str, str]:
    """The demo run until it goes on in real time and has sent something there (``panels``: and the
    dashboard's per-minute panels moved on with the clock), then Ctrl-C."""
    out_path, err_path = tmp / f"{name}.out", tmp / f"{name}.err"
    port = free_port()
    with open(out_path, "w") as out, open(err_path, "w") as err:
        demo = subprocess.Popen([sys.executable, "-m", "gmv.tools.cli", "demo", "--web-port", str(port), *args],
                                env=env, cwd=ROOT, stdout=out, stderr=err, text=True, start_new_session=True)
    try:
        wait_for(lambda: LIVE in err_path.read_text() or demo.poll() is not None, 420, "the world to catch up",
                 poll_s=1)
        assert demo.poll() is None, err_path.read_text()[-3000:]
        at_live = len(PROGRESS.findall(err_path.read_text()))
        wait_for(lambda: len(PROGRESS.findall(err_path.read_text())) >= at_live + 5, 60, "progress in real time")
        if panels:
            shown = _last_minute(port, env)
            wait_for(lambda: _last_minute(port, env) > shown, 150, "the per-minute panels to move on", poll_s=5)
        os.killpg(demo.pid, signal.SIGINT)
        assert demo.wait(300) == 0, (out_path.read_text() + err_path.read_text())[-3000:]
    finally:
        if demo.poll() is None:
            os.killpg(demo.pid, signal.SIGKILL)
            demo.wait()
    return out_path.read_text(), err_path.read_text()


def test_the_demo_goes_on_after_its_story_until_ctrl_c_then_matches_and_a_rerun_continues(backend, tmp_path):
    env = own_engine(fresh_env(backend), tmp_path / "data")
    stdout, stderr = _until_ctrl_c(env, tmp_path, "first", "--rate", "20000", panels=True)
    assert "the scenario's story ended" not in stderr
    assert all(line in stdout for line in MATCHES), stdout[-3000:]
    story = int(STORY.search(stdout).group(1).replace(",", ""))
    # more than the scenario's three days hold: the days after them, up to now, were told too
    days_only = subprocess.run([sys.executable, "-m", "gmv.tools.simulator", "--scenario", "mixed", "--scale", "4",
                                "--out", os.devnull], env=env, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert story > int(re.search(r'"emitted": (\d+)', days_only.stderr).group(1))

    stdout, stderr = _until_ctrl_c(env, tmp_path, "again")
    assert f"continuing the story after {story:,} messages" in stderr, stderr[-2000:]
    assert all(line in stdout for line in MATCHES), stdout[-3000:]
    assert int(STORY.search(stdout).group(1).replace(",", "")) > story
