"""Rollups: per minute, hour and day, recomputed by the worker from the de-duplicated facts (never a
running sum), and the trust scores recomputed the same way. Each row is a function of the facts, so a
replay or a crash rewrites rows, never adds to them (ReplacingMergeTree on ``refreshed_at``).

A family (``Family``) is one rollup at three grains: its minute table recomputed from the facts for
the minutes batches touched, its hour table from the minutes, its day table (Asia/Shanghai days)
from the hours. Its keys and measures are stated once, here; the SQL that fills it is
``gmv.sinks.levels``'s.
"""

from __future__ import annotations

from dataclasses import dataclass

from gmv.schemas.catalogue.base import Column, Table

_ROLLUP_VERSION = Column("refreshed_at", "DateTime64(6, 'UTC')", "when this row was recomputed from the facts; the latest wins")

GMV_MINUTE = Table(
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

FUNNEL_MINUTE = Table(
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

CONTENT_MINUTE = Table(
    name="content_minute",
    comment=("GMV per minute by the content it was paid in (the conversion touch, whole amounts), recomputed by the "
             "worker from the de-duplicated facts with the other minute rollups."),
    columns=(
        Column("minute", "DateTime('UTC')", "minute of event_time (UTC)"),
        Column("channel", "LowCardinality(String)", "where the orders were paid: short_video | live | clip | shelf"),
        Column("content_id", "String", "the content paid in: live_id for live, video_id for short_video / clip, '' for shelf"),
        Column("shop_id", "String", "shop"),
        Column("seller_id", "String", "account that made the sale"),
        Column("gmv_fen", "Int64", "paid GMV in this content (fen)"),
        Column("refund_fen", "Int64", "refunds of orders paid in this content, as a positive number (fen)"),
        Column("orders", "UInt64", "paid orders"),
        Column("refunds", "UInt64", "refund events"),
        Column("buyers", "AggregateFunction(uniq, String)", "distinct buyers of those orders: uniqMerge(buyers)"),
        _ROLLUP_VERSION,
    ),
    order_by="(minute, channel, content_id, shop_id, seller_id)",
    version="refreshed_at",
    partition_by="toYYYYMM(minute)",
)

TRUST_DAILY = Table(
    name="trust_daily",
    comment=("What each Asia/Shanghai day's facts add to the trust scores, per subject: the scores of a "
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

TRUST_SCORES = Table(
    name="trust_scores",
    comment=("Trust scores per Asia/Shanghai day and subject (docs/trust-scores.md): 商品分 (sku), 带货口碑分 (account), "
             "商号体验分 (shop), each over the 30 days ending with day, with every input of its formula. "
             "Recomputed by the worker from the de-duplicated facts (reviews, refunds, cs_turns, attributed_gmv): "
             "a replay or a crash never changes a score. The current score: the row with the latest day."),
    columns=(
        Column("day", "Date", "the day D (Asia/Shanghai) whose window [D-29, D] the score covers"),
        Column("subject_kind", "LowCardinality(String)", "sku | account | shop"),
        Column("subject_id", "String", "sku_id, the selling account (seller_id) or shop_id"),
        Column("score", "Float64", "the score, 0-5, unrounded (displays round to two decimals)"),
        Column("n", "UInt64", "n of the formula: reviews in the window, as the column reviews"),
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


# -- families at three grains -------------------------------------------------------------------
GRAINS = ("minute", "hour", "day")
GRAIN_COLUMNS = {
    "minute": Column("minute", "DateTime('UTC')", "minute of event_time (UTC)"),
    "hour": Column("hour", "DateTime('UTC')", "hour of event_time (UTC)"),
    "day": Column("day", "Date", "day of event_time in Asia/Shanghai (the business day)"),
}
MEASURES = (
    Column("gmv_fen", "Int64", "paid GMV (fen)"),
    Column("refund_fen", "Int64", "refunds, as a positive number (fen)"),
    Column("net_fen", "Int64", "gmv_fen - refund_fen"),
    Column("orders", "UInt64", "paid orders (counted once per order)"),
    Column("refunds", "UInt64", "refund events"),
    Column("buyers", "AggregateFunction(uniq, String)", "distinct buyers of those orders: uniqMerge(buyers)"),
    Column("refreshed_at", "DateTime64(6, 'UTC')", "when this row was recomputed; the latest wins"),
)
_KEY = {
    "model": Column("model", "LowCardinality(String)", "attribution model"),
    "stage": Column("stage", "LowCardinality(String)", "funnel stage of the touch credited"),
    "account_id": Column("account_id", "String", "account of the touch (video author / live anchor / the seller)"),
    "content_id": Column("content_id", "String", "content of the touch (video_id / live_id; '' for shelf)"),
    "is_self": Column("is_self", "UInt8", "1 = the touch account is the order's seller"),
    "shop_id": Column("shop_id", "String", "shop of the order"),
    "seller_id": Column("seller_id", "String", "account that made the sale ('' for pure shelf sales)"),
    "sku_id": Column("sku_id", "String", "SKU"),
    "channel": Column("channel", "LowCardinality(String)", "where the order was paid: short_video | live | clip | shelf"),
    "traffic": Column("traffic", "LowCardinality(String)", "public | private traffic of the conversion touch"),
    "path": Column("path", "String", "the path's stages, e.g. short_video>live"),
    "touch_accounts": Column("touch_accounts", "Array(String)",
                             "sorted distinct accounts of the path's touches before the conversion"),
}


@dataclass(frozen=True)
class Family:
    """One rollup at three grains: its keys and measures, and how its tables are named and sorted."""

    name: str
    comment: str
    keys: tuple[Column, ...]
    measures: tuple[Column, ...] = MEASURES
    day_type: str = "Date"  # gmv_day and funnel_day keep the type they had: DateTime('Asia/Shanghai')
    # The day table's sort key when readers look rows up by key rather than by day, with small
    # granules: reading a buyers state column decodes whole granules, so the dashboard's lookup of
    # 8 live rooms' buyers took ~18 ms at 10M facts in 8,192-row granules, ~8 ms in 256-row ones.
    day_order: str = ""
    minute: Table | None = None  # the minute table when it is a rollup of its own (gmv_minute, funnel_minute)

    @property
    def key_names(self) -> str:
        return ", ".join(c.name for c in self.keys)

    def table_name(self, grain: str) -> str:
        return f"{self.name}_{grain}"

    def table(self, grain: str) -> Table:
        if grain == "minute" and self.minute is not None:
            return self.minute
        first = GRAIN_COLUMNS[grain]
        if grain == "day" and self.day_type != "Date":
            first = Column("day", self.day_type, "day in Asia/Shanghai (the business day)")
        below = {"minute": "the de-duplicated facts (attributed_gmv) for the minutes batches touched, with the trust "
                           "scores",
                 "hour": f"{self.table_name('minute')} for the hours those minutes fall in",
                 "day": f"{self.table_name('hour')} for the days those hours fall in"}[grain]
        per = "Asia/Shanghai day" if grain == "day" else grain
        order = self.day_order if grain == "day" and self.day_order else f"({grain}, {self.key_names})"
        return Table(self.table_name(grain),
                     f"{self.comment}, per {per}; recomputed by the worker from {below}: exact, never a running sum.",
                     (first, *self.keys, *self.measures), order, "refreshed_at", f"toYYYYMM({grain})",
                     "index_granularity = 256, non_replicated_deduplication_window = 1000" if grain == "day" and
                     self.day_order else "non_replicated_deduplication_window = 1000")

    @property
    def tables(self) -> tuple[Table, ...]:
        return tuple(self.table(g) for g in GRAINS)


def _keys_and_measures(minute: Table) -> tuple[tuple[Column, ...], tuple[Column, ...]]:
    """A minute rollup's columns as a family's keys and measures."""
    keys = minute.order_by.strip("()").split(", ")[1:]  # (minute, key, ...)
    columns = [c for c in minute.columns if c.name != "minute"]
    return tuple(c for c in columns if c.name in keys), tuple(c for c in columns if c.name not in keys)


CONTENT_CREDIT = Family(
    "content_credit", "GMV credited per attribution model to each touch: stage, account and content",
    tuple(_KEY[k] for k in ("model", "stage", "account_id", "content_id", "is_self", "shop_id")),
    day_order="(model, stage, content_id, account_id, is_self, shop_id, day)")
SKU_GMV = Family(
    "sku_gmv", "Whole order amounts per SKU, shop, seller, channel paid in and traffic of the conversion",
    tuple(_KEY[k] for k in ("shop_id", "sku_id", "seller_id", "channel", "traffic")),
    day_order="(sku_id, shop_id, seller_id, channel, traffic, day)")
SHOP_GMV = Family(
    "shop_gmv", "Whole order amounts per shop (the dashboard's KPIs: a few buyer states to merge, not one per SKU)",
    (_KEY["shop_id"],))
PATH_GMV = Family(
    "path_gmv", "Whole order amounts per path, shop, seller, channel and the accounts of the path's touches",
    tuple(_KEY[k] for k in ("path", "shop_id", "seller_id", "channel", "touch_accounts")))
# The hour and day rollups of gmv_minute and funnel_minute (the same names, columns and grains they
# had as ClickHouse refreshable views, which recomputed the whole history every 5 s).
GMV = Family("gmv", "Attributed GMV; same columns as gmv_minute", *_keys_and_measures(GMV_MINUTE),
             day_type="DateTime('Asia/Shanghai')", minute=GMV_MINUTE)
FUNNEL = Family("funnel", "Funnel (views, engaged views, live enters, unique viewers); same columns as funnel_minute",
                *_keys_and_measures(FUNNEL_MINUTE), day_type="DateTime('Asia/Shanghai')", minute=FUNNEL_MINUTE)
FAMILIES = (CONTENT_CREDIT, SKU_GMV, SHOP_GMV, PATH_GMV, GMV, FUNNEL)

ROLLUPS: tuple[Table, ...] = (CONTENT_MINUTE, *(t for f in FAMILIES for t in f.tables), TRUST_DAILY, TRUST_SCORES)
