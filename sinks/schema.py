"""ClickHouse schema: every table the pipeline writes, with column types known up front.

Exactness (SPEC §4): every stored row has a deterministic identity (its ORDER BY
key). Stored tables are ReplacingMergeTree, so a row written twice — a retried
insert, a replay after a crash, ``gmv run`` on the same file again — collapses
to one; the user-facing names are views with ``FINAL`` over them, so a plain
``SELECT sum(...)`` is exact without the user writing FINAL.
"""

from __future__ import annotations

from dataclasses import dataclass, field

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
    view_filter: str = ""

    @property
    def store(self) -> str:
        return f"{self.name}_store"

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]

    @property
    def column_types(self) -> list[str]:
        return [c.type for c in self.columns]

    def ddl(self, db: str) -> list[str]:
        cols = ",\n  ".join(f"`{c.name}` {c.type} COMMENT {_lit(c.comment)}" for c in self.columns)
        part = f"\nPARTITION BY {self.partition_by}" if self.partition_by else ""
        store = (
            f"CREATE TABLE IF NOT EXISTS `{db}`.`{self.store}` (\n  {cols}\n)"
            f"\nENGINE = ReplacingMergeTree({self.version}){part}\nORDER BY {self.order_by}"
            # Lets a retried insert with the same dedup token be dropped by the server.
            "\nSETTINGS non_replicated_deduplication_window = 1000"
            f"\nCOMMENT {_lit(self.comment + ' Stored rows; may hold not-yet-merged copies: query the view ' + self.name + '.')}"
        )
        return [store, self.view_ddl(db)]

    def view_ddl(self, db: str, replace: bool = False) -> str:
        """The FINAL view analysts query (``replace``: after a column was added to the store)."""
        view_cols = ",\n  ".join(f"`{c.name}` {c.type} COMMENT {_lit(c.comment)}" for c in self.columns)
        where = f" WHERE {self.view_filter}" if self.view_filter else ""
        create = "CREATE OR REPLACE VIEW" if replace else "CREATE VIEW IF NOT EXISTS"
        return (
            f"{create} `{db}`.`{self.name}` (\n  {view_cols}\n)"
            f" AS SELECT {', '.join('`' + n + '`' for n in self.column_names)} FROM `{db}`.`{self.store}` FINAL{where}"
            f"\nCOMMENT {_lit(self.comment + ' Exact: each row once, however often it was written.')}"
        )


def _lit(text: str) -> str:
    """A ClickHouse string literal for DDL comments (DDL takes no bind parameters)."""
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


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

STORED_TABLES: tuple[StoredTable, ...] = (EVENTS, INGEST_LOG, DEAD_LETTERS, ATTRIBUTED_GMV, FUNNEL_EVENTS)
ROLLUP_TABLES: tuple[StoredTable, ...] = (GMV_MINUTE, FUNNEL_MINUTE)
TABLES_BY_NAME = {t.name: t for t in STORED_TABLES}


@dataclass(frozen=True)
class Migration:
    version: int
    description: str
    statements: list[str] = field(default_factory=list)


def migrations(db: str) -> list[Migration]:
    """Idempotent, ordered migrations (every statement IF NOT EXISTS)."""
    base: list[str] = []
    for table in STORED_TABLES:
        base.extend(table.ddl(db))
    base.append(
        f"CREATE VIEW IF NOT EXISTS `{db}`.`ingest_counts` (\n"
        "  `source_topic` LowCardinality(String) COMMENT 'Kafka topic',\n"
        "  `received` UInt64 COMMENT 'events received (a producer batch counts each element)',\n"
        "  `accepted` UInt64 COMMENT 'valid, first-seen events',\n"
        "  `duplicates` UInt64 COMMENT 're-sent event_ids (counted once)',\n"
        "  `dead_lettered` UInt64 COMMENT 'rejected input (see dead_letters)',\n"
        "  `rekeyed` UInt64 COMMENT 'events keyed by something other than user_id, in flight to their partition'\n"
        ") AS SELECT source_topic, countIf(outcome IN ('accepted', 'duplicate', 'dead_letter')) AS received, countIf(outcome = 'accepted') AS accepted,"
        " countIf(outcome = 'duplicate') AS duplicates, countIf(outcome = 'dead_letter') AS dead_lettered,"
        " countIf(outcome = 'rekeyed') AS rekeyed"
        f" FROM `{db}`.`ingest_log` GROUP BY source_topic"
        "\nCOMMENT 'Per-topic ingest counters: received = accepted + duplicates + dead_lettered.'"
    )
    return [Migration(1, "ingest: events, ingest_log, dead_letters, ingest_counts", base),
            Migration(2, "attribution: attributed_gmv, funnel_events, minute/hour/day rollups, KPI views",
                      attribution_ddl(db)),
            Migration(3, "events.element_index; accepted events logged into ingest_log by ClickHouse",
                      events_log_ddl(db))]


