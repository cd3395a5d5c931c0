-- migration 6: dimension data (account bindings, SKU catalog), content/SKU/path rollups at minute, hour and day, gmv/funnel hours and days kept by the worker, the cookbook views
-- Frozen: the DDL exactly as it shipped. Never edit it; add a new migration instead.
-- Statements are separated by a line holding only ';'. {db} stands for the database.
CREATE TABLE IF NOT EXISTS `{db}`.`dim_accounts_store` (
  `account_id` String COMMENT 'the account (seller_id / author_id / anchor_id in the events)',
  `shop_id` String COMMENT 'the shop it is bound to',
  `brand_id` String COMMENT 'the shop\'s brand',
  `brand_name` String COMMENT 'the brand\'s display name',
  `role` LowCardinality(String) COMMENT 'self: the brand\'s own account (自播) | distributor: 达人/分销 (川流)',
  `loaded_at` DateTime64(3, 'UTC') COMMENT 'when the row was loaded (UTC); the latest load of a binding wins'
)
ENGINE = ReplacingMergeTree(loaded_at)
ORDER BY (account_id, shop_id)
COMMENT 'Account to shop bindings (一店多号): each account that sells for a shop, the shop\'s brand, and whether the account is the brand\'s own (self) or a distributor\'s. Loaded with gmv load-dim. Stored rows; may hold not-yet-merged copies: query the view dim_accounts.'
;
CREATE VIEW IF NOT EXISTS `{db}`.`dim_accounts` (
  `account_id` String COMMENT 'the account (seller_id / author_id / anchor_id in the events)',
  `shop_id` String COMMENT 'the shop it is bound to',
  `brand_id` String COMMENT 'the shop\'s brand',
  `brand_name` String COMMENT 'the brand\'s display name',
  `role` LowCardinality(String) COMMENT 'self: the brand\'s own account (自播) | distributor: 达人/分销 (川流)',
  `loaded_at` DateTime64(3, 'UTC') COMMENT 'when the row was loaded (UTC); the latest load of a binding wins'
) AS SELECT `account_id`, `shop_id`, `brand_id`, `brand_name`, `role`, `loaded_at` FROM `{db}`.`dim_accounts_store` FINAL
COMMENT 'Account to shop bindings (一店多号): each account that sells for a shop, the shop\'s brand, and whether the account is the brand\'s own (self) or a distributor\'s. Loaded with gmv load-dim. Exact: each row once, however often it was written.'
;
CREATE TABLE IF NOT EXISTS `{db}`.`dim_skus_store` (
  `day` Date COMMENT 'the day (Asia/Shanghai) the SKU was listed',
  `shop_id` String COMMENT 'shop',
  `sku_id` String COMMENT 'SKU (sku_id in the events)',
  `title` String COMMENT 'product title (\'\' if not given)',
  `price_fen` Int64 COMMENT 'list price in fen (0 if not given)',
  `loaded_at` DateTime64(3, 'UTC') COMMENT 'when the row was loaded (UTC); the latest load of a listing wins'
)
ENGINE = ReplacingMergeTree(loaded_at)
ORDER BY (shop_id, day, sku_id)
COMMENT 'SKU catalog: the SKUs each shop listed on each Asia/Shanghai day (the denominator of 动销率). Loaded with gmv load-dim. Stored rows; may hold not-yet-merged copies: query the view dim_skus.'
;
CREATE VIEW IF NOT EXISTS `{db}`.`dim_skus` (
  `day` Date COMMENT 'the day (Asia/Shanghai) the SKU was listed',
  `shop_id` String COMMENT 'shop',
  `sku_id` String COMMENT 'SKU (sku_id in the events)',
  `title` String COMMENT 'product title (\'\' if not given)',
  `price_fen` Int64 COMMENT 'list price in fen (0 if not given)',
  `loaded_at` DateTime64(3, 'UTC') COMMENT 'when the row was loaded (UTC); the latest load of a listing wins'
) AS SELECT `day`, `shop_id`, `sku_id`, `title`, `price_fen`, `loaded_at` FROM `{db}`.`dim_skus_store` FINAL
COMMENT 'SKU catalog: the SKUs each shop listed on each Asia/Shanghai day (the denominator of 动销率). Loaded with gmv load-dim. Exact: each row once, however often it was written.'
;
DROP VIEW IF EXISTS `{db}`.`gmv_hour_refresh`
;
DROP TABLE IF EXISTS `{db}`.`gmv_hour`
;
DROP VIEW IF EXISTS `{db}`.`gmv_day_refresh`
;
DROP TABLE IF EXISTS `{db}`.`gmv_day`
;
DROP VIEW IF EXISTS `{db}`.`funnel_hour_refresh`
;
DROP TABLE IF EXISTS `{db}`.`funnel_hour`
;
DROP VIEW IF EXISTS `{db}`.`funnel_day_refresh`
;
DROP TABLE IF EXISTS `{db}`.`funnel_day`
;
CREATE TABLE IF NOT EXISTS `{db}`.`content_credit_minute_store` (
  `minute` DateTime('UTC') COMMENT 'minute of event_time (UTC)',
  `model` LowCardinality(String) COMMENT 'attribution model',
  `stage` LowCardinality(String) COMMENT 'funnel stage of the touch credited',
  `account_id` String COMMENT 'account of the touch (video author / live anchor / the seller)',
  `content_id` String COMMENT 'content of the touch (video_id / live_id; \'\' for shelf)',
  `is_self` UInt8 COMMENT '1 = the touch account is the order\'s seller',
  `shop_id` String COMMENT 'shop of the order',
  `gmv_fen` Int64 COMMENT 'paid GMV (fen)',
  `refund_fen` Int64 COMMENT 'refunds, as a positive number (fen)',
  `net_fen` Int64 COMMENT 'gmv_fen - refund_fen',
  `orders` UInt64 COMMENT 'paid orders (counted once per order)',
  `refunds` UInt64 COMMENT 'refund events',
  `buyers` AggregateFunction(uniq, String) COMMENT 'distinct buyers of those orders: uniqMerge(buyers)',
  `refreshed_at` DateTime64(6, 'UTC') COMMENT 'when this row was recomputed; the latest wins'
)
ENGINE = ReplacingMergeTree(refreshed_at)
PARTITION BY toYYYYMM(minute)
ORDER BY (minute, model, stage, account_id, content_id, is_self, shop_id)
SETTINGS non_replicated_deduplication_window = 1000
COMMENT 'GMV credited per attribution model to each touch: stage, account and content, per minute; recomputed by the worker from the de-duplicated facts (attributed_gmv) for the minutes batches touched, with the trust scores: exact, never a running sum. Stored rows; may hold not-yet-merged copies: query the view content_credit_minute.'
;
CREATE VIEW IF NOT EXISTS `{db}`.`content_credit_minute` (
  `minute` DateTime('UTC') COMMENT 'minute of event_time (UTC)',
  `model` LowCardinality(String) COMMENT 'attribution model',
  `stage` LowCardinality(String) COMMENT 'funnel stage of the touch credited',
  `account_id` String COMMENT 'account of the touch (video author / live anchor / the seller)',
  `content_id` String COMMENT 'content of the touch (video_id / live_id; \'\' for shelf)',
  `is_self` UInt8 COMMENT '1 = the touch account is the order\'s seller',
  `shop_id` String COMMENT 'shop of the order',
  `gmv_fen` Int64 COMMENT 'paid GMV (fen)',
  `refund_fen` Int64 COMMENT 'refunds, as a positive number (fen)',
  `net_fen` Int64 COMMENT 'gmv_fen - refund_fen',
  `orders` UInt64 COMMENT 'paid orders (counted once per order)',
  `refunds` UInt64 COMMENT 'refund events',
  `buyers` AggregateFunction(uniq, String) COMMENT 'distinct buyers of those orders: uniqMerge(buyers)',
  `refreshed_at` DateTime64(6, 'UTC') COMMENT 'when this row was recomputed; the latest wins'
) AS SELECT `minute`, `model`, `stage`, `account_id`, `content_id`, `is_self`, `shop_id`, `gmv_fen`, `refund_fen`, `net_fen`, `orders`, `refunds`, `buyers`, `refreshed_at` FROM `{db}`.`content_credit_minute_store` FINAL
COMMENT 'GMV credited per attribution model to each touch: stage, account and content, per minute; recomputed by the worker from the de-duplicated facts (attributed_gmv) for the minutes batches touched, with the trust scores: exact, never a running sum. Exact: each row once, however often it was written.'
;
CREATE TABLE IF NOT EXISTS `{db}`.`content_credit_hour_store` (
  `hour` DateTime('UTC') COMMENT 'hour of event_time (UTC)',
  `model` LowCardinality(String) COMMENT 'attribution model',
  `stage` LowCardinality(String) COMMENT 'funnel stage of the touch credited',
  `account_id` String COMMENT 'account of the touch (video author / live anchor / the seller)',
  `content_id` String COMMENT 'content of the touch (video_id / live_id; \'\' for shelf)',
  `is_self` UInt8 COMMENT '1 = the touch account is the order\'s seller',
  `shop_id` String COMMENT 'shop of the order',
  `gmv_fen` Int64 COMMENT 'paid GMV (fen)',
  `refund_fen` Int64 COMMENT 'refunds, as a positive number (fen)',
  `net_fen` Int64 COMMENT 'gmv_fen - refund_fen',
  `orders` UInt64 COMMENT 'paid orders (counted once per order)',
  `refunds` UInt64 COMMENT 'refund events',
  `buyers` AggregateFunction(uniq, String) COMMENT 'distinct buyers of those orders: uniqMerge(buyers)',
  `refreshed_at` DateTime64(6, 'UTC') COMMENT 'when this row was recomputed; the latest wins'
)
ENGINE = ReplacingMergeTree(refreshed_at)
PARTITION BY toYYYYMM(hour)
ORDER BY (hour, model, stage, account_id, content_id, is_self, shop_id)
SETTINGS non_replicated_deduplication_window = 1000
COMMENT 'GMV credited per attribution model to each touch: stage, account and content, per hour; recomputed by the worker from content_credit_minute for the hours those minutes fall in: exact, never a running sum. Stored rows; may hold not-yet-merged copies: query the view content_credit_hour.'
;
CREATE VIEW IF NOT EXISTS `{db}`.`content_credit_hour` (
  `hour` DateTime('UTC') COMMENT 'hour of event_time (UTC)',
  `model` LowCardinality(String) COMMENT 'attribution model',
  `stage` LowCardinality(String) COMMENT 'funnel stage of the touch credited',
  `account_id` String COMMENT 'account of the touch (video author / live anchor / the seller)',
  `content_id` String COMMENT 'content of the touch (video_id / live_id; \'\' for shelf)',
  `is_self` UInt8 COMMENT '1 = the touch account is the order\'s seller',
  `shop_id` String COMMENT 'shop of the order',
  `gmv_fen` Int64 COMMENT 'paid GMV (fen)',
  `refund_fen` Int64 COMMENT 'refunds, as a positive number (fen)',
  `net_fen` Int64 COMMENT 'gmv_fen - refund_fen',
  `orders` UInt64 COMMENT 'paid orders (counted once per order)',
  `refunds` UInt64 COMMENT 'refund events',
  `buyers` AggregateFunction(uniq, String) COMMENT 'distinct buyers of those orders: uniqMerge(buyers)',
  `refreshed_at` DateTime64(6, 'UTC') COMMENT 'when this row was recomputed; the latest wins'
) AS SELECT `hour`, `model`, `stage`, `account_id`, `content_id`, `is_self`, `shop_id`, `gmv_fen`, `refund_fen`, `net_fen`, `orders`, `refunds`, `buyers`, `refreshed_at` FROM `{db}`.`content_credit_hour_store` FINAL
COMMENT 'GMV credited per attribution model to each touch: stage, account and content, per hour; recomputed by the worker from content_credit_minute for the hours those minutes fall in: exact, never a running sum. Exact: each row once, however often it was written.'
;
CREATE TABLE IF NOT EXISTS `{db}`.`content_credit_day_store` (
  `day` Date COMMENT 'day of event_time in Asia/Shanghai (the business day)',
  `model` LowCardinality(String) COMMENT 'attribution model',
  `stage` LowCardinality(String) COMMENT 'funnel stage of the touch credited',
  `account_id` String COMMENT 'account of the touch (video author / live anchor / the seller)',
  `content_id` String COMMENT 'content of the touch (video_id / live_id; \'\' for shelf)',
  `is_self` UInt8 COMMENT '1 = the touch account is the order\'s seller',
  `shop_id` String COMMENT 'shop of the order',
  `gmv_fen` Int64 COMMENT 'paid GMV (fen)',
  `refund_fen` Int64 COMMENT 'refunds, as a positive number (fen)',
  `net_fen` Int64 COMMENT 'gmv_fen - refund_fen',
  `orders` UInt64 COMMENT 'paid orders (counted once per order)',
  `refunds` UInt64 COMMENT 'refund events',
  `buyers` AggregateFunction(uniq, String) COMMENT 'distinct buyers of those orders: uniqMerge(buyers)',
  `refreshed_at` DateTime64(6, 'UTC') COMMENT 'when this row was recomputed; the latest wins'
)
ENGINE = ReplacingMergeTree(refreshed_at)
PARTITION BY toYYYYMM(day)
ORDER BY (model, stage, content_id, account_id, is_self, shop_id, day)
SETTINGS index_granularity = 256, non_replicated_deduplication_window = 1000
COMMENT 'GMV credited per attribution model to each touch: stage, account and content, per Asia/Shanghai day; recomputed by the worker from content_credit_hour for the days those hours fall in: exact, never a running sum. Stored rows; may hold not-yet-merged copies: query the view content_credit_day.'
;
CREATE VIEW IF NOT EXISTS `{db}`.`content_credit_day` (
  `day` Date COMMENT 'day of event_time in Asia/Shanghai (the business day)',
  `model` LowCardinality(String) COMMENT 'attribution model',
  `stage` LowCardinality(String) COMMENT 'funnel stage of the touch credited',
  `account_id` String COMMENT 'account of the touch (video author / live anchor / the seller)',
  `content_id` String COMMENT 'content of the touch (video_id / live_id; \'\' for shelf)',
  `is_self` UInt8 COMMENT '1 = the touch account is the order\'s seller',
  `shop_id` String COMMENT 'shop of the order',
  `gmv_fen` Int64 COMMENT 'paid GMV (fen)',
  `refund_fen` Int64 COMMENT 'refunds, as a positive number (fen)',
  `net_fen` Int64 COMMENT 'gmv_fen - refund_fen',
  `orders` UInt64 COMMENT 'paid orders (counted once per order)',
  `refunds` UInt64 COMMENT 'refund events',
  `buyers` AggregateFunction(uniq, String) COMMENT 'distinct buyers of those orders: uniqMerge(buyers)',
  `refreshed_at` DateTime64(6, 'UTC') COMMENT 'when this row was recomputed; the latest wins'
) AS SELECT `day`, `model`, `stage`, `account_id`, `content_id`, `is_self`, `shop_id`, `gmv_fen`, `refund_fen`, `net_fen`, `orders`, `refunds`, `buyers`, `refreshed_at` FROM `{db}`.`content_credit_day_store` FINAL
COMMENT 'GMV credited per attribution model to each touch: stage, account and content, per Asia/Shanghai day; recomputed by the worker from content_credit_hour for the days those hours fall in: exact, never a running sum. Exact: each row once, however often it was written.'
;
CREATE TABLE IF NOT EXISTS `{db}`.`sku_gmv_minute_store` (
  `minute` DateTime('UTC') COMMENT 'minute of event_time (UTC)',
  `shop_id` String COMMENT 'shop of the order',
  `sku_id` String COMMENT 'SKU',
  `seller_id` String COMMENT 'account that made the sale (\'\' for pure shelf sales)',
  `channel` LowCardinality(String) COMMENT 'where the order was paid: short_video | live | clip | shelf',
  `traffic` LowCardinality(String) COMMENT 'public | private traffic of the conversion touch',
  `gmv_fen` Int64 COMMENT 'paid GMV (fen)',
  `refund_fen` Int64 COMMENT 'refunds, as a positive number (fen)',
  `net_fen` Int64 COMMENT 'gmv_fen - refund_fen',
  `orders` UInt64 COMMENT 'paid orders (counted once per order)',
  `refunds` UInt64 COMMENT 'refund events',
  `buyers` AggregateFunction(uniq, String) COMMENT 'distinct buyers of those orders: uniqMerge(buyers)',
  `refreshed_at` DateTime64(6, 'UTC') COMMENT 'when this row was recomputed; the latest wins'
)
ENGINE = ReplacingMergeTree(refreshed_at)
PARTITION BY toYYYYMM(minute)
ORDER BY (minute, shop_id, sku_id, seller_id, channel, traffic)
SETTINGS non_replicated_deduplication_window = 1000
COMMENT 'Whole order amounts per SKU, shop, seller, channel paid in and traffic of the conversion, per minute; recomputed by the worker from the de-duplicated facts (attributed_gmv) for the minutes batches touched, with the trust scores: exact, never a running sum. Stored rows; may hold not-yet-merged copies: query the view sku_gmv_minute.'
;
CREATE VIEW IF NOT EXISTS `{db}`.`sku_gmv_minute` (
  `minute` DateTime('UTC') COMMENT 'minute of event_time (UTC)',
  `shop_id` String COMMENT 'shop of the order',
  `sku_id` String COMMENT 'SKU',
  `seller_id` String COMMENT 'account that made the sale (\'\' for pure shelf sales)',
  `channel` LowCardinality(String) COMMENT 'where the order was paid: short_video | live | clip | shelf',
  `traffic` LowCardinality(String) COMMENT 'public | private traffic of the conversion touch',
  `gmv_fen` Int64 COMMENT 'paid GMV (fen)',
  `refund_fen` Int64 COMMENT 'refunds, as a positive number (fen)',
  `net_fen` Int64 COMMENT 'gmv_fen - refund_fen',
  `orders` UInt64 COMMENT 'paid orders (counted once per order)',
  `refunds` UInt64 COMMENT 'refund events',
  `buyers` AggregateFunction(uniq, String) COMMENT 'distinct buyers of those orders: uniqMerge(buyers)',
  `refreshed_at` DateTime64(6, 'UTC') COMMENT 'when this row was recomputed; the latest wins'
) AS SELECT `minute`, `shop_id`, `sku_id`, `seller_id`, `channel`, `traffic`, `gmv_fen`, `refund_fen`, `net_fen`, `orders`, `refunds`, `buyers`, `refreshed_at` FROM `{db}`.`sku_gmv_minute_store` FINAL
COMMENT 'Whole order amounts per SKU, shop, seller, channel paid in and traffic of the conversion, per minute; recomputed by the worker from the de-duplicated facts (attributed_gmv) for the minutes batches touched, with the trust scores: exact, never a running sum. Exact: each row once, however often it was written.'
;
CREATE TABLE IF NOT EXISTS `{db}`.`sku_gmv_hour_store` (
  `hour` DateTime('UTC') COMMENT 'hour of event_time (UTC)',
  `shop_id` String COMMENT 'shop of the order',
  `sku_id` String COMMENT 'SKU',
  `seller_id` String COMMENT 'account that made the sale (\'\' for pure shelf sales)',
  `channel` LowCardinality(String) COMMENT 'where the order was paid: short_video | live | clip | shelf',
  `traffic` LowCardinality(String) COMMENT 'public | private traffic of the conversion touch',
  `gmv_fen` Int64 COMMENT 'paid GMV (fen)',
  `refund_fen` Int64 COMMENT 'refunds, as a positive number (fen)',
  `net_fen` Int64 COMMENT 'gmv_fen - refund_fen',
  `orders` UInt64 COMMENT 'paid orders (counted once per order)',
  `refunds` UInt64 COMMENT 'refund events',
  `buyers` AggregateFunction(uniq, String) COMMENT 'distinct buyers of those orders: uniqMerge(buyers)',
  `refreshed_at` DateTime64(6, 'UTC') COMMENT 'when this row was recomputed; the latest wins'
)
ENGINE = ReplacingMergeTree(refreshed_at)
PARTITION BY toYYYYMM(hour)
ORDER BY (hour, shop_id, sku_id, seller_id, channel, traffic)
SETTINGS non_replicated_deduplication_window = 1000
COMMENT 'Whole order amounts per SKU, shop, seller, channel paid in and traffic of the conversion, per hour; recomputed by the worker from sku_gmv_minute for the hours those minutes fall in: exact, never a running sum. Stored rows; may hold not-yet-merged copies: query the view sku_gmv_hour.'
;
CREATE VIEW IF NOT EXISTS `{db}`.`sku_gmv_hour` (
  `hour` DateTime('UTC') COMMENT 'hour of event_time (UTC)',
  `shop_id` String COMMENT 'shop of the order',
  `sku_id` String COMMENT 'SKU',
  `seller_id` String COMMENT 'account that made the sale (\'\' for pure shelf sales)',
  `channel` LowCardinality(String) COMMENT 'where the order was paid: short_video | live | clip | shelf',
  `traffic` LowCardinality(String) COMMENT 'public | private traffic of the conversion touch',
  `gmv_fen` Int64 COMMENT 'paid GMV (fen)',
  `refund_fen` Int64 COMMENT 'refunds, as a positive number (fen)',
  `net_fen` Int64 COMMENT 'gmv_fen - refund_fen',
  `orders` UInt64 COMMENT 'paid orders (counted once per order)',
  `refunds` UInt64 COMMENT 'refund events',
  `buyers` AggregateFunction(uniq, String) COMMENT 'distinct buyers of those orders: uniqMerge(buyers)',
  `refreshed_at` DateTime64(6, 'UTC') COMMENT 'when this row was recomputed; the latest wins'
) AS SELECT `hour`, `shop_id`, `sku_id`, `seller_id`, `channel`, `traffic`, `gmv_fen`, `refund_fen`, `net_fen`, `orders`, `refunds`, `buyers`, `refreshed_at` FROM `{db}`.`sku_gmv_hour_store` FINAL
COMMENT 'Whole order amounts per SKU, shop, seller, channel paid in and traffic of the conversion, per hour; recomputed by the worker from sku_gmv_minute for the hours those minutes fall in: exact, never a running sum. Exact: each row once, however often it was written.'
;
CREATE TABLE IF NOT EXISTS `{db}`.`sku_gmv_day_store` (
  `day` Date COMMENT 'day of event_time in Asia/Shanghai (the business day)',
  `shop_id` String COMMENT 'shop of the order',
  `sku_id` String COMMENT 'SKU',
  `seller_id` String COMMENT 'account that made the sale (\'\' for pure shelf sales)',
  `channel` LowCardinality(String) COMMENT 'where the order was paid: short_video | live | clip | shelf',
  `traffic` LowCardinality(String) COMMENT 'public | private traffic of the conversion touch',
  `gmv_fen` Int64 COMMENT 'paid GMV (fen)',
  `refund_fen` Int64 COMMENT 'refunds, as a positive number (fen)',
  `net_fen` Int64 COMMENT 'gmv_fen - refund_fen',
  `orders` UInt64 COMMENT 'paid orders (counted once per order)',
  `refunds` UInt64 COMMENT 'refund events',
  `buyers` AggregateFunction(uniq, String) COMMENT 'distinct buyers of those orders: uniqMerge(buyers)',
  `refreshed_at` DateTime64(6, 'UTC') COMMENT 'when this row was recomputed; the latest wins'
)
ENGINE = ReplacingMergeTree(refreshed_at)
PARTITION BY toYYYYMM(day)
ORDER BY (sku_id, shop_id, seller_id, channel, traffic, day)
SETTINGS index_granularity = 256, non_replicated_deduplication_window = 1000
COMMENT 'Whole order amounts per SKU, shop, seller, channel paid in and traffic of the conversion, per Asia/Shanghai day; recomputed by the worker from sku_gmv_hour for the days those hours fall in: exact, never a running sum. Stored rows; may hold not-yet-merged copies: query the view sku_gmv_day.'
;
CREATE VIEW IF NOT EXISTS `{db}`.`sku_gmv_day` (
  `day` Date COMMENT 'day of event_time in Asia/Shanghai (the business day)',
  `shop_id` String COMMENT 'shop of the order',
  `sku_id` String COMMENT 'SKU',
  `seller_id` String COMMENT 'account that made the sale (\'\' for pure shelf sales)',
  `channel` LowCardinality(String) COMMENT 'where the order was paid: short_video | live | clip | shelf',
  `traffic` LowCardinality(String) COMMENT 'public | private traffic of the conversion touch',
  `gmv_fen` Int64 COMMENT 'paid GMV (fen)',
  `refund_fen` Int64 COMMENT 'refunds, as a positive number (fen)',
  `net_fen` Int64 COMMENT 'gmv_fen - refund_fen',
  `orders` UInt64 COMMENT 'paid orders (counted once per order)',
  `refunds` UInt64 COMMENT 'refund events',
  `buyers` AggregateFunction(uniq, String) COMMENT 'distinct buyers of those orders: uniqMerge(buyers)',
  `refreshed_at` DateTime64(6, 'UTC') COMMENT 'when this row was recomputed; the latest wins'
) AS SELECT `day`, `shop_id`, `sku_id`, `seller_id`, `channel`, `traffic`, `gmv_fen`, `refund_fen`, `net_fen`, `orders`, `refunds`, `buyers`, `refreshed_at` FROM `{db}`.`sku_gmv_day_store` FINAL
COMMENT 'Whole order amounts per SKU, shop, seller, channel paid in and traffic of the conversion, per Asia/Shanghai day; recomputed by the worker from sku_gmv_hour for the days those hours fall in: exact, never a running sum. Exact: each row once, however often it was written.'
;
CREATE TABLE IF NOT EXISTS `{db}`.`shop_gmv_minute_store` (
  `minute` DateTime('UTC') COMMENT 'minute of event_time (UTC)',
  `shop_id` String COMMENT 'shop of the order',
  `gmv_fen` Int64 COMMENT 'paid GMV (fen)',
  `refund_fen` Int64 COMMENT 'refunds, as a positive number (fen)',
  `net_fen` Int64 COMMENT 'gmv_fen - refund_fen',
  `orders` UInt64 COMMENT 'paid orders (counted once per order)',
  `refunds` UInt64 COMMENT 'refund events',
  `buyers` AggregateFunction(uniq, String) COMMENT 'distinct buyers of those orders: uniqMerge(buyers)',
  `refreshed_at` DateTime64(6, 'UTC') COMMENT 'when this row was recomputed; the latest wins'
)
ENGINE = ReplacingMergeTree(refreshed_at)
PARTITION BY toYYYYMM(minute)
ORDER BY (minute, shop_id)
SETTINGS non_replicated_deduplication_window = 1000
COMMENT 'Whole order amounts per shop (the dashboard\'s KPIs: a few buyer states to merge, not one per SKU), per minute; recomputed by the worker from the de-duplicated facts (attributed_gmv) for the minutes batches touched, with the trust scores: exact, never a running sum. Stored rows; may hold not-yet-merged copies: query the view shop_gmv_minute.'
;
CREATE VIEW IF NOT EXISTS `{db}`.`shop_gmv_minute` (
  `minute` DateTime('UTC') COMMENT 'minute of event_time (UTC)',
  `shop_id` String COMMENT 'shop of the order',
  `gmv_fen` Int64 COMMENT 'paid GMV (fen)',
  `refund_fen` Int64 COMMENT 'refunds, as a positive number (fen)',
  `net_fen` Int64 COMMENT 'gmv_fen - refund_fen',
  `orders` UInt64 COMMENT 'paid orders (counted once per order)',
  `refunds` UInt64 COMMENT 'refund events',
  `buyers` AggregateFunction(uniq, String) COMMENT 'distinct buyers of those orders: uniqMerge(buyers)',
  `refreshed_at` DateTime64(6, 'UTC') COMMENT 'when this row was recomputed; the latest wins'
) AS SELECT `minute`, `shop_id`, `gmv_fen`, `refund_fen`, `net_fen`, `orders`, `refunds`, `buyers`, `refreshed_at` FROM `{db}`.`shop_gmv_minute_store` FINAL
COMMENT 'Whole order amounts per shop (the dashboard\'s KPIs: a few buyer states to merge, not one per SKU), per minute; recomputed by the worker from the de-duplicated facts (attributed_gmv) for the minutes batches touched, with the trust scores: exact, never a running sum. Exact: each row once, however often it was written.'
;
CREATE TABLE IF NOT EXISTS `{db}`.`shop_gmv_hour_store` (
  `hour` DateTime('UTC') COMMENT 'hour of event_time (UTC)',
  `shop_id` String COMMENT 'shop of the order',
  `gmv_fen` Int64 COMMENT 'paid GMV (fen)',
  `refund_fen` Int64 COMMENT 'refunds, as a positive number (fen)',
  `net_fen` Int64 COMMENT 'gmv_fen - refund_fen',
  `orders` UInt64 COMMENT 'paid orders (counted once per order)',
  `refunds` UInt64 COMMENT 'refund events',
  `buyers` AggregateFunction(uniq, String) COMMENT 'distinct buyers of those orders: uniqMerge(buyers)',
  `refreshed_at` DateTime64(6, 'UTC') COMMENT 'when this row was recomputed; the latest wins'
)
ENGINE = ReplacingMergeTree(refreshed_at)
PARTITION BY toYYYYMM(hour)
ORDER BY (hour, shop_id)
SETTINGS non_replicated_deduplication_window = 1000
COMMENT 'Whole order amounts per shop (the dashboard\'s KPIs: a few buyer states to merge, not one per SKU), per hour; recomputed by the worker from shop_gmv_minute for the hours those minutes fall in: exact, never a running sum. Stored rows; may hold not-yet-merged copies: query the view shop_gmv_hour.'
;
CREATE VIEW IF NOT EXISTS `{db}`.`shop_gmv_hour` (
  `hour` DateTime('UTC') COMMENT 'hour of event_time (UTC)',
  `shop_id` String COMMENT 'shop of the order',
  `gmv_fen` Int64 COMMENT 'paid GMV (fen)',
  `refund_fen` Int64 COMMENT 'refunds, as a positive number (fen)',
  `net_fen` Int64 COMMENT 'gmv_fen - refund_fen',
  `orders` UInt64 COMMENT 'paid orders (counted once per order)',
  `refunds` UInt64 COMMENT 'refund events',
  `buyers` AggregateFunction(uniq, String) COMMENT 'distinct buyers of those orders: uniqMerge(buyers)',
  `refreshed_at` DateTime64(6, 'UTC') COMMENT 'when this row was recomputed; the latest wins'
) AS SELECT `hour`, `shop_id`, `gmv_fen`, `refund_fen`, `net_fen`, `orders`, `refunds`, `buyers`, `refreshed_at` FROM `{db}`.`shop_gmv_hour_store` FINAL
COMMENT 'Whole order amounts per shop (the dashboard\'s KPIs: a few buyer states to merge, not one per SKU), per hour; recomputed by the worker from shop_gmv_minute for the hours those minutes fall in: exact, never a running sum. Exact: each row once, however often it was written.'
;
CREATE TABLE IF NOT EXISTS `{db}`.`shop_gmv_day_store` (
  `day` Date COMMENT 'day of event_time in Asia/Shanghai (the business day)',
  `shop_id` String COMMENT 'shop of the order',
  `gmv_fen` Int64 COMMENT 'paid GMV (fen)',
  `refund_fen` Int64 COMMENT 'refunds, as a positive number (fen)',
  `net_fen` Int64 COMMENT 'gmv_fen - refund_fen',
  `orders` UInt64 COMMENT 'paid orders (counted once per order)',
  `refunds` UInt64 COMMENT 'refund events',
  `buyers` AggregateFunction(uniq, String) COMMENT 'distinct buyers of those orders: uniqMerge(buyers)',
  `refreshed_at` DateTime64(6, 'UTC') COMMENT 'when this row was recomputed; the latest wins'
)
ENGINE = ReplacingMergeTree(refreshed_at)
PARTITION BY toYYYYMM(day)
ORDER BY (day, shop_id)
SETTINGS non_replicated_deduplication_window = 1000
COMMENT 'Whole order amounts per shop (the dashboard\'s KPIs: a few buyer states to merge, not one per SKU), per Asia/Shanghai day; recomputed by the worker from shop_gmv_hour for the days those hours fall in: exact, never a running sum. Stored rows; may hold not-yet-merged copies: query the view shop_gmv_day.'
;
CREATE VIEW IF NOT EXISTS `{db}`.`shop_gmv_day` (
  `day` Date COMMENT 'day of event_time in Asia/Shanghai (the business day)',
  `shop_id` String COMMENT 'shop of the order',
  `gmv_fen` Int64 COMMENT 'paid GMV (fen)',
  `refund_fen` Int64 COMMENT 'refunds, as a positive number (fen)',
  `net_fen` Int64 COMMENT 'gmv_fen - refund_fen',
  `orders` UInt64 COMMENT 'paid orders (counted once per order)',
  `refunds` UInt64 COMMENT 'refund events',
  `buyers` AggregateFunction(uniq, String) COMMENT 'distinct buyers of those orders: uniqMerge(buyers)',
  `refreshed_at` DateTime64(6, 'UTC') COMMENT 'when this row was recomputed; the latest wins'
) AS SELECT `day`, `shop_id`, `gmv_fen`, `refund_fen`, `net_fen`, `orders`, `refunds`, `buyers`, `refreshed_at` FROM `{db}`.`shop_gmv_day_store` FINAL
COMMENT 'Whole order amounts per shop (the dashboard\'s KPIs: a few buyer states to merge, not one per SKU), per Asia/Shanghai day; recomputed by the worker from shop_gmv_hour for the days those hours fall in: exact, never a running sum. Exact: each row once, however often it was written.'
;
CREATE TABLE IF NOT EXISTS `{db}`.`path_gmv_minute_store` (
  `minute` DateTime('UTC') COMMENT 'minute of event_time (UTC)',
  `path` String COMMENT 'the path\'s stages, e.g. short_video>live',
  `shop_id` String COMMENT 'shop of the order',
  `seller_id` String COMMENT 'account that made the sale (\'\' for pure shelf sales)',
  `channel` LowCardinality(String) COMMENT 'where the order was paid: short_video | live | clip | shelf',
  `touch_accounts` Array(String) COMMENT 'sorted distinct accounts of the path\'s touches before the conversion',
  `gmv_fen` Int64 COMMENT 'paid GMV (fen)',
  `refund_fen` Int64 COMMENT 'refunds, as a positive number (fen)',
  `net_fen` Int64 COMMENT 'gmv_fen - refund_fen',
  `orders` UInt64 COMMENT 'paid orders (counted once per order)',
  `refunds` UInt64 COMMENT 'refund events',
  `buyers` AggregateFunction(uniq, String) COMMENT 'distinct buyers of those orders: uniqMerge(buyers)',
  `refreshed_at` DateTime64(6, 'UTC') COMMENT 'when this row was recomputed; the latest wins'
)
ENGINE = ReplacingMergeTree(refreshed_at)
PARTITION BY toYYYYMM(minute)
ORDER BY (minute, path, shop_id, seller_id, channel, touch_accounts)
SETTINGS non_replicated_deduplication_window = 1000
COMMENT 'Whole order amounts per path, shop, seller, channel and the accounts of the path\'s touches, per minute; recomputed by the worker from the de-duplicated facts (attributed_gmv) for the minutes batches touched, with the trust scores: exact, never a running sum. Stored rows; may hold not-yet-merged copies: query the view path_gmv_minute.'
;
CREATE VIEW IF NOT EXISTS `{db}`.`path_gmv_minute` (
  `minute` DateTime('UTC') COMMENT 'minute of event_time (UTC)',
  `path` String COMMENT 'the path\'s stages, e.g. short_video>live',
  `shop_id` String COMMENT 'shop of the order',
  `seller_id` String COMMENT 'account that made the sale (\'\' for pure shelf sales)',
  `channel` LowCardinality(String) COMMENT 'where the order was paid: short_video | live | clip | shelf',
  `touch_accounts` Array(String) COMMENT 'sorted distinct accounts of the path\'s touches before the conversion',
  `gmv_fen` Int64 COMMENT 'paid GMV (fen)',
  `refund_fen` Int64 COMMENT 'refunds, as a positive number (fen)',
  `net_fen` Int64 COMMENT 'gmv_fen - refund_fen',
  `orders` UInt64 COMMENT 'paid orders (counted once per order)',
  `refunds` UInt64 COMMENT 'refund events',
  `buyers` AggregateFunction(uniq, String) COMMENT 'distinct buyers of those orders: uniqMerge(buyers)',
  `refreshed_at` DateTime64(6, 'UTC') COMMENT 'when this row was recomputed; the latest wins'
) AS SELECT `minute`, `path`, `shop_id`, `seller_id`, `channel`, `touch_accounts`, `gmv_fen`, `refund_fen`, `net_fen`, `orders`, `refunds`, `buyers`, `refreshed_at` FROM `{db}`.`path_gmv_minute_store` FINAL
COMMENT 'Whole order amounts per path, shop, seller, channel and the accounts of the path\'s touches, per minute; recomputed by the worker from the de-duplicated facts (attributed_gmv) for the minutes batches touched, with the trust scores: exact, never a running sum. Exact: each row once, however often it was written.'
;
CREATE TABLE IF NOT EXISTS `{db}`.`path_gmv_hour_store` (
  `hour` DateTime('UTC') COMMENT 'hour of event_time (UTC)',
  `path` String COMMENT 'the path\'s stages, e.g. short_video>live',
  `shop_id` String COMMENT 'shop of the order',
  `seller_id` String COMMENT 'account that made the sale (\'\' for pure shelf sales)',
  `channel` LowCardinality(String) COMMENT 'where the order was paid: short_video | live | clip | shelf',
  `touch_accounts` Array(String) COMMENT 'sorted distinct accounts of the path\'s touches before the conversion',
  `gmv_fen` Int64 COMMENT 'paid GMV (fen)',
  `refund_fen` Int64 COMMENT 'refunds, as a positive number (fen)',
  `net_fen` Int64 COMMENT 'gmv_fen - refund_fen',
  `orders` UInt64 COMMENT 'paid orders (counted once per order)',
  `refunds` UInt64 COMMENT 'refund events',
  `buyers` AggregateFunction(uniq, String) COMMENT 'distinct buyers of those orders: uniqMerge(buyers)',
  `refreshed_at` DateTime64(6, 'UTC') COMMENT 'when this row was recomputed; the latest wins'
)
ENGINE = ReplacingMergeTree(refreshed_at)
PARTITION BY toYYYYMM(hour)
ORDER BY (hour, path, shop_id, seller_id, channel, touch_accounts)
SETTINGS non_replicated_deduplication_window = 1000
COMMENT 'Whole order amounts per path, shop, seller, channel and the accounts of the path\'s touches, per hour; recomputed by the worker from path_gmv_minute for the hours those minutes fall in: exact, never a running sum. Stored rows; may hold not-yet-merged copies: query the view path_gmv_hour.'
;
CREATE VIEW IF NOT EXISTS `{db}`.`path_gmv_hour` (
  `hour` DateTime('UTC') COMMENT 'hour of event_time (UTC)',
  `path` String COMMENT 'the path\'s stages, e.g. short_video>live',
  `shop_id` String COMMENT 'shop of the order',
  `seller_id` String COMMENT 'account that made the sale (\'\' for pure shelf sales)',
  `channel` LowCardinality(String) COMMENT 'where the order was paid: short_video | live | clip | shelf',
  `touch_accounts` Array(String) COMMENT 'sorted distinct accounts of the path\'s touches before the conversion',
  `gmv_fen` Int64 COMMENT 'paid GMV (fen)',
  `refund_fen` Int64 COMMENT 'refunds, as a positive number (fen)',
  `net_fen` Int64 COMMENT 'gmv_fen - refund_fen',
  `orders` UInt64 COMMENT 'paid orders (counted once per order)',
  `refunds` UInt64 COMMENT 'refund events',
  `buyers` AggregateFunction(uniq, String) COMMENT 'distinct buyers of those orders: uniqMerge(buyers)',
  `refreshed_at` DateTime64(6, 'UTC') COMMENT 'when this row was recomputed; the latest wins'
) AS SELECT `hour`, `path`, `shop_id`, `seller_id`, `channel`, `touch_accounts`, `gmv_fen`, `refund_fen`, `net_fen`, `orders`, `refunds`, `buyers`, `refreshed_at` FROM `{db}`.`path_gmv_hour_store` FINAL
COMMENT 'Whole order amounts per path, shop, seller, channel and the accounts of the path\'s touches, per hour; recomputed by the worker from path_gmv_minute for the hours those minutes fall in: exact, never a running sum. Exact: each row once, however often it was written.'
;
CREATE TABLE IF NOT EXISTS `{db}`.`path_gmv_day_store` (
  `day` Date COMMENT 'day of event_time in Asia/Shanghai (the business day)',
  `path` String COMMENT 'the path\'s stages, e.g. short_video>live',
  `shop_id` String COMMENT 'shop of the order',
  `seller_id` String COMMENT 'account that made the sale (\'\' for pure shelf sales)',
  `channel` LowCardinality(String) COMMENT 'where the order was paid: short_video | live | clip | shelf',
  `touch_accounts` Array(String) COMMENT 'sorted distinct accounts of the path\'s touches before the conversion',
  `gmv_fen` Int64 COMMENT 'paid GMV (fen)',
  `refund_fen` Int64 COMMENT 'refunds, as a positive number (fen)',
  `net_fen` Int64 COMMENT 'gmv_fen - refund_fen',
  `orders` UInt64 COMMENT 'paid orders (counted once per order)',
  `refunds` UInt64 COMMENT 'refund events',
  `buyers` AggregateFunction(uniq, String) COMMENT 'distinct buyers of those orders: uniqMerge(buyers)',
  `refreshed_at` DateTime64(6, 'UTC') COMMENT 'when this row was recomputed; the latest wins'
)
ENGINE = ReplacingMergeTree(refreshed_at)
PARTITION BY toYYYYMM(day)
ORDER BY (day, path, shop_id, seller_id, channel, touch_accounts)
SETTINGS non_replicated_deduplication_window = 1000
COMMENT 'Whole order amounts per path, shop, seller, channel and the accounts of the path\'s touches, per Asia/Shanghai day; recomputed by the worker from path_gmv_hour for the days those hours fall in: exact, never a running sum. Stored rows; may hold not-yet-merged copies: query the view path_gmv_day.'
;
CREATE VIEW IF NOT EXISTS `{db}`.`path_gmv_day` (
  `day` Date COMMENT 'day of event_time in Asia/Shanghai (the business day)',
  `path` String COMMENT 'the path\'s stages, e.g. short_video>live',
  `shop_id` String COMMENT 'shop of the order',
  `seller_id` String COMMENT 'account that made the sale (\'\' for pure shelf sales)',
  `channel` LowCardinality(String) COMMENT 'where the order was paid: short_video | live | clip | shelf',
  `touch_accounts` Array(String) COMMENT 'sorted distinct accounts of the path\'s touches before the conversion',
  `gmv_fen` Int64 COMMENT 'paid GMV (fen)',
  `refund_fen` Int64 COMMENT 'refunds, as a positive number (fen)',
  `net_fen` Int64 COMMENT 'gmv_fen - refund_fen',
  `orders` UInt64 COMMENT 'paid orders (counted once per order)',
  `refunds` UInt64 COMMENT 'refund events',
  `buyers` AggregateFunction(uniq, String) COMMENT 'distinct buyers of those orders: uniqMerge(buyers)',
  `refreshed_at` DateTime64(6, 'UTC') COMMENT 'when this row was recomputed; the latest wins'
) AS SELECT `day`, `path`, `shop_id`, `seller_id`, `channel`, `touch_accounts`, `gmv_fen`, `refund_fen`, `net_fen`, `orders`, `refunds`, `buyers`, `refreshed_at` FROM `{db}`.`path_gmv_day_store` FINAL
COMMENT 'Whole order amounts per path, shop, seller, channel and the accounts of the path\'s touches, per Asia/Shanghai day; recomputed by the worker from path_gmv_hour for the days those hours fall in: exact, never a running sum. Exact: each row once, however often it was written.'
;
CREATE TABLE IF NOT EXISTS `{db}`.`gmv_hour_store` (
  `hour` DateTime('UTC') COMMENT 'hour of event_time (UTC)',
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
PARTITION BY toYYYYMM(hour)
ORDER BY (hour, model, stage, channel, traffic, shop_id, seller_id, touch_account_id, is_self)
SETTINGS non_replicated_deduplication_window = 1000
COMMENT 'Attributed GMV; same columns as gmv_minute, per hour; recomputed by the worker from gmv_minute for the hours those minutes fall in: exact, never a running sum. Stored rows; may hold not-yet-merged copies: query the view gmv_hour.'
;
CREATE VIEW IF NOT EXISTS `{db}`.`gmv_hour` (
  `hour` DateTime('UTC') COMMENT 'hour of event_time (UTC)',
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
) AS SELECT `hour`, `model`, `stage`, `channel`, `traffic`, `shop_id`, `seller_id`, `touch_account_id`, `is_self`, `gmv_fen`, `refund_fen`, `net_fen`, `orders`, `refunds`, `buyers`, `refreshed_at` FROM `{db}`.`gmv_hour_store` FINAL
COMMENT 'Attributed GMV; same columns as gmv_minute, per hour; recomputed by the worker from gmv_minute for the hours those minutes fall in: exact, never a running sum. Exact: each row once, however often it was written.'
;
CREATE TABLE IF NOT EXISTS `{db}`.`gmv_day_store` (
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
  `buyers` AggregateFunction(uniq, String) COMMENT 'distinct buyers of those orders: uniqMerge(buyers)',
  `refreshed_at` DateTime64(6, 'UTC') COMMENT 'when this row was recomputed from the facts; the latest wins'
)
ENGINE = ReplacingMergeTree(refreshed_at)
PARTITION BY toYYYYMM(day)
ORDER BY (day, model, stage, channel, traffic, shop_id, seller_id, touch_account_id, is_self)
SETTINGS non_replicated_deduplication_window = 1000
COMMENT 'Attributed GMV; same columns as gmv_minute, per Asia/Shanghai day; recomputed by the worker from gmv_hour for the days those hours fall in: exact, never a running sum. Stored rows; may hold not-yet-merged copies: query the view gmv_day.'
;
CREATE VIEW IF NOT EXISTS `{db}`.`gmv_day` (
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
  `buyers` AggregateFunction(uniq, String) COMMENT 'distinct buyers of those orders: uniqMerge(buyers)',
  `refreshed_at` DateTime64(6, 'UTC') COMMENT 'when this row was recomputed from the facts; the latest wins'
) AS SELECT `day`, `model`, `stage`, `channel`, `traffic`, `shop_id`, `seller_id`, `touch_account_id`, `is_self`, `gmv_fen`, `refund_fen`, `net_fen`, `orders`, `refunds`, `buyers`, `refreshed_at` FROM `{db}`.`gmv_day_store` FINAL
COMMENT 'Attributed GMV; same columns as gmv_minute, per Asia/Shanghai day; recomputed by the worker from gmv_hour for the days those hours fall in: exact, never a running sum. Exact: each row once, however often it was written.'
;
CREATE TABLE IF NOT EXISTS `{db}`.`funnel_hour_store` (
  `hour` DateTime('UTC') COMMENT 'hour of event_time (UTC)',
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
PARTITION BY toYYYYMM(hour)
ORDER BY (hour, stage, account_id, content_id, shop_id, traffic)
SETTINGS non_replicated_deduplication_window = 1000
COMMENT 'Funnel (views, engaged views, live enters, unique viewers); same columns as funnel_minute, per hour; recomputed by the worker from funnel_minute for the hours those minutes fall in: exact, never a running sum. Stored rows; may hold not-yet-merged copies: query the view funnel_hour.'
;
CREATE VIEW IF NOT EXISTS `{db}`.`funnel_hour` (
  `hour` DateTime('UTC') COMMENT 'hour of event_time (UTC)',
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
) AS SELECT `hour`, `stage`, `account_id`, `content_id`, `shop_id`, `traffic`, `views`, `engaged_views`, `live_enters`, `viewers`, `refreshed_at` FROM `{db}`.`funnel_hour_store` FINAL
COMMENT 'Funnel (views, engaged views, live enters, unique viewers); same columns as funnel_minute, per hour; recomputed by the worker from funnel_minute for the hours those minutes fall in: exact, never a running sum. Exact: each row once, however often it was written.'
;
CREATE TABLE IF NOT EXISTS `{db}`.`funnel_day_store` (
  `day` DateTime('Asia/Shanghai') COMMENT 'day in Asia/Shanghai (the business day)',
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
PARTITION BY toYYYYMM(day)
ORDER BY (day, stage, account_id, content_id, shop_id, traffic)
SETTINGS non_replicated_deduplication_window = 1000
COMMENT 'Funnel (views, engaged views, live enters, unique viewers); same columns as funnel_minute, per Asia/Shanghai day; recomputed by the worker from funnel_hour for the days those hours fall in: exact, never a running sum. Stored rows; may hold not-yet-merged copies: query the view funnel_day.'
;
CREATE VIEW IF NOT EXISTS `{db}`.`funnel_day` (
  `day` DateTime('Asia/Shanghai') COMMENT 'day in Asia/Shanghai (the business day)',
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
) AS SELECT `day`, `stage`, `account_id`, `content_id`, `shop_id`, `traffic`, `views`, `engaged_views`, `live_enters`, `viewers`, `refreshed_at` FROM `{db}`.`funnel_day_store` FINAL
COMMENT 'Funnel (views, engaged views, live enters, unique viewers); same columns as funnel_minute, per Asia/Shanghai day; recomputed by the worker from funnel_hour for the days those hours fall in: exact, never a running sum. Exact: each row once, however often it was written.'
;
INSERT INTO `{db}`.`content_credit_minute_store` SELECT toStartOfMinute(event_time) AS m, model, stage, touch_account_id, touch_content_id, is_self, shop_id, sumIf(credit_fen, kind = 'paid'), -sumIf(credit_fen, kind = 'refund'), sum(credit_fen), countIf(kind = 'paid' AND is_conversion = 1), countIf(kind = 'refund' AND is_conversion = 1), uniqStateIf(user_id, kind = 'paid' AND is_conversion = 1), now64(6) FROM `{db}`.attributed_gmv WHERE 1 GROUP BY m, model, stage, touch_account_id, touch_content_id, is_self, shop_id
;
INSERT INTO `{db}`.`sku_gmv_minute_store` SELECT toStartOfMinute(event_time) AS m, shop_id, sku_id, seller_id, channel, traffic, sumIf(credit_fen, kind = 'paid'), -sumIf(credit_fen, kind = 'refund'), sum(credit_fen), countIf(kind = 'paid' AND 1), countIf(kind = 'refund' AND 1), uniqStateIf(user_id, kind = 'paid' AND 1), now64(6) FROM `{db}`.attributed_gmv WHERE 1 AND model = 'last_touch' AND is_conversion = 1 GROUP BY m, shop_id, sku_id, seller_id, channel, traffic
;
INSERT INTO `{db}`.`shop_gmv_minute_store` SELECT toStartOfMinute(event_time) AS m, shop_id, sumIf(credit_fen, kind = 'paid'), -sumIf(credit_fen, kind = 'refund'), sum(credit_fen), countIf(kind = 'paid' AND 1), countIf(kind = 'refund' AND 1), uniqStateIf(user_id, kind = 'paid' AND 1), now64(6) FROM `{db}`.attributed_gmv WHERE 1 AND model = 'last_touch' AND is_conversion = 1 GROUP BY m, shop_id
;
INSERT INTO `{db}`.`path_gmv_minute_store` SELECT m, path, shop_id, seller_id, channel, touch_accounts, sumIf(amount, kind = 'paid'), -sumIf(amount, kind = 'refund'), sum(amount), countIf(kind = 'paid'), countIf(kind = 'refund'), uniqStateIf(user_id, kind = 'paid'), now64(6) FROM (SELECT event_id, toStartOfMinute(any(event_time)) AS m, any(path) AS path, any(shop_id) AS shop_id, any(seller_id) AS seller_id, any(channel) AS channel, any(kind) AS kind, any(user_id) AS user_id, sum(credit_fen) AS amount, arraySort(groupUniqArrayIf(touch_account_id, is_conversion = 0 AND touch_account_id != '')) AS touch_accounts FROM `{db}`.attributed_gmv WHERE 1 AND model = 'last_touch' GROUP BY event_id) GROUP BY m, path, shop_id, seller_id, channel, touch_accounts
;
INSERT INTO `{db}`.content_credit_hour_store SELECT toStartOfHour(minute) AS p, model, stage, account_id, content_id, is_self, shop_id, sum(gmv_fen), sum(refund_fen), sum(net_fen), sum(orders), sum(refunds), uniqMergeState(buyers), now64(6) FROM `{db}`.content_credit_minute GROUP BY p, model, stage, account_id, content_id, is_self, shop_id
;
INSERT INTO `{db}`.sku_gmv_hour_store SELECT toStartOfHour(minute) AS p, shop_id, sku_id, seller_id, channel, traffic, sum(gmv_fen), sum(refund_fen), sum(net_fen), sum(orders), sum(refunds), uniqMergeState(buyers), now64(6) FROM `{db}`.sku_gmv_minute GROUP BY p, shop_id, sku_id, seller_id, channel, traffic
;
INSERT INTO `{db}`.shop_gmv_hour_store SELECT toStartOfHour(minute) AS p, shop_id, sum(gmv_fen), sum(refund_fen), sum(net_fen), sum(orders), sum(refunds), uniqMergeState(buyers), now64(6) FROM `{db}`.shop_gmv_minute GROUP BY p, shop_id
;
INSERT INTO `{db}`.path_gmv_hour_store SELECT toStartOfHour(minute) AS p, path, shop_id, seller_id, channel, touch_accounts, sum(gmv_fen), sum(refund_fen), sum(net_fen), sum(orders), sum(refunds), uniqMergeState(buyers), now64(6) FROM `{db}`.path_gmv_minute GROUP BY p, path, shop_id, seller_id, channel, touch_accounts
;
INSERT INTO `{db}`.gmv_hour_store SELECT toStartOfHour(minute) AS p, model, stage, channel, traffic, shop_id, seller_id, touch_account_id, is_self, sum(gmv_fen), sum(refund_fen), sum(net_fen), sum(orders), sum(refunds), uniqMergeState(buyers), now64(6) FROM `{db}`.gmv_minute GROUP BY p, model, stage, channel, traffic, shop_id, seller_id, touch_account_id, is_self
;
INSERT INTO `{db}`.funnel_hour_store SELECT toStartOfHour(minute) AS p, stage, account_id, content_id, shop_id, traffic, sum(views), sum(engaged_views), sum(live_enters), uniqMergeState(viewers), now64(6) FROM `{db}`.funnel_minute GROUP BY p, stage, account_id, content_id, shop_id, traffic
;
INSERT INTO `{db}`.content_credit_day_store SELECT toDate(hour, 'Asia/Shanghai') AS p, model, stage, account_id, content_id, is_self, shop_id, sum(gmv_fen), sum(refund_fen), sum(net_fen), sum(orders), sum(refunds), uniqMergeState(buyers), now64(6) FROM `{db}`.content_credit_hour GROUP BY p, model, stage, account_id, content_id, is_self, shop_id
;
INSERT INTO `{db}`.sku_gmv_day_store SELECT toDate(hour, 'Asia/Shanghai') AS p, shop_id, sku_id, seller_id, channel, traffic, sum(gmv_fen), sum(refund_fen), sum(net_fen), sum(orders), sum(refunds), uniqMergeState(buyers), now64(6) FROM `{db}`.sku_gmv_hour GROUP BY p, shop_id, sku_id, seller_id, channel, traffic
;
INSERT INTO `{db}`.shop_gmv_day_store SELECT toDate(hour, 'Asia/Shanghai') AS p, shop_id, sum(gmv_fen), sum(refund_fen), sum(net_fen), sum(orders), sum(refunds), uniqMergeState(buyers), now64(6) FROM `{db}`.shop_gmv_hour GROUP BY p, shop_id
;
INSERT INTO `{db}`.path_gmv_day_store SELECT toDate(hour, 'Asia/Shanghai') AS p, path, shop_id, seller_id, channel, touch_accounts, sum(gmv_fen), sum(refund_fen), sum(net_fen), sum(orders), sum(refunds), uniqMergeState(buyers), now64(6) FROM `{db}`.path_gmv_hour GROUP BY p, path, shop_id, seller_id, channel, touch_accounts
;
INSERT INTO `{db}`.gmv_day_store SELECT toStartOfDay(hour, 'Asia/Shanghai') AS p, model, stage, channel, traffic, shop_id, seller_id, touch_account_id, is_self, sum(gmv_fen), sum(refund_fen), sum(net_fen), sum(orders), sum(refunds), uniqMergeState(buyers), now64(6) FROM `{db}`.gmv_hour GROUP BY p, model, stage, channel, traffic, shop_id, seller_id, touch_account_id, is_self
;
INSERT INTO `{db}`.funnel_day_store SELECT toStartOfDay(hour, 'Asia/Shanghai') AS p, stage, account_id, content_id, shop_id, traffic, sum(views), sum(engaged_views), sum(live_enters), uniqMergeState(viewers), now64(6) FROM `{db}`.funnel_hour GROUP BY p, stage, account_id, content_id, shop_id, traffic
;
CREATE VIEW IF NOT EXISTS `{db}`.`store_gmv_daily` (
  `day` Date COMMENT 'business day (Asia/Shanghai)',
  `shop_id` String COMMENT 'shop',
  `brand_id` String COMMENT 'the shop\'s brand (from its bindings; \'\' if the shop has none)',
  `bound_accounts` UInt64 COMMENT 'accounts bound to the shop that sold that day',
  `self_net_fen` Int64 COMMENT 'net GMV sold by the brand\'s own accounts (自播)',
  `distributor_net_fen` Int64 COMMENT 'net GMV sold by distributor accounts bound to the shop',
  `bound_net_fen` Int64 COMMENT 'self_net_fen + distributor_net_fen: the store across its bound accounts',
  `unbound_net_fen` Int64 COMMENT 'net GMV of the shop\'s orders whose seller is not bound to it, or none (pure shelf)',
  `net_fen` Int64 COMMENT 'all net GMV of the shop (bound + unbound)',
  `gmv_fen` Int64 COMMENT 'all paid GMV of the shop',
  `refund_fen` Int64 COMMENT 'all refunds of the shop (positive)',
  `orders` UInt64 COMMENT 'paid orders of the shop'
) AS SELECT g.day AS day, g.shop_id AS shop_id, any(sb.brand_id) AS brand_id,
       toUInt64(uniqExactIf(g.seller_id, a.role != '')) AS bound_accounts,
       sumIf(g.net, a.role = 'self') AS self_net_fen, sumIf(g.net, a.role = 'distributor') AS distributor_net_fen,
       sumIf(g.net, a.role != '') AS bound_net_fen, sumIf(g.net, a.role = '') AS unbound_net_fen,
       sum(g.net) AS net_fen, sum(g.gmv) AS gmv_fen, sum(g.refund) AS refund_fen, sum(g.orders) AS orders
FROM (SELECT day, shop_id, seller_id, sum(gmv_fen) AS gmv, sum(refund_fen) AS refund, sum(net_fen) AS net,
             sum(orders) AS orders FROM `{db}`.`sku_gmv_day` GROUP BY day, shop_id, seller_id) AS g
LEFT JOIN `{db}`.`dim_accounts` AS a ON a.account_id = g.seller_id AND a.shop_id = g.shop_id
LEFT JOIN (SELECT shop_id, any(brand_id) AS brand_id FROM `{db}`.`dim_accounts` GROUP BY shop_id) AS sb ON sb.shop_id = g.shop_id
GROUP BY g.day, g.shop_id
COMMENT '一店多号: per shop and Asia/Shanghai day, the GMV of every account bound to the shop (dim_accounts), split into the brand\'s own accounts and distributors, beside what unbound sellers and pure shelf sales (no seller) sold. Whole order amounts from sku_gmv_day; refunds count on their own day.'
;
CREATE VIEW IF NOT EXISTS `{db}`.`chuanliu_daily` (
  `day` Date COMMENT 'business day (Asia/Shanghai)',
  `brand_id` String COMMENT 'brand',
  `brand_name` String COMMENT 'brand name',
  `self_gmv_fen` Int64 COMMENT 'paid GMV sold by the brand\'s own accounts (自播)',
  `self_net_fen` Int64 COMMENT 'the same, net of refunds',
  `self_orders` UInt64 COMMENT 'paid orders sold by the brand\'s own accounts',
  `assisted_gmv_fen` Int64 COMMENT 'of self_gmv_fen, orders whose path holds a distributor touch',
  `assisted_net_fen` Int64 COMMENT 'the same, net of refunds',
  `assisted_orders` UInt64 COMMENT 'of self_orders, those with a distributor touch',
  `assisted_share` Float64 COMMENT 'assisted_gmv_fen / self_gmv_fen (0 without self-broadcast GMV)',
  `increment` Nullable(Float64) COMMENT 'assisted_gmv_fen / (self_gmv_fen - assisted_gmv_fen): the self-broadcast GMV distributors added over the unassisted base, e.g. 0.38 = +38% (NULL without an unassisted base)'
) AS SELECT p.day AS day, a.brand_id AS brand_id, any(a.brand_name) AS brand_name, sum(p.gmv) AS self_gmv_fen,
       sum(p.net) AS self_net_fen, sum(p.orders) AS self_orders,
       sumIf(p.gmv, hasAny(p.touch_accounts, d.distributors)) AS assisted_gmv_fen,
       sumIf(p.net, hasAny(p.touch_accounts, d.distributors)) AS assisted_net_fen,
       sumIf(p.orders, hasAny(p.touch_accounts, d.distributors)) AS assisted_orders,
       if(self_gmv_fen = 0, 0, assisted_gmv_fen / self_gmv_fen) AS assisted_share,
       if(self_gmv_fen = assisted_gmv_fen, NULL, assisted_gmv_fen / (self_gmv_fen - assisted_gmv_fen)) AS increment
FROM (SELECT day, shop_id, seller_id, touch_accounts, sum(gmv_fen) AS gmv, sum(net_fen) AS net, sum(orders) AS orders
      FROM `{db}`.`path_gmv_day` GROUP BY day, shop_id, seller_id, touch_accounts) AS p
INNER JOIN (SELECT account_id, shop_id, brand_id, brand_name FROM `{db}`.`dim_accounts` WHERE role = 'self') AS a
  ON a.account_id = p.seller_id AND a.shop_id = p.shop_id
LEFT JOIN (SELECT brand_id, groupUniqArray(account_id) AS distributors FROM `{db}`.`dim_accounts`
           WHERE role = 'distributor' GROUP BY brand_id) AS d ON d.brand_id = a.brand_id
GROUP BY p.day, a.brand_id
COMMENT '川流: per brand and Asia/Shanghai day, self-broadcast GMV (orders sold by the brand\'s own accounts) and the part whose path holds a touch by one of the brand\'s distributor accounts (their content led the buyer to the brand\'s own room or video), with its share and the increment it represents over the unassisted self-broadcast GMV. Whole order amounts from path_gmv_day; refunds count on their own day.'
;
CREATE VIEW IF NOT EXISTS `{db}`.`shelf_content_daily` (
  `day` Date COMMENT 'business day (Asia/Shanghai)',
  `shelf_gmv_fen` Int64 COMMENT 'paid GMV of orders paid on the shelf (channel shelf)',
  `content_gmv_fen` Int64 COMMENT 'paid GMV of orders paid in content (short_video, live, clip)',
  `shelf_net_fen` Int64 COMMENT 'shelf GMV net of refunds (refunds on their own day)',
  `content_net_fen` Int64 COMMENT 'content GMV net of refunds',
  `shelf_share` Float64 COMMENT 'shelf_gmv_fen / (shelf_gmv_fen + content_gmv_fen)',
  `shelf_share_dod` Nullable(Float64) COMMENT 'shelf_share minus the day before\'s (NULL if that day has no GMV)',
  `shelf_share_wow` Nullable(Float64) COMMENT 'shelf_share minus that of 7 days before (NULL if that day has no GMV)',
  `shelf_gmv_dod` Nullable(Float64) COMMENT 'shelf GMV growth over the day before: shelf_gmv_fen / that - 1',
  `shelf_gmv_wow` Nullable(Float64) COMMENT 'shelf GMV growth over 7 days before'
) AS WITH d AS (SELECT day, sumIf(gmv_fen, channel = 'shelf') AS shelf, sumIf(gmv_fen, channel != 'shelf') AS content,
                  sumIf(net_fen, channel = 'shelf') AS shelf_net, sumIf(net_fen, channel != 'shelf') AS content_net,
                  if(shelf + content = 0, 0, shelf / (shelf + content)) AS share, toUInt8(shelf + content != 0) AS present
           FROM `{db}`.`sku_gmv_day` GROUP BY day)
SELECT t.day AS day, t.shelf AS shelf_gmv_fen, t.content AS content_gmv_fen, t.shelf_net AS shelf_net_fen,
       t.content_net AS content_net_fen, t.share AS shelf_share,
       if(y.present = 1, t.share - y.share, NULL) AS shelf_share_dod, if(w.present = 1, t.share - w.share, NULL) AS shelf_share_wow,
       if(y.shelf != 0, t.shelf / y.shelf - 1, NULL) AS shelf_gmv_dod, if(w.shelf != 0, t.shelf / w.shelf - 1, NULL) AS shelf_gmv_wow
FROM d AS t
LEFT JOIN (SELECT day + 1 AS next, * FROM d) AS y ON y.next = t.day
LEFT JOIN (SELECT day + 7 AS next, * FROM d) AS w ON w.next = t.day
COMMENT 'Shelf vs content: per Asia/Shanghai day, paid GMV of orders paid on the shelf (mall, search, store, recommend) and in content (short video, live, clip), the shelf share, and its change day over day and week over week (percentage points). Whole order amounts from sku_gmv_day.'
;
CREATE VIEW IF NOT EXISTS `{db}`.`sku_sell_through_daily` (
  `day` Date COMMENT 'business day (Asia/Shanghai)',
  `shop_id` String COMMENT 'shop',
  `listed_skus` UInt64 COMMENT 'SKUs in the shop\'s catalog that day',
  `sold_skus` UInt64 COMMENT 'of those, SKUs with >= 1 paid order that day',
  `sell_through` Float64 COMMENT 'sold_skus / listed_skus'
) AS SELECT c.day AS day, c.shop_id AS shop_id, toUInt64(count()) AS listed_skus, toUInt64(countIf(s.orders > 0)) AS sold_skus,
       sold_skus / listed_skus AS sell_through
FROM `{db}`.`dim_skus` AS c
LEFT JOIN (SELECT day, shop_id, sku_id, sum(orders) AS orders FROM `{db}`.`sku_gmv_day` GROUP BY day, shop_id, sku_id) AS s
  ON s.day = c.day AND s.shop_id = c.shop_id AND s.sku_id = c.sku_id
GROUP BY c.day, c.shop_id
COMMENT '动销率 (sell-through): per shop and Asia/Shanghai day, the SKUs listed that day (dim_skus) and how many of them had at least one paid order that day; sell_through = sold_skus / listed_skus. Orders of SKUs not listed that day do not count.'
;
CREATE VIEW IF NOT EXISTS `{db}`.`traffic_daily` (
  `day` Date COMMENT 'business day (Asia/Shanghai)',
  `shop_id` String COMMENT 'shop',
  `traffic` LowCardinality(String) COMMENT 'public | private',
  `views` UInt64 COMMENT 'video views + live enters of content mounting the shop, with this traffic',
  `viewers` UInt64 COMMENT 'unique viewers of those',
  `gmv_fen` Int64 COMMENT 'paid GMV of orders converting with this traffic',
  `net_fen` Int64 COMMENT 'the same, net of refunds',
  `orders` UInt64 COMMENT 'paid orders',
  `buyers` UInt64 COMMENT 'distinct buyers',
  `gpm_yuan` Float64 COMMENT 'GPM: gmv (yuan) per 1,000 views (0 without views)',
  `conversion_rate` Float64 COMMENT 'buyers / viewers (0 without viewers)'
) AS SELECT day, shop_id, traffic, f.v AS views, f.uv AS viewers, g.gmv AS gmv_fen, g.net AS net_fen, g.o AS orders,
       g.b AS buyers, if(views = 0, 0, gmv_fen / 100 * 1000 / views) AS gpm_yuan,
       if(viewers = 0, 0, buyers / viewers) AS conversion_rate
FROM (SELECT day, shop_id, traffic, sum(gmv_fen) AS gmv, sum(net_fen) AS net, sum(orders) AS o,
             uniqMerge(buyers) AS b FROM `{db}`.`sku_gmv_day` GROUP BY day, shop_id, traffic) AS g
FULL OUTER JOIN (SELECT toDate(day) AS day, shop_id, traffic, sum(views) AS v, uniqMerge(viewers) AS uv
                 FROM `{db}`.`funnel_day` WHERE shop_id != '' GROUP BY day, shop_id, traffic) AS f
USING (day, shop_id, traffic)
COMMENT 'Public vs private traffic (公域 / 私域) per shop and Asia/Shanghai day: views and unique viewers of content mounting the shop (funnel_day), and the GMV, orders and buyers of orders whose conversion touch came with that traffic (sku_gmv_day), with GPM and conversion rate.'
;
CREATE VIEW IF NOT EXISTS `{db}`.`linkage_daily` (
  `day` Date COMMENT 'business day (Asia/Shanghai)',
  `linked_accounts` UInt64 COMMENT 'accounts with short-video views and live enters that day',
  `linked_net_fen` Int64 COMMENT 'net GMV those accounts sold that day (as seller)',
  `unlinked_accounts` UInt64 COMMENT 'accounts with views of only short videos or only their live that day',
  `unlinked_net_fen` Int64 COMMENT 'net GMV those accounts sold that day',
  `linked_per_account_fen` Float64 COMMENT 'linked_net_fen / linked_accounts (0 without linked accounts)',
  `unlinked_per_account_fen` Float64 COMMENT 'unlinked_net_fen / unlinked_accounts (0 without)',
  `lift` Nullable(Float64) COMMENT 'linked_per_account_fen / unlinked_per_account_fen - 1 (NULL when either side is missing)'
) AS SELECT day, toUInt64(countIf(linked)) AS linked_accounts, sumIf(net, linked) AS linked_net_fen,
       toUInt64(countIf(NOT linked)) AS unlinked_accounts, sumIf(net, NOT linked) AS unlinked_net_fen,
       if(linked_accounts = 0, 0, linked_net_fen / linked_accounts) AS linked_per_account_fen,
       if(unlinked_accounts = 0, 0, unlinked_net_fen / unlinked_accounts) AS unlinked_per_account_fen,
       if(linked_accounts = 0 OR unlinked_per_account_fen = 0, NULL,
          linked_per_account_fen / unlinked_per_account_fen - 1) AS lift
FROM (SELECT day, account_id, video_views > 0 AND enters > 0 AS linked, net
      FROM (SELECT toDate(day) AS day, account_id, sumIf(views, stage = 'short_video') AS video_views,
                   sumIf(live_enters, stage = 'live') AS enters
            FROM `{db}`.`funnel_day` WHERE account_id != '' GROUP BY day, account_id) AS f
      LEFT JOIN (SELECT day, seller_id AS account_id, sum(net_fen) AS net FROM `{db}`.`sku_gmv_day`
                 WHERE seller_id != '' GROUP BY day, account_id) AS g USING (day, account_id))
GROUP BY day
COMMENT 'Linkage lift (短直短 联动): per Asia/Shanghai day, accounts that both had short-video views and ran a live with enters that day (linked) against accounts that had only one of them, and the net GMV they sold per account-day; lift = linked per account / unlinked per account - 1.'
;
CREATE VIEW IF NOT EXISTS `{db}`.`brand_quarterly` (
  `brand_id` String COMMENT 'brand',
  `brand_name` String COMMENT 'brand name',
  `quarter` Date COMMENT 'first day of the quarter (Asia/Shanghai)',
  `gmv_fen` Int64 COMMENT 'paid GMV of the brand\'s shops in the quarter',
  `net_fen` Int64 COMMENT 'the same, net of refunds',
  `orders` UInt64 COMMENT 'paid orders',
  `gmv_fen_year_before` Nullable(Int64) COMMENT 'paid GMV in the same quarter a year before (NULL: none)',
  `gmv_yoy` Nullable(Float64) COMMENT 'gmv_fen / gmv_fen_year_before - 1 (NULL without the year before)'
) AS WITH q AS (SELECT sb.brand_id AS brand_id, any(sb.brand_name) AS brand_name, toStartOfQuarter(g.day) AS quarter,
                  sum(g.gmv_fen) AS gmv, sum(g.net_fen) AS net, sum(g.orders) AS orders
           FROM `{db}`.`sku_gmv_day` AS g
           INNER JOIN (SELECT shop_id, any(brand_id) AS brand_id, any(brand_name) AS brand_name FROM `{db}`.`dim_accounts`
                       GROUP BY shop_id) AS sb ON sb.shop_id = g.shop_id
           GROUP BY brand_id, quarter)
SELECT t.brand_id AS brand_id, t.brand_name AS brand_name, t.quarter AS quarter, t.gmv AS gmv_fen, t.net AS net_fen,
       t.orders AS orders, if(p.brand_id = '', NULL, p.gmv) AS gmv_fen_year_before,
       if(p.brand_id = '' OR p.gmv = 0, NULL, t.gmv / p.gmv - 1) AS gmv_yoy
FROM q AS t LEFT JOIN (SELECT addYears(quarter, 1) AS next, * FROM q) AS p
  ON p.brand_id = t.brand_id AND p.next = t.quarter
COMMENT 'Brands per quarter (Asia/Shanghai): paid and net GMV of the brand\'s shops (a shop\'s brand from its bindings in dim_accounts) and the change on the same quarter a year before; filter on gmv_fen for the brands past a GMV mark.'
