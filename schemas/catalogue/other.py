"""Dimension data, alerts, and the views that answer operators' questions.

Dimension data (``gmv load-dim``) is what the facts do not say: a reload upserts by the ORDER BY
key (the latest load wins); the tables are unpartitioned so that one file is one insert, one part.
The views (KPIs, ingest counters, the cookbook's) each have a query of their own, in the migration
that created them; their columns are stated here, and the migration test checks the two agree.
"""

from __future__ import annotations

from gmv.schemas.catalogue.base import Column, Table, View
from gmv.schemas.catalogue.facts import TS

DIM_ACCOUNTS = Table(
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
    settings="",
)
DIM_SKUS = Table(
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
    settings="",
)

ALERTS = Table(
    name="alerts",
    comment="Alerts fired by the worker, one row per alert_id: firing, then resolved (docs/alerts.md).",
    columns=(
        Column('alert_id', 'String', 'deterministic: hash of rule, subject and the window the alert fired in (a replay fires the same id)'),
        Column('rule', 'LowCardinality(String)', 'rule name, e.g. live_no_orders (gmv alerts rules lists them)'),
        Column('severity', 'LowCardinality(String)', 'critical | warning | info'),
        Column('subject_kind', 'LowCardinality(String)', 'live | shop | account | pipeline'),
        Column('subject_id', 'String', 'live_id, shop_id, account id, or the source topic / worker for pipeline rules'),
        Column('state', 'LowCardinality(String)', 'firing | resolved'),
        Column('value', 'Float64', 'the measured value when the alert fired (unit in message)'),
        Column('threshold', 'Float64', 'the threshold it crossed'),
        Column('window_start', "DateTime64(3, 'UTC')", 'start of the window the alert fired in (event time for business rules, wall clock for pipeline rules)'),
        Column('window_end', "DateTime64(3, 'UTC')", 'end of that window (exclusive)'),
        Column('clock', 'LowCardinality(String)', 'event: business rule on event time (replays fire the same alerts) | wall: pipeline rule on the wall clock'),
        Column('fired_at', "DateTime64(3, 'UTC')", 'wall-clock time the worker fired it (UTC)'),
        Column('resolved_at', "Nullable(DateTime64(3, 'UTC'))", 'wall-clock time the condition cleared (NULL while firing)'),
        Column('resolved_window_end', "Nullable(DateTime64(3, 'UTC'))", 'end of the first window in which the condition no longer held (same clock as window_end)'),
        Column('message', 'String', 'one line a person can act on'),
        Column('query', 'String', 'a ready-to-run gmv sql query showing the numbers behind the alert'),
        Column('version', 'UInt64', 'row version: a resolved row wins over a firing row, a later write over an earlier one'),
    ),
    order_by="alert_id",
    version="version",
    partition_by="toYYYYMM(window_start)",
    settings="",
)

REFRESH_OWED = Table(
    name="refresh_owed",
    comment=("Slow-refresh work a worker owes (docs/architecture.md): the minutes and days whose markov credits, "
             "levels and trust scores are still to be recomputed from facts already stored. A worker records an "
             "entry before it confirms the journal records behind those facts, and closes it once a slow refresh "
             "has recomputed them; a worker takes up every open entry when it starts, so what a stopped or killed "
             "worker owed is done by the next to start. Internal bookkeeping, not analytics."),
    columns=(
        Column("writer", "String", "the worker process run that recorded it (random, new at each start)"),
        Column("seq", "UInt64", "its number within that run"),
        Column("noted_at", TS, "when it was recorded (UTC)"),
        Column("work", "String", "what is owed: JSON of ISO minutes (levels, funnel_levels) and days (scores, "
                                 "stale); '' once closed"),
        Column("closed", "UInt8", "0: owed | 1: done (a later row of the same entry; the closed row wins)"),
    ),
    order_by="(writer, seq)",
    version="closed",
    partition_by="toYYYYMM(noted_at)",
    # Read once per start, whole: a month of entries (one per ~2 s of a loaded worker, closed ones
    # included) stays a few MB. An entry open a month means no worker started meanwhile.
    ttl="toDateTime(noted_at) + INTERVAL 30 DAY",
    settings="",
)

