"""Event contract models (SPEC §2, §7), the exported JSON Schema, output names and the trust-score formulas."""

from gmv.schemas.events import (
    EVENT_ADAPTER,
    EVENT_TYPES,
    AnyEvent,
    CsMessageEvent,
    LiveRoomEvent,
    OrderEvent,
    ReviewEvent,
    ViewEvent,
    event_json_schemas,
    parse_event_time,
)
from gmv.schemas.outputs import MODELS, STAGES

__all__ = [
    "EVENT_ADAPTER",
    "EVENT_TYPES",
    "MODELS",
    "STAGES",
    "AnyEvent",
    "CsMessageEvent",
    "LiveRoomEvent",
    "OrderEvent",
    "ReviewEvent",
    "ViewEvent",
    "event_json_schemas",
    "parse_event_time",
]
