"""The rollup grains' periods (pure) and the per-minute window of the dashboard (pure)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from gmv.dashboards.queries import WINDOW_MINUTES, minute_window, per_minute
from gmv.sinks.levels import (
    FAMILIES,
    FUNNEL,
    days_of,
    hours_of,
    level_statements,
    minute_statements,
)


def test_a_minute_refreshes_its_hour_and_its_asia_shanghai_day():
    late_utc = datetime(2026, 11, 29, 16, 5, tzinfo=UTC)  # 00:05 on 11-30 in Shanghai
    hours = hours_of({late_utc, late_utc + timedelta(minutes=3)})
    assert hours == [datetime(2026, 11, 29, 16, 0, tzinfo=UTC)]
    assert days_of(hours) == [date(2026, 11, 30)]
    assert days_of([datetime(2026, 11, 29, 15, 0, tzinfo=UTC)]) == [date(2026, 11, 29)]


def test_a_refresh_recomputes_the_touched_hours_and_days_of_every_family_once():
    minute = datetime(2026, 11, 29, 16, 5, tzinfo=UTC)
    funnel_minute = datetime(2026, 11, 29, 14, 59, tzinfo=UTC)  # 22:59 in Shanghai: day 11-29
    statements = level_statements("gmv", {minute, minute + timedelta(minutes=1)}, {funnel_minute})
    minutes = sum(f.minute is None for f in FAMILIES)  # gmv and funnel: their minutes are rollups of their own
    assert len(statements) == minutes + 2 * len(FAMILIES)  # one statement per family and grain
    into = lambda sql: sql.split("INTO ")[1].split()[0].split(".")[1].strip("`")  # noqa: E731
    hours = {into(sql): p["periods"] for sql, p in statements if "_hour_store" in sql}
    days = {into(sql): p["periods"] for sql, p in statements if "_day_store" in sql}
    assert hours["sku_gmv_hour_store"] == [datetime(2026, 11, 29, 16, tzinfo=UTC)]
    assert days["sku_gmv_day_store"] == [date(2026, 11, 30)]
    assert hours[FUNNEL.table("hour").store] == [datetime(2026, 11, 29, 14, tzinfo=UTC)]
    assert days[FUNNEL.table("day").store] == [date(2026, 11, 29)]
    assert len(minute_statements("gmv", {minute})) == minutes


def test_the_window_ends_at_the_watermarks_minute_else_after_the_latest_data():
    watermark = datetime(2026, 11, 30, 12, 7, 31, tzinfo=UTC)
    start, end = minute_window(int(watermark.timestamp() * 1000), None)
    assert end == datetime(2026, 11, 30, 12, 7, tzinfo=UTC)  # 12:07 is not whole yet
    assert end - start == timedelta(minutes=WINDOW_MINUTES)
    latest = int(datetime(2026, 11, 30, 9, 0, tzinfo=UTC).timestamp())
    assert minute_window(None, latest)[1] == datetime(2026, 11, 30, 9, 1, tzinfo=UTC)
    assert minute_window(None, None) is None


def test_an_empty_minute_is_a_zero_and_paid_refunds_and_net_stay_apart():
    window = (datetime(2026, 11, 30, 0, 0, tzinfo=UTC), datetime(2026, 11, 30, 0, 3, tzinfo=UTC))
    t0 = int(window[0].timestamp())
    rows = [{"t": t0, "stage": "live", "m_gmv": 500, "m_refund": 0, "m_net": 500, "m_orders": 1, "m_refunds": 0},
            {"t": t0 + 120, "stage": "shelf", "m_gmv": 0, "m_refund": 200, "m_net": -200, "m_orders": 0,
             "m_refunds": 1}]
    minutes = per_minute(rows, window)
    assert [m["label"] for m in minutes] == ["11-30 08:00", "11-30 08:01", "11-30 08:02"]  # Asia/Shanghai
    assert [(m["gmv_fen"], m["refund_fen"], m["net_fen"]) for m in minutes] == [(500, 0, 500), (0, 0, 0), (0, 200, -200)]
    assert minutes[0]["gmv_live"] == 500 and minutes[2]["refunds"] == 1
