"""Typed rows, one record type per stored ClickHouse table.

Each is a NamedTuple whose fields are the table's columns, in the table's order
(``gmv.sinks.schema``; a unit test compares the two): the sink writes a row as
it is (a tuple is a ``JSONCompactEachRow`` array), and code reads its fields by
name. Time fields carry row times: epoch seconds with exactly the event's
milliseconds (``gmv.streams.core.state.row_time``).

The hot loops build them with ``build(RowType, values)`` (``gmv.streams.core.state``),
values in field order. The sink hands pydantic-core plain tuples (``json_rows``).
"""

from __future__ import annotations

from typing import NamedTuple

from gmv.schemas.outputs import MODELS
from gmv.streams.core.attribution import Touch, path_label
from gmv.streams.core.state import OrderRec, build, row_time


class EventRow(NamedTuple):
    """``events``: an accepted (valid, first-seen) event."""

    TABLE = "events"

    event_id: str
    event_type: str
    event_time: float
    user_id: str
    partition_key: str
    src: str
    source_topic: str
    source_partition: int
    source_offset: int
    element_index: int
    payload: str | dict  # the JSON text as received; a producer batch's element as the parsed object
    ingested_at: float


class IngestLogRow(NamedTuple):
    """``ingest_log``: the outcome of one received event (or undecodable message)."""

    TABLE = "ingest_log"

    src: str
    source_topic: str
    source_partition: int
    source_offset: int
    element_index: int
    event_id: str
    event_type: str
    outcome: str  # accepted | duplicate | dead_letter | rekeyed
    reason_code: str
    logged_at: float


class DeadLetterRow(NamedTuple):
    """``dead_letters``: rejected input, its raw bytes and a reason a person can act on."""

    TABLE = "dead_letters"

    src: str
    source_topic: str
    source_partition: int
    source_offset: int
    element_index: int
    event_id: str
    event_type: str
    reason_code: str
    reason: str
    raw: bytes
    received_at: object  # a datetime: this table goes through the native (binary) insert


class CreditRow(NamedTuple):
    """``attributed_gmv``: one touch's credit of one order (or refund) event under one model."""

    TABLE = "attributed_gmv"

    event_id: str
    order_id: str
    kind: str  # paid | refund
    model: str
    touch_index: int
    is_conversion: int
    stage: str
    touch_account_id: str
    touch_content_id: str
    touch_event_id: str
    is_self: int
    traffic: str
    touch_time: float
    order_time: float
    event_time: float
    user_id: str
    shop_id: str
    seller_id: str
    sku_id: str
    channel: str
    credit_fen: int
    path: str
    path_length: int
    attributed_at: float


class FunnelRow(NamedTuple):
    """``funnel_events``: a view or live-room event flattened for funnel metrics."""

    TABLE = "funnel_events"

    event_id: str
    event_time: float
    stage: str
    action: str
    user_id: str
    account_id: str
    content_id: str
    shop_id: str
    traffic: str
    watch_ms: int
    engaged: int
    referrer_kind: str
    source_live_id: str


class RefundRow(NamedTuple):
    """``refunds``: an applied refund with its reason and its order's subjects (SPEC §7)."""

    TABLE = "refunds"

    event_id: str
    order_id: str
    user_id: str
    shop_id: str
    sku_id: str
    seller_id: str
    refund_fen: int
    reason: str
    is_quality: int
    event_time: float
    order_time: float
    settled_at: float


class ReviewRow(NamedTuple):
    """``reviews``: an applied review with its order's subjects (SPEC §7)."""

    TABLE = "reviews"

    event_id: str
    order_id: str
    user_id: str
    shop_id: str
    sku_id: str
    seller_id: str
    product_rating: int
    service_rating: int
    logistics_rating: int
    event_time: float
    order_time: float
    reviewed_at: float


class CsTurnRow(NamedTuple):
    """``cs_turns``: a buyer message of a conversation, and the turn it starts (``is_turn``) if any."""

    TABLE = "cs_turns"

    conversation_id: str
    start_event_id: str
    shop_id: str
    user_id: str
    is_turn: int
    start_time: float
    answer_event_id: str
    answer_time: float | None
    response_ms: int | None
    answered: int
    fast: int
    within_3min: int
    version: int
    computed_at: float


ROW_TYPES: tuple[type[tuple], ...] = (EventRow, IngestLogRow, DeadLetterRow, CreditRow, FunnelRow, RefundRow,
                                      ReviewRow, CsTurnRow)


# -- builders shared by the processor and refund settlement ----------------------------------
def log_row(src: str, topic: str, partition: int, offset: int, index: int, event_id: str, event_type: str,
            outcome: str, reason_code: str, logged_at: float) -> IngestLogRow:
    return build(IngestLogRow, (src, topic, partition, offset, index, event_id, event_type, outcome, reason_code,
                                 logged_at))


def credit_rows(event_id: str, kind: str, t_ms: int, order: OrderRec, path: list[Touch],
                credits: dict[str, list[int]], now_s: float) -> list[CreditRow]:
    """The rows of one order event (paid) or refund event: one per model and touch of the path."""
    label, n = path_label(path), len(path)
    order_time, event_time = row_time(order.t_ms), row_time(t_ms)
    return [build(CreditRow, (event_id, order.order_id, kind, model, i, int(i == n - 1), touch.stage, touch.account_id,
                  touch.content_id, touch.event_id,
                  int(bool(order.seller_id) and touch.account_id == order.seller_id), touch.traffic,
                  row_time(touch.t_ms), order_time, event_time, order.user_id, order.shop_id, order.seller_id,
                  order.sku_id, order.channel, credit, label, n, now_s))
            for model in MODELS
            for i, (touch, credit) in enumerate(zip(path, credits[model], strict=True))]