def events_log_ddl(db: str) -> list[str]:
    """The ``accepted`` rows of ingest_log, derived in ClickHouse from each insert into events.

    Every accepted event is one events row and one ingest_log row with the same source, ids
    and processing time; deriving the second saves the worker building, encoding and sending
    a third of its rows (and ClickHouse parsing them). A later outcome of the same source (a
    held refund dead-lettered after all) still wins: it carries a later ``logged_at``.
    """
    index = next(c for c in EVENTS.columns if c.name == "element_index")
    return [
        # Installs from before this migration: the column, and the view over it.
        f"ALTER TABLE `{db}`.`{EVENTS.store}` ADD COLUMN IF NOT EXISTS `{index.name}` {index.type} DEFAULT -1 "
        f"COMMENT {_lit(index.comment)} AFTER `source_offset`",
        EVENTS.view_ddl(db, replace=True),
        f"CREATE MATERIALIZED VIEW IF NOT EXISTS `{db}`.`events_log` TO `{db}`.`{INGEST_LOG.store}`"
        " AS SELECT src, source_topic, source_partition, source_offset, element_index, event_id, event_type,"
        " 'accepted' AS outcome, '' AS reason_code, ingested_at AS logged_at"
        f" FROM `{db}`.`{EVENTS.store}`"
        f"\nCOMMENT {_lit('Logs each accepted event (an events row) into ingest_log as outcome accepted.')}",
    ]


def _coarse_rollup(db: str, name: str, source: str, grain: str, grain_comment: str, dims: list[Column],
                   sums: list[Column], uniq: Column, comment: str) -> list[str]:
    """A table refreshed by a refreshable materialized view from a minute rollup (exact: a full recompute)."""
    cols = [Column(grain, "DateTime('Asia/Shanghai')" if grain == "day" else "DateTime('UTC')", grain_comment),
            *dims, *sums, uniq]
    col_ddl = ",\n  ".join(f"`{c.name}` {c.type} COMMENT {_lit(c.comment)}" for c in cols)
    key = ", ".join([grain, *(d.name for d in dims)])
    grain_expr = "toStartOfDay(minute, 'Asia/Shanghai')" if grain == "day" else "toStartOfHour(minute)"
    select = ", ".join([f"{grain_expr} AS {grain}", *(d.name for d in dims),
                        *(f"sum({c.name}) AS {c.name}" for c in sums), f"uniqMergeState({uniq.name}) AS {uniq.name}"])
    return [
        f"CREATE TABLE IF NOT EXISTS `{db}`.`{name}` (\n  {col_ddl}\n) ENGINE = MergeTree ORDER BY ({key})"
        f"\nCOMMENT {_lit(comment)}",
        f"CREATE MATERIALIZED VIEW IF NOT EXISTS `{db}`.`{name}_refresh` REFRESH EVERY 5 SECOND TO `{db}`.`{name}`"
        f" AS SELECT {select} FROM `{db}`.`{source}` GROUP BY {key}"
        f"\nCOMMENT {_lit('Recomputes ' + name + ' from ' + source + ' every 5 s (atomic replace).')}",
    ]


