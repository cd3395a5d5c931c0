"""The tables the pipeline writes today: names, columns and types, known up front.

The sink inserts by these definitions (no schema round trip per batch); the DDL
that creates them lives in the frozen migrations (``gmv.sinks.migrations``), and a
test checks that the migrations build exactly these columns.

Exactness (SPEC §4): every stored row has a deterministic identity (its ORDER BY
key). Stored tables are ReplacingMergeTree, so a row written twice — a retried
insert, a replay after a crash, ``gmv run`` on the same file again — collapses
to one; the user-facing names are views with ``FINAL`` over them, so a plain
``SELECT sum(...)`` is exact without the user writing FINAL.
"""

from __future__ import annotations

from dataclasses import dataclass

TS = "DateTime64(3, 'UTC')"


@dataclass(frozen=True)
class Column:
    name: str
    type: str
    comment: str


@dataclass(frozen=True)
class StoredTable:
    """A table the sink inserts into, plus the FINAL view analysts query."""

    name: str  # the view name analysts use; the stored table is ``<name>_store``
    comment: str
    columns: tuple[Column, ...]
    order_by: str
    version: str = ""  # ReplacingMergeTree version column ("" = any copy wins; copies are identical)
    partition_by: str = ""

    @property
    def store(self) -> str:
        return f"{self.name}_store"

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]

    @property
    def column_types(self) -> list[str]:
        return [c.type for c in self.columns]


EVENTS = StoredTable(
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
    ),
    order_by="(event_type, event_id)",
    partition_by="toYYYYMM(event_time)",
)

