-- migration 2: attribution: attributed_gmv, funnel_events, minute/hour/day rollups, KPI views
-- Frozen: the DDL exactly as it shipped. Never edit it; add a new migration instead.
-- Statements are separated by a line holding only ';'. {db} stands for the database.
CREATE TABLE IF NOT EXISTS `{db}`.`attributed_gmv_store` (
  `event_id` String COMMENT 'the paid order event, or the refund event, this credit comes from',
  `order_id` String COMMENT 'order id',
  `kind` LowCardinality(String) COMMENT 'paid | refund',
  `model` LowCardinality(String) COMMENT 'last_touch | first_touch | linear | position_based | time_decay',
  `touch_index` UInt8 COMMENT 'position of the touch in the path (0 = first; the last is the conversion)',
  `is_conversion` UInt8 COMMENT '1 on the conversion touch (the order itself, stage = channel)',
  `stage` LowCardinality(String) COMMENT 'funnel stage of the touch: short_video | live | clip | shelf',
  `touch_account_id` String COMMENT 'account of the touch (video author / live anchor / the seller for the conversion)',
  `touch_content_id` String COMMENT 'content of the touch (video_id / live_id / channel_id; \'\' for shelf)',
  `touch_event_id` String COMMENT 'event id of the touchpoint (the order\'s for the conversion)',
  `is_self` UInt8 COMMENT '1 when the touch account is the seller itself (brand self-broadcast), 0 for others (distributors)',
  `traffic` LowCardinality(String) COMMENT 'public | private traffic of the touch (the conversion: of the touch it merged, else public)',
  `touch_time` DateTime64(3, 'UTC') COMMENT 'time of the touch (UTC)',
  `order_time` DateTime64(3, 'UTC') COMMENT 'time the order was paid (UTC)',
  `event_time` DateTime64(3, 'UTC') COMMENT 'time this credit counts at: the payment, or the refund (UTC)',
  `user_id` String COMMENT 'buyer',
  `shop_id` String COMMENT 'shop of the order',
  `seller_id` String COMMENT 'account that made the sale (\'\' for pure shelf sales)',
  `sku_id` String COMMENT 'SKU',
  `channel` LowCardinality(String) COMMENT 'where the order was paid: short_video | live | clip | shelf',
  `credit_fen` Int64 COMMENT 'credit in fen (1/100 CNY); negative for refunds; sums exactly to the amount per order event and model',
  `path` String COMMENT 'the path\'s stages, e.g. short_video>live>clip',
  `path_length` UInt8 COMMENT 'touches in the path, the conversion included (at most 20)',
  `attributed_at` DateTime64(3, 'UTC') COMMENT 'processing time of the attribution (UTC)'
)
ENGINE = ReplacingMergeTree()
PARTITION BY toYYYYMM(event_time)
ORDER BY (toStartOfMinute(event_time), event_id, model, touch_index)
SETTINGS non_replicated_deduplication_window = 1000
COMMENT 'Attributed GMV facts: one row per (order event, model, touch of its path). sum(credit_fen) over any grouping is exact to the fen; refunds are negative rows. Stored rows; may hold not-yet-merged copies: query the view attributed_gmv.'
;
CREATE VIEW IF NOT EXISTS `{db}`.`attributed_gmv` (
  `event_id` String COMMENT 'the paid order event, or the refund event, this credit comes from',
  `order_id` String COMMENT 'order id',
  `kind` LowCardinality(String) COMMENT 'paid | refund',
  `model` LowCardinality(String) COMMENT 'last_touch | first_touch | linear | position_based | time_decay',
  `touch_index` UInt8 COMMENT 'position of the touch in the path (0 = first; the last is the conversion)',
  `is_conversion` UInt8 COMMENT '1 on the conversion touch (the order itself, stage = channel)',
  `stage` LowCardinality(String) COMMENT 'funnel stage of the touch: short_video | live | clip | shelf',
  `touch_account_id` String COMMENT 'account of the touch (video author / live anchor / the seller for the conversion)',
  `touch_content_id` String COMMENT 'content of the touch (video_id / live_id / channel_id; \'\' for shelf)',
  `touch_event_id` String COMMENT 'event id of the touchpoint (the order\'s for the conversion)',
  `is_self` UInt8 COMMENT '1 when the touch account is the seller itself (brand self-broadcast), 0 for others (distributors)',
  `traffic` LowCardinality(String) COMMENT 'public | private traffic of the touch (the conversion: of the touch it merged, else public)',
  `touch_time` DateTime64(3, 'UTC') COMMENT 'time of the touch (UTC)',
  `order_time` DateTime64(3, 'UTC') COMMENT 'time the order was paid (UTC)',
  `event_time` DateTime64(3, 'UTC') COMMENT 'time this credit counts at: the payment, or the refund (UTC)',
  `user_id` String COMMENT 'buyer',
  `shop_id` String COMMENT 'shop of the order',
  `seller_id` String COMMENT 'account that made the sale (\'\' for pure shelf sales)',
  `sku_id` String COMMENT 'SKU',
  `channel` LowCardinality(String) COMMENT 'where the order was paid: short_video | live | clip | shelf',
  `credit_fen` Int64 COMMENT 'credit in fen (1/100 CNY); negative for refunds; sums exactly to the amount per order event and model',
  `path` String COMMENT 'the path\'s stages, e.g. short_video>live>clip',
  `path_length` UInt8 COMMENT 'touches in the path, the conversion included (at most 20)',
  `attributed_at` DateTime64(3, 'UTC') COMMENT 'processing time of the attribution (UTC)'
) AS SELECT `event_id`, `order_id`, `kind`, `model`, `touch_index`, `is_conversion`, `stage`, `touch_account_id`, `touch_content_id`, `touch_event_id`, `is_self`, `traffic`, `touch_time`, `order_time`, `event_time`, `user_id`, `shop_id`, `seller_id`, `sku_id`, `channel`, `credit_fen`, `path`, `path_length`, `attributed_at` FROM `{db}`.`attributed_gmv_store` FINAL
COMMENT 'Attributed GMV facts: one row per (order event, model, touch of its path). sum(credit_fen) over any grouping is exact to the fen; refunds are negative rows. Exact: each row once, however often it was written.'
;
CREATE TABLE IF NOT EXISTS `{db}`.`funnel_events_store` (
  `event_id` String COMMENT 'event id',
  `event_time` DateTime64(3, 'UTC') COMMENT 'event time (UTC)',
  `stage` LowCardinality(String) COMMENT 'short_video | clip (views) | live (live_room events)',
  `action` LowCardinality(String) COMMENT 'view | enter | leave | start | end',
  `user_id` String COMMENT 'viewer (\'\' for live start/end)',
  `account_id` String COMMENT 'video author / live anchor',
  `content_id` String COMMENT 'video_id / live_id',
  `shop_id` String COMMENT 'mounted shop (\'\' if none)',
  `traffic` LowCardinality(String) COMMENT 'public | private',
  `watch_ms` UInt64 COMMENT 'watch time of a view (0 for live events)',
  `engaged` UInt8 COMMENT '1 for a view with watch_ms >= engaged_ms and every live enter (a touchpoint)',
  `referrer_kind` LowCardinality(String) COMMENT 'what led into the live room (enter only)',
  `source_live_id` String COMMENT 'the live a clip was cut from'
)
ENGINE = ReplacingMergeTree()
PARTITION BY toYYYYMM(event_time)
ORDER BY (toStartOfMinute(event_time), event_id)
SETTINGS non_replicated_deduplication_window = 1000
COMMENT 'Views and live-room events flattened for funnel metrics (one row per accepted event). Stored rows; may hold not-yet-merged copies: query the view funnel_events.'
;
CREATE VIEW IF NOT EXISTS `{db}`.`funnel_events` (
  `event_id` String COMMENT 'event id',
  `event_time` DateTime64(3, 'UTC') COMMENT 'event time (UTC)',
  `stage` LowCardinality(String) COMMENT 'short_video | clip (views) | live (live_room events)',
  `action` LowCardinality(String) COMMENT 'view | enter | leave | start | end',
  `user_id` String COMMENT 'viewer (\'\' for live start/end)',
  `account_id` String COMMENT 'video author / live anchor',
  `content_id` String COMMENT 'video_id / live_id',
  `shop_id` String COMMENT 'mounted shop (\'\' if none)',
  `traffic` LowCardinality(String) COMMENT 'public | private',
  `watch_ms` UInt64 COMMENT 'watch time of a view (0 for live events)',
  `engaged` UInt8 COMMENT '1 for a view with watch_ms >= engaged_ms and every live enter (a touchpoint)',
  `referrer_kind` LowCardinality(String) COMMENT 'what led into the live room (enter only)',
  `source_live_id` String COMMENT 'the live a clip was cut from'
) AS SELECT `event_id`, `event_time`, `stage`, `action`, `user_id`, `account_id`, `content_id`, `shop_id`, `traffic`, `watch_ms`, `engaged`, `referrer_kind`, `source_live_id` FROM `{db}`.`funnel_events_store` FINAL
COMMENT 'Views and live-room events flattened for funnel metrics (one row per accepted event). Exact: each row once, however often it was written.'
;
CREATE TABLE IF NOT EXISTS `{db}`.`gmv_minute_store` (
  `minute` DateTime('UTC') COMMENT 'minute of event_time (UTC)',
  `model` LowCardinality(String) COMMENT 'attribution model',
  `stage` LowCardinality(String) COMMENT 'funnel stage credited',
  `channel` LowCardinality(String) COMMENT 'where the orders were paid',
  `traffic` LowCardinality(String) COMMENT 'public | private',
  `shop_id` String COMMENT 'shop',
  `seller_id` String COMMENT 'seller account',
  `touch_account_id` String COMMENT 'credited account',
  `is_self` UInt8 COMMENT '1 = credited account is the seller itself',
  `gmv_fen` Int64 COMMENT 'paid GMV credited (fen)',
  `refund_fen` Int64 COMMENT 'refunds credited, as a positive number (fen)',
  `net_fen` Int64 COMMENT 'gmv_fen - refund_fen',
  `orders` UInt64 COMMENT 'paid orders converting here (counted on the conversion touch, so once per order and model)',
  `refunds` UInt64 COMMENT 'refund events (counted on the conversion touch)',
  `buyers` AggregateFunction(uniq, String) COMMENT 'distinct buyers of those orders: uniqMerge(buyers)',
  `refreshed_at` DateTime64(6, 'UTC') COMMENT 'when this row was recomputed from the facts; the latest wins'
)
ENGINE = ReplacingMergeTree(refreshed_at)
PARTITION BY toYYYYMM(minute)
ORDER BY (minute, model, stage, channel, traffic, shop_id, seller_id, touch_account_id, is_self)
SETTINGS non_replicated_deduplication_window = 1000
COMMENT 'Attributed GMV per minute, recomputed by the worker from the de-duplicated facts (attributed_gmv) after each flush: exact, never a running sum. Stored rows; may hold not-yet-merged copies: query the view gmv_minute.'
;
CREATE VIEW IF NOT EXISTS `{db}`.`gmv_minute` (
  `minute` DateTime('UTC') COMMENT 'minute of event_time (UTC)',
  `model` LowCardinality(String) COMMENT 'attribution model',
  `stage` LowCardinality(String) COMMENT 'funnel stage credited',
  `channel` LowCardinality(String) COMMENT 'where the orders were paid',
  `traffic` LowCardinality(String) COMMENT 'public | private',
  `shop_id` String COMMENT 'shop',
  `seller_id` String COMMENT 'seller account',
  `touch_account_id` String COMMENT 'credited account',
  `is_self` UInt8 COMMENT '1 = credited account is the seller itself',
  `gmv_fen` Int64 COMMENT 'paid GMV credited (fen)',
  `refund_fen` Int64 COMMENT 'refunds credited, as a positive number (fen)',
  `net_fen` Int64 COMMENT 'gmv_fen - refund_fen',
  `orders` UInt64 COMMENT 'paid orders converting here (counted on the conversion touch, so once per order and model)',
  `refunds` UInt64 COMMENT 'refund events (counted on the conversion touch)',
  `buyers` AggregateFunction(uniq, String) COMMENT 'distinct buyers of those orders: uniqMerge(buyers)',
  `refreshed_at` DateTime64(6, 'UTC') COMMENT 'when this row was recomputed from the facts; the latest wins'
) AS SELECT `minute`, `model`, `stage`, `channel`, `traffic`, `shop_id`, `seller_id`, `touch_account_id`, `is_self`, `gmv_fen`, `refund_fen`, `net_fen`, `orders`, `refunds`, `buyers`, `refreshed_at` FROM `{db}`.`gmv_minute_store` FINAL
COMMENT 'Attributed GMV per minute, recomputed by the worker from the de-duplicated facts (attributed_gmv) after each flush: exact, never a running sum. Exact: each row once, however often it was written.'
;
CREATE TABLE IF NOT EXISTS `{db}`.`funnel_minute_store` (
  `minute` DateTime('UTC') COMMENT 'minute of event_time (UTC)',
  `stage` LowCardinality(String) COMMENT 'short_video | clip | live',
  `account_id` String COMMENT 'video author / live anchor',
  `content_id` String COMMENT 'video_id / live_id',
  `shop_id` String COMMENT 'mounted shop',
  `traffic` LowCardinality(String) COMMENT 'public | private',
  `views` UInt64 COMMENT 'views (video views; live enters for stage live)',
  `engaged_views` UInt64 COMMENT 'views with watch_ms >= engaged_ms (touchpoints); live enters for live',
  `live_enters` UInt64 COMMENT 'live room enters',
  `viewers` AggregateFunction(uniq, String) COMMENT 'unique viewers (UV): uniqMerge(viewers)',
  `refreshed_at` DateTime64(6, 'UTC') COMMENT 'when this row was recomputed from the facts; the latest wins'
)
ENGINE = ReplacingMergeTree(refreshed_at)
PARTITION BY toYYYYMM(minute)
ORDER BY (minute, stage, account_id, content_id, shop_id, traffic)
SETTINGS non_replicated_deduplication_window = 1000
COMMENT 'Funnel per minute (views, engaged views, live enters, unique viewers), recomputed from funnel_events. Stored rows; may hold not-yet-merged copies: query the view funnel_minute.'
;
CREATE VIEW IF NOT EXISTS `{db}`.`funnel_minute` (
  `minute` DateTime('UTC') COMMENT 'minute of event_time (UTC)',
  `stage` LowCardinality(String) COMMENT 'short_video | clip | live',
  `account_id` String COMMENT 'video author / live anchor',
  `content_id` String COMMENT 'video_id / live_id',
  `shop_id` String COMMENT 'mounted shop',
  `traffic` LowCardinality(String) COMMENT 'public | private',
  `views` UInt64 COMMENT 'views (video views; live enters for stage live)',
  `engaged_views` UInt64 COMMENT 'views with watch_ms >= engaged_ms (touchpoints); live enters for live',
  `live_enters` UInt64 COMMENT 'live room enters',
  `viewers` AggregateFunction(uniq, String) COMMENT 'unique viewers (UV): uniqMerge(viewers)',
  `refreshed_at` DateTime64(6, 'UTC') COMMENT 'when this row was recomputed from the facts; the latest wins'
) AS SELECT `minute`, `stage`, `account_id`, `content_id`, `shop_id`, `traffic`, `views`, `engaged_views`, `live_enters`, `viewers`, `refreshed_at` FROM `{db}`.`funnel_minute_store` FINAL
COMMENT 'Funnel per minute (views, engaged views, live enters, unique viewers), recomputed from funnel_events. Exact: each row once, however often it was written.'
;
CREATE TABLE IF NOT EXISTS `{db}`.`gmv_hour` (
  `hour` DateTime('UTC') COMMENT 'hour (UTC)',
  `model` LowCardinality(String) COMMENT 'attribution model',
  `stage` LowCardinality(String) COMMENT 'funnel stage credited',
  `channel` LowCardinality(String) COMMENT 'where the orders were paid',
  `traffic` LowCardinality(String) COMMENT 'public | private',
  `shop_id` String COMMENT 'shop',
  `seller_id` String COMMENT 'seller account',
  `touch_account_id` String COMMENT 'credited account',
  `is_self` UInt8 COMMENT '1 = credited account is the seller itself',
  `gmv_fen` Int64 COMMENT 'paid GMV credited (fen)',
  `refund_fen` Int64 COMMENT 'refunds credited, as a positive number (fen)',
  `net_fen` Int64 COMMENT 'gmv_fen - refund_fen',
  `orders` UInt64 COMMENT 'paid orders converting here (counted on the conversion touch, so once per order and model)',
  `refunds` UInt64 COMMENT 'refund events (counted on the conversion touch)',
  `buyers` AggregateFunction(uniq, String) COMMENT 'distinct buyers of those orders: uniqMerge(buyers)'
) ENGINE = MergeTree ORDER BY (hour, model, stage, channel, traffic, shop_id, seller_id, touch_account_id, is_self)
COMMENT 'Attributed GMV per hour; same columns as gmv_minute.'
;
CREATE MATERIALIZED VIEW IF NOT EXISTS `{db}`.`gmv_hour_refresh` REFRESH EVERY 5 SECOND TO `{db}`.`gmv_hour` AS SELECT toStartOfHour(minute) AS hour, model, stage, channel, traffic, shop_id, seller_id, touch_account_id, is_self, sum(gmv_fen) AS gmv_fen, sum(refund_fen) AS refund_fen, sum(net_fen) AS net_fen, sum(orders) AS orders, sum(refunds) AS refunds, uniqMergeState(buyers) AS buyers FROM `{db}`.`gmv_minute` GROUP BY hour, model, stage, channel, traffic, shop_id, seller_id, touch_account_id, is_self
COMMENT 'Recomputes gmv_hour from gmv_minute every 5 s (atomic replace).'
;
CREATE TABLE IF NOT EXISTS `{db}`.`funnel_hour` (
  `hour` DateTime('UTC') COMMENT 'hour (UTC)',
  `stage` LowCardinality(String) COMMENT 'short_video | clip | live',
  `account_id` String COMMENT 'video author / live anchor',
  `content_id` String COMMENT 'video_id / live_id',
  `shop_id` String COMMENT 'mounted shop',
  `traffic` LowCardinality(String) COMMENT 'public | private',
  `views` UInt64 COMMENT 'views (video views; live enters for stage live)',
  `engaged_views` UInt64 COMMENT 'views with watch_ms >= engaged_ms (touchpoints); live enters for live',
  `live_enters` UInt64 COMMENT 'live room enters',
  `viewers` AggregateFunction(uniq, String) COMMENT 'unique viewers (UV): uniqMerge(viewers)'
) ENGINE = MergeTree ORDER BY (hour, stage, account_id, content_id, shop_id, traffic)
COMMENT 'Funnel per hour; same columns as funnel_minute.'
;
CREATE MATERIALIZED VIEW IF NOT EXISTS `{db}`.`funnel_hour_refresh` REFRESH EVERY 5 SECOND TO `{db}`.`funnel_hour` AS SELECT toStartOfHour(minute) AS hour, stage, account_id, content_id, shop_id, traffic, sum(views) AS views, sum(engaged_views) AS engaged_views, sum(live_enters) AS live_enters, uniqMergeState(viewers) AS viewers FROM `{db}`.`funnel_minute` GROUP BY hour, stage, account_id, content_id, shop_id, traffic
COMMENT 'Recomputes funnel_hour from funnel_minute every 5 s (atomic replace).'
;
CREATE TABLE IF NOT EXISTS `{db}`.`gmv_day` (
  `day` DateTime('Asia/Shanghai') COMMENT 'day in Asia/Shanghai (the business day)',
  `model` LowCardinality(String) COMMENT 'attribution model',
  `stage` LowCardinality(String) COMMENT 'funnel stage credited',
  `channel` LowCardinality(String) COMMENT 'where the orders were paid',
  `traffic` LowCardinality(String) COMMENT 'public | private',
  `shop_id` String COMMENT 'shop',
  `seller_id` String COMMENT 'seller account',
  `touch_account_id` String COMMENT 'credited account',
  `is_self` UInt8 COMMENT '1 = credited account is the seller itself',
  `gmv_fen` Int64 COMMENT 'paid GMV credited (fen)',
  `refund_fen` Int64 COMMENT 'refunds credited, as a positive number (fen)',
  `net_fen` Int64 COMMENT 'gmv_fen - refund_fen',
  `orders` UInt64 COMMENT 'paid orders converting here (counted on the conversion touch, so once per order and model)',
  `refunds` UInt64 COMMENT 'refund events (counted on the conversion touch)',
  `buyers` AggregateFunction(uniq, String) COMMENT 'distinct buyers of those orders: uniqMerge(buyers)'
) ENGINE = MergeTree ORDER BY (day, model, stage, channel, traffic, shop_id, seller_id, touch_account_id, is_self)
COMMENT 'Attributed GMV per day; same columns as gmv_minute.'
;
CREATE MATERIALIZED VIEW IF NOT EXISTS `{db}`.`gmv_day_refresh` REFRESH EVERY 5 SECOND TO `{db}`.`gmv_day` AS SELECT toStartOfDay(minute, 'Asia/Shanghai') AS day, model, stage, channel, traffic, shop_id, seller_id, touch_account_id, is_self, sum(gmv_fen) AS gmv_fen, sum(refund_fen) AS refund_fen, sum(net_fen) AS net_fen, sum(orders) AS orders, sum(refunds) AS refunds, uniqMergeState(buyers) AS buyers FROM `{db}`.`gmv_minute` GROUP BY day, model, stage, channel, traffic, shop_id, seller_id, touch_account_id, is_self
COMMENT 'Recomputes gmv_day from gmv_minute every 5 s (atomic replace).'
;
CREATE TABLE IF NOT EXISTS `{db}`.`funnel_day` (
  `day` DateTime('Asia/Shanghai') COMMENT 'day in Asia/Shanghai (the business day)',
  `stage` LowCardinality(String) COMMENT 'short_video | clip | live',
  `account_id` String COMMENT 'video author / live anchor',
  `content_id` String COMMENT 'video_id / live_id',
  `shop_id` String COMMENT 'mounted shop',
  `traffic` LowCardinality(String) COMMENT 'public | private',
  `views` UInt64 COMMENT 'views (video views; live enters for stage live)',
  `engaged_views` UInt64 COMMENT 'views with watch_ms >= engaged_ms (touchpoints); live enters for live',
  `live_enters` UInt64 COMMENT 'live room enters',
  `viewers` AggregateFunction(uniq, String) COMMENT 'unique viewers (UV): uniqMerge(viewers)'
) ENGINE = MergeTree ORDER BY (day, stage, account_id, content_id, shop_id, traffic)
COMMENT 'Funnel per day; same columns as funnel_minute.'
;
CREATE MATERIALIZED VIEW IF NOT EXISTS `{db}`.`funnel_day_refresh` REFRESH EVERY 5 SECOND TO `{db}`.`funnel_day` AS SELECT toStartOfDay(minute, 'Asia/Shanghai') AS day, stage, account_id, content_id, shop_id, traffic, sum(views) AS views, sum(engaged_views) AS engaged_views, sum(live_enters) AS live_enters, uniqMergeState(viewers) AS viewers FROM `{db}`.`funnel_minute` GROUP BY day, stage, account_id, content_id, shop_id, traffic
COMMENT 'Recomputes funnel_day from funnel_minute every 5 s (atomic replace).'
;
CREATE VIEW IF NOT EXISTS `{db}`.`shop_daily_kpis` (
  `day` DateTime('Asia/Shanghai') COMMENT 'business day (Asia/Shanghai)',
  `shop_id` String COMMENT 'shop',
  `gmv_fen` Int64 COMMENT 'paid GMV (fen)',
  `refund_fen` Int64 COMMENT 'refunds (fen)',
  `net_fen` Int64 COMMENT 'net GMV (fen)',
  `orders` UInt64 COMMENT 'paid orders',
  `buyers` UInt64 COMMENT 'distinct buyers',
  `aov_fen` Float64 COMMENT 'average order value 客单价 = gmv_fen / orders (fen)',
  `views` UInt64 COMMENT 'video views + live enters of content mounting the shop',
  `viewers` UInt64 COMMENT 'unique viewers (UV) of that content',
  `gpm_yuan` Float64 COMMENT 'GPM: GMV (yuan) per 1,000 views',
  `uv_value_yuan` Float64 COMMENT 'UV value: GMV (yuan) per unique viewer',
  `conversion_rate` Float64 COMMENT 'buyers / unique viewers'
) AS SELECT g.day, g.shop_id, g.gmv_fen, g.refund_fen, g.net_fen, g.orders, g.buyers, if(g.orders = 0, 0, g.gmv_fen / g.orders), f.views, f.viewers, if(f.views = 0, 0, g.gmv_fen / 100 * 1000 / f.views), if(f.viewers = 0, 0, g.gmv_fen / 100 / f.viewers), if(f.viewers = 0, 0, g.buyers / f.viewers) FROM (SELECT day, shop_id, sum(gmv_fen) AS gmv_fen, sum(refund_fen) AS refund_fen, sum(net_fen) AS net_fen, sum(orders) AS orders, uniqMerge(buyers) AS buyers FROM `{db}`.`gmv_day` WHERE model = 'last_touch' GROUP BY day, shop_id) AS g LEFT JOIN (SELECT day, shop_id, sum(views) AS views, uniqMerge(viewers) AS viewers FROM `{db}`.`funnel_day` GROUP BY day, shop_id) AS f USING (day, shop_id)
COMMENT 'Per shop and business day: GMV, net, orders, buyers, AOV, GPM, UV value, conversion rate.'
;
CREATE VIEW IF NOT EXISTS `{db}`.`account_daily_kpis` (
  `day` DateTime('Asia/Shanghai') COMMENT 'business day (Asia/Shanghai)',
  `model` LowCardinality(String) COMMENT 'attribution model of the credited GMV',
  `account_id` String COMMENT 'account (video author / live anchor / seller)',
  `gmv_fen` Int64 COMMENT 'paid GMV credited to the account (fen)',
  `net_fen` Int64 COMMENT 'net GMV credited (fen)',
  `self_net_fen` Int64 COMMENT 'net GMV credited where the account sold itself (自播)',
  `assist_net_fen` Int64 COMMENT 'net GMV credited on other sellers orders (达人分销 / 川流 assists)',
  `views` UInt64 COMMENT 'views + live enters of the account content',
  `viewers` UInt64 COMMENT 'unique viewers (UV)',
  `gpm_yuan` Float64 COMMENT 'GPM: credited GMV (yuan) per 1,000 views',
  `uv_value_yuan` Float64 COMMENT 'credited GMV (yuan) per unique viewer'
) AS SELECT g.day, g.model, g.account_id, g.gmv_fen, g.net_fen, g.self_net_fen, g.assist_net_fen, f.views, f.viewers, if(f.views = 0, 0, g.gmv_fen / 100 * 1000 / f.views), if(f.viewers = 0, 0, g.gmv_fen / 100 / f.viewers) FROM (SELECT day, model, touch_account_id AS account_id, sum(gmv_fen) AS gmv_fen, sum(net_fen) AS net_fen, sumIf(net_fen, is_self = 1) AS self_net_fen, sumIf(net_fen, is_self = 0) AS assist_net_fen FROM `{db}`.`gmv_day` GROUP BY day, model, account_id) AS g LEFT JOIN (SELECT day, account_id, sum(views) AS views, uniqMerge(viewers) AS viewers FROM `{db}`.`funnel_day` GROUP BY day, account_id) AS f USING (day, account_id)
COMMENT 'Per account, model and business day: credited GMV (self vs assist), views, GPM, UV value.'
