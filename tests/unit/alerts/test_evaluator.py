"""The evaluator's judging of complete minutes, over hand-made series: what it fires, and that a
replay over alerts already stored emits nothing again (the store and the worker's status are
stand-ins). The judges alone, without either, are in test_judging."""

from __future__ import annotations

import time
from datetime import UTC, date, datetime, timedelta

import pytest

from gmv.alerts.baselines import History
from gmv.alerts.conditions import LiveSeries, minute_start
from gmv.alerts.evaluator import AlertEvaluator
from gmv.alerts.rules import AlertConfig
from gmv.schemas.times import shanghai_day, shanghai_midnight
from tests.unit.alerts.stand_ins import Worker

M0 = 29_000_000
STOP = M0 + 60  # the live stops selling here, for 20 minutes


class _Store:
    database = "gmv"

    def __init__(self, known: list | None = None, shop_scores: dict | None = None) -> None:
        self.stored = known or []
        self.scores = shop_scores or {}

    def shop_scores(self, first_day: date, last_day: date) -> dict:
        return {d: s for d, s in self.scores.items() if first_day <= d <= last_day}

    def series(self, first: int, last: int) -> tuple[dict, dict]:
        live = LiveSeries("L1", "s1", "a1")
        for m in range(M0, M0 + 180):
            live.enters[m] = 50
            if not STOP <= m < STOP + 20:
                live.orders[m], live.gmv_fen[m] = 5, 100_000
        return {"L1": live}, {}

    def history(self, first: int, end: int, reach: int | tuple[int, int], shifts: list[int],
                subjects: tuple[set[str], set[str]]) -> History:
        return History()  # no day before M0: the rules judge without seasonal baselines

    def known(self, since: datetime) -> list:
        return list(self.stored)


def _worker(through_minute: int) -> Worker:
    """A worker that has stored data from M0 on, rolled up and scored through ``through_minute``."""
    return Worker(rolled_up_to_ms=(through_minute + 2) * 60_000, scored_up_to_ms=(through_minute + 2) * 60_000,
                  earliest_minute=minute_start(M0))


def _evaluator(store: _Store, worker: Worker) -> AlertEvaluator:
    return AlertEvaluator(AlertConfig(), worker.status, store, [], pipeline_rules=False)  # type: ignore[arg-type]


def test_each_incident_fires_once_at_its_first_full_window_and_resolves_when_orders_return():
    changes = _evaluator(_Store(), _worker(M0 + 179)).evaluate_business_sync(final=True)
    got = [(a.rule, a.state, a.window_end) for a in changes]
    rules = AlertConfig().rules
    # 4 of the 5 window minutes without orders is an 80% drop: it fires there
    assert got == [
        ("live_gmv_drop", "firing", minute_start(STOP + rules.live_gmv_drop.window_minutes - 1)),
        ("live_no_orders", "firing", minute_start(STOP + rules.live_no_orders.minutes)),
        ("live_no_orders", "resolved", minute_start(STOP + rules.live_no_orders.minutes)),
        ("live_gmv_drop", "resolved", minute_start(STOP + rules.live_gmv_drop.window_minutes - 1)),
    ]
    assert [a.resolved_window_end for a in changes if a.state == "resolved"] == [minute_start(STOP + 21)] * 2


def test_minutes_are_judged_once_as_they_complete_with_the_same_result_as_all_at_once():
    at_once = _evaluator(_Store(), _worker(M0 + 179)).evaluate_business_sync(final=True)
    worker = _worker(M0)
    stepwise = _evaluator(_Store(), worker)
    changes = []
    for through in range(M0, M0 + 180, 7):
        worker.move(rolled_up_to_ms=(through + 2) * 60_000)
        changes += stepwise.evaluate_business_sync(final=True, now=datetime(2026, 11, 30, tzinfo=UTC))
    assert [(a.alert_id, a.state) for a in changes] == [(a.alert_id, a.state) for a in at_once]


def test_a_replay_over_stored_alerts_emits_nothing_and_completes_a_stored_firing_one():
    first = _evaluator(_Store(), _worker(M0 + 179)).evaluate_business_sync(final=True)
    resolved = [a for a in first if a.state == "resolved"]
    assert _evaluator(_Store(resolved), _worker(M0 + 179)).evaluate_business_sync(final=True) == []
    firing_only = [a for a in first if a.state == "firing"]  # a crash before the resolutions were stored
    again = _evaluator(_Store(firing_only), _worker(M0 + 179)).evaluate_business_sync(final=True)
    assert [(a.alert_id, a.state) for a in again] == [(a.alert_id, "resolved") for a in resolved]