# account_daily_kpis
ACCOUNT_DAILY_KPIS = View('account_daily_kpis', 'Per account, model and business day: credited GMV (self vs assist), views, GPM, UV value.', (
    Column('day', "DateTime('Asia/Shanghai')", 'business day (Asia/Shanghai)'),
    Column('model', 'LowCardinality(String)', 'attribution model of the credited GMV'),
    Column('account_id', 'String', 'account (video author / live anchor / seller)'),
    Column('gmv_fen', 'Int64', 'paid GMV credited to the account (fen)'),
    Column('net_fen', 'Int64', 'net GMV credited (fen)'),
    Column('self_net_fen', 'Int64', 'net GMV credited where the account sold itself (自播)'),
    Column('assist_net_fen', 'Int64', 'net GMV credited on other sellers orders (达人分销 / 川流 assists)'),
    Column('views', 'UInt64', 'views + live enters of the account content'),
    Column('viewers', 'UInt64', 'unique viewers (UV)'),
    Column('gpm_yuan', 'Float64', 'GPM: credited GMV (yuan) per 1,000 views'),
    Column('uv_value_yuan', 'Float64', 'credited GMV (yuan) per unique viewer'),
))

# shop_daily_kpis
SHOP_DAILY_KPIS = View('shop_daily_kpis', 'Per shop and business day: GMV, net, orders, buyers, AOV, GPM, UV value, conversion rate.', (
    Column('day', "DateTime('Asia/Shanghai')", 'business day (Asia/Shanghai)'),
    Column('shop_id', 'String', 'shop'),
    Column('gmv_fen', 'Int64', 'paid GMV (fen)'),
    Column('refund_fen', 'Int64', 'refunds (fen)'),
    Column('net_fen', 'Int64', 'net GMV (fen)'),
    Column('orders', 'UInt64', 'paid orders'),
    Column('buyers', 'UInt64', 'distinct buyers'),
    Column('aov_fen', 'Float64', 'average order value 客单价 = gmv_fen / orders (fen)'),
    Column('views', 'UInt64', 'video views + live enters of content mounting the shop'),
    Column('viewers', 'UInt64', 'unique viewers (UV) of that content'),
    Column('gpm_yuan', 'Float64', 'GPM: GMV (yuan) per 1,000 views'),
    Column('uv_value_yuan', 'Float64', 'UV value: GMV (yuan) per unique viewer'),
    Column('conversion_rate', 'Float64', 'buyers / unique viewers'),
))

# ingest_counts
INGEST_COUNTS = View('ingest_counts', 'Per-topic ingest counters: received = accepted + duplicates + dead_lettered.', (
    Column('source_topic', 'LowCardinality(String)', 'Kafka topic'),
    Column('received', 'UInt64', 'events received (a producer batch counts each element)'),
    Column('accepted', 'UInt64', 'valid, first-seen events'),
    Column('duplicates', 'UInt64', 're-sent event_ids (counted once)'),
    Column('dead_lettered', 'UInt64', 'rejected input (see dead_letters)'),
    Column('rekeyed', 'UInt64', 'events keyed by something other than user_id, in flight to their partition'),
))

# store_gmv_daily
STORE_GMV_DAILY = View('store_gmv_daily', "一店多号: per shop and Asia/Shanghai day, the GMV of every account bound to the shop (dim_accounts), split into the brand's own accounts and distributors, beside what unbound sellers and pure shelf sales (no seller) sold. Whole order amounts from sku_gmv_day; refunds count on their own day.", (
    Column('day', 'Date', 'business day (Asia/Shanghai)'),
    Column('shop_id', 'String', 'shop'),
    Column('brand_id', 'String', "the shop's brand (from its bindings; '' if the shop has none)"),
    Column('bound_accounts', 'UInt64', 'accounts bound to the shop that sold that day'),
    Column('self_net_fen', 'Int64', "net GMV sold by the brand's own accounts (自播)"),
    Column('distributor_net_fen', 'Int64', 'net GMV sold by distributor accounts bound to the shop'),
    Column('bound_net_fen', 'Int64', 'self_net_fen + distributor_net_fen: the store across its bound accounts'),
    Column('unbound_net_fen', 'Int64', "net GMV of the shop's orders whose seller is not bound to it, or none (pure shelf)"),
    Column('net_fen', 'Int64', 'all net GMV of the shop (bound + unbound)'),
    Column('gmv_fen', 'Int64', 'all paid GMV of the shop'),
    Column('refund_fen', 'Int64', 'all refunds of the shop (positive)'),
    Column('orders', 'UInt64', 'paid orders of the shop'),
))