def attribution_ddl(db: str) -> list[str]:
    out: list[str] = []
    for table in (ATTRIBUTED_GMV, FUNNEL_EVENTS, GMV_MINUTE, FUNNEL_MINUTE):
        out.extend(table.ddl(db))
    gmv_dims = [c for c in GMV_MINUTE.columns if c.name in ("model", "stage", "channel", "traffic", "shop_id",
                                                             "seller_id", "touch_account_id", "is_self")]
    gmv_sums = [c for c in GMV_MINUTE.columns if c.name in ("gmv_fen", "refund_fen", "net_fen", "orders", "refunds")]
    buyers = next(c for c in GMV_MINUTE.columns if c.name == "buyers")
    f_dims = [c for c in FUNNEL_MINUTE.columns if c.name in ("stage", "account_id", "content_id", "shop_id", "traffic")]
    f_sums = [c for c in FUNNEL_MINUTE.columns if c.name in ("views", "engaged_views", "live_enters")]
    viewers = next(c for c in FUNNEL_MINUTE.columns if c.name == "viewers")
    for grain, comment in (("hour", "hour (UTC)"), ("day", "day in Asia/Shanghai (the business day)")):
        out += _coarse_rollup(db, f"gmv_{grain}", "gmv_minute", grain, comment, gmv_dims, gmv_sums, buyers,
                              f"Attributed GMV per {grain}; same columns as gmv_minute.")
        out += _coarse_rollup(db, f"funnel_{grain}", "funnel_minute", grain, comment, f_dims, f_sums, viewers,
                              f"Funnel per {grain}; same columns as funnel_minute.")
    out.append(
        f"CREATE VIEW IF NOT EXISTS `{db}`.`shop_daily_kpis` (\n"
        "  `day` DateTime('Asia/Shanghai') COMMENT 'business day (Asia/Shanghai)',\n"
        "  `shop_id` String COMMENT 'shop',\n"
        "  `gmv_fen` Int64 COMMENT 'paid GMV (fen)',\n"
        "  `refund_fen` Int64 COMMENT 'refunds (fen)',\n"
        "  `net_fen` Int64 COMMENT 'net GMV (fen)',\n"
        "  `orders` UInt64 COMMENT 'paid orders',\n"
        "  `buyers` UInt64 COMMENT 'distinct buyers',\n"
        "  `aov_fen` Float64 COMMENT 'average order value 客单价 = gmv_fen / orders (fen)',\n"
        "  `views` UInt64 COMMENT 'video views + live enters of content mounting the shop',\n"
        "  `viewers` UInt64 COMMENT 'unique viewers (UV) of that content',\n"
        "  `gpm_yuan` Float64 COMMENT 'GPM: GMV (yuan) per 1,000 views',\n"
        "  `uv_value_yuan` Float64 COMMENT 'UV value: GMV (yuan) per unique viewer',\n"
        "  `conversion_rate` Float64 COMMENT 'buyers / unique viewers'\n"
        ") AS SELECT g.day, g.shop_id, g.gmv_fen, g.refund_fen, g.net_fen, g.orders, g.buyers,"
        " if(g.orders = 0, 0, g.gmv_fen / g.orders), f.views, f.viewers,"
        " if(f.views = 0, 0, g.gmv_fen / 100 * 1000 / f.views), if(f.viewers = 0, 0, g.gmv_fen / 100 / f.viewers),"
        " if(f.viewers = 0, 0, g.buyers / f.viewers)"
        " FROM (SELECT day, shop_id, sum(gmv_fen) AS gmv_fen, sum(refund_fen) AS refund_fen, sum(net_fen) AS net_fen,"
        f" sum(orders) AS orders, uniqMerge(buyers) AS buyers FROM `{db}`.`gmv_day` WHERE model = 'last_touch'"
        " GROUP BY day, shop_id) AS g"
        " LEFT JOIN (SELECT day, shop_id, sum(views) AS views, uniqMerge(viewers) AS viewers"
        f" FROM `{db}`.`funnel_day` GROUP BY day, shop_id) AS f USING (day, shop_id)"
        "\nCOMMENT 'Per shop and business day: GMV, net, orders, buyers, AOV, GPM, UV value, conversion rate.'"
    )
    out.append(
        f"CREATE VIEW IF NOT EXISTS `{db}`.`account_daily_kpis` (\n"
        "  `day` DateTime('Asia/Shanghai') COMMENT 'business day (Asia/Shanghai)',\n"
        "  `model` LowCardinality(String) COMMENT 'attribution model of the credited GMV',\n"
        "  `account_id` String COMMENT 'account (video author / live anchor / seller)',\n"
        "  `gmv_fen` Int64 COMMENT 'paid GMV credited to the account (fen)',\n"
        "  `net_fen` Int64 COMMENT 'net GMV credited (fen)',\n"
        "  `self_net_fen` Int64 COMMENT 'net GMV credited where the account sold itself (自播)',\n"
        "  `assist_net_fen` Int64 COMMENT 'net GMV credited on other sellers orders (达人分销 / 川流 assists)',\n"
        "  `views` UInt64 COMMENT 'views + live enters of the account content',\n"
        "  `viewers` UInt64 COMMENT 'unique viewers (UV)',\n"
        "  `gpm_yuan` Float64 COMMENT 'GPM: credited GMV (yuan) per 1,000 views',\n"
        "  `uv_value_yuan` Float64 COMMENT 'credited GMV (yuan) per unique viewer'\n"
        ") AS SELECT g.day, g.model, g.account_id, g.gmv_fen, g.net_fen, g.self_net_fen, g.assist_net_fen,"
        " f.views, f.viewers, if(f.views = 0, 0, g.gmv_fen / 100 * 1000 / f.views),"
        " if(f.viewers = 0, 0, g.gmv_fen / 100 / f.viewers)"
        " FROM (SELECT day, model, touch_account_id AS account_id, sum(gmv_fen) AS gmv_fen, sum(net_fen) AS net_fen,"
        " sumIf(net_fen, is_self = 1) AS self_net_fen, sumIf(net_fen, is_self = 0) AS assist_net_fen"
        f" FROM `{db}`.`gmv_day` GROUP BY day, model, account_id) AS g"
        " LEFT JOIN (SELECT day, account_id, sum(views) AS views, uniqMerge(viewers) AS viewers"
        f" FROM `{db}`.`funnel_day` GROUP BY day, account_id) AS f USING (day, account_id)"
        "\nCOMMENT 'Per account, model and business day: credited GMV (self vs assist), views, GPM, UV value.'"
    )
    return out
