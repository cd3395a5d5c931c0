"""A bad rules file stops every command that evaluates alerts before it starts anything: one line
naming the file and the field, no traceback, nothing left running. It is the first thing said: the
web port the command is given is held by someone else, and still the rules file's error is the line."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from tests.integration.conftest import gmv

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("command", [["worker"], ["run", "--events", "EVENTS"], ["demo", "--duration", "5"],
                                     ["alerts", "rules"]])
def test_a_bad_rules_file_fails_at_start_naming_file_and_field(gmv_env, tmp_path: Path, command: list[str]):
    rules = tmp_path / "rules.toml"
    rules.write_text("[rules.refund_spike]\nmin_refund_fen = -1\n")
    events = tmp_path / "events.jsonl"
    events.write_text("")
    argv = [a.replace("EVENTS", str(events)) for a in command]
    data = [] if command[0] == "alerts" else ["--data-dir", str(tmp_path / "data")]  # `alerts rules` opens nothing
    with socket.socket() as held:  # a busy port would be a second error: the rules file must come first
        held.bind(("127.0.0.1", 0))
        held.listen()
        env = {**gmv_env, "GMV_WEB_PORT": str(held.getsockname()[1])}
        proc = gmv(env, *argv, "--alert-rules", str(rules), *data, timeout=60, check=False)
    err = proc.stderr.strip()
    assert proc.returncode == 1, err
    assert str(rules) in err and "rules.refund_spike.min_refund_fen" in err
    assert "Traceback" not in err and len(err.splitlines()) == 1, err
    assert not (tmp_path / "data" / "clickhouse").exists()  # stopped before opening anything


def test_gmv_alerts_rules_prints_the_effective_rules_from_the_file(gmv_env, tmp_path: Path):
    rules = tmp_path / "rules.toml"
    rules.write_text("[rules.live_no_orders]\nminutes = 7\n")
    out = gmv(gmv_env, "alerts", "rules", "--alert-rules", str(rules), timeout=60).stdout
    assert f"from {rules}" in out and "[rules.live_no_orders]" in out and "minutes = 7" in out
    assert "[rules.sink_failing]" in out
