"""The exported JSON Schema and the pipeline's validation admit the same events, both ways.

Rules that need state (orphan refunds and reviews, over-refunds, a second payment, a second
review) or the clock (``future_event_time``) are aside: the schema's descriptions name them.
"""

from __future__ import annotations

import json
from datetime import datetime

import jsonschema
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis_jsonschema import from_schema

from gmv.schemas.events import EVENT_TYPES, MAX_EVENT_TIME
from gmv.schemas.json_schema import event_json_schemas
from gmv.streams.core.config import PipelineConfig
from gmv.streams.core.decode import Accepted, MessageDecoder, SourceMessage

SCHEMAS = event_json_schemas()
TOPIC_OF = {et: topic for topic, et in PipelineConfig().source_topics.items()}
# The clock rule aside: the pipeline's clock is put past every time the schema admits.
DECODER = MessageDecoder(PipelineConfig().source_topics, 1024 * 1024, 1000, 0)
LATEST = MAX_EVENT_TIME


def decode(event_type: str, event: dict) -> list:
    msg = SourceMessage(TOPIC_OF[event_type], 0, 0, None, json.dumps(event).encode(), "t:0:0")
    return DECODER.decode(msg, LATEST)


@pytest.mark.parametrize("event_type", sorted(EVENT_TYPES))
def test_every_event_the_exported_schema_admits_the_pipeline_accepts(event_type: str) -> None:
    @settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck))
    @given(from_schema(SCHEMAS[event_type]))
    def check(event: dict) -> None:
        out = decode(event_type, event)
        assert len(out) == 1 and type(out[0]) is Accepted, (event, out)

    check()


def test_the_schema_names_the_rules_it_cannot_check() -> None:
    assert "orphan_review" in SCHEMAS["review"]["description"]
    assert "review_already_given" in SCHEMAS["review"]["description"]
    assert "over_refund" in SCHEMAS["order"]["description"]
    assert all("future_event_time" in s["description"] for s in SCHEMAS.values())


@pytest.mark.parametrize(("event_type", "event", "breaks"), [
    ("order", {"event_type": "order", "event_id": "e", "event_time": 1236, "order_id": "o", "user_id": "u",
               "status": "refunded", "refund_fen": 5}, "event_time below 2000"),
    ("order", {"event_type": "order", "event_id": "e", "event_time": "2026-11-30T10:00:00+08:00", "order_id": "o",
               "user_id": "u", "status": "paid", "amount_fen": 5, "shop_id": "s", "sku_id": "k", "channel": "live",
               "seller_id": "a"}, "a live order without channel_id"),
    ("order", {"event_type": "order", "event_id": "e", "event_time": "2026-11-30T10:00:00+08:00", "order_id": "o",
               "user_id": "u", "status": "paid", "amount_fen": 5, "shop_id": "s", "sku_id": "k", "channel": "shelf",
               "shelf_source": "mall", "refund_fen": 3}, "a paid order with refund_fen"),
    ("live_room", {"event_type": "live_room", "event_id": "e", "event_time": 1764468000000, "live_id": "L",
                   "anchor_id": "a", "action": "enter"}, "an enter without user_id"),
    ("view", {"event_type": "view", "event_id": "e", "event_time": 1764468000000, "user_id": "u", "video_id": "v",
              "author_id": "a", "kind": "clip", "watch_ms": 5}, "a clip without source_live_id"),
    ("view", {"event_type": "view", "event_id": "e", "event_time": "2026-11-30T10:00:00", "user_id": "u",
              "video_id": "v", "author_id": "a", "kind": "short_video", "watch_ms": 5}, "a naive time"),
    ("view", {"event_type": "view", "event_id": "e", "event_time": "2026-02-30T10:00:00Z", "user_id": "u",
              "video_id": "v", "author_id": "a", "kind": "short_video", "watch_ms": 5}, "February 30th"),
    ("review", {"event_type": "review", "event_id": "e", "event_time": 1764468000000, "order_id": "o",
                "user_id": "u", "product_rating": 6, "service_rating": 5, "logistics_rating": 5}, "a rating of 6"),
    ("cs_message", {"event_type": "cs_message", "event_id": "e", "event_time": 1764468000000,
                    "conversation_id": "c", "shop_id": "s", "user_id": "u", "sender": "seller"}, "an unknown sender"),
])
def test_what_the_pipeline_rejects_the_schema_rejects(event_type: str, event: dict, breaks: str) -> None:
    assert type(decode(event_type, event)[0]) is not Accepted, breaks
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(event, SCHEMAS[event_type])


def test_event_time_pattern_admits_leap_days_only_in_leap_years() -> None:
    time = SCHEMAS["view"]["properties"]["event_time"]
    for text, ok in (("2028-02-29T00:00:00Z", True), ("2100-02-29T00:00:00Z", False),
                     ("2027-02-29T00:00:00Z", False), ("2026-12-31T23:59:59.999+08:00", True)):
        valid = jsonschema.Draft202012Validator(time).is_valid(text)
        assert valid is ok, text
        if ok:
            assert datetime.fromisoformat(text.replace("Z", "+00:00"))


def test_every_event_the_simulator_sends_validates_against_the_exported_schema():
    import itertools

    from gmv.tools.simulator.scenarios import SCENARIOS, default_start
    from gmv.tools.simulator.world import World

    validators = {et: jsonschema.Draft202012Validator(s) for et, s in SCHEMAS.items()}
    world = World(SCENARIOS["mixed"], seed=3, start=default_start(3))
    seen: dict[str, int] = dict.fromkeys(SCHEMAS, 0)
    for msg in itertools.islice((m for m in world.messages() if m.kind == "valid"), 25_000):
        event = json.loads(msg.value)
        errors = list(validators[event["event_type"]].iter_errors(event))
        assert not errors, (event, [e.message for e in errors[:3]])
        assert type(decode(event["event_type"], event)[0]) is Accepted
        seen[event["event_type"]] += 1
    assert all(n > 0 for n in seen.values()), seen  # every event type, the new ones included
