"""funnel_events rows are ClickHouse's (migration 9): the materialized view ``funnel_from_events``
derives each view's and live-room event's row from its events row, as the worker writes it.

Events go through the real processor (single messages, a producer batch's element, a re-keyed
event's re-serialised JSON, absent and null optional fields, escaped text, unknown fields) and the
real sink into the real engine; every field of every funnel row is checked, and written twice
(a replay) each row is still there once.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from pydantic import SecretStr

from gmv.schemas.catalogue import FUNNEL_EVENTS
from gmv.schemas.events import ViewEvent
from gmv.sinks.clickhouse import ClickHouseSink, connect
from gmv.sinks.migrations import migrate
from gmv.streams.core.config import PipelineConfig
from gmv.streams.core.decode import SourceMessage
from gmv.streams.core.processor import BatchProcessor

pytestmark = pytest.mark.integration

NOW = datetime(2026, 11, 20, 5, 0, tzinfo=UTC)
T_MS = 1_795_147_200_123  # 2026-11-20 04:00:00.123 UTC
T = "2026-11-20 04:00:00.123"


def _msg(topic: str, doc: object, offset: int, key: str = "u1", text: str | None = None) -> SourceMessage:
    value = (text if text is not None else json.dumps(doc)).encode()
    return SourceMessage(topic, 0, offset, key.encode(), value, f"{topic}:0:{offset}")


def _events() -> list[SourceMessage]:
    clip = {"event_type": "view", "event_id": "a-clip", "event_time": "2026-11-20T12:00:00.123+08:00", "user_id": "u1",
            "video_id": "v1", "author_id": "a1", "kind": "clip", "source_live_id": "L1", "watch_ms": 4000,
            "traffic": "private", "shop_id": "p1"}
    short = {"event_type": "view", "event_id": "b-short", "event_time": T_MS, "user_id": "u1", "video_id": "v\u89c6\u9891",
             "author_id": "\u4e3b\u64ad \"q\"", "kind": "short_video", "watch_ms": 2999, "extra": {"nested": [1, 2]}}
    enter = {"event_type": "live_room", "event_id": "c-enter", "event_time": T_MS, "live_id": "L1", "anchor_id": "a1",
             "action": "enter", "user_id": "u1", "referrer_kind": "short_video", "referrer_id": "v1"}
    start = {"event_type": "live_room", "event_id": "d-start", "event_time": T_MS, "live_id": "L1", "anchor_id": "a1",
             "action": "start", "shop_id": "p1", "traffic": "private"}
    leave = {"event_type": "live_room", "event_id": "e-leave", "event_time": T_MS, "live_id": "L1", "anchor_id": "a1",
             "action": "leave", "user_id": "u1", "referrer_kind": None, "shop_id": None}
    order = {"event_type": "order", "event_id": "f-order", "event_time": T_MS, "order_id": "o1", "user_id": "u1",
             "status": "paid", "shop_id": "p1", "sku_id": "k1", "seller_id": "a1", "amount_fen": 100,
             "channel": "live", "channel_id": "L1"}
    long_view = {"event_type": "view", "event_id": "g-rekeyed", "event_time": T_MS, "user_id": "u1", "video_id": "v2",
                 "author_id": "a2", "kind": "short_video", "watch_ms": 3000, "shop_id": "p2"}
    return [_msg("gmv.views", clip, 1), _msg("gmv.views", short, 2, text=json.dumps(short, ensure_ascii=True)),
            _msg("gmv.live_rooms", enter, 3), _msg("gmv.live_rooms", [start], 4, key="L1"),
            _msg("gmv.live_rooms", leave, 5), _msg("gmv.orders", order, 6),
            # forwarded by another partition: the event as pydantic re-serialises it, every field, nulls included
            _msg("gmv.rekeyed", None, 7, text=ViewEvent.model_validate(long_view).model_dump_json())]


def _row(event_id: str, stage: str, action: str, user: str, account: str, content: str, shop: str, traffic: str,
         watch_ms: int, engaged: int, referrer: str, source_live: str) -> dict:
    return {"event_id": event_id, "event_time": T, "stage": stage, "action": action, "user_id": user,
            "account_id": account, "content_id": content, "shop_id": shop, "traffic": traffic, "watch_ms": watch_ms,
            "engaged": engaged, "referrer_kind": referrer, "source_live_id": source_live}


EXPECTED = [
    _row("a-clip", "clip", "view", "u1", "a1", "v1", "p1", "private", 4000, 1, "", "L1"),
    _row("b-short", "short_video", "view", "u1", "\u4e3b\u64ad \"q\"", "v\u89c6\u9891", "", "public", 2999, 0, "", ""),
    _row("c-enter", "live", "enter", "u1", "a1", "L1", "", "public", 0, 1, "short_video", ""),
    _row("d-start", "live", "start", "", "a1", "L1", "p1", "private", 0, 0, "", ""),
    _row("e-leave", "live", "leave", "u1", "a1", "L1", "", "public", 0, 0, "", ""),
    _row("g-rekeyed", "short_video", "view", "u1", "a2", "v2", "p2", "public", 3000, 1, "", ""),
]


def test_clickhouse_derives_each_view_and_live_room_events_funnel_row_field_by_field_once_under_replay(gmv_env):
    db = gmv_env["GMV_CLICKHOUSE_DATABASE"]
    password = gmv_env.get("GMV_CLICKHOUSE_PASSWORD")
    client = connect(gmv_env["GMV_CLICKHOUSE_DSN"], SecretStr(password) if password else None)
    try:
        migrate(client, db)
        out = BatchProcessor(PipelineConfig(partitions=1, engaged_ms=3000)).process(_events(), NOW)
        assert "funnel_events" not in out.rows  # the worker writes none
        for _ in range(2):  # the second time: a replay of the same rows
            sink = ClickHouseSink(lambda: client, db)
            for name, rows in out.rows.items():
                sink.add(name, rows)
            sink.flush_sync()
        result = client.query(
            f"SELECT {', '.join(FUNNEL_EVENTS.column_names)} FROM `{db}`.funnel_events ORDER BY event_id",
            settings={"session_timezone": "UTC"})
        got = [dict(zip(result.column_names, r, strict=True)) for r in result.result_rows]
        for row in got:
            row["event_time"] = row["event_time"].strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]
        assert got == EXPECTED
        stored = client.query(f"SELECT count() FROM `{db}`.funnel_events_store").result_rows[0][0]
        assert stored >= len(EXPECTED)  # written twice, each row once in the view
        engaged = client.query(f"SELECT event_id FROM `{db}`.events WHERE engaged = 1 ORDER BY event_id").result_rows
        assert [e for (e,) in engaged] == ["a-clip", "c-enter", "g-rekeyed"]
    finally:
        client.close()


def test_funnel_minutes_stored_but_never_rolled_up_by_a_killed_worker_are_found_and_rolled_up_at_start(gmv_env):
    from datetime import timedelta

    from gmv.sinks.base import RollupWork
    from gmv.streams.rollup_scheduler import RollupScheduler

    db = gmv_env["GMV_CLICKHOUSE_DATABASE"]
    password = gmv_env.get("GMV_CLICKHOUSE_PASSWORD")
    client = connect(gmv_env["GMV_CLICKHOUSE_DSN"], SecretStr(password) if password else None)
    minute_a, minute_b = datetime(2026, 11, 20, 4, 0, tzinfo=UTC), datetime(2026, 11, 20, 4, 5, tzinfo=UTC)

    def view(event_id: str, minute: datetime) -> SourceMessage:
        return _msg("gmv.views", {"event_type": "view", "event_id": event_id, "event_time": minute.isoformat(),
                                  "user_id": "u1", "video_id": "v1", "author_id": "a1", "kind": "short_video",
                                  "watch_ms": 5000}, 1 if event_id == "a" else 2)

    try:
        migrate(client, db)
        sink = ClickHouseSink(lambda: client, db)
        proc = BatchProcessor(PipelineConfig(partitions=1))
        # minute A: stored two hours ago and rolled up; minute B: stored now by a worker killed
        # after committing its offsets and before its refresh
        for name, rows in proc.process([view("a", minute_a)], datetime.now(UTC) - timedelta(hours=2)).rows.items():
            sink.add(name, rows)
        sink.flush_sync()
        sink.refresh_sync(RollupWork(funnel_minutes={minute_a}))
        for name, rows in proc.process([view("b", minute_b)], datetime.now(UTC)).rows.items():
            sink.add(name, rows)
        sink.flush_sync()
        assert sink.stale_funnel_minutes() == {minute_b}

        scheduler = RollupScheduler(1.0)  # the next process's, at its start
        scheduler.note_stale(sink.stale_funnel_minutes())
        work = scheduler.take(True).work
        assert work.funnel_minutes == {minute_b} and work.level_funnel_minutes == {minute_b}
        sink.refresh_sync(work)
        views = client.query(f"SELECT minute, sum(views) FROM `{db}`.funnel_minute GROUP BY minute ORDER BY minute",
                             settings={"session_timezone": "UTC"}).result_rows
        assert [(m.replace(tzinfo=UTC), n) for m, n in views] == [(minute_a, 1), (minute_b, 1)]
        days = client.query(f"SELECT sum(views) FROM `{db}`.funnel_day").result_rows
        assert days == [(2,)]
    finally:
        client.close()
