"""The event contract (SPEC §2): what is accepted, what is rejected and why."""

import json
from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from gmv.schemas.events import EVENT_ADAPTER, OrderEvent, ViewEvent
from gmv.schemas.json_schema import event_json_schemas

VIEW = {"event_type": "view", "event_id": "v1", "event_time": "2026-11-20T20:00:00+08:00", "user_id": "u1",
        "video_id": "vid", "author_id": "a1", "kind": "short_video", "watch_ms": 5000}
ORDER = {"event_type": "order", "event_id": "o1", "event_time": 1763640000000, "order_id": "O1", "user_id": "u1",
         "shop_id": "s1", "sku_id": "k1", "seller_id": "a1", "status": "paid", "amount_fen": 12345,
         "channel": "live", "channel_id": "L1"}
LIVE = {"event_type": "live_room", "event_id": "l1", "event_time": "2026-11-20T12:00:00Z", "live_id": "L1",
        "anchor_id": "a1", "action": "enter", "user_id": "u1"}


def parse(doc):
    return EVENT_ADAPTER.validate_json(json.dumps(doc))


def test_valid_events_parse_to_utc():
    v = parse(VIEW)
    assert isinstance(v, ViewEvent)
    assert v.event_time == datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
    assert v.traffic == "public"
    o = parse(ORDER)
    assert isinstance(o, OrderEvent) and o.amount_fen == 12345 and o.quantity == 1 and o.currency == "CNY"
    assert o.event_time == datetime(2025, 11, 20, 12, 0, tzinfo=UTC)  # epoch milliseconds


def test_unknown_fields_are_ignored():
    assert parse({**VIEW, "something_new": [1, 2]}).event_id == "v1"


@pytest.mark.parametrize("doc, needle", [
    ({**VIEW, "event_time": "2026-11-20T20:00:00"}, "no UTC offset"),
    ({**VIEW, "event_time": "yesterday"}, "not ISO-8601"),
    ({**VIEW, "event_time": True}, "boolean"),
    # Far instants must be a validation error, not an OverflowError out of datetime arithmetic.
    ({**VIEW, "event_time": 2**52}, "outside 2000-01-01..2200-01-01"),
    ({**VIEW, "event_time": -(2**52)}, "outside 2000-01-01..2200-01-01"),
    ({**VIEW, "event_time": "9999-12-31T23:59:59-01:00"}, "outside 2000-01-01..2200-01-01"),
    ({**VIEW, "event_time": "0001-01-01T00:00:00+01:00"}, "outside 2000-01-01..2200-01-01"),
    ({**VIEW, "event_time": "2000-01-01T07:59:59.999+08:00"}, "outside 2000-01-01..2200-01-01"),
    ({**VIEW, "event_time": "2199-12-31T23:30:00-01:00"}, "outside 2000-01-01..2200-01-01"),
    ({**VIEW, "event_time": 946684799999}, "outside 2000-01-01..2200-01-01"),
    ({**VIEW, "watch_ms": "5000"}, "integer"),
    ({**VIEW, "watch_ms": -1}, "greater than or equal"),
    ({**VIEW, "kind": "clip"}, "source_live_id"),
    ({**VIEW, "kind": "reel"}, "short_video"),
    ({**VIEW, "event_id": ""}, "at least 1"),
    ({**VIEW, "event_id": "x" * 129}, "at most 128"),
    ({k: v for k, v in VIEW.items() if k != "user_id"}, "Field required"),
    ({**ORDER, "amount_fen": -5}, "greater than 0"),
    ({**ORDER, "amount_fen": 10.5}, "integer"),
    ({k: v for k, v in ORDER.items() if k != "amount_fen"}, "amount_fen"),
    ({**ORDER, "status": "refunded", "amount_fen": None}, "refund_fen"),
    ({**ORDER, "currency": "USD"}, "CNY"),
    ({**ORDER, "channel": "shelf", "channel_id": None}, "shelf_source"),
    ({**ORDER, "channel_id": None}, "channel_id"),
    ({**ORDER, "refund_fen": 5}, "must not carry refund_fen"),
    ({**LIVE, "user_id": None}, "needs user_id"),
    ({**LIVE, "action": "wave"}, "enter"),
])
def test_invalid_events_are_rejected_with_a_reason(doc, needle):
    with pytest.raises(ValidationError) as exc:
        parse(doc)
    assert needle in str(exc.value)


def test_shelf_orders_may_have_no_seller_and_refunds_inherit_fields():
    shelf = parse({**ORDER, "channel": "shelf", "channel_id": None, "seller_id": "", "shelf_source": "search"})
    assert shelf.conversion_stage == "shelf"
    refund = parse({"event_type": "order", "event_id": "r1", "event_time": "2026-11-21T00:00:00Z",
                    "order_id": "O1", "user_id": "u1", "status": "refunded", "refund_fen": 100})
    assert refund.refund_fen == 100 and refund.channel is None


def test_start_end_need_no_user_and_partition_by_live():
    start = parse({**LIVE, "action": "start", "user_id": None})
    assert start.partition_key == "L1"
    assert parse(LIVE).partition_key == "u1"


def test_event_time_range_edges_are_inclusive_below_exclusive_above():
    assert parse({**VIEW, "event_time": "2000-01-01T08:00:00+08:00"}).event_time == datetime(2000, 1, 1, tzinfo=UTC)
    assert parse({**VIEW, "event_time": 946684800000}).event_time == datetime(2000, 1, 1, tzinfo=UTC)
    last = parse({**VIEW, "event_time": "2199-12-31T23:59:59.999Z"}).event_time
    assert last == datetime(2199, 12, 31, 23, 59, 59, 999000, tzinfo=UTC)


def test_event_time_is_millisecond_precision_and_serialises_as_utc():
    v = parse({**VIEW, "event_time": "2026-11-20T20:00:00.123456+08:00"})
    assert v.event_time.microsecond == 123000
    assert json.loads(v.model_dump_json())["event_time"] == "2026-11-20T12:00:00.123Z"


def test_json_schemas_cover_every_event_type():
    schemas = event_json_schemas()
    assert set(schemas) == {"view", "live_room", "order", "review", "cs_message"}
    assert schemas["review"]["properties"]["product_rating"]["maximum"] == 5
    assert "watch_ms" in schemas["view"]["required"]
    assert schemas["order"]["properties"]["currency"]["const"] == "CNY" or \
        schemas["order"]["properties"]["currency"].get("enum") == ["CNY"]
