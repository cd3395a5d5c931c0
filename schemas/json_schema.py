"""The exported JSON Schema is the whole contract a single event can be checked against.

Pydantic writes each model's fields; this module adds what its validators check in
code, so that an event valid against ``gmv schema`` is an event the pipeline accepts:

- ``event_time``'s bounds: epoch milliseconds in [2000-01-01, 2200-01-01); an ISO-8601
  string with a UTC offset, as a pattern over real calendar dates. The pattern admits
  the years 2001–2198 only: an offset can move a date across a year boundary, and the
  pattern cannot see where the offset takes it (integers carry the exact bounds).
- the cross-field rules, as ``if``/``then`` under ``allOf``: a clip view needs
  ``source_live_id``; a live_room ``enter``/``leave`` needs ``user_id``; a paid order
  needs ``amount_fen``, ``shop_id``, ``sku_id``, ``channel`` and no ``refund_fen``, a
  shelf one ``shelf_source``, any other a ``channel_id`` and a non-empty ``seller_id``;
  a refund needs ``refund_fen``.

What no schema of one event can say is named in its ``description`` (``STATEFUL_RULES``):
those rules need the pipeline's state or clock.
"""

from __future__ import annotations

import copy
from typing import Any

from gmv.schemas.events import _MAX_MS, _MIN_MS, EVENT_TYPES

# ISO-8601 dates that exist (Feb 29 only in leap years), times without leap seconds,
# 1-6 fractional digits, and a mandatory offset (Z or ±hh:mm).
_YEAR = r"(200[1-9]|20[1-9][0-9]|21[0-8][0-9]|219[0-8])"
_LEAP_YEAR = r"(2[01](0[48]|[2468][048]|[13579][26]))"
_MONTH_DAY = (r"((0[13578]|1[02])-(0[1-9]|[12][0-9]|3[01])|(0[469]|11)-(0[1-9]|[12][0-9]|30)"
              r"|02-(0[1-9]|1[0-9]|2[0-8]))")
_TIME = r"T([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\.[0-9]{1,6})?(Z|[+-]([01][0-9]|2[0-3]):[0-5][0-9])"
EVENT_TIME_PATTERN = rf"^({_YEAR}-{_MONTH_DAY}|{_LEAP_YEAR}-02-29){_TIME}$"

EVENT_TIME_SCHEMA: dict[str, Any] = {
    "description": "when it happened: ISO-8601 with a UTC offset, or epoch milliseconds; naive times are invalid",
    "anyOf": [
        {"type": "string", "pattern": EVENT_TIME_PATTERN,
         "description": "ISO-8601 with a UTC offset (Z or ±hh:mm), years 2001-2198"},
        {"type": "integer", "minimum": _MIN_MS, "exclusiveMaximum": _MAX_MS,
         "description": "epoch milliseconds, 2000-01-01 to 2200-01-01"},
    ],
}

_NON_EMPTY = {"type": "string", "minLength": 1}


def _required(*fields: str) -> dict[str, Any]:
    """These fields must be present and non-null (strings non-empty)."""
    return {"required": list(fields), "properties": {f: {"not": {"type": "null"}} for f in fields}}


def _when(prop: str, values: list[str], then: dict[str, Any]) -> dict[str, Any]:
    return {"if": {"required": [prop], "properties": {prop: {"enum": values}}}, "then": then}


CROSS_FIELD_RULES: dict[str, list[dict[str, Any]]] = {
    "view": [_when("kind", ["clip"], {"required": ["source_live_id"], "properties": {"source_live_id": _NON_EMPTY}})],
    "live_room": [_when("action", ["enter", "leave"],
                        {"required": ["user_id"], "properties": {"user_id": _NON_EMPTY}})],
    "order": [
        _when("status", ["paid"], {**_required("amount_fen", "shop_id", "sku_id", "channel"),
                                   "not": {"required": ["refund_fen"], "properties": {"refund_fen": {"not": {"type": "null"}}}}}),
        {"if": {"required": ["status", "channel"], "properties": {"status": {"const": "paid"}, "channel": {"const": "shelf"}}},
         "then": _required("shelf_source")},
        {"if": {"required": ["status", "channel"],
                "properties": {"status": {"const": "paid"}, "channel": {"enum": ["short_video", "live", "clip"]}}},
         "then": {"required": ["channel_id", "seller_id"],
                  "properties": {"channel_id": _NON_EMPTY, "seller_id": _NON_EMPTY}}},
        _when("status", ["refunded"], _required("refund_fen")),
    ],
    "review": [],
    "cs_message": [],
}

STATEFUL_RULES: dict[str, str] = {
    "view": "",
    "live_room": "",
    "order": ("Rules that need the pipeline's state: a second paid event for an order_id is dead-lettered "
              "order_already_paid; a refund for an order never seen is held, then dead-lettered orphan_refund; "
              "refunds beyond the paid amount are dead-lettered over_refund."),
    "review": ("Rules that need the pipeline's state: the order must be a paid order of the same user "
               "(else review_user_mismatch; an order never seen is held, then dead-lettered orphan_review); "
               "one review per order (another event_id for a reviewed order is dead-lettered review_already_given)."),
    "cs_message": "",
}
CLOCK_RULE = ("Rule that needs the clock: an event_time more than max_future_skew (default 1 day) ahead of the "
              "pipeline clock is dead-lettered future_event_time.")


def contract_schema(event_type: str, model_schema: dict[str, Any]) -> dict[str, Any]:
    """A model's JSON Schema with the event_time bounds, the cross-field rules and the stateful
    rules named in its description."""
    schema = copy.deepcopy(model_schema)
    schema["properties"]["event_time"] = {"title": "Event Time", **EVENT_TIME_SCHEMA}
    rules = CROSS_FIELD_RULES[event_type]
    if rules:
        schema["allOf"] = rules
    notes = " ".join(n for n in (STATEFUL_RULES[event_type], CLOCK_RULE) if n)
    schema["description"] = f"{schema.get('description', '').strip()}\n\n{notes}".strip()
    return schema


def event_json_schemas() -> dict[str, dict[str, Any]]:
    """JSON Schema of each event type, for producers (`gmv schema`): the whole contract a single
    event can be checked against."""
    return {name: contract_schema(name, model.model_json_schema()) for name, model in EVENT_TYPES.items()}