INGEST_LOG = StoredTable(
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

DEAD_LETTERS = StoredTable(
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

ATTRIBUTED_GMV = StoredTable(
    name="attributed_gmv",
    comment=("Attributed GMV facts: one row per (order event, model, touch of its path). "
             "sum(credit_fen) over any grouping is exact to the fen; refunds are negative rows."),
    columns=(
        Column("event_id", "String", "the paid order event, or the refund event, this credit comes from"),
        Column("order_id", "String", "order id"),
        Column("kind", "LowCardinality(String)", "paid | refund"),
        Column("model", "LowCardinality(String)", "last_touch | first_touch | linear | position_based | time_decay"),
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
)

FUNNEL_EVENTS = StoredTable(
    name="funnel_events",
    comment="Views and live-room events flattened for funnel metrics (one row per accepted event).",
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

_ROLLUP_VERSION = Column("refreshed_at", "DateTime64(6, 'UTC')", "when this row was recomputed from the facts; the latest wins")

GMV_MINUTE = StoredTable(
    name="gmv_minute",
    comment=("Attributed GMV per minute, recomputed by the worker from the de-duplicated facts "
             "(attributed_gmv) after each flush: exact, never a running sum."),
    columns=(
        Column("minute", "DateTime('UTC')", "minute of event_time (UTC)"),
        Column("model", "LowCardinality(String)", "attribution model"),
        Column("stage", "LowCardinality(String)", "funnel stage credited"),
        Column("channel", "LowCardinality(String)", "where the orders were paid"),
        Column("traffic", "LowCardinality(String)", "public | private"),
        Column("shop_id", "String", "shop"),
        Column("seller_id", "String", "seller account"),
        Column("touch_account_id", "String", "credited account"),
        Column("is_self", "UInt8", "1 = credited account is the seller itself"),
        Column("gmv_fen", "Int64", "paid GMV credited (fen)"),
        Column("refund_fen", "Int64", "refunds credited, as a positive number (fen)"),
        Column("net_fen", "Int64", "gmv_fen - refund_fen"),
        Column("orders", "UInt64", "paid orders converting here (counted on the conversion touch, so once per order and model)"),
        Column("refunds", "UInt64", "refund events (counted on the conversion touch)"),
        Column("buyers", "AggregateFunction(uniq, String)", "distinct buyers of those orders: uniqMerge(buyers)"),
        _ROLLUP_VERSION,
    ),
    order_by="(minute, model, stage, channel, traffic, shop_id, seller_id, touch_account_id, is_self)",
    version="refreshed_at",
    partition_by="toYYYYMM(minute)",
)

FUNNEL_MINUTE = StoredTable(
    name="funnel_minute",
    comment="Funnel per minute (views, engaged views, live enters, unique viewers), recomputed from funnel_events.",
    columns=(
        Column("minute", "DateTime('UTC')", "minute of event_time (UTC)"),
        Column("stage", "LowCardinality(String)", "short_video | clip | live"),
        Column("account_id", "String", "video author / live anchor"),
        Column("content_id", "String", "video_id / live_id"),
        Column("shop_id", "String", "mounted shop"),
        Column("traffic", "LowCardinality(String)", "public | private"),
        Column("views", "UInt64", "views (video views; live enters for stage live)"),
        Column("engaged_views", "UInt64", "views with watch_ms >= engaged_ms (touchpoints); live enters for live"),
        Column("live_enters", "UInt64", "live room enters"),
        Column("viewers", "AggregateFunction(uniq, String)", "unique viewers (UV): uniqMerge(viewers)"),
        _ROLLUP_VERSION,
    ),
    order_by="(minute, stage, account_id, content_id, shop_id, traffic)",
    version="refreshed_at",
    partition_by="toYYYYMM(minute)",
)

_SUBJECTS = (
    Column("shop_id", "String", "shop of the order"),
    Column("sku_id", "String", "SKU of the order"),
    Column("seller_id", "String", "account that made the sale ('' for pure shelf sales)"),
)

REFUNDS = StoredTable(
    name="refunds",
    comment=("Applied refunds with their reason (SPEC §7), one row per refund event, with its order's shop, SKU "
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

REVIEWS = StoredTable(
    name="reviews",
    comment=("Buyers' reviews of paid orders (SPEC §7), one per order, with the order's shop, SKU and seller. "
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

CS_TURNS = StoredTable(
    name="cs_turns",
    comment=("Customer-service buyer turns (SPEC §7): a turn starts at a buyer message that opens the conversation "
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

STORED_TABLES: tuple[StoredTable, ...] = (EVENTS, INGEST_LOG, DEAD_LETTERS, ATTRIBUTED_GMV, FUNNEL_EVENTS, REFUNDS,
                                          REVIEWS, CS_TURNS)
TRUST_DAILY = StoredTable(
    name="trust_daily",
    comment=("What each Asia/Shanghai day's facts add to the trust scores (SPEC §7), per subject: the scores of a "
             "day sum the 30 days of this table ending with it. Recomputed by the worker from the facts of the "
             "days that changed."),
    columns=(
        Column("day", "Date", "the day (Asia/Shanghai) the facts happened"),
        Column("subject_kind", "LowCardinality(String)", "sku | account | shop"),
        Column("subject_id", "String", "sku_id, the selling account (seller_id) or shop_id"),
        Column("reviews", "UInt64", "reviews that day"),
        Column("product_rating_sum", "UInt64", "Σ product_rating"),
        Column("service_rating_sum", "UInt64", "Σ service_rating"),
        Column("logistics_rating_sum", "UInt64", "Σ logistics_rating"),
        Column("paid_orders", "UInt64", "paid orders that day"),
        Column("refunds", "UInt64", "applied refunds that day (any reason)"),
        Column("quality_refunded", "AggregateFunction(uniqExact, String)",
               "orders with a quality refund that day: uniqExactMerge over a window counts each order once"),
        Column("turns", "UInt64", "customer-service buyer turns starting that day (shops)"),
        Column("fast_turns", "UInt64", "of those, answered within 3 s"),
        Column("within_3min_turns", "UInt64", "of those, answered within 3 min"),
        _ROLLUP_VERSION,
    ),
    order_by="(day, subject_kind, subject_id)",
    version="refreshed_at",
    partition_by="toYYYYMM(day)",
)

TRUST_SCORES = StoredTable(
    name="trust_scores",
    comment=("Trust scores per Asia/Shanghai day and subject (SPEC §7): 商品分 (sku), 带货口碑分 (account), "
             "商号体验分 (shop), each over the 30 days ending with day, with every input of its formula. "
             "Recomputed by the worker from the de-duplicated facts (reviews, refunds, cs_turns, attributed_gmv): "
             "a replay or a crash never changes a score. The current score: the row with the latest day."),
    columns=(
        Column("day", "Date", "the day D (Asia/Shanghai) whose window [D-29, D] the score covers"),
        Column("subject_kind", "LowCardinality(String)", "sku | account | shop"),
        Column("subject_id", "String", "sku_id, the selling account (seller_id) or shop_id"),
        Column("score", "Float64", "the score, 0-5, unrounded (displays round to two decimals)"),
        Column("n", "UInt64", "n of the formula (SPEC §7): reviews in the window, as the column reviews"),
        Column("reviews", "UInt64", "reviews in the window"),
        Column("product_rating_sum", "UInt64", "Σ product_rating of those reviews"),
        Column("service_rating_sum", "UInt64", "Σ service_rating"),
        Column("logistics_rating_sum", "UInt64", "Σ logistics_rating"),
        Column("rating_sum", "Float64", "the Σ this kind smooths: product (sku, shop), (product + service) / 2 (account)"),
        Column("paid_orders", "UInt64", "paid orders in the window"),
        Column("refunds", "UInt64", "applied refunds in the window (any reason)"),
        Column("quality_refunded_orders", "UInt64", "orders with a quality refund in the window"),
        Column("qrr", "Float64", "quality_refunded_orders / paid_orders (0 without paid orders)"),
        Column("turns", "UInt64", "customer-service buyer turns starting in the window (shops)"),
        Column("fast_turns", "UInt64", "of those, answered within 3 s"),
        Column("within_3min_turns", "UInt64", "of those, answered within 3 min"),
        Column("fast", "Nullable(Float64)", "fast_turns / turns, 1 without turns (shops; NULL otherwise)"),
        Column("within_3min", "Nullable(Float64)", "within_3min_turns / turns, 1 without turns (shops; NULL otherwise)"),
        Column("product_part", "Float64", "P = clamp(smooth(rating_sum, reviews) - 10 × qrr): the score of a sku or account"),
        Column("service_part", "Nullable(Float64)", "S = 0.5 × smooth(service) + 0.5 × 5 × (fast + within_3min) / 2 (shops)"),
        Column("logistics_part", "Nullable(Float64)", "L = smooth(logistics) (shops)"),
        _ROLLUP_VERSION,
    ),
    order_by="(day, subject_kind, subject_id)",
    version="refreshed_at",
    partition_by="toYYYYMM(day)",
)

ROLLUP_TABLES: tuple[StoredTable, ...] = (GMV_MINUTE, FUNNEL_MINUTE)

# Dimension data (``gmv load-dim``): what the facts do not say. A reload upserts by the ORDER BY key
# (the latest load wins); tables are unpartitioned so that one file is one insert, one part.
DIM_ACCOUNTS = StoredTable(
    name="dim_accounts",
    comment=("Account to shop bindings (一店多号): each account that sells for a shop, the shop's brand, and "
             "whether the account is the brand's own (self) or a distributor's. Loaded with gmv load-dim."),
    columns=(
        Column("account_id", "String", "the account (seller_id / author_id / anchor_id in the events)"),
        Column("shop_id", "String", "the shop it is bound to"),
        Column("brand_id", "String", "the shop's brand"),
        Column("brand_name", "String", "the brand's display name"),
        Column("role", "LowCardinality(String)", "self: the brand's own account (自播) | distributor: 达人/分销 (川流)"),
        Column("loaded_at", TS, "when the row was loaded (UTC); the latest load of a binding wins"),
    ),
    order_by="(account_id, shop_id)",
    version="loaded_at",
)
DIM_SKUS = StoredTable(
    name="dim_skus",
    comment=("SKU catalog: the SKUs each shop listed on each Asia/Shanghai day (the denominator of 动销率). "
             "Loaded with gmv load-dim."),
    columns=(
        Column("day", "Date", "the day (Asia/Shanghai) the SKU was listed"),
        Column("shop_id", "String", "shop"),
        Column("sku_id", "String", "SKU (sku_id in the events)"),
        Column("title", "String", "product title ('' if not given)"),
        Column("price_fen", "Int64", "list price in fen (0 if not given)"),
        Column("loaded_at", TS, "when the row was loaded (UTC); the latest load of a listing wins"),
    ),
    order_by="(shop_id, day, sku_id)",
    version="loaded_at",
)
DIMENSION_TABLES: tuple[StoredTable, ...] = (DIM_ACCOUNTS, DIM_SKUS)
