"""The contract: event models, the exported JSON Schema, output names, the table catalogue, the trust-score
formulas, time helpers and the root of the error tree."""

from gmv.schemas.events import (
    EVENT_ADAPTER,
    EVENT_TYPES,
    AnyEvent,
    CsMessageEvent,
    LiveRoomEvent,
    OrderEvent,
    ReviewEvent,
    ViewEvent,
    parse_event_time,
)
from gmv.schemas.json_schema import event_json_schemas
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