# chuanliu_daily
CHUANLIU_DAILY = View('chuanliu_daily', "川流: per brand and Asia/Shanghai day, self-broadcast GMV (orders sold by the brand's own accounts) and the part whose path holds a touch by one of the brand's distributor accounts (their content led the buyer to the brand's own room or video), with its share and the increment it represents over the unassisted self-broadcast GMV. Whole order amounts from path_gmv_day; refunds count on their own day.", (
    Column('day', 'Date', 'business day (Asia/Shanghai)'),
    Column('brand_id', 'String', 'brand'),
    Column('brand_name', 'String', 'brand name'),
    Column('self_gmv_fen', 'Int64', "paid GMV sold by the brand's own accounts (自播)"),
    Column('self_net_fen', 'Int64', 'the same, net of refunds'),
    Column('self_orders', 'UInt64', "paid orders sold by the brand's own accounts"),
    Column('assisted_gmv_fen', 'Int64', 'of self_gmv_fen, orders whose path holds a distributor touch'),
    Column('assisted_net_fen', 'Int64', 'the same, net of refunds'),
    Column('assisted_orders', 'UInt64', 'of self_orders, those with a distributor touch'),
    Column('assisted_share', 'Float64', 'assisted_gmv_fen / self_gmv_fen (0 without self-broadcast GMV)'),
    Column('increment', 'Nullable(Float64)', 'assisted_gmv_fen / (self_gmv_fen - assisted_gmv_fen): the self-broadcast GMV distributors added over the unassisted base, e.g. 0.38 = +38% (NULL without an unassisted base)'),
))

# shelf_content_daily
SHELF_CONTENT_DAILY = View('shelf_content_daily', 'Shelf vs content: per Asia/Shanghai day, paid GMV of orders paid on the shelf (mall, search, store, recommend) and in content (short video, live, clip), the shelf share, and its change day over day and week over week (percentage points). Whole order amounts from sku_gmv_day.', (
    Column('day', 'Date', 'business day (Asia/Shanghai)'),
    Column('shelf_gmv_fen', 'Int64', 'paid GMV of orders paid on the shelf (channel shelf)'),
    Column('content_gmv_fen', 'Int64', 'paid GMV of orders paid in content (short_video, live, clip)'),
    Column('shelf_net_fen', 'Int64', 'shelf GMV net of refunds (refunds on their own day)'),
    Column('content_net_fen', 'Int64', 'content GMV net of refunds'),
    Column('shelf_share', 'Float64', 'shelf_gmv_fen / (shelf_gmv_fen + content_gmv_fen)'),
    Column('shelf_share_dod', 'Nullable(Float64)', "shelf_share minus the day before's (NULL if that day has no GMV)"),
    Column('shelf_share_wow', 'Nullable(Float64)', 'shelf_share minus that of 7 days before (NULL if that day has no GMV)'),
    Column('shelf_gmv_dod', 'Nullable(Float64)', 'shelf GMV growth over the day before: shelf_gmv_fen / that - 1'),
    Column('shelf_gmv_wow', 'Nullable(Float64)', 'shelf GMV growth over 7 days before'),
))

# sku_sell_through_daily
SKU_SELL_THROUGH_DAILY = View('sku_sell_through_daily', '动销率 (sell-through): per shop and Asia/Shanghai day, the SKUs listed that day (dim_skus) and how many of them had at least one paid order that day; sell_through = sold_skus / listed_skus. Orders of SKUs not listed that day do not count.', (
    Column('day', 'Date', 'business day (Asia/Shanghai)'),
    Column('shop_id', 'String', 'shop'),
    Column('listed_skus', 'UInt64', "SKUs in the shop's catalog that day"),
    Column('sold_skus', 'UInt64', 'of those, SKUs with >= 1 paid order that day'),
    Column('sell_through', 'Float64', 'sold_skus / listed_skus'),
))

