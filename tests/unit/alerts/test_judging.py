"""The judges alone: hand-made series, scores and samples in, alert changes out, with no store,
no worker and no clock (``now`` and the monotonic times are arguments)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from gmv.alerts.conditions import LiveSeries, PipelineSample, minute_start
from gmv.alerts.judging import (
    MAX_CATCH_UP_MINUTES,
    BusinessJudge,
    PipelineJudge,
)
from gmv.alerts.model import Alert
from gmv.alerts.rules import AlertConfig, ConsumerLag, DeadLetterRate, Rules
from gmv.schemas.times import shanghai_day, shanghai_midnight

M0 = 29_000_000
STOP = M0 + 60  # the live stops selling here, for 20 minutes
NOW = datetime(2026, 11, 30, tzinfo=UTC)
T0 = datetime(2026, 11, 30, 12, tzinfo=UTC)


def _lives() -> dict[str, LiveSeries]:
    live = LiveSeries("L1", "s1", "a1")
    for m in range(M0, M0 + 180):
        live.enters[m] = 50
        if not STOP <= m < STOP + 20:
            live.orders[m], live.gmv_fen[m] = 5, 100_000
    return {"L1": live}


def _started(first: int = M0, stored: list[Alert] | None = None) -> BusinessJudge:
    judge = BusinessJudge(AlertConfig(), "gmv")
    judge.start(first, stored or [])
    return judge


# -- business ------------------------------------------------------------------------------------
def test_a_minute_is_complete_once_the_rollups_hold_it_and_the_grace_for_late_events_passed():
    judge = BusinessJudge(AlertConfig(grace_minutes=2), "gmv")
    assert judge.complete_through(0, final=False) is None  # nothing rolled up yet
    held = (M0 + 1) * 60_000  # every order before minute M0 + 1 is in the rollups
    assert judge.complete_through(held, final=True) == M0  # the input ended: no late event can come
    assert judge.complete_through(held, final=False) == M0 - 2


def test_the_first_run_catches_up_from_before_the_earliest_data_but_at_most_a_week():
    judge = BusinessJudge(AlertConfig(), "gmv")
    reach = judge.lookback_minutes()
    assert reach == 70  # refund_spike's 10-minute window and 60-minute baseline, the longest
    assert judge.catch_up_from(minute_start(M0), M0 + 100) == M0 - reach
    assert judge.catch_up_from(minute_start(M0), M0 + 30 * 24 * 60) == M0 + 30 * 24 * 60 - MAX_CATCH_UP_MINUTES
    # the stored alerts it must know reach back a cooldown (shop_score_drop's day is the longest)
    assert judge.stored_since(M0) == minute_start(M0) - timedelta(days=1)
    assert not judge.started
    assert judge.start(M0, []) == [] and judge.started and judge.next_minute == M0


def test_a_business_judge_fires_each_incident_once_and_resolves_it_over_hand_made_series():
    judge = _started()
    changes = judge.judge_minutes(M0, M0 + 179, _lives(), {}, NOW)
    rules = AlertConfig().rules
    assert [(a.rule, a.state, a.window_end) for a in changes] == [
        ("live_gmv_drop", "firing", minute_start(STOP + rules.live_gmv_drop.window_minutes - 1)),
        ("live_no_orders", "firing", minute_start(STOP + rules.live_no_orders.minutes)),
        ("live_no_orders", "resolved", minute_start(STOP + rules.live_no_orders.minutes)),
        ("live_gmv_drop", "resolved", minute_start(STOP + rules.live_gmv_drop.window_minutes - 1)),
    ]
    assert {a.labels for a in changes} == {(("shop_id", "s1"), ("account_id", "a1"))}
    assert judge.next_minute == M0 + 180
    assert judge.next_chunk(M0 + 179, 60) is None  # nothing left to judge
    assert judge.new_changes(changes) == changes  # none stored yet
    assert judge.new_changes(changes) == []  # emitted once: known from then on


def test_minutes_judged_in_chunks_give_what_judging_them_at_once_gives():
    whole = _started().judge_minutes(M0, M0 + 179, _lives(), {}, NOW)
    for size in (1, 7, 70):
        judge, changes = _started(), []
        while (chunk := judge.next_chunk(M0 + 179, size)) is not None:
            first, end = chunk
            assert end - first < size
            changes += judge.judge_minutes(first, end, _lives(), {}, NOW)
        assert [(a.alert_id, a.state) for a in changes] == [(a.alert_id, a.state) for a in whole], size


def test_a_rule_turned_off_judges_nothing():
    config = AlertConfig.model_validate({"rules": {"live_gmv_drop": {"enabled": False},
                                                   "live_no_orders": {"enabled": False}}})
    judge = BusinessJudge(config, "gmv")
    judge.start(M0, [])
    assert judge.judge_minutes(M0, M0 + 179, _lives(), {}, NOW) == []


def test_changes_stored_already_are_dropped_and_a_stored_firing_alert_still_resolves():
    first = _started().judge_minutes(M0, M0 + 179, _lives(), {}, NOW)
    firing = [a for a in first if a.state == "firing"]  # a crash before the resolutions were stored
    judge = BusinessJudge(AlertConfig(), "gmv")
    assert judge.start(M0 - 70, firing) == firing  # still firing: handed on to the receivers again
    again = judge.new_changes(judge.judge_minutes(M0 - 70, M0 + 179, _lives(), {}, NOW))
    assert [(a.alert_id, a.state) for a in again] == [(a.alert_id, "resolved") for a in first
                                                      if a.state == "resolved"]
    done = BusinessJudge(AlertConfig(), "gmv")
    done.start(M0 - 70, [a for a in first if a.state == "resolved"])
    assert done.new_changes(done.judge_minutes(M0 - 70, M0 + 179, _lives(), {}, NOW)) == []


def test_a_shop_score_drop_is_judged_once_per_complete_day_from_the_scores_given():
    d0 = shanghai_day(minute_start(M0))
    days = [d0 + timedelta(days=k) for k in range(5)]
    # S1 falls 0.3 in a day (over max_drop 0.2), holds, recovers; S2 stays under min_score 3.5 for two days
    given = {days[0]: {"S1": 4.2, "S2": 3.6}, days[1]: {"S1": 3.9, "S2": 3.4}, days[2]: {"S1": 3.85, "S2": 3.3},
             days[3]: {"S1": 3.9, "S2": 3.7}, days[4]: {"S1": 3.0, "S2": 3.8}}
    judge = _started(int(shanghai_midnight(days[0]).timestamp()) // 60)
    last = int(shanghai_midnight(days[4]).timestamp()) // 60  # only day 4's first minute is complete
    assert judge.days_to_read(last) == (days[0] - timedelta(days=1), days[3])
    changes = judge.judge_days(last, given, NOW)
    assert [(a.subject_id, a.state, a.window_start, a.window_end) for a in changes] == [
        ("S1", "firing", shanghai_midnight(days[1]), shanghai_midnight(days[2])),
        ("S2", "firing", shanghai_midnight(days[1]), shanghai_midnight(days[2])),
        ("S1", "resolved", shanghai_midnight(days[1]), shanghai_midnight(days[2])),
        ("S2", "resolved", shanghai_midnight(days[1]), shanghai_midnight(days[2])),
    ]
    # S1 is back on day 2, S2 on day 3: each resolves with the first good day's end
    assert [a.resolved_window_end for a in changes if a.state == "resolved"] == [shanghai_midnight(days[3]),
                                                                                shanghai_midnight(days[4])]
    assert judge.days_to_read(last) is None and judge.judge_days(last, given, NOW) == []  # each day judged once
    assert [a.subject_id for a in judge.judge_days(last + 24 * 60, given, NOW)] == ["S1"]  # day 4's fall


def _sample(t_s: float, read_age_s: float = 0.0, lag: int = 0, stored_age_s: float | None = 1.0,
            sink_failing_s: float | None = None, dead: dict[str, tuple[int, int]] | None = None) -> PipelineSample:
    """What the worker reports ``t_s`` seconds after T0 (the judge sees only this)."""
    return PipelineSample(T0 + timedelta(seconds=t_s), lag, read_age_s, stored_age_s, sink_failing_s, dead or {}, "w1")


def test_consumer_lag_fires_only_once_it_held_for_s_and_a_clear_sample_starts_the_wait_again():
    judge = PipelineJudge(Rules(consumer_lag=ConsumerLag(for_s=10, cooldown_s=1)), "gmv")
    assert judge.judge(_sample(0, read_age_s=60)) == []
    assert judge.judge(_sample(5, read_age_s=60)) == []
    fired = judge.judge(_sample(10, read_age_s=60))
    assert [(a.rule, a.subject_id, a.state, a.fired_at) for a in fired] == [
        ("consumer_lag", "w1", "firing", T0 + timedelta(seconds=10))]
    assert judge.judge(_sample(11, read_age_s=60)) == []  # still behind: already alerted
    resolved = judge.judge(_sample(12))
    assert [(a.alert_id, a.state) for a in resolved] == [(fired[0].alert_id, "resolved")]
    # behind again, briefly clear, behind: the hold counts from the last clear sample
    assert judge.judge(_sample(20, read_age_s=60)) == judge.judge(_sample(25)) == []
    assert judge.judge(_sample(28, lag=300_000)) == judge.judge(_sample(35, lag=300_000)) == []
    assert [a.state for a in judge.judge(_sample(38, lag=300_000))] == ["firing"]


def test_dead_letters_are_counted_over_the_rule_window_and_judged_per_topic():
    judge = PipelineJudge(Rules(dead_letter_rate=DeadLetterRate(window_s=60)), "gmv")
    topics = ("orders", "clicks")

    def counters(accepted: int, dead: int) -> dict[tuple[str, str], int]:
        return {("orders", "accepted"): accepted, ("orders", "dead_letter"): dead, ("orders", "rekeyed"): 7}

    assert judge.dead_letters(0.0, counters(100, 10), topics) == {"orders": (0, 0), "clicks": (0, 0)}
    assert judge.dead_letters(30.0, counters(200, 30), topics)["orders"] == (20, 120)  # rekeyed is no outcome
    assert judge.dead_letters(61.0, counters(300, 30), topics)["orders"] == (20, 220)  # nothing newer left it yet
    assert judge.dead_letters(91.0, counters(1000, 230), topics)["orders"] == (200, 1000)  # from the one at 30 s
    fired = judge.judge(_sample(0, dead={"orders": (200, 1000), "clicks": (0, 0)}))
    assert [(a.rule, a.subject_id, a.value) for a in fired] == [("dead_letter_rate", "orders", 200)]


def test_pipeline_alerts_adopted_from_an_earlier_run_resolve_at_the_first_clear_sample_or_when_stopping():
    earlier = PipelineJudge(Rules(), "gmv")
    left = earlier.judge(_sample(0, lag=5, stored_age_s=120, sink_failing_s=60))
    assert sorted(a.rule for a in left) == ["flush_age", "sink_failing"]
    judge = PipelineJudge(Rules(), "gmv")
    judge.adopt(left, T0 + timedelta(seconds=1))
    assert judge.judge(_sample(2, lag=5, stored_age_s=120, sink_failing_s=60)) == []  # still open, not fired again
    cleared = judge.judge(_sample(3, lag=5, stored_age_s=1, sink_failing_s=60))
    assert [(a.rule, a.state) for a in cleared] == [("flush_age", "resolved")]
    stopped = judge.resolve_all(T0 + timedelta(seconds=4))
    assert [(a.rule, a.state, a.resolved_at) for a in stopped] == [
        ("sink_failing", "resolved", T0 + timedelta(seconds=4))]
    assert judge.incidents.open == {} and judge.resolve_all(T0) == []
