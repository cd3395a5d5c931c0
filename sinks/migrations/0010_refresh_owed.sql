-- migration 10: refresh_owed: the slow-refresh work (markov credits, levels, trust scores) a worker owes for facts whose journal records it confirmed before its slow refresh ran; the next worker to start takes up what is left open
-- Frozen: the DDL exactly as it shipped. Never edit it; add a new migration instead.
-- Statements are separated by a line holding only ';'. {db} stands for the database.
CREATE TABLE IF NOT EXISTS `{db}`.`refresh_owed_store` (
  `writer` String COMMENT 'the worker process run that recorded it (random, new at each start)',
  `seq` UInt64 COMMENT 'its number within that run',
  `noted_at` DateTime64(3, 'UTC') COMMENT 'when it was recorded (UTC)',
  `work` String COMMENT 'what is owed: JSON of ISO minutes (levels, funnel_levels) and days (scores, stale); \'\' once closed',
  `closed` UInt8 COMMENT '0: owed | 1: done (a later row of the same entry; the closed row wins)'
)
ENGINE = ReplacingMergeTree(closed)
PARTITION BY toYYYYMM(noted_at)
ORDER BY (writer, seq)
TTL toDateTime(noted_at) + INTERVAL 30 DAY
COMMENT 'Slow-refresh work a worker owes (docs/architecture.md): the minutes and days whose markov credits, levels and trust scores are still to be recomputed from facts already stored. A worker records an entry before it confirms the journal records behind those facts, and closes it once a slow refresh has recomputed them; a worker takes up every open entry when it starts, so what a stopped or killed worker owed is done by the next to start. Internal bookkeeping, not analytics. Stored rows; may hold not-yet-merged copies: query the view refresh_owed.'
;
CREATE VIEW IF NOT EXISTS `{db}`.`refresh_owed` (
  `writer` String COMMENT 'the worker process run that recorded it (random, new at each start)',
  `seq` UInt64 COMMENT 'its number within that run',
  `noted_at` DateTime64(3, 'UTC') COMMENT 'when it was recorded (UTC)',
  `work` String COMMENT 'what is owed: JSON of ISO minutes (levels, funnel_levels) and days (scores, stale); \'\' once closed',
  `closed` UInt8 COMMENT '0: owed | 1: done (a later row of the same entry; the closed row wins)'
) AS SELECT `writer`, `seq`, `noted_at`, `work`, `closed` FROM `{db}`.`refresh_owed_store` FINAL
COMMENT 'Slow-refresh work a worker owes (docs/architecture.md): the minutes and days whose markov credits, levels and trust scores are still to be recomputed from facts already stored. A worker records an entry before it confirms the journal records behind those facts, and closes it once a slow refresh has recomputed them; a worker takes up every open entry when it starts, so what a stopped or killed worker owed is done by the next to start. Internal bookkeeping, not analytics. Exact: each row once, however often it was written.'
