-- migration 3: events.element_index; accepted events logged into ingest_log by ClickHouse
-- Frozen: the DDL exactly as it shipped. Never edit it; add a new migration instead.
-- Statements are separated by a line holding only ';'. {db} stands for the database.
ALTER TABLE `{db}`.`events_store` ADD COLUMN IF NOT EXISTS `element_index` Int32 DEFAULT -1 COMMENT 'index in a producer batch (JSON array), -1 for a single-event message' AFTER `source_offset`
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
  `ingested_at` DateTime64(3, 'UTC') COMMENT 'when the pipeline accepted it (processing time, UTC)'
) AS SELECT `event_id`, `event_type`, `event_time`, `user_id`, `partition_key`, `src`, `source_topic`, `source_partition`, `source_offset`, `element_index`, `payload`, `ingested_at` FROM `{db}`.`events_store` FINAL
COMMENT 'Every accepted (valid, first-seen) event, for audit and replay. Exact: each row once, however often it was written.'
;
CREATE MATERIALIZED VIEW IF NOT EXISTS `{db}`.`events_log` TO `{db}`.`ingest_log_store` AS SELECT src, source_topic, source_partition, source_offset, element_index, event_id, event_type, 'accepted' AS outcome, '' AS reason_code, ingested_at AS logged_at FROM `{db}`.`events_store`
COMMENT 'Logs each accepted event (an events row) into ingest_log as outcome accepted.'
