"""The facts: one row per event, per dead letter, per credit of an order's touch, per trust-score fact.

Written by the worker as it processes events (``gmv.streams.core.rows`` builds their rows from
these definitions); everything else is recomputed from them. Each row has a deterministic identity
(its ORDER BY key), so a row written twice (a retried insert, a replay after a crash, ``gmv run``
on the same file again) collapses into one behind the table's FINAL view.
"""

from __future__ import annotations

from gmv.schemas.catalogue.base import Column, Table

TS = "DateTime64(3, 'UTC')"  # every event and processing time: UTC, to the millisecond


EVENTS = Table(
    name="events",
    comment="Every accepted (valid, first-seen) event, for audit and replay.",
    columns=(
        Column("event_id", "String", "producer's unique event id"),
        Column("event_type", "LowCardinality(String)", "view | live_room | order"),
        Column("event_time", TS, "event time (UTC)"),
        Column("user_id", "String", "user the event belongs to ('' for live start/end)"),
        Column("partition_key", "String", "key the pipeline partitions by (user_id, or live_id for start/end)"),
        Column("src", "String", "source message identity (file:<sha>:<line> or topic:partition:offset, #index in a batch)"),
        Column("source_topic", "LowCardinality(String)", "Kafka topic it arrived on"),
        Column("source_partition", "Int32", "Kafka partition it arrived on"),
        Column("source_offset", "Int64", "Kafka offset it arrived at"),
        Column("element_index", "Int32", "index in a producer batch (JSON array), -1 for a single-event message"),
        Column("payload", "String", "the event JSON as received (the array element, for a producer batch)"),
        Column("ingested_at", TS, "when the pipeline accepted it (processing time, UTC)"),
        Column("engaged", "UInt8", "1 for a view with watch_ms >= engaged_ms and every live enter (a touchpoint), else 0 (0 on rows stored before migration 9)"),
    ),
    order_by="(event_type, event_id)",
    partition_by="toYYYYMM(event_time)",
)

INGEST_LOG = Table(
    name="ingest_log",
    comment=("One row per received event (or undecodable message) with its outcome; counters come from here. "
             "Accepted events are logged by ClickHouse itself from events (materialized view events_log)."),
    columns=(
        Column("src", "String", "source message identity (see events.src)"),
        Column("source_topic", "LowCardinality(String)", "Kafka topic"),
        Column("source_partition", "Int32", "Kafka partition"),
        Column("source_offset", "Int64", "Kafka offset"),
        Column("element_index", "Int32", "index in a producer batch (JSON array), -1 for a single-event message"),
        Column("event_id", "String", "event id if one could be read, else ''"),
        Column("event_type", "LowCardinality(String)", "event type if one could be read, else ''"),
        Column("outcome", "LowCardinality(String)", "accepted | duplicate | dead_letter"),
        Column("reason_code", "LowCardinality(String)", "why it was dead-lettered ('' otherwise)"),
        Column("logged_at", TS, "processing time of the outcome (UTC); the latest outcome wins"),
    ),
    order_by="src",
    version="logged_at",
)

DEAD_LETTERS = Table(
    name="dead_letters",
    comment="Rejected input with the raw payload, where it came from and a reason a person can act on (also on the DLQ topic).",
    columns=(
        Column("src", "String", "source message identity (see events.src)"),
        Column("source_topic", "LowCardinality(String)", "Kafka topic the bad input arrived on"),
        Column("source_partition", "Int32", "Kafka partition"),
        Column("source_offset", "Int64", "Kafka offset"),
        Column("element_index", "Int32", "index in a producer batch, -1 for a single-event message"),
        Column("event_id", "String", "event id if one could be read, else ''"),
        Column("event_type", "LowCardinality(String)", "event type if one could be read, else ''"),
        Column("reason_code", "LowCardinality(String)", "machine-readable reason (invalid_json, invalid_event, wrong_topic, ...)"),
        Column("reason", "String", "what is wrong and what to do about it"),
        Column("raw", "String", "the payload as received (first 64 KiB of an oversized one)"),
        Column("received_at", TS, "when it was rejected (processing time, UTC)"),
    ),
    order_by="src",
    version="received_at",
)

