"""The ``gmv`` command's own surface: each subcommand's help offers the flags it uses and says what
every option does; errors a user makes at the prompt get one clear line and a non-zero exit."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import pytest

from gmv.streams.settings import Settings
from gmv.tools import cli
from gmv.tools.config_docs import table
from gmv.tools.flags import FLAGS, GROUPS

ROOT = Path(__file__).resolve().parents[2]


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


def _commands() -> dict[str, argparse.ArgumentParser]:
    top = _subparsers(cli.build_parser())
    out = {name: p for name, p in top.items() if name not in ("simulate", "alerts")}
    out.update({f"alerts {name}": p for name, p in _subparsers(top["alerts"]).items()})
    return out


def _flags(parser: argparse.ArgumentParser) -> set[str]:
    return {s for a in parser._actions for s in a.option_strings if s.startswith("--")} - {"--help"}


def test_each_subcommand_offers_only_the_setting_flags_it_uses():
    commands = _commands()
    setting_flags = {f.flag for f in FLAGS.values()}
    clickhouse_only = {FLAGS[n].flag for n in GROUPS["clickhouse"]}
    for name in ("sql", "explain", "load-dim", "scores", "alerts list", "reconcile", "attribution"):
        assert _flags(commands[name]) & setting_flags == clickhouse_only, name
    assert _flags(commands["alerts rules"]) & setting_flags == {"--alert-rules"}
    assert _flags(commands["schema"]) & setting_flags == set()
    for name in ("run", "worker", "demo"):
        assert {"--kafka", "--half-life", "--alert-rules", "--partitions"} <= _flags(commands[name]), name
    assert "--web-port" in _flags(commands["worker"]) and "--web-port" not in _flags(commands["run"])


def test_every_subcommand_and_option_says_what_it_does():
    for name, parser in _commands().items():
        assert parser.description, f"gmv {name} has no description"
        assert "``" not in parser.description
        for action in parser._actions:
            if action.option_strings and action.dest != "help" or isinstance(action, argparse._StoreAction):
                assert action.help, f"gmv {name} {action.option_strings or action.dest} has no help"
    top = _subparsers(cli.build_parser())
    assert all(a.help for a in next(a for a in cli.build_parser()._actions
                                   if isinstance(a, argparse._SubParsersAction))._choices_actions)
    assert "simulate" in top


def test_a_setting_flags_help_is_its_description_with_its_variable_and_default():
    help_text = {a.option_strings[0]: a.help for a in _commands()["run"]._actions if a.option_strings}
    assert help_text["--half-life"] == (f"{Settings.model_fields['half_life'].description} "
                                         "(GMV_HALF_LIFE; default 24h)")
    assert help_text["--lookback"].endswith("(GMV_LOOKBACK; default 7d)")


def test_every_setting_is_described_and_the_configuration_docs_are_generated_from_them():
    assert all(f.description for f in Settings.model_fields.values())
    committed = (ROOT / "docs" / "configuration.md").read_text(encoding="utf-8")
    assert committed == table(), "run: python -m gmv.tools.config_docs > docs/configuration.md"
    assert len(re.findall(r"^\| `GMV_", committed, re.M)) == len(Settings.model_fields)


def test_a_flag_is_named_in_messages_when_it_set_the_setting():
    args = _commands()["run"].parse_args(["--events", "x.jsonl", "--kafka", "127.0.0.1:1"])
    settings = cli.settings_from(args)
    assert settings.kafka_bootstrap_servers == "127.0.0.1:1"
    assert settings.source("kafka_bootstrap_servers") == "--kafka"
    assert settings.source("clickhouse_dsn") == "GMV_CLICKHOUSE_DSN"


def test_a_mistyped_rule_is_refused_with_the_rule_it_probably_meant(capsys: pytest.CaptureFixture[str]):
    with pytest.raises(SystemExit) as exit_:
        cli.main(["alerts", "--rule", "refund_spik"])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert "unknown rule 'refund_spik'; did you mean refund_spike?" in err


def test_gmv_alerts_alone_lists_and_rules_prints_nothing_before_a_bad_rules_file(tmp_path: Path,
                                                                                  capsys: pytest.CaptureFixture[str]):
    bad = tmp_path / "bad.toml"
    bad.write_text("[rules.live_no_orders]\nminutes = 'ten'\n")
    assert cli.main(["alerts", "rules", "--alert-rules", str(bad)]) == 1
    out, err = capsys.readouterr()
    assert out == "" and str(bad) in err and "minutes" in err
    assert cli.main(["alerts", "rules"]) == 0
    assert capsys.readouterr().out.startswith("# effective alert rules: built-in defaults")


def test_gmv_demo_offers_every_simulator_scenario():
    from gmv.tools.cli import SCENARIO_NAMES
    from gmv.tools.simulator import SCENARIOS

    assert set(SCENARIO_NAMES) == set(SCENARIOS)  # stage_worth was once missing from `gmv demo --scenario`
