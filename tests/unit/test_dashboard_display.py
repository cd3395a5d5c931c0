"""What the dashboard's alerts panel shows, written in Python (``gmv.dashboards.queries``): windows
on their own clock in Asia/Shanghai (a whole day as the day, a window across midnight with both
dates), fired and resolved times, and the page's payload carrying them (pure: a fake ``run``)."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from gmv.alerts.conditions import shop_score_drop
from gmv.alerts.rules import ShopScoreDrop
from gmv.dashboards.queries import (
    ALERTS,
    CLOCK_LABELS,
    LATEST,
    OTHERS,
    RANKING,
    TOP_DETAILS,
    alert_display,
    dashboard_data,
    instant_text,
    window_text,
)
from gmv.schemas.times import shanghai_midnight

SHANGHAI = ZoneInfo("Asia/Shanghai")


def ms(*args: int) -> int:
    """Epoch ms of an Asia/Shanghai wall time (y, m, d[, h, min, s, ms])."""
    millis = args[6] if len(args) > 6 else 0
    return int(datetime(*args[:6], tzinfo=SHANGHAI).timestamp()) * 1000 + millis


def test_the_daily_shop_score_window_reads_as_the_day_never_00_00_to_00_00():
    # the window as the evaluator gives it: Asia/Shanghai midnight to the next midnight
    day = date(2026, 12, 1)
    start, end = shanghai_midnight(day), shanghai_midnight(day + timedelta(days=1))
    finding = shop_score_drop(ShopScoreDrop(), "shop0", start, end, 2.9, 3.6, "gmv")
    assert finding is not None
    text, kind = window_text(int(finding.window_start.timestamp() * 1000), int(finding.window_end.timestamp() * 1000))
    assert (text, kind) == ("12-01 (全天 whole day)", "day")
    assert "00:00" not in text


def test_several_whole_days_name_the_first_and_the_last_day():
    assert window_text(ms(2026, 11, 29), ms(2026, 12, 2)) == ("11-29–12-01 (全天 whole days)", "days")


def test_a_window_within_a_day_shows_the_date_once():
    assert window_text(ms(2026, 12, 1, 14, 0), ms(2026, 12, 1, 14, 10)) == ("12-01 14:00–14:10", "within_day")
    # a window that starts at midnight but is not a whole day is not a day
    assert window_text(ms(2026, 12, 1), ms(2026, 12, 1, 0, 10)) == ("12-01 00:00–00:10", "within_day")


def test_a_window_across_midnight_shows_both_dates():
    assert window_text(ms(2026, 12, 1, 23, 55), ms(2026, 12, 2, 0, 5)) == \
        ("12-01 23:55–12-02 00:05", "across_midnight")
    assert window_text(ms(2026, 12, 1, 23, 50), ms(2026, 12, 2)) == ("12-01 23:50–12-02 00:00", "across_midnight")
    assert window_text(ms(2026, 12, 31, 23, 30), ms(2027, 1, 1, 0, 30))[0] == "12-31 23:30–01-01 00:30"


def test_a_wall_clock_window_off_the_minute_shows_seconds():
    # a pipeline rule's last 60 s: to the minute it would read '01:33–01:34'; a 45 s one '01:33–01:33'
    assert window_text(ms(2026, 12, 4, 1, 33, 5, 297), ms(2026, 12, 4, 1, 33, 50, 991)) == \
        ("12-04 01:33:05–01:33:50", "within_day")


def test_windows_are_in_asia_shanghai_whatever_utc_says():
    # 16:00 UTC on 11-30 is 00:00 on 12-01 in Shanghai: one whole Shanghai day
    start = int(datetime(2026, 11, 30, 16, 0, tzinfo=UTC).timestamp() * 1000)
    assert window_text(start, start + 86_400_000) == ("12-01 (全天 whole day)", "day")
    # and ClickHouse may quote 64-bit integers
    assert window_text(str(start), str(start + 86_400_000)) == ("12-01 (全天 whole day)", "day")


def test_instants_are_shanghai_wall_times_and_none_is_a_dash():
    assert instant_text(ms(2026, 12, 4, 1, 32, 55, 765)) == "12-04 01:32:55"
    assert instant_text(None) == "—"


def _alert(**kw: Any) -> dict[str, Any]:
    row = {"id": "a1", "rule": "live_no_orders", "severity": "critical", "subject_kind": "live",
           "subject_id": "L1", "state": "firing", "message": "no paid order in 10 min", "clock": "event",
           "window_start_ms": ms(2026, 12, 3, 2, 12), "window_end_ms": ms(2026, 12, 3, 2, 22),
           "fired_at_ms": ms(2026, 12, 4, 1, 32, 55), "resolved_at_ms": None}
    return {**row, **kw}


def test_an_alert_row_says_its_clock_and_when_it_fired_and_resolved():
    firing = alert_display(_alert())
    assert (firing["window"], firing["window_kind"]) == ("12-03 02:12–02:22", "within_day")
    assert (firing["clock"], firing["clock_label"]) == ("event", "事件时间 event time")
    assert (firing["fired"], firing["resolved"]) == ("12-04 01:32:55", "—")
    resolved = alert_display(_alert(state="resolved", clock="wall", resolved_at_ms=ms(2026, 12, 4, 1, 33, 5)))
    assert (resolved["clock"], resolved["clock_label"]) == ("wall", "系统时间 wall clock")
    assert resolved["resolved"] == "12-04 01:33:05"
    assert set(CLOCK_LABELS) == {"event", "wall"}  # the two clocks alerts carry (migration 0004)


def test_the_alerts_query_returns_what_the_display_needs():
    for column in ("clock", "window_start_ms", "window_end_ms", "fired_at_ms", "resolved_at_ms", "state", "message"):
        assert column in ALERTS


# -- the whole payload, from canned rows (the same fake ``run`` serves the canned-page browser test) --

DAY = date(2026, 12, 1)


def canned_panels(full: bool = True) -> dict[str, list[dict[str, Any]]]:
    """Rows as the dashboard's statements return them, per panel. ``full``: a day of trading with
    alerts on both clocks (a whole-day one, one across midnight), ¥1.2M rows, GPM in the thousands, no day
    before to compare scores with (so no movers); otherwise a process with no data yet."""
    zero_kpis = {"k_gmv": 0, "k_refund": 0, "k_net": 0, "k_orders": 0, "k_buyers": 0}
    zero_funnel = {"f_video_views": 0, "f_engaged": 0, "f_enters": 0, "f_viewers": 0, "f_all_views": 0}
    if not full:
        return {"kpis": [zero_kpis], "funnel": [zero_funnel], "dead_letters": [{"n": 0}]}
    long = ("worker worker-0 is behind: it read data 46s old (Kafka timestamps) with 5,961 messages waiting, so "
            "the dashboard lags that much. If the lag grows, add workers (up to the partition count) or look for "
            "a slow ClickHouse; if it does not, the producers sent late; see gmv.dead_letters_and_a_long_unbroken_"
            "identifier_that_must_wrap_rather_than_widen_the_table_0123456789abcdef0123456789abcdef")
    # in the panel's order (ALERTS): open first, the latest fired first
    alerts = [
        _alert(id="lag1", rule="consumer_lag", subject_kind="pipeline", subject_id="worker-0", clock="wall",
               window_start_ms=ms(2026, 12, 2, 1, 33, 5, 297), window_end_ms=ms(2026, 12, 2, 1, 33, 50, 991),
               fired_at_ms=ms(2026, 12, 2, 1, 33, 50, 991), message=long),
        _alert(id="day1", rule="shop_score_drop", severity="warning", subject_kind="shop", subject_id="shop0",
               window_start_ms=ms(2026, 12, 1), window_end_ms=ms(2026, 12, 2), fired_at_ms=ms(2026, 12, 2, 0, 0, 12),
               message="shop shop0: 商号体验分 2.90 on 2026-12-01 (2.90 is below 3.50; it fell 0.70 in a day "
                       "(from 3.60)); see why with gmv scores --shop shop0 --day 2026-12-01: reviews, quality "
                       "refunds and service response times"),
        _alert(id="night1", rule="refund_spike", severity="warning", subject_kind="shop", subject_id="shop1",
               state="resolved", window_start_ms=ms(2026, 12, 1, 23, 55), window_end_ms=ms(2026, 12, 2, 0, 5),
               fired_at_ms=ms(2026, 12, 2, 0, 5, 30),
               resolved_at_ms=ms(2026, 12, 2, 0, 9, 1), message="shop shop1: ¥5,010 refunded in 10 min " * 3),
    ]
    live = {"id": "L1", "account": "brand0", "g_net": 123_456_789, "gmv_fen": 123_456_789, "orders": 4_321}
    return {
        "kpis": [{"k_gmv": 123_456_789, "k_refund": 1_000, "k_net": 123_455_789, "k_orders": 4_321,
                  "k_buyers": 4_000}],
        "funnel": [{"f_video_views": 123_456, "f_engaged": 34_567, "f_enters": 17_389, "f_viewers": 90_000,
                    "f_all_views": 140_845}],
        "dead_letters": [{"n": 12_345}],
        "per_minute": [{"t": int(shanghai_midnight(DAY).timestamp()) + 60 * i, "stage": "live", "m_gmv": 10_000,
                        "m_refund": 0, "m_net": 10_000, "m_orders": 1, "m_refunds": 0} for i in range(60)],
        "per_minute_days": [{"t": int(shanghai_midnight(DAY).timestamp()) + 60 * i - 86_400 * d, "b_gmv": 10_000}
                            for d in range(1, 8) for i in range(60)],
        "path_mix": [{"path": "live", "orders": 4_321, "net_fen": 123_455_789}],
        "alerts": alerts,
        "scores": [{"kind": "shop", "id": "shop0", "day": DAY.isoformat(), "score": 2.9, "reviews": 1_234,
                    "qrr": 0.01, "fast": 0.7, "orders": 4_321}],
        "top_lives": [live],
        "top_accounts": [{"id": "brand0", "g_net": 123_456_789, "gmv_fen": 123_456_789, "self_net_fen": 123_456_789,
                          "orders": 4_321}],
        "top_skus": [{"id": "shop0-sku0", "shop": "shop0", "g_net": 123_456_789, "gmv_fen": 123_456_789,
                      "orders": 4_321}],
        "details": [{"panel": "lives", "id": "L1", "d_buyers": 4_000, "f_views": 0, "f_viewers": 0},
                    {"panel": "live_views", "id": "L1", "d_buyers": 0, "f_views": 140_845, "f_viewers": 90_000},
                    {"panel": "accounts", "id": "brand0", "d_buyers": 4_000, "f_views": 0, "f_viewers": 0},
                    {"panel": "account_views", "id": "brand0", "d_buyers": 0, "f_views": 140_845,
                     "f_viewers": 90_000},
                    {"panel": "skus", "id": "shop0-sku0", "d_buyers": 4_000, "f_views": 0, "f_viewers": 0},
                    {"panel": "shop_views", "id": "shop0", "d_buyers": 0, "f_views": 140_845, "f_viewers": 90_000}],
    }


def canned_run(panels: dict[str, list[dict[str, Any]]]):
    """A ``run`` for ``dashboard_data`` answering its statements from canned rows."""
    def wrap(names: tuple[str, ...]) -> list[dict[str, Any]]:
        return [{"panel": n, "row": json.dumps(r)} for n in names for r in panels.get(n, [])]

    def run(sql: str, params: dict[str, Any]) -> list[dict[str, Any]]:
        if sql == RANKING:
            return wrap(("top_lives", "top_accounts", "top_skus"))
        if sql == TOP_DETAILS:
            return panels.get("details", [])
        if sql == OTHERS:
            return wrap(("per_minute", "per_minute_days", "kpis", "funnel", "dead_letters", "path_mix", "alerts",
                         "scores"))
        if sql == LATEST:
            return [{"latest_s": None}]
        raise AssertionError(f"unexpected statement: {sql[:80]}")
    return run


def canned_dashboard(full: bool = True) -> dict[str, Any]:
    watermark = int((shanghai_midnight(DAY) + timedelta(hours=1)).timestamp() * 1000) if full else None
    return dashboard_data(canned_run(canned_panels(full)), "gmv", "last_touch", watermark)


def test_the_payload_carries_the_alerts_as_shown():
    data = canned_dashboard()
    shown = {a["id"]: a for a in data["alerts"]}
    assert (shown["day1"]["window"], shown["day1"]["window_kind"]) == ("12-01 (全天 whole day)", "day")
    assert (shown["night1"]["window"], shown["night1"]["window_kind"]) == \
        ("12-01 23:55–12-02 00:05", "across_midnight")
    assert shown["lag1"]["clock_label"] == "系统时间 wall clock"
    assert [(a["id"], a["resolved"]) for a in data["alerts"]] == [("lag1", "—"), ("day1", "—"),
                                                                   ("night1", "12-02 00:09:01")]
    assert data["score_movers"] == [] and data["kpis"]["gpm_yuan"] == 8_765.44


def test_an_empty_payload_has_every_table_empty():
    data = canned_dashboard(full=False)
    for table in ("alerts", "shop_scores", "score_movers", "top_lives", "top_accounts", "top_skus"):
        assert data[table] == [], table
    assert data["per_minute"] == [] and data["dead_letters"] == 0


def test_the_expected_band_is_the_same_minute_of_the_days_before_judged_as_the_alert_rules_judge_it():
    from gmv.dashboards.queries import expected_band
    from gmv.schemas.seasonal import baseline

    start = shanghai_midnight(DAY) + timedelta(hours=1)
    window = (start, start + timedelta(minutes=3))
    t0 = int(start.timestamp())
    day_values = [1_000, 1_200, 900, 1_100, 1_000, 950, 90_000]  # 1..7 days before; the oldest an odd day
    rows = [{"t": t0 - d * 86_400, "b_gmv": v} for d, v in enumerate(day_values, 1)]
    band = expected_band(rows, window)
    b = baseline(day_values)
    assert band[t0] == (max(0, round(b.median - 3 * b.spread)), round(b.median + 3 * b.spread))
    assert band[t0][1] < 2_000  # the odd day does not widen it
    assert band[t0 + 60] == (0, 0)  # the next minute had nothing on any of those days: nothing expected
    few = expected_band(rows[:4], window)  # 4 days of history: no band yet
    assert set(few) == {t0, t0 + 60, t0 + 120} and set(few.values()) == {None}


def test_the_per_minute_payload_carries_the_band_and_none_where_there_is_no_history():
    minutes = {m["label"]: m for m in canned_dashboard()["per_minute"]}
    assert (minutes["12-01 00:30"]["band_low_fen"], minutes["12-01 00:30"]["band_high_fen"]) == (2_500, 17_500)
    assert (minutes["11-30 23:30"]["band_low_fen"], minutes["11-30 23:30"]["band_high_fen"]) == (0, 0)
    no_history = dict(canned_panels(), per_minute_days=[])
    watermark = int((shanghai_midnight(DAY) + timedelta(hours=1)).timestamp() * 1000)
    bare = dashboard_data(canned_run(no_history), "gmv", "last_touch", watermark)["per_minute"]
    assert bare and all(m["band_low_fen"] is None and m["band_high_fen"] is None for m in bare)
