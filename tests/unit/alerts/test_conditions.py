"""Each rule's condition on hand-made series, and incidents: fire once, quiet while true, resolve."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from gmv.alerts import conditions as c
from gmv.alerts.conditions import (
    Incidents,
    LiveSeries,
    PipelineSample,
    ShopSeries,
    Subject,
    minute_start,
)
from gmv.alerts.rules import AlertConfig

RULES = AlertConfig().rules
M0 = 29_000_000  # an epoch minute (2025-02-20)
NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


def _live(enters: int, orders_until: int, per_order_fen: int = 20_000, minutes: int = 120) -> LiveSeries:
    live = LiveSeries("L1", "s1", "a1")
    for i in range(minutes):
        live.enters[M0 + i] = enters
        if M0 + i < orders_until:
            live.orders[M0 + i] = 5
            live.gmv_fen[M0 + i] = 5 * per_order_fen
    return live


def test_live_no_orders_fires_at_the_end_of_the_first_window_without_an_order():
    stop = M0 + 60
    live = _live(enters=50, orders_until=stop)
    rule = RULES.live_no_orders
    assert c.live_no_orders(rule, live, stop + rule.minutes - 2, "gmv") is None  # the window still holds an order
    f = c.live_no_orders(rule, live, stop + rule.minutes - 1, "gmv")
    assert f is not None
    assert (f.window_start, f.window_end) == (minute_start(stop), minute_start(stop + rule.minutes))


def test_live_no_orders_waits_for_a_room_to_warm_up_and_for_enough_viewers():
    rule = RULES.live_no_orders
    never_sold = _live(enters=50, orders_until=M0)
    assert c.live_no_orders(rule, never_sold, M0 + rule.minutes - 1, "gmv") is None  # just opened
    assert c.live_no_orders(rule, never_sold, M0 + rule.minutes + rule.warmup_minutes - 1, "gmv") is not None
    few = _live(enters=2, orders_until=M0)  # 20 viewers in 10 minutes: below min_viewers (100)
    assert c.live_no_orders(rule, few, M0 + 60, "gmv") is None


def test_live_gmv_drop_needs_the_drop_the_baseline_and_viewers_that_hold():
    rule = RULES.live_gmv_drop
    stop = M0 + 60
    live = _live(enters=50, orders_until=stop)
    assert c.live_gmv_drop(rule, live, stop - 1, "gmv") is None
    f = c.live_gmv_drop(rule, live, stop + rule.window_minutes - 1, "gmv")
    assert f is not None and f.value == 100.0 and f.threshold == rule.drop_pct
    leaving = _live(enters=50, orders_until=stop)
    for i in range(stop, M0 + 120):
        leaving.enters[i] = 10  # viewers left too: the room emptied, it did not stop selling
    assert c.live_gmv_drop(rule, leaving, stop + rule.window_minutes - 1, "gmv") is None
    small = _live(enters=50, orders_until=stop, per_order_fen=1_000)  # ¥50/min: too small to judge
    assert c.live_gmv_drop(rule, small, stop + rule.window_minutes - 1, "gmv") is None


def test_refund_spike_needs_the_floor_and_the_multiple_of_the_baseline():
    rule = RULES.refund_spike

    def shop(spike_fen: int) -> ShopSeries:
        s = ShopSeries("s1", {M0 + i: 100_000 for i in range(120)},
                       {M0 + i: 20_000 for i in range(120)})  # ¥200 a minute: ¥2,000 per window, under the floor
        s.refund_fen[M0 + 100] = spike_fen
        return s

    assert c.refund_spike(rule, shop(20_000), M0 + 100, "gmv") is None
    assert c.refund_spike(rule, shop(400_000), M0 + 100, "gmv") is None  # ¥5,800 is 2.9x a ¥2,000 baseline: not 4x
    f = c.refund_spike(rule, shop(800_000), M0 + 100, "gmv")
    assert f is not None and f.value == 9 * 20_000 + 800_000 and f.threshold == 4 * 200_000


def _sample(**kw) -> PipelineSample:
    base = dict(now=NOW, lag_messages=0, max_read_age_s=0.0, stored_age_s=1.0, sink_failing_s=None,
                dead_letters={"gmv.views": (0, 1000)}, worker="w0")
    return PipelineSample(**{**base, **kw})


def test_pipeline_conditions_on_their_edges():
    r = RULES
    assert c.dead_letter_rate(r.dead_letter_rate, _sample(dead_letters={"t": (100, 1000)}), "t", "gmv") is not None
    assert c.dead_letter_rate(r.dead_letter_rate, _sample(dead_letters={"t": (99, 1000)}), "t", "gmv") is None
    assert c.dead_letter_rate(r.dead_letter_rate, _sample(dead_letters={"t": (100, 10_000)}), "t", "gmv") is None
    age = r.consumer_lag.max_age_s
    assert c.consumer_lag(r.consumer_lag, _sample(lag_messages=5, max_read_age_s=age + 1), "gmv") is not None
    assert c.consumer_lag(r.consumer_lag, _sample(lag_messages=0, max_read_age_s=age + 1), "gmv") is not None  # was stale
    assert c.consumer_lag(r.consumer_lag, _sample(lag_messages=9, max_read_age_s=age - 1), "gmv") is None
    assert c.consumer_lag(r.consumer_lag, _sample(lag_messages=200_001), "gmv") is not None
    assert c.flush_age(r.flush_age, _sample(stored_age_s=61, lag_messages=1), "gmv") is not None
    assert c.flush_age(r.flush_age, _sample(stored_age_s=61, lag_messages=0), "gmv") is None  # idle, not stuck
    assert c.sink_failing(r.sink_failing, _sample(sink_failing_s=31), "gmv") is not None
    assert c.sink_failing(r.sink_failing, _sample(sink_failing_s=29), "gmv") is None


def _finding(m: int) -> c.Finding:
    return c.Finding(1, 0, minute_start(m - 4), minute_start(m + 1), "x", c.Evidence("SELECT 1"))


def _walk(incidents: Incidents, truth: list[bool], start: int = M0, cooldown: int = 30) -> list[tuple[int, str, str]]:
    out = []
    for i, holds in enumerate(truth):
        m = start + i
        change = incidents.observe(Subject("r", "live", "L1"), _finding(m) if holds else None, minute_start(m + 1),
                                   timedelta(minutes=cooldown), NOW, "critical", "event")
        if change is not None:
            out.append((i, change.state, change.alert_id))
    return out


def test_an_incident_fires_once_stays_quiet_while_true_and_resolves_when_clear():
    changes = _walk(Incidents(), [False, True, True, True, False, False])
    assert [(i, s) for i, s, _ in changes] == [(1, "firing"), (4, "resolved")]
    assert changes[0][2] == changes[1][2]


def test_within_the_cooldown_a_new_incident_does_not_fire_after_it_one_does():
    truth = [True, False] + [False] * 5 + [True, False] + [False] * 30 + [True]
    changes = _walk(Incidents(), truth, cooldown=30)
    assert [(i, s) for i, s, _ in changes] == [(0, "firing"), (1, "resolved"), (39, "firing")]


def test_the_same_minutes_give_the_same_alert_ids():
    truth = [False, True, True, False, True]
    assert _walk(Incidents(), truth, cooldown=1) == _walk(Incidents(), truth, cooldown=1)


def test_a_seeded_open_alert_continues_instead_of_firing_again():
    first = Incidents()
    fired = first.observe(Subject("r", "live", "L1"), _finding(M0), minute_start(M0 + 1), timedelta(minutes=30),
                          NOW, "critical", "event")
    assert fired is not None
    later = Incidents()
    later.seed([fired], minute_start(M0 + 5))
    changes = _walk(later, [True, True, False], start=M0 + 5)
    assert [(s, aid) for _, s, aid in changes] == [("resolved", fired.alert_id)]


def test_window_sums_equal_the_plain_sums_over_any_window():
    import random

    rng = random.Random(7)
    series = {m: rng.randrange(0, 100) for m in range(M0, M0 + 300) if rng.random() < 0.6}
    cum = c.Cumulative(series)
    for _ in range(500):
        a = rng.randrange(M0 - 50, M0 + 350)
        b = a + rng.randrange(-5, 80)
        assert cum.sum(a, b) == sum(series.get(m, 0) for m in range(a, b + 1)), (a, b)
    assert c.Cumulative({}).sum(M0, M0 + 10) == 0


def _placeholders(sql: str) -> set[str]:
    return set(re.findall(r"\{(\w+):[^{}]+\}", sql))


def test_every_rules_evidence_query_names_a_parameter_for_each_placeholder_and_no_doubled_brace():
    """The command an alert prints is run as it is: a ``{{name:Type}}`` in its SQL is a syntax error."""
    stop = M0 + 60
    live = _live(enters=50, orders_until=stop)
    shop = ShopSeries("s1")
    for i in range(120):
        shop.gmv_fen[M0 + i] = 100_000
    for i in range(60, 70):
        shop.refund_fen[M0 + i] = 100_000
    sample = PipelineSample(NOW, 500_000, 120.0, 300.0, 120.0, {"gmv.views": (500, 1000)}, "worker-0")
    findings = [
        c.live_no_orders(RULES.live_no_orders, live, stop + RULES.live_no_orders.minutes - 1, "gmv"),
        c.live_gmv_drop(RULES.live_gmv_drop, live, stop + RULES.live_gmv_drop.window_minutes - 1, "gmv"),
        c.refund_spike(RULES.refund_spike, shop, M0 + 69, "gmv"),
        c.shop_score_drop(RULES.shop_score_drop, "s1", NOW, NOW + timedelta(days=1), 3.0, 4.5, "gmv"),
        c.dead_letter_rate(RULES.dead_letter_rate, sample, "gmv.views", "gmv"),
        c.consumer_lag(RULES.consumer_lag, sample, "gmv"),
        c.flush_age(RULES.flush_age, sample, "gmv"),
        c.sink_failing(RULES.sink_failing, sample, "gmv"),
    ]
    assert all(f is not None for f in findings)
    for f in findings:
        assert f is not None
        assert "{{" not in f.evidence.sql and "}}" not in f.evidence.sql, f.evidence.sql
        assert _placeholders(f.evidence.sql) == set(f.evidence.params), f.evidence.sql
        assert f.evidence.command().startswith("gmv sql ")


def test_consumer_lags_evidence_shows_the_lag_measured_beside_what_was_stored_in_cst():
    sample = PipelineSample(NOW, 4_321, 52.4, 1.0, None, {}, "worker-0")
    f = c.consumer_lag(RULES.consumer_lag, sample, "gmv")
    assert f is not None
    assert f.evidence.params["read_age_s"] == "52.4" and f.evidence.params["waiting"] == "4321"
    assert "Asia/Shanghai" in f.evidence.sql and "ingest_log" in f.evidence.sql
    # its window is bounded: the command shows the same rows whenever it is run
    assert f.evidence.params["until"] > f.evidence.params["since"]
