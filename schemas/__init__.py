"""Event contract models (SPEC §2)."""

from gmv.schemas.events import (
    EVENT_ADAPTER,
    EVENT_TYPES,
    AnyEvent,
    LiveRoomEvent,
    OrderEvent,
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
    "LiveRoomEvent",
    "OrderEvent",
    "ViewEvent",
    "event_json_schemas",
    "parse_event_time",
]
