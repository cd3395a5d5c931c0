"""The rules file: defaults that make sense, strict validation naming file and field, overrides."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from gmv.alerts.exceptions import RulesError
from gmv.alerts.rules import BUSINESS_RULES, PIPELINE_RULES, AlertConfig, load_config


def test_no_file_means_the_built_in_defaults_with_every_rule_enabled():
    cfg = load_config(None)
    assert cfg == AlertConfig()
    for name in (*BUSINESS_RULES, *PIPELINE_RULES):
        assert getattr(cfg.rules, name).enabled, name


def test_a_file_changes_only_what_it_names(tmp_path: Path):
    f = tmp_path / "rules.toml"
    f.write_text("evaluation_interval_s = 2\n[rules.live_no_orders]\nminutes = 5\n")
    cfg = load_config(f)
    assert cfg.evaluation_interval_s == 2
    assert cfg.rules.live_no_orders.minutes == 5
    assert cfg.rules.live_no_orders.min_viewers == AlertConfig().rules.live_no_orders.min_viewers
    assert cfg.rules.refund_spike == AlertConfig().rules.refund_spike


@pytest.mark.parametrize(("text", "named"), [
    ("[rules.live_no_orders]\nminutes = -3\n", "rules.live_no_orders.minutes"),
    ("[rules.live_no_order]\nminutes = 3\n", "rules.live_no_order"),  # a typo is an error, not a default
    ("[rules.refund_spike]\nfactor = 'high'\n", "rules.refund_spike.factor"),
    ("[[overrides]]\nrule = 'refund_spike'\nshop_id = 's1'\nmin_refund_fen = 0\n", "min_refund_fen"),
    ("[[overrides]]\nrule = 'refund_spike'\nmin_refund_fen = 10\n", "exactly one of shop_id or account_id"),
    ("evaluation_interval_s = [", "not valid TOML"),
])
def test_a_bad_file_is_refused_naming_the_file_and_the_field(tmp_path: Path, text: str, named: str):
    f = tmp_path / "bad.toml"
    f.write_text(text)
    with pytest.raises(RulesError) as err:
        load_config(f)
    assert str(f) in str(err.value) and named in str(err.value)


def test_a_missing_file_says_which_setting_points_at_it(tmp_path: Path):
    with pytest.raises(RulesError, match="GMV_ALERT_RULES"):
        load_config(tmp_path / "nope.toml")


def test_an_accounts_override_wins_over_its_shops_and_others_keep_the_defaults(tmp_path: Path):
    f = tmp_path / "rules.toml"
    f.write_text("[[overrides]]\nrule = 'live_no_orders'\nshop_id = 's1'\nminutes = 20\nmin_viewers = 5\n"
                 "[[overrides]]\nrule = 'live_no_orders'\naccount_id = 'a1'\nminutes = 30\n")
    cfg = load_config(f)
    assert cfg.rule_for("live_no_orders", "s1", "a1").minutes == 30
    assert cfg.rule_for("live_no_orders", "s1", "a1").min_viewers == 5
    assert cfg.rule_for("live_no_orders", "s1", "other").minutes == 20
    assert cfg.rule_for("live_no_orders", "s2", "other") == cfg.rules.live_no_orders


def test_the_printed_rules_read_back_as_the_same_configuration(tmp_path: Path):
    f = tmp_path / "rules.toml"
    f.write_text("grace_minutes = 2\n[rules.consumer_lag]\nmax_age_s = 5\n"
                 "[[overrides]]\nrule = 'refund_spike'\nshop_id = 's\"1'\nfactor = 2.5\n")
    cfg = load_config(f)
    assert AlertConfig.model_validate(tomllib.loads(cfg.to_toml())) == cfg
