"""The business rules with seasonal baselines, over hand-made days of a live room and its shop: the
daily routines (a warm-up without orders, a flash sale after which GMV falls back, a morning refund
batch) page while the history is short and stop once they have been seen on enough days; the same
kind of change on a day that breaks the routine still fires. The history is read through
``read_history`` from rows a stand-in answers out of the same hand-made days."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from gmv.alerts.baselines import DAY_MINUTES, read_history
from gmv.alerts.conditions import LiveSeries, ShopSeries, minute_start
from gmv.alerts.exceptions import RulesError
from gmv.alerts.judging import BusinessJudge
from gmv.alerts.rules import AlertConfig, load_config

M0 = 29_000_000 - 29_000_000 % DAY_MINUTES  # the first day's first minute
NOW = datetime(2026, 11, 30, tzinfo=UTC)
ON_AIR = 150  # minutes a day the room is on air
WARM_UP = 25  # viewers, no orders yet
SALE = range(60, 65)  # the flash sale
BATCH = range(30, 33)  # customer service approves the day's refunds


def _day(k: int, orders_stop: range = range(0), refunds_at: range = BATCH) -> tuple[LiveSeries, ShopSeries]:
    """Day ``k`` (0-based) of the room (a new live id every day, the same anchor) and its shop."""
    start = M0 + k * DAY_MINUTES
    wobble = 1 + 0.04 * (k % 3)  # days differ a little
    live, shop = LiveSeries(f"L{k}", "s1", "anchor1"), ShopSeries("s1")
    for i in range(ON_AIR):
        m = start + i
        live.enters[m] = int(50 * wobble)
        if i >= WARM_UP and i not in orders_stop:
            gmv = 5_000_000 if i in SALE else int(100_000 * wobble)
            live.orders[m], live.gmv_fen[m] = (50 if i in SALE else 5), gmv
            shop.gmv_fen[m] = gmv
        if i in refunds_at:
            shop.refund_fen[m] = int(200_000 * wobble)
    return live, shop


def _rows(days: list[tuple[LiveSeries, ShopSeries]]):
    """The rollups as ``read_history`` queries them, out of the hand-made days."""
    def rows(sql: str, params: dict) -> list[tuple]:
        spans = [(int(params[f"f{i}"].timestamp()) // 60, int(params[f"t{i}"].timestamp()) // 60)
                 for i in range(sum(k.startswith("f") for k in params))]

        def wanted(m: int, key: str) -> bool:
            return key in params["keys"] and any(lo <= m < hi for lo, hi in spans)
        out: list[tuple] = []
        for live, shop in days:
            if "funnel_minute" in sql:
                out += [(m, live.account_id, v) for m, v in live.enters.items() if wanted(m, live.account_id)]
            elif "content_minute" in sql:
                out += [(m, live.account_id, v, live.orders[m]) for m, v in live.gmv_fen.items()
                        if wanted(m, live.account_id)]
            else:
                ms = sorted(set(shop.gmv_fen) | set(shop.refund_fen))
                out += [(m, shop.shop_id, shop.gmv_fen.get(m, 0), shop.refund_fen.get(m, 0)) for m in ms
                        if wanted(m, shop.shop_id)]
        return out
    return rows


def _judge_day(k: int, config: AlertConfig, today: tuple[LiveSeries, ShopSeries] | None = None) -> list:
    """The alerts day ``k`` fires, judged after days 0..k-1 of the routine."""
    days = [_day(i) for i in range(k)]
    live, shop = today or _day(k)
    judge = BusinessJudge(config, "gmv")
    first, end = M0 + k * DAY_MINUTES, M0 + k * DAY_MINUTES + ON_AIR + 120
    judge.start(first, [])
    history = read_history(_rows([*days, (live, shop)]), first, end, judge.history_reach(),
                           judge.seasonal_shifts(), *judge.seasonal_subjects(first, end, {live.live_id: live}, {"s1": shop}))
    changes = judge.judge_minutes(first, end, {live.live_id: live}, {"s1": shop}, NOW, history)
    return [a for a in changes if a.state == "firing"]


def _rules_and_minutes(alerts: list, k: int) -> set[tuple[str, int]]:
    """Each alert's rule and the minute of the day its window ends."""
    return {(a.rule, int(a.window_end.timestamp()) // 60 - M0 - k * DAY_MINUTES) for a in alerts}


ROUTINE_PAGES = {("live_no_orders", WARM_UP - 5), ("live_gmv_drop", SALE[-1] + 6), ("refund_spike", BATCH[1] + 1)}


def test_without_seasonal_baselines_every_daily_routine_pages_every_day():
    off = AlertConfig.model_validate({"rules": {r: {"seasonal": False} for r in
                                                ("live_gmv_drop", "live_no_orders", "refund_spike")}})
    assert _rules_and_minutes(_judge_day(7, off), 7) == ROUTINE_PAGES


def test_a_routine_pages_while_the_history_is_short_and_the_alert_says_why():
    alerts = _judge_day(2, AlertConfig())
    assert _rules_and_minutes(alerts, 2) == ROUTINE_PAGES
    assert all("no seasonal baseline yet: 2 of 5 days" in a.message for a in alerts), [a.message for a in alerts]


def test_a_routine_repeated_for_seven_days_stops_paging_on_day_eight():
    assert _judge_day(7, AlertConfig()) == []


def test_the_same_change_on_a_day_that_breaks_the_routine_fires_and_shows_the_days_before():
    today = _day(7, orders_stop=range(100, 120), refunds_at=range(120, 123))
    alerts = _judge_day(7, AlertConfig(), today)
    assert {a.rule for a in alerts} == {"live_no_orders", "live_gmv_drop", "refund_spike"}
    assert all(a.window_start >= minute_start(M0 + 7 * DAY_MINUTES + 95) for a in alerts)  # not the routines
    drop = next(a for a in alerts if a.rule == "live_gmv_drop")
    assert "the same minutes on the previous 7 days (latest first): ¥1,000/min, ¥1,080/min, ¥1,040/min" in drop.message
    assert "median ¥1,040/min" in drop.message
    assert "periods_ago" in drop.evidence.sql and drop.evidence.params["account"] == "anchor1"
    assert drop.evidence.params["period_s"] == str(DAY_MINUTES * 60)


def test_judging_a_day_twice_gives_the_same_alert_ids():
    today = _day(7, orders_stop=range(100, 120))
    first = [a.alert_id for a in _judge_day(7, AlertConfig(), today)]
    assert first and first == [a.alert_id for a in _judge_day(7, AlertConfig(), today)]


def test_the_weekly_option_needs_weeks_of_history():
    weekly = AlertConfig.model_validate({"rules": {"live_no_orders": {"seasonal_weekly": True, "seasonal_days": 2,
                                                                      "seasonal_min_days": 1}}})
    alerts = _judge_day(7, weekly)  # one week back: day 0, the same routine
    assert "live_no_orders" not in {a.rule for a in alerts}
    assert BusinessJudge(weekly, "gmv").seasonal_shifts()[-1] == 2 * 7 * DAY_MINUTES


def test_the_seasonal_knobs_are_rule_parameters_validated_and_printed(tmp_path: Path):
    printed = AlertConfig().to_toml()
    for rule in ("live_gmv_drop", "live_no_orders", "refund_spike"):
        section = printed.split(f"[rules.{rule}]")[1].split("\n\n")[0]
        for line in ("seasonal = true", "seasonal_days = 7", "seasonal_weekly = false", "seasonal_tolerance = 3.0",
                     "seasonal_min_spread_pct = 25.0", "seasonal_min_days = 5"):
            assert line in section, (rule, section)
    assert "seasonal" not in printed.split("[rules.shop_score_drop]")[1]
    bad = tmp_path / "rules.toml"
    bad.write_text("[rules.refund_spike]\nseasonal_days = 3\nseasonal_min_days = 4\n")
    with pytest.raises(RulesError, match=r"rules\.toml: rules\.refund_spike: .*seasonal_min_days \(4\) cannot exceed"):
        load_config(bad)
    bad.write_text("[rules.live_gmv_drop]\nseasonal_tolerance = 0\n")
    with pytest.raises(RulesError, match="rules.live_gmv_drop.seasonal_tolerance"):
        load_config(bad)


def test_only_subjects_unusual_against_the_recent_past_have_their_history_read():
    judge = BusinessJudge(AlertConfig(), "gmv")
    live, shop = _day(7, refunds_at=range(0))  # the room's routines, no refund batch today
    first = M0 + 7 * DAY_MINUTES
    quiet = LiveSeries("L9", "s9", "anchor9")  # a room that sells steadily: nothing to look up
    for m in range(first, first + ON_AIR):
        quiet.enters[m], quiet.orders[m], quiet.gmv_fen[m] = 50, 5, 100_000
    assert judge.seasonal_subjects(first, first + ON_AIR + 60, {"L7": live, "L9": quiet}, {"s1": shop}) == (
        {"anchor1"}, set())
