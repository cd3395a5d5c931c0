-- migration 1: ingest: events, ingest_log, dead_letters, ingest_counts
-- Frozen: the DDL exactly as it shipped. Never edit it; add a new migration instead.
-- Statements are separated by a line holding only ';'. {db} stands for the database.
CREATE TABLE IF NOT EXISTS `{db}`.`events_store` (
  `event_id` String COMMENT 'producer\'s unique event id',
  `event_type` LowCardinality(String) COMMENT 'view | live_room | order',
  `event_time` DateTime64(3, 'UTC') COMMENT 'event time (UTC)',
  `user_id` String COMMENT 'user the event belongs to (\'\' for live start/end)',
  `partition_key` String COMMENT 'key the pipeline partitions by (user_id, or live_id for start/end)',
  `src` String COMMENT 'source message identity (file:<sha>:<line> or topic:partition:offset, #index in a batch)',
  `source_topic` LowCardinality(String) COMMENT 'Kafka topic it arrived on',
  `source_partition` Int32 COMMENT 'Kafka partition it arrived on',
  `source_offset` Int64 COMMENT 'Kafka offset it arrived at',
  `payload` String COMMENT 'the event JSON as received (the array element, for a producer batch)',
  `ingested_at` DateTime64(3, 'UTC') COMMENT 'when the pipeline accepted it (processing time, UTC)'
)
ENGINE = ReplacingMergeTree()
PARTITION BY toYYYYMM(event_time)
ORDER BY (event_type, event_id)
SETTINGS non_replicated_deduplication_window = 1000
COMMENT 'Every accepted (valid, first-seen) event, for audit and replay. Stored rows; may hold not-yet-merged copies: query the view events.'
;
CREATE VIEW IF NOT EXISTS `{db}`.`events` (
  `event_id` String COMMENT 'producer\'s unique event id',
  `event_type` LowCardinality(String) COMMENT 'view | live_room | order',
  `event_time` DateTime64(3, 'UTC') COMMENT 'event time (UTC)',
  `user_id` String COMMENT 'user the event belongs to (\'\' for live start/end)',
  `partition_key` String COMMENT 'key the pipeline partitions by (user_id, or live_id for start/end)',
  `src` String COMMENT 'source message identity (file:<sha>:<line> or topic:partition:offset, #index in a batch)',
  `source_topic` LowCardinality(String) COMMENT 'Kafka topic it arrived on',
  `source_partition` Int32 COMMENT 'Kafka partition it arrived on',
  `source_offset` Int64 COMMENT 'Kafka offset it arrived at',
  `payload` String COMMENT 'the event JSON as received (the array element, for a producer batch)',
  `ingested_at` DateTime64(3, 'UTC') COMMENT 'when the pipeline accepted it (processing time, UTC)'
) AS SELECT `event_id`, `event_type`, `event_time`, `user_id`, `partition_key`, `src`, `source_topic`, `source_partition`, `source_offset`, `payload`, `ingested_at` FROM `{db}`.`events_store` FINAL
COMMENT 'Every accepted (valid, first-seen) event, for audit and replay. Exact: each row once, however often it was written.'
;
CREATE TABLE IF NOT EXISTS `{db}`.`ingest_log_store` (
  `src` String COMMENT 'source message identity (see events.src)',
  `source_topic` LowCardinality(String) COMMENT 'Kafka topic',
  `source_partition` Int32 COMMENT 'Kafka partition',
  `source_offset` Int64 COMMENT 'Kafka offset',
  `element_index` Int32 COMMENT 'index in a producer batch (JSON array), -1 for a single-event message',
  `event_id` String COMMENT 'event id if one could be read, else \'\'',
  `event_type` LowCardinality(String) COMMENT 'event type if one could be read, else \'\'',
  `outcome` LowCardinality(String) COMMENT 'accepted | duplicate | dead_letter',
  `reason_code` LowCardinality(String) COMMENT 'why it was dead-lettered (\'\' otherwise)',
  `logged_at` DateTime64(3, 'UTC') COMMENT 'processing time of the outcome (UTC); the latest outcome wins'
)
ENGINE = ReplacingMergeTree(logged_at)
ORDER BY src
SETTINGS non_replicated_deduplication_window = 1000
COMMENT 'One row per received event (or undecodable message) with its outcome; counters come from here. Stored rows; may hold not-yet-merged copies: query the view ingest_log.'
;
CREATE VIEW IF NOT EXISTS `{db}`.`ingest_log` (
  `src` String COMMENT 'source message identity (see events.src)',
  `source_topic` LowCardinality(String) COMMENT 'Kafka topic',
  `source_partition` Int32 COMMENT 'Kafka partition',
  `source_offset` Int64 COMMENT 'Kafka offset',
  `element_index` Int32 COMMENT 'index in a producer batch (JSON array), -1 for a single-event message',
  `event_id` String COMMENT 'event id if one could be read, else \'\'',
  `event_type` LowCardinality(String) COMMENT 'event type if one could be read, else \'\'',
  `outcome` LowCardinality(String) COMMENT 'accepted | duplicate | dead_letter',
  `reason_code` LowCardinality(String) COMMENT 'why it was dead-lettered (\'\' otherwise)',
  `logged_at` DateTime64(3, 'UTC') COMMENT 'processing time of the outcome (UTC); the latest outcome wins'
) AS SELECT `src`, `source_topic`, `source_partition`, `source_offset`, `element_index`, `event_id`, `event_type`, `outcome`, `reason_code`, `logged_at` FROM `{db}`.`ingest_log_store` FINAL
COMMENT 'One row per received event (or undecodable message) with its outcome; counters come from here. Exact: each row once, however often it was written.'
;
CREATE TABLE IF NOT EXISTS `{db}`.`dead_letters_store` (
  `src` String COMMENT 'source message identity (see events.src)',
  `source_topic` LowCardinality(String) COMMENT 'Kafka topic the bad input arrived on',
  `source_partition` Int32 COMMENT 'Kafka partition',
  `source_offset` Int64 COMMENT 'Kafka offset',
  `element_index` Int32 COMMENT 'index in a producer batch, -1 for a single-event message',
  `event_id` String COMMENT 'event id if one could be read, else \'\'',
  `event_type` LowCardinality(String) COMMENT 'event type if one could be read, else \'\'',
  `reason_code` LowCardinality(String) COMMENT 'machine-readable reason (invalid_json, invalid_event, wrong_topic, ...)',
  `reason` String COMMENT 'what is wrong and what to do about it',
  `raw` String COMMENT 'the payload as received (first 64 KiB of an oversized one)',
  `received_at` DateTime64(3, 'UTC') COMMENT 'when it was rejected (processing time, UTC)'
)
ENGINE = ReplacingMergeTree(received_at)
ORDER BY src
SETTINGS non_replicated_deduplication_window = 1000
COMMENT 'Rejected input with the raw payload, where it came from and a reason a person can act on (also on the DLQ topic). Stored rows; may hold not-yet-merged copies: query the view dead_letters.'
;
CREATE VIEW IF NOT EXISTS `{db}`.`dead_letters` (
  `src` String COMMENT 'source message identity (see events.src)',
  `source_topic` LowCardinality(String) COMMENT 'Kafka topic the bad input arrived on',
  `source_partition` Int32 COMMENT 'Kafka partition',
  `source_offset` Int64 COMMENT 'Kafka offset',
  `element_index` Int32 COMMENT 'index in a producer batch, -1 for a single-event message',
  `event_id` String COMMENT 'event id if one could be read, else \'\'',
  `event_type` LowCardinality(String) COMMENT 'event type if one could be read, else \'\'',
  `reason_code` LowCardinality(String) COMMENT 'machine-readable reason (invalid_json, invalid_event, wrong_topic, ...)',
  `reason` String COMMENT 'what is wrong and what to do about it',
  `raw` String COMMENT 'the payload as received (first 64 KiB of an oversized one)',
  `received_at` DateTime64(3, 'UTC') COMMENT 'when it was rejected (processing time, UTC)'
) AS SELECT `src`, `source_topic`, `source_partition`, `source_offset`, `element_index`, `event_id`, `event_type`, `reason_code`, `reason`, `raw`, `received_at` FROM `{db}`.`dead_letters_store` FINAL
COMMENT 'Rejected input with the raw payload, where it came from and a reason a person can act on (also on the DLQ topic). Exact: each row once, however often it was written.'
;
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
CREATE VIEW IF NOT EXISTS `{db}`.`ingest_counts` (
  `source_topic` LowCardinality(String) COMMENT 'Kafka topic',
  `received` UInt64 COMMENT 'events received (a producer batch counts each element)',
  `accepted` UInt64 COMMENT 'valid, first-seen events',
  `duplicates` UInt64 COMMENT 're-sent event_ids (counted once)',
  `dead_lettered` UInt64 COMMENT 'rejected input (see dead_letters)',
  `rekeyed` UInt64 COMMENT 'events keyed by something other than user_id, in flight to their partition'
) AS SELECT source_topic, countIf(outcome IN ('accepted', 'duplicate', 'dead_letter')) AS received, countIf(outcome = 'accepted') AS accepted, countIf(outcome = 'duplicate') AS duplicates, countIf(outcome = 'dead_letter') AS dead_lettered, countIf(outcome = 'rekeyed') AS rekeyed FROM `{db}`.`ingest_log` GROUP BY source_topic
COMMENT 'Per-topic ingest counters: received = accepted + duplicates + dead_lettered.'
