-- migration 9: events.engaged; views and live-room events flattened into funnel_events by ClickHouse from the events rows (materialized view funnel_from_events), so the worker writes one row per event instead of two
-- Frozen: the DDL exactly as it shipped. Never edit it; add a new migration instead.
-- Statements are separated by a line holding only ';'. {db} stands for the database.
ALTER TABLE `{db}`.`events_store` ADD COLUMN IF NOT EXISTS `engaged` UInt8 DEFAULT 0 COMMENT '1 for a view with watch_ms >= engaged_ms and every live enter (a touchpoint), else 0 (0 on rows stored before migration 9)' AFTER `ingested_at`
;
CREATE OR REPLACE VIEW `{db}`.`events` (
  `event_id` String COMMENT 'producer\'s unique event id',
  `event_type` LowCardinality(String) COMMENT 'view | live_room | order',
  `event_time` DateTime64(3, 'UTC') COMMENT 'event time (UTC)',
  `user_id` String COMMENT 'user the event belongs to (\'\' for live start/end)',
  `partition_key` String COMMENT 'key the pipeline partitions by (user_id, or live_id for start/end)',
  `src` String COMMENT 'source message identity (file:<sha>:<line> or topic:partition:offset, #index in a batch)',
  `source_topic` LowCardinality(String) COMMENT 'Kafka topic it arrived on',
  `source_partition` Int32 COMMENT 'Kafka partition it arrived on',
  `source_offset` Int64 COMMENT 'Kafka offset it arrived at',
  `element_index` Int32 COMMENT 'index in a producer batch (JSON array), -1 for a single-event message',
  `payload` String COMMENT 'the event JSON as received (the array element, for a producer batch)',
  `ingested_at` DateTime64(3, 'UTC') COMMENT 'when the pipeline accepted it (processing time, UTC)',
  `engaged` UInt8 COMMENT '1 for a view with watch_ms >= engaged_ms and every live enter (a touchpoint), else 0 (0 on rows stored before migration 9)'
) AS SELECT `event_id`, `event_type`, `event_time`, `user_id`, `partition_key`, `src`, `source_topic`, `source_partition`, `source_offset`, `element_index`, `payload`, `ingested_at`, `engaged` FROM `{db}`.`events_store` FINAL
COMMENT 'Every accepted (valid, first-seen) event, for audit and replay. Exact: each row once, however often it was written.'
;
ALTER TABLE `{db}`.`funnel_events_store` MODIFY COMMENT 'Views and live-room events flattened for funnel metrics (one row per accepted event). Derived by ClickHouse from each events row (materialized view funnel_from_events reads its payload). Stored rows; may hold not-yet-merged copies: query the view funnel_events.'
;
ALTER TABLE `{db}`.`funnel_events` MODIFY COMMENT 'Views and live-room events flattened for funnel metrics (one row per accepted event). Derived by ClickHouse from each events row (materialized view funnel_from_events reads its payload). Exact: each row once, however often it was written.'
;
CREATE MATERIALIZED VIEW IF NOT EXISTS `{db}`.`funnel_from_events` TO `{db}`.`funnel_events_store` AS
WITH JSONExtract(payload, 'Tuple(kind String, action String, author_id String, anchor_id String, video_id String, live_id String, shop_id Nullable(String), traffic Nullable(String), watch_ms UInt64, referrer_kind Nullable(String), source_live_id Nullable(String))') AS e
SELECT event_id, event_time,
  if(event_type = 'view', e.kind, 'live') AS stage,
  if(event_type = 'view', 'view', e.action) AS action,
  user_id,
  if(event_type = 'view', e.author_id, e.anchor_id) AS account_id,
  if(event_type = 'view', e.video_id, e.live_id) AS content_id,
  ifNull(e.shop_id, '') AS shop_id,
  coalesce(nullIf(e.traffic, ''), 'public') AS traffic,
  if(event_type = 'view', e.watch_ms, 0) AS watch_ms,
  engaged,
  if(event_type = 'live_room', ifNull(e.referrer_kind, ''), '') AS referrer_kind,
  if(event_type = 'view', ifNull(e.source_live_id, ''), '') AS source_live_id
FROM `{db}`.`events_store` WHERE event_type IN ('view', 'live_room')
COMMENT 'Derives each view and live-room event\'s funnel_events row from its events row (the worker writes none).'
