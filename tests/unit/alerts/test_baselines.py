"""Seasonal baselines alone: the days' values by hand, a verdict out; the history as the rollups'
rows give it."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from gmv.alerts.baselines import (
    DAY_MINUTES,
    WEEK_MINUTES,
    SeasonalParams,
    baseline,
    compare,
    read_history,
    shifts,
)

P = SeasonalParams()


def test_a_routine_seen_on_most_previous_days_is_not_unusual():
    # GMV per minute in the ten minutes after the daily flash sale: it always falls back to about 1,000
    days = [1_000, 950, 1_080, None, 1_020, 990, 30_000]  # one day without the room, one with a big sale
    verdict = compare(P, 1_010, days, "low")
    assert verdict.judged and not verdict.unusual and verdict.quiet


def test_a_departure_from_what_the_same_minutes_always_looked_like_is_unusual():
    days = [1_000, 950, 1_080, 1_010, 1_020, 990, 1_040]
    assert compare(P, 0, days, "low").unusual  # orders stopped where they never stop
    assert compare(P, 5_000, days, "high").unusual
    assert not compare(P, 0, days, "high").unusual  # a fall is not a spike


def test_one_odd_day_in_the_history_does_not_move_the_baseline():
    usual = [1_000, 950, 1_080, 1_010, 1_020, 990, 1_040]
    odd = [1_000, 950, 1_080, 1_010, 1_020, 990, 900_000]
    assert baseline(odd).median == baseline(usual).median
    assert baseline(odd).spread == baseline(usual).spread  # nor does it widen it
    assert compare(P, 0, odd, "low").unusual


def test_with_fewer_comparable_days_than_min_days_the_baseline_does_not_judge_and_says_so():
    verdict = compare(P, 0, [1_000, None, None, 1_020, None, None, None], "low")
    assert not verdict.judged and not verdict.quiet  # the rule judges as without baselines
    assert verdict.describe(str) == "no seasonal baseline yet: 2 of 5 days"


def test_days_that_all_look_the_same_still_allow_their_usual_wobble():
    days = [1_000] * 7  # a MAD of 0: the spread is seasonal_min_spread_pct of the median
    assert not compare(P, 300, days, "low").unusual
    assert compare(P, 200, days, "low").unusual
    assert compare(SeasonalParams(seasonal_min_spread_pct=10), 600, days, "low").unusual


def test_a_routine_of_nothing_makes_nothing_unusual_and_anything_above_it_is():
    # orders in the warm-up minutes: none on any day, so none today is normal
    assert compare(P, 0, [0] * 7, "low").quiet
    assert compare(P, 1, [0] * 7, "high").unusual


def test_the_message_shows_the_days_behind_the_baseline_latest_first():
    verdict = compare(P, 0, [10, 12, None, 11, 9, 10, 13], "low")
    assert verdict.describe(lambda v: f"{v:.1f}") == (
        "the same minutes on the previous 7 days (latest first): 10.0, 12.0, -, 11.0, 9.0, 10.0, 13.0; "
        "median 10.5, spread 2.6")


def test_the_baseline_looks_back_whole_days_or_whole_weeks():
    assert shifts(SeasonalParams(seasonal_days=3, seasonal_min_days=2)) == [DAY_MINUTES, 2 * DAY_MINUTES,
                                                                            3 * DAY_MINUTES]
    assert shifts(SeasonalParams(seasonal_days=2, seasonal_min_days=2, seasonal_weekly=True)) == [
        WEEK_MINUTES, 2 * WEEK_MINUTES]


def test_min_days_above_the_days_looked_at_is_refused():
    with pytest.raises(ValidationError, match="seasonal_min_days"):
        SeasonalParams(seasonal_days=3, seasonal_min_days=4)


def test_the_history_is_read_for_the_subjects_asked_with_one_parameterised_range_per_day_aligned_to_today():
    asked: list[tuple[str, dict]] = []
    today = 29_000_000
    yesterday = today - DAY_MINUTES

    def rows(sql: str, params: dict) -> list[tuple]:
        asked.append((sql, params))
        if "funnel_minute" in sql:
            return [(yesterday, "anchor1", 40)]
        if "content_minute" in sql:
            return [(yesterday, "anchor1", 90_000, 3)]
        return [(yesterday - 5, "shop1", 1_000, 500)]

    h = read_history(rows, today, today + 9, 30, [DAY_MINUTES, 2 * DAY_MINUTES], ["anchor1"], ["shop1"])
    assert len(asked) == 3
    for sql, params in asked:
        assert "29000000" not in sql and "{f0:DateTime('UTC')}" in sql and "{t1:DateTime('UTC')}" in sql
        assert "{keys:Array(String)}" in sql and set(params) == {"keys", "f0", "t0", "f1", "t1"}
    assert [p["keys"] for _, p in asked] == [["anchor1"], ["anchor1"], ["shop1"]]
    assert h.total("account", "anchor1", DAY_MINUTES, "enters", today, today) == 40
    assert h.total("account", "anchor1", DAY_MINUTES, "gmv_fen", today, today + 9) == 90_000
    assert h.total("account", "anchor1", 2 * DAY_MINUTES, "gmv_fen", today, today + 9) == 0
    assert h.total("shop", "shop1", DAY_MINUTES, "refund_fen", today - 5, today - 5) == 500
    assert h.has("account", "anchor1", DAY_MINUTES, today, today + 9)
    assert not h.has("account", "anchor1", 2 * DAY_MINUTES, today, today + 9)


def test_no_subject_to_judge_against_the_days_before_reads_nothing():
    asked: list[str] = []
    h = read_history(lambda sql, params: asked.append(sql) or [], 29_000_000, 29_000_009, 30, [DAY_MINUTES], [], [])
    assert asked == [] and h.series == {}