# traffic_daily
TRAFFIC_DAILY = View('traffic_daily', 'Public vs private traffic (公域 / 私域) per shop and Asia/Shanghai day: views and unique viewers of content mounting the shop (funnel_day), and the GMV, orders and buyers of orders whose conversion touch came with that traffic (sku_gmv_day), with GPM and conversion rate.', (
    Column('day', 'Date', 'business day (Asia/Shanghai)'),
    Column('shop_id', 'String', 'shop'),
    Column('traffic', 'LowCardinality(String)', 'public | private'),
    Column('views', 'UInt64', 'video views + live enters of content mounting the shop, with this traffic'),
    Column('viewers', 'UInt64', 'unique viewers of those'),
    Column('gmv_fen', 'Int64', 'paid GMV of orders converting with this traffic'),
    Column('net_fen', 'Int64', 'the same, net of refunds'),
    Column('orders', 'UInt64', 'paid orders'),
    Column('buyers', 'UInt64', 'distinct buyers'),
    Column('gpm_yuan', 'Float64', 'GPM: gmv (yuan) per 1,000 views (0 without views)'),
    Column('conversion_rate', 'Float64', 'buyers / viewers (0 without viewers)'),
))

# linkage_daily
LINKAGE_DAILY = View('linkage_daily', 'Linkage lift (短直短 联动): per Asia/Shanghai day, accounts that both had short-video views and ran a live with enters that day (linked) against accounts that had only one of them, and the net GMV they sold per account-day; lift = linked per account / unlinked per account - 1.', (
    Column('day', 'Date', 'business day (Asia/Shanghai)'),
    Column('linked_accounts', 'UInt64', 'accounts with short-video views and live enters that day'),
    Column('linked_net_fen', 'Int64', 'net GMV those accounts sold that day (as seller)'),
    Column('unlinked_accounts', 'UInt64', 'accounts with views of only short videos or only their live that day'),
    Column('unlinked_net_fen', 'Int64', 'net GMV those accounts sold that day'),
    Column('linked_per_account_fen', 'Float64', 'linked_net_fen / linked_accounts (0 without linked accounts)'),
    Column('unlinked_per_account_fen', 'Float64', 'unlinked_net_fen / unlinked_accounts (0 without)'),
    Column('lift', 'Nullable(Float64)', 'linked_per_account_fen / unlinked_per_account_fen - 1 (NULL when either side is missing)'),
))

# brand_quarterly
BRAND_QUARTERLY = View('brand_quarterly', "Brands per quarter (Asia/Shanghai): paid and net GMV of the brand's shops (a shop's brand from its bindings in dim_accounts) and the change on the same quarter a year before; filter on gmv_fen for the brands past a GMV mark.", (
    Column('brand_id', 'String', 'brand'),
    Column('brand_name', 'String', 'brand name'),
    Column('quarter', 'Date', 'first day of the quarter (Asia/Shanghai)'),
    Column('gmv_fen', 'Int64', "paid GMV of the brand's shops in the quarter"),
    Column('net_fen', 'Int64', 'the same, net of refunds'),
    Column('orders', 'UInt64', 'paid orders'),
    Column('gmv_fen_year_before', 'Nullable(Int64)', 'paid GMV in the same quarter a year before (NULL: none)'),
    Column('gmv_yoy', 'Nullable(Float64)', 'gmv_fen / gmv_fen_year_before - 1 (NULL without the year before)'),
))


VIEWS: tuple[View, ...] = (ACCOUNT_DAILY_KPIS, SHOP_DAILY_KPIS, INGEST_COUNTS, STORE_GMV_DAILY, CHUANLIU_DAILY, SHELF_CONTENT_DAILY, SKU_SELL_THROUGH_DAILY, TRAFFIC_DAILY, LINKAGE_DAILY, BRAND_QUARTERLY)