ATTRIBUTED_GMV = Table(
    name="attributed_gmv",
    comment=("Attributed GMV facts: one row per (order event, model, touch of its path). "
             "sum(credit_fen) over any grouping is exact to the fen; refunds are negative rows. The rule-based "
             "models' rows are stored here when an order is attributed; the markov rows come from markov_credits, "
             "restated while the order's day is open."),
    columns=(
        Column("event_id", "String", "the paid order event, or the refund event, this credit comes from"),
        Column("order_id", "String", "order id"),
        Column("kind", "LowCardinality(String)", "paid | refund"),
        Column("model", "LowCardinality(String)",
               "last_touch | first_touch | linear | position_based | time_decay | markov (data-driven: by each "
               "stage's removal effect in the journeys of the order's shop and day)"),
        Column("touch_index", "UInt8", "position of the touch in the path (0 = first; the last is the conversion)"),
        Column("is_conversion", "UInt8", "1 on the conversion touch (the order itself, stage = channel)"),
        Column("stage", "LowCardinality(String)", "funnel stage of the touch: short_video | live | clip | shelf"),
        Column("touch_account_id", "String", "account of the touch (video author / live anchor / the seller for the conversion)"),
        Column("touch_content_id", "String", "content of the touch (video_id / live_id / channel_id; '' for shelf)"),
        Column("touch_event_id", "String", "event id of the touchpoint (the order's for the conversion)"),
        Column("is_self", "UInt8", "1 when the touch account is the seller itself (brand self-broadcast), 0 for others (distributors)"),
        Column("traffic", "LowCardinality(String)", "public | private traffic of the touch (the conversion: of the touch it merged, else public)"),
        Column("touch_time", TS, "time of the touch (UTC)"),
        Column("order_time", TS, "time the order was paid (UTC)"),
        Column("event_time", TS, "time this credit counts at: the payment, or the refund (UTC)"),
        Column("user_id", "String", "buyer"),
        Column("shop_id", "String", "shop of the order"),
        Column("seller_id", "String", "account that made the sale ('' for pure shelf sales)"),
        Column("sku_id", "String", "SKU"),
        Column("channel", "LowCardinality(String)", "where the order was paid: short_video | live | clip | shelf"),
        Column("credit_fen", "Int64", "credit in fen (1/100 CNY); negative for refunds; sums exactly to the amount per order event and model"),
        Column("path", "String", "the path's stages, e.g. short_video>live>clip"),
        Column("path_length", "UInt8", "touches in the path, the conversion included (at most 20)"),
        Column("attributed_at", TS, "processing time of the attribution (UTC)"),
    ),
    order_by="(toStartOfMinute(event_time), event_id, model, touch_index)",
    partition_by="toYYYYMM(event_time)",
    view_select=("SELECT {columns} FROM `{db}`.`attributed_gmv_store` FINAL UNION ALL "
                 "SELECT {columns} FROM `{db}`.`markov_credits_store` FINAL"),
)

FUNNEL_EVENTS = Table(
    name="funnel_events",
    comment=("Views and live-room events flattened for funnel metrics (one row per accepted event). Derived by "
             "ClickHouse from each events row (materialized view funnel_from_events reads its payload)."),
    columns=(
        Column("event_id", "String", "event id"),
        Column("event_time", TS, "event time (UTC)"),
        Column("stage", "LowCardinality(String)", "short_video | clip (views) | live (live_room events)"),
        Column("action", "LowCardinality(String)", "view | enter | leave | start | end"),
        Column("user_id", "String", "viewer ('' for live start/end)"),
        Column("account_id", "String", "video author / live anchor"),
        Column("content_id", "String", "video_id / live_id"),
        Column("shop_id", "String", "mounted shop ('' if none)"),
        Column("traffic", "LowCardinality(String)", "public | private"),
        Column("watch_ms", "UInt64", "watch time of a view (0 for live events)"),
        Column("engaged", "UInt8", "1 for a view with watch_ms >= engaged_ms and every live enter (a touchpoint)"),
        Column("referrer_kind", "LowCardinality(String)", "what led into the live room (enter only)"),
        Column("source_live_id", "String", "the live a clip was cut from"),
    ),
    order_by="(toStartOfMinute(event_time), event_id)",
    partition_by="toYYYYMM(event_time)",
)

_SUBJECTS = (
    Column("shop_id", "String", "shop of the order"),
    Column("sku_id", "String", "SKU of the order"),
    Column("seller_id", "String", "account that made the sale ('' for pure shelf sales)"),
)

