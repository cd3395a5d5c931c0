"""The demo's counts, read from its output as a user reads them: the incidents story sent in two runs
on one data dir (the first stopped by --duration, the rerun continuing to the story's end). Every
message the summary says was sent was consumed, the progress lines count sent and consumed on the
same basis (this run's), and the net GMV a rerun's progress lines show never falls below the figure
the run before ended with."""

from __future__ import annotations

import re

import pytest

from gmv.tools.embedded import free_port
from tests.integration.conftest import fresh_env, gmv, own_engine, remove_env

pytestmark = pytest.mark.integration

PROGRESS = re.compile(r"^\s+\d+s  sent\s+([\d,]+) .*consumed\s+([\d,]+) .*net GMV ¥([\d,.]+)", re.M)
SENT = re.compile(r"^summary: this run sent ([\d,]+) messages and consumed received=([\d,]+) accepted=([\d,]+) "
                  r"duplicates=([\d,]+) dead_lettered=([\d,]+); the story so far: ([\d,]+) messages", re.M)
# the summary before: "this run consumed received=… dead_lettered=…; the simulator emitted N messages in all"
RECEIVED = re.compile(r"^summary: .*received=([\d,]+) accepted=([\d,]+) duplicates=([\d,]+) dead_lettered=([\d,]+); "
                      r".*?([\d,]+) messages", re.M)
NET = re.compile(r"^summary: [\d,]+ orders, .* net ¥([\d,.]+)$", re.M)


def _n(text: str) -> int:
    return int(text.replace(",", ""))


def _yuan(text: str) -> float:
    return float(text.replace(",", ""))


@pytest.fixture(scope="module")
def two_runs(backend, tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("demo") / "data"
    env = own_engine(fresh_env(backend), data_dir)
    common = ("demo", "--scenario", "incidents", "--incident-pause", "0", "--rate", "5000")
    first = gmv(env, *common, "--duration", "5", "--web-port", str(free_port()), timeout=400, process=True)
    rerun = gmv(env, *common, "--web-port", str(free_port()), timeout=600, process=True)
    yield first, rerun
    remove_env(env)


def test_every_message_the_incidents_demo_sent_is_consumed_and_its_summary_adds_up(two_runs):
    first, rerun = two_runs
    assert "the scenario's story ended" in rerun.stderr, rerun.stderr[-2000:]
    runs = [RECEIVED.search(p.stdout) for p in two_runs]
    assert all(runs), [p.stdout[-1500:] for p in two_runs]
    received = [_n(r.group(1)) for r in runs]
    for r in runs:  # each message is accepted, a duplicate or a dead letter
        assert _n(r.group(1)) == _n(r.group(2)) + _n(r.group(3)) + _n(r.group(4)), r.group(0)
    story = _n(runs[1].group(5))  # the story in all, after its last run
    assert sum(received) == story, (received, runs[1].group(0))
    sent = [SENT.search(p.stdout) for p in two_runs]
    assert all(sent), [p.stdout[-1500:] for p in two_runs]
    assert [_n(s.group(1)) for s in sent] == received  # each run consumed what it sent
    assert "1 pause of the sender, which sent nothing" in rerun.stdout  # the incident that is no message


def test_a_reruns_progress_lines_count_this_run_and_never_show_less_net_gmv_than_the_run_before_ended(two_runs):
    first, rerun = two_runs
    ended_with = _yuan(NET.search(first.stdout).group(1))
    lines = PROGRESS.findall(rerun.stderr)
    assert len(lines) >= 2, rerun.stderr[-2000:]
    this_run = _n(SENT.search(rerun.stdout).group(1)) if SENT.search(rerun.stdout) else None
    for sent, consumed, _ in lines:  # this run's sends and receipts, side by side
        assert _n(sent) <= (this_run if this_run is not None else -1), (sent, consumed, this_run)
    nets = [_yuan(net) for _, _, net in lines]
    assert all(n >= ended_with for n in nets), (ended_with, nets)
    assert nets == sorted(nets)  # and it only grows: the story's refunds count once their time is shown