class _Flaky(_Store):
    """Reading the rollups fails once: the third chunk."""

    def __init__(self) -> None:
        super().__init__()
        self.reads = 0

    def series(self, first: int, last: int) -> tuple[dict, dict]:
        self.reads += 1
        if self.reads == 3:
            raise ConnectionError("ClickHouse went away")
        return super().series(first, last)


def test_a_failed_read_loses_nothing_judged_and_the_next_run_goes_on_from_there(monkeypatch):
    import gmv.alerts.evaluator as ev

    monkeypatch.setattr(ev, "CHUNK_MINUTES", 70)  # the incident fires in the second chunk, resolves in the third
    whole = _evaluator(_Store(), _worker(M0 + 179)).evaluate_business_sync(final=True)
    flaky = _evaluator(_Flaky(), _worker(M0 + 179))
    first = flaky.evaluate_business_sync(final=True)
    assert flaky._read_error is not None
    assert {a.state for a in first} == {"firing"}  # judged before the failure: delivered, not lost
    rest = flaky.evaluate_business_sync(final=True)
    assert [(a.alert_id, a.state) for a in first + rest] == [(a.alert_id, a.state) for a in whole]


def test_a_shop_score_drop_fires_once_the_day_is_complete_and_resolves_on_the_first_good_day():
    d0 = shanghai_day(minute_start(M0))
    days = [d0 + timedelta(days=k) for k in range(5)]
    # S1 falls 0.3 in a day (over max_drop 0.2), holds, recovers; S2 stays under min_score 3.5 for two days
    scores = {days[0]: {"S1": 4.2, "S2": 3.6}, days[1]: {"S1": 3.9, "S2": 3.4}, days[2]: {"S1": 3.85, "S2": 3.3},
              days[3]: {"S1": 3.9, "S2": 3.7}, days[4]: {"S1": 3.0, "S2": 3.8}}
    last_minute = int(shanghai_midnight(days[4]).timestamp()) // 60  # day 4 is not complete yet
    changes = _evaluator(_Store(shop_scores=scores), _worker(last_minute)).evaluate_business_sync(final=True)
    got = [(a.rule, a.subject_id, a.state, a.window_start) for a in changes if a.rule == "shop_score_drop"]
    assert got == [
        ("shop_score_drop", "S1", "firing", shanghai_midnight(days[1])),
        ("shop_score_drop", "S2", "firing", shanghai_midnight(days[1])),
        ("shop_score_drop", "S1", "resolved", shanghai_midnight(days[1])),
        ("shop_score_drop", "S2", "resolved", shanghai_midnight(days[1])),
    ]
    s2 = next(a for a in changes if a.subject_id == "S2")
    assert "3.40 is below 3.50" in s2.message and "gmv scores --shop S2" in s2.message
    # the same days judged in steps fire the same alerts
    worker = _worker(M0)
    stepwise = _evaluator(_Store(shop_scores=scores), worker)
    again = []
    for day in days[1:5]:
        through_ms = (int(shanghai_midnight(day).timestamp()) // 60 + 2) * 60_000
        worker.move(rolled_up_to_ms=through_ms, scored_up_to_ms=through_ms)
        again += [a for a in stepwise.evaluate_business_sync(final=True) if a.rule == "shop_score_drop"]
    assert [(a.alert_id, a.state) for a in again] == [(a.alert_id, a.state) for a in changes
                                                      if a.rule == "shop_score_drop"]


def test_the_pipeline_rules_sample_the_workers_status_and_see_each_read_once():
    worker = Worker(counters={("orders", "accepted"): 10, ("orders", "dead_letter"): 0})
    evaluator = AlertEvaluator(AlertConfig(), worker.status, _Store(), [])  # type: ignore[arg-type]
    now = datetime(2026, 11, 30, 12, 0, 0, 123_456, tzinfo=UTC)
    worker.move(reads=((time.monotonic(), int(now.timestamp() * 1000) - 45_000),), last_stored_at=now.timestamp() - 5,
                counters={("orders", "accepted"): 900, ("orders", "dead_letter"): 150})
    s = evaluator.sample(now)
    assert s.now == now.replace(microsecond=123_000)  # as gmv.alerts stores it
    assert (s.worker, s.dead_letters) == ("w1", {"orders": (0, 0)})  # the first sample is its window's base
    assert s.max_read_age_s == pytest.approx(45.0) and s.stored_age_s == pytest.approx(5.0, abs=0.001)
    fired = evaluator.evaluate_pipeline(s)
    assert [(a.rule, a.subject_id) for a in fired] == [("consumer_lag", "w1")]
    # the read 45 s old was seen by that sample: the next one finds the worker caught up
    later = evaluator.sample(now + timedelta(seconds=1))
    assert later.max_read_age_s == 0.0
    assert [(a.alert_id, a.state) for a in evaluator.evaluate_pipeline(later)] == [(fired[0].alert_id, "resolved")]
    assert evaluator.report()["open"] == []