REFUNDS = Table(
    name="refunds",
    comment=("Applied refunds with their reason (the trust scores count quality refunds), one row per refund event, with its order's shop, SKU "
             "and seller. Quality refunds (is_quality) weigh on the trust scores."),
    columns=(
        Column("event_id", "String", "the refund event"),
        Column("order_id", "String", "the refunded order"),
        Column("user_id", "String", "buyer"),
        *_SUBJECTS,
        Column("refund_fen", "Int64", "refunded amount in fen (positive)"),
        Column("reason", "LowCardinality(String)",
               "refund_reason: quality | not_as_described | damaged | wrong_item | changed_mind | logistics | other"),
        Column("is_quality", "UInt8", "1 for quality refunds (quality, not_as_described, damaged, wrong_item)"),
        Column("event_time", TS, "time of the refund (UTC): the trust-score window that holds it counts it"),
        Column("order_time", TS, "time the order was paid (UTC)"),
        Column("settled_at", TS, "processing time the refund was applied (UTC)"),
    ),
    order_by="event_id",
    partition_by="toYYYYMM(event_time)",
)

REVIEWS = Table(
    name="reviews",
    comment=("Buyers' reviews of paid orders (inputs of the trust scores), one per order, with the order's shop, SKU and seller. "
             "Dead-lettered reviews (orphan_review, review_already_given, review_user_mismatch) are not here."),
    columns=(
        Column("event_id", "String", "the review event"),
        Column("order_id", "String", "the reviewed order"),
        Column("user_id", "String", "buyer (the order's)"),
        *_SUBJECTS,
        Column("product_rating", "UInt8", "1-5: the product (商品分, 商号体验分 P)"),
        Column("service_rating", "UInt8", "1-5: the service (带货口碑分 with product_rating, 商号体验分 S)"),
        Column("logistics_rating", "UInt8", "1-5: delivery (商号体验分 L)"),
        Column("event_time", TS, "time of the review (UTC): the trust-score window that holds it counts it"),
        Column("order_time", TS, "time the order was paid (UTC)"),
        Column("reviewed_at", TS, "processing time the review was joined to its order (UTC)"),
    ),
    order_by="event_id",
    partition_by="toYYYYMM(event_time)",
)

CS_TURNS = Table(
    name="cs_turns",
    comment=("Customer-service buyer turns (the trust scores' response times): a turn starts at a buyer message that opens the conversation "
             "or follows an agent message, and ends at the next agent message (bots answer nothing). Recomputed "
             "from all the conversation's messages whenever one arrives, so arrival order never matters; the view "
             "holds the turns only (is_turn = 1)."),
    columns=(
        Column("conversation_id", "String", "conversation"),
        Column("start_event_id", "String", "the buyer message (event_id) that starts the turn"),
        Column("shop_id", "String", "shop the conversation is with"),
        Column("user_id", "String", "buyer"),
        Column("is_turn", "UInt8", "1 = this buyer message starts a turn; 0 = it does not (any more)"),
        Column("start_time", TS, "time of the turn's first buyer message (UTC): the window that holds it counts it"),
        Column("answer_event_id", "String", "the agent message that ended the turn ('' if none yet)"),
        Column("answer_time", f"Nullable({TS})", "time of that agent message (NULL if none yet)"),
        Column("response_ms", "Nullable(Int64)", "answer_time - start_time in ms (NULL if no agent answered)"),
        Column("answered", "UInt8", "1 = an agent answered within cs_unanswered_after (default 1 h of event time)"),
        Column("fast", "UInt8", "1 = answered within 3 s (response_ms <= 3000): the platform's standard"),
        Column("within_3min", "UInt8", "1 = answered within 3 min (response_ms <= 180000)"),
        Column("version", "UInt64", "messages of the conversation the row was computed from; the highest wins"),
        Column("computed_at", TS, "processing time of the computation (UTC)"),
    ),
    order_by="(conversation_id, start_event_id)",
    version="version",
    partition_by="",
)

FACTS: tuple[Table, ...] = (EVENTS, INGEST_LOG, DEAD_LETTERS, ATTRIBUTED_GMV, FUNNEL_EVENTS, REFUNDS, REVIEWS,
                            CS_TURNS)
