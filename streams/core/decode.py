"""Validate at the edge: raw Kafka message bytes -> accepted events and dead letters.

Pure (no Kafka client, no I/O): the batch processor calls ``MessageDecoder.decode``
on each consumed message and routes what comes back. A message is one event, or a
JSON array of up to ``max_batch_events`` events (a producer batch, SPEC §2) whose
elements are validated one by one, so a bad element is dead-lettered alone with its
index.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import NamedTuple

import pydantic_core
from pydantic import ValidationError

from gmv.schemas.events import EVENT_ADAPTER, AnyEvent

EVENT_VALIDATOR = EVENT_ADAPTER.validator  # pydantic-core's, without the TypeAdapter wrapper per call

SRC_HEADER = "gmv-src"
OVERSIZE_HEADER = "gmv-oversize"  # set by `gmv run` on a line too large to produce: its true size
RAW_KEEP_BYTES = 64 * 1024  # dead letters keep at most this much of an oversized payload


@dataclass(frozen=True, slots=True)
class SourceMessage:
    """One consumed Kafka message and its identity.

    ``src`` identifies the message for replay detection: ``gmv run`` stamps each
    line with ``file:<sha>:<line>`` (so running a file twice is a replay, not a
    duplicate); anything else is ``<topic>:<partition>:<offset>``.
    """

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    src: str
    oversize: int = 0  # true size of a payload truncated by `gmv run` (0 = not truncated)
    timestamp_ms: int = 0  # the record's Kafka timestamp (producer create time), 0 if unknown

    @classmethod
    def from_kafka(
        cls, topic: str, partition: int, offset: int, key: bytes | None, value: bytes | None,
        headers: list[tuple[str, bytes]] | dict | None, timestamp_ms: int | None = None,
    ) -> SourceMessage:
        src, oversize = None, 0
        items = headers.items() if isinstance(headers, dict) else (headers or ())
        for name, val in items:
            if name == SRC_HEADER and val:
                try:
                    src = bytes(val).decode("utf-8")[:200]
                except UnicodeDecodeError:
                    src = None
            elif name == OVERSIZE_HEADER and val:
                try:
                    oversize = int(bytes(val))
                except ValueError:
                    oversize = 0
        return cls(topic, partition, offset, key, value, src or f"{topic}:{partition}:{offset}", oversize,
                   timestamp_ms or 0)


class Accepted(NamedTuple):
    """A valid event and where it came from (a NamedTuple: one per event, cheap to build)."""

    event: AnyEvent
    msg: SourceMessage
    index: int  # element index in a producer batch, -1 for a single-event message
    src: str
    # The event as received: the message's bytes; for an element of a producer batch, the parsed
    # element itself (the sink writes it as the object's compact JSON: encoding it here for
    # every event cost a noticeable share of the loop).
    raw: bytes | dict = b""


@dataclass(frozen=True, slots=True)
class DeadLetter:
    msg: SourceMessage
    index: int
    src: str
    reason_code: str
    reason: str
    raw: bytes
    event_id: str = ""
    event_type: str = ""


Decoded = Accepted | DeadLetter

_HINTS = {
    "missing": "add the field",
    "string_type": "send a JSON string",
    "int_type": "send a JSON integer (money is integer fen)",
    "literal_error": "use one of the allowed values",
    "greater_than": "must be positive",
    "greater_than_equal": "must not be negative",
}


def _describe(err: ValidationError) -> tuple[str, str]:
    """Turn a pydantic error into (reason_code, a sentence a person can act on)."""
    errors = err.errors(include_url=False, include_input=False)
    first = errors[0]["type"] if errors else ""
    if first == "json_invalid":
        msg = errors[0]["msg"]
        return "invalid_json", f"not valid JSON ({msg}); the producer must send one UTF-8 JSON object per message"
    if first == "union_tag_invalid":
        return "unknown_event_type", (
            "unknown event_type; expected one of 'view', 'live_room', 'order', 'review', 'cs_message'"
        )
    if first == "union_tag_not_found":
        return "missing_event_type", "no event_type field; every event needs event_type ('view', 'live_room', 'order', 'review' or 'cs_message')"
    if first in ("model_attributes_type", "model_type", "dict_type"):
        return "not_an_object", "the message is JSON but not an object; send one event object (or an array of them)"
    parts = []
    for e in errors[:6]:
        loc = ".".join(str(p) for p in e["loc"][1:] if p != "function-after") or "event"
        msg = e["msg"].removeprefix("Value error, ")
        hint = _HINTS.get(e["type"])
        parts.append(f"{loc}: {msg}" + (f" ({hint})" if hint and hint not in msg else ""))
    more = f" (+{len(errors) - 6} more)" if len(errors) > 6 else ""
    return "invalid_event", "; ".join(parts) + more


def _peek_ids(obj: object) -> tuple[str, str]:
    if isinstance(obj, dict):
        eid, etype = obj.get("event_id"), obj.get("event_type")
        return (eid[:128] if isinstance(eid, str) else "", etype[:32] if isinstance(etype, str) else "")
    return "", ""


class MessageDecoder:
    """Decodes raw messages of the source topics (pure; one instance per pipeline)."""

    def __init__(self, topic_event_types: dict[str, str], max_message_bytes: int,
                 max_batch_events: int, max_future_skew_ms: int) -> None:
        self.topic_event_types = topic_event_types
        self.max_message_bytes = max_message_bytes
        self.max_batch_events = max_batch_events
        self.max_future_skew_ms = max_future_skew_ms

    def decode(self, msg: SourceMessage, now: datetime) -> list[Decoded]:
        value = msg.value
        if value is None or not value.strip():
            return [DeadLetter(msg, -1, msg.src, "empty_message", "empty message (no value); send one JSON event", value or b"")]
        size = max(len(value), msg.oversize)
        if size > self.max_message_bytes:
            return [DeadLetter(
                msg, -1, msg.src, "too_large",
                f"message is {size} bytes, over the {self.max_message_bytes}-byte limit; "
                "split it into smaller producer batches",
                value[:RAW_KEEP_BYTES],
            )]
        if value.lstrip()[:1] == b"[":
            return self._decode_batch(msg, value, now)
        if b"NaN" in value or b"Infinity" in value:
            # The parser behind validate_json takes these tokens (even in fields we ignore); they
            # are not JSON. A cheap byte search first: only such messages pay a strict parse.
            try:
                pydantic_core.from_json(value, allow_inf_nan=False)
            except ValueError as e:
                return [DeadLetter(msg, -1, msg.src, "invalid_json",
                                   f"not valid JSON ({e}); NaN and Infinity are not JSON numbers", value)]
        try:
            event = EVENT_ADAPTER.validate_json(value)
        except ValidationError as e:
            code, reason = _describe(e)
            eid, etype = ("", "")
            if code != "invalid_json":
                try:
                    eid, etype = _peek_ids(pydantic_core.from_json(value, allow_inf_nan=False))
                except ValueError:
                    pass
            return [DeadLetter(msg, -1, msg.src, code, reason, value, eid, etype)]
        except RecursionError:
            return [DeadLetter(msg, -1, msg.src, "invalid_json", "JSON nested too deeply", value)]
        return [self._check(event, msg, -1, msg.src, value, now)]

    def _decode_batch(self, msg: SourceMessage, value: bytes, now: datetime) -> list[Decoded]:
        try:
            elements = pydantic_core.from_json(value, allow_inf_nan=False)
        except (ValueError, RecursionError) as e:
            return [DeadLetter(msg, -1, msg.src, "invalid_json",
                               f"not valid JSON ({e}); a producer batch must be a JSON array of event objects", value)]
        if not elements:
            return [DeadLetter(msg, -1, msg.src, "empty_batch", "empty producer batch ([]): send at least one event", value)]
        if len(elements) > self.max_batch_events:
            return [DeadLetter(msg, -1, msg.src, "batch_too_large",
                               f"producer batch of {len(elements)} events, over the limit of "
                               f"{self.max_batch_events}; split it", value[:RAW_KEEP_BYTES])]
        out: list[Decoded] = []
        # The hot loop of producer batches: names bound once; the common case (right topic,
        # not from the future) skips _check, whose slow path words the dead letter.
        to_json, validate, base = pydantic_core.to_json, EVENT_VALIDATOR.validate_python, msg.src
        expected = self.topic_event_types.get(msg.topic)
        latest = now + timedelta(milliseconds=self.max_future_skew_ms)
        for i, element in enumerate(elements):
            try:
                event = validate(element)
            except ValidationError as e:
                code, reason = _describe(e)
                eid, etype = _peek_ids(element)
                out.append(DeadLetter(msg, i, f"{base}#{i}", code, f"element {i}: {reason}", to_json(element),
                                      eid, etype))
                continue
            if (expected is None or event.event_type == expected) and event.event_time <= latest:
                out.append(Accepted(event, msg, i, f"{base}#{i}", element))
            else:  # compact UTF-8, in Rust: the dead letter's raw payload
                out.append(self._check(event, msg, i, f"{base}#{i}", to_json(element), now))
        return out

    def _check(self, event: AnyEvent, msg: SourceMessage, index: int, src: str, raw: bytes,
               now: datetime) -> Decoded:
        expected = self.topic_event_types.get(msg.topic)
        if expected is not None and event.event_type != expected:
            return DeadLetter(
                msg, index, src, "wrong_topic",
                f"event_type '{event.event_type}' does not belong on topic {msg.topic} "
                f"(it carries '{expected}' events); send it to its own topic",
                raw, event.event_id, event.event_type,
            )
        ahead_ms = (event.event_time - now).total_seconds() * 1000
        if ahead_ms > self.max_future_skew_ms:
            return DeadLetter(
                msg, index, src, "future_event_time",
                f"event_time {event.event_time.isoformat()} is {ahead_ms / 3_600_000:.1f} h ahead of the "
                "pipeline clock; fix the producer clock or its time zone",
                raw, event.event_id, event.event_type,
            )
        return Accepted(event, msg, index, src, raw)
