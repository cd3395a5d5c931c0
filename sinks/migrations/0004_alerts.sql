-- migration 4: alerts (SPEC §8) and the content minute rollup that live-room rules read
-- Frozen: the DDL exactly as it shipped. Never edit it; add a new migration instead.
-- Statements are separated by a line holding only ';'. {db} stands for the database.
CREATE TABLE IF NOT EXISTS `{db}`.`alerts_store` (
  `alert_id` String COMMENT 'deterministic: hash of rule, subject and the window the alert fired in (a replay fires the same id)',
  `rule` LowCardinality(String) COMMENT 'rule name, e.g. live_no_orders (gmv alerts rules lists them)',
  `severity` LowCardinality(String) COMMENT 'critical | warning | info',
  `subject_kind` LowCardinality(String) COMMENT 'live | shop | account | pipeline',
  `subject_id` String COMMENT 'live_id, shop_id, account id, or the source topic / worker for pipeline rules',
  `state` LowCardinality(String) COMMENT 'firing | resolved',
  `value` Float64 COMMENT 'the measured value when the alert fired (unit in message)',
  `threshold` Float64 COMMENT 'the threshold it crossed',
  `window_start` DateTime64(3, 'UTC') COMMENT 'start of the window the alert fired in (event time for business rules, wall clock for pipeline rules)',
  `window_end` DateTime64(3, 'UTC') COMMENT 'end of that window (exclusive)',
  `clock` LowCardinality(String) COMMENT 'event: business rule on event time (replays fire the same alerts) | wall: pipeline rule on the wall clock',
  `fired_at` DateTime64(3, 'UTC') COMMENT 'wall-clock time the worker fired it (UTC)',
  `resolved_at` Nullable(DateTime64(3, 'UTC')) COMMENT 'wall-clock time the condition cleared (NULL while firing)',
  `resolved_window_end` Nullable(DateTime64(3, 'UTC')) COMMENT 'end of the first window in which the condition no longer held (same clock as window_end)',
  `message` String COMMENT 'one line a person can act on',
  `query` String COMMENT 'a ready-to-run gmv sql query showing the numbers behind the alert',
  `version` UInt64 COMMENT 'row version: a resolved row wins over a firing row, a later write over an earlier one'
)
ENGINE = ReplacingMergeTree(version)
PARTITION BY toYYYYMM(window_start)
ORDER BY alert_id
COMMENT 'Alerts fired by the worker (SPEC §8), one row per alert_id: firing, then resolved. Stored rows; may hold not-yet-merged copies: query the view alerts.'
;
CREATE VIEW IF NOT EXISTS `{db}`.`alerts` (
  `alert_id` String COMMENT 'deterministic: hash of rule, subject and the window the alert fired in (a replay fires the same id)',
  `rule` LowCardinality(String) COMMENT 'rule name, e.g. live_no_orders (gmv alerts rules lists them)',
  `severity` LowCardinality(String) COMMENT 'critical | warning | info',
  `subject_kind` LowCardinality(String) COMMENT 'live | shop | account | pipeline',
  `subject_id` String COMMENT 'live_id, shop_id, account id, or the source topic / worker for pipeline rules',
  `state` LowCardinality(String) COMMENT 'firing | resolved',
  `value` Float64 COMMENT 'the measured value when the alert fired (unit in message)',
  `threshold` Float64 COMMENT 'the threshold it crossed',
  `window_start` DateTime64(3, 'UTC') COMMENT 'start of the window the alert fired in (event time for business rules, wall clock for pipeline rules)',
  `window_end` DateTime64(3, 'UTC') COMMENT 'end of that window (exclusive)',
  `clock` LowCardinality(String) COMMENT 'event: business rule on event time (replays fire the same alerts) | wall: pipeline rule on the wall clock',
  `fired_at` DateTime64(3, 'UTC') COMMENT 'wall-clock time the worker fired it (UTC)',
  `resolved_at` Nullable(DateTime64(3, 'UTC')) COMMENT 'wall-clock time the condition cleared (NULL while firing)',
  `resolved_window_end` Nullable(DateTime64(3, 'UTC')) COMMENT 'end of the first window in which the condition no longer held (same clock as window_end)',
  `message` String COMMENT 'one line a person can act on',
  `query` String COMMENT 'a ready-to-run gmv sql query showing the numbers behind the alert',
  `version` UInt64 COMMENT 'row version: a resolved row wins over a firing row, a later write over an earlier one'
) AS SELECT `alert_id`, `rule`, `severity`, `subject_kind`, `subject_id`, `state`, `value`, `threshold`, `window_start`, `window_end`, `clock`, `fired_at`, `resolved_at`, `resolved_window_end`, `message`, `query`, `version` FROM `{db}`.`alerts_store` FINAL
COMMENT 'Alerts fired by the worker (SPEC §8), one row per alert_id: open ones have state firing. Exact: each alert once, however often it was written.'
;
CREATE TABLE IF NOT EXISTS `{db}`.`content_minute_store` (
  `minute` DateTime('UTC') COMMENT 'minute of event_time (UTC)',
  `channel` LowCardinality(String) COMMENT 'where the orders were paid: short_video | live | clip | shelf',
  `content_id` String COMMENT 'the content paid in: live_id for live, video_id for short_video / clip, \'\' for shelf',
  `shop_id` String COMMENT 'shop',
  `seller_id` String COMMENT 'account that made the sale',
  `gmv_fen` Int64 COMMENT 'paid GMV in this content (fen)',
  `refund_fen` Int64 COMMENT 'refunds of orders paid in this content, as a positive number (fen)',
  `orders` UInt64 COMMENT 'paid orders',
  `refunds` UInt64 COMMENT 'refund events',
  `buyers` AggregateFunction(uniq, String) COMMENT 'distinct buyers of those orders: uniqMerge(buyers)',
  `refreshed_at` DateTime64(6, 'UTC') COMMENT 'when this row was recomputed from the facts; the latest wins'
)
ENGINE = ReplacingMergeTree(refreshed_at)
PARTITION BY toYYYYMM(minute)
ORDER BY (minute, channel, content_id, shop_id, seller_id)
SETTINGS non_replicated_deduplication_window = 1000
COMMENT 'GMV per minute by the content it was paid in (the conversion touch, whole amounts), recomputed by the worker from the de-duplicated facts with the other minute rollups. Stored rows; may hold not-yet-merged copies: query the view content_minute.'
;
CREATE VIEW IF NOT EXISTS `{db}`.`content_minute` (
  `minute` DateTime('UTC') COMMENT 'minute of event_time (UTC)',
  `channel` LowCardinality(String) COMMENT 'where the orders were paid: short_video | live | clip | shelf',
  `content_id` String COMMENT 'the content paid in: live_id for live, video_id for short_video / clip, \'\' for shelf',
  `shop_id` String COMMENT 'shop',
  `seller_id` String COMMENT 'account that made the sale',
  `gmv_fen` Int64 COMMENT 'paid GMV in this content (fen)',
  `refund_fen` Int64 COMMENT 'refunds of orders paid in this content, as a positive number (fen)',
  `orders` UInt64 COMMENT 'paid orders',
  `refunds` UInt64 COMMENT 'refund events',
  `buyers` AggregateFunction(uniq, String) COMMENT 'distinct buyers of those orders: uniqMerge(buyers)',
  `refreshed_at` DateTime64(6, 'UTC') COMMENT 'when this row was recomputed from the facts; the latest wins'
) AS SELECT `minute`, `channel`, `content_id`, `shop_id`, `seller_id`, `gmv_fen`, `refund_fen`, `orders`, `refunds`, `buyers`, `refreshed_at` FROM `{db}`.`content_minute_store` FINAL
COMMENT 'GMV per minute by the content it was paid in (live room, video, clip; shelf as \'\'). Exact: each row once, however often it was written.'
