"""Event contract models (SPEC §2)."""

from schemas.events import (
    EVENT_ADAPTER,
    EVENT_TYPES,
    AnyEvent,
    LiveRoomEvent,
    OrderEvent,
    ViewEvent,
    event_json_schemas,
    parse_event_time,
)

__all__ = [
    "EVENT_ADAPTER",
    "EVENT_TYPES",
    "AnyEvent",
    "LiveRoomEvent",
    "OrderEvent",
    "ViewEvent",
    "event_json_schemas",
    "parse_event_time",
]
