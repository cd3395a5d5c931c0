-- migration 8: the markov model (data-driven attribution): markov_daily (journey transitions per day and shop), markov_model (removal effects per day, shop and stage), markov_credits (the markov rows, restated), and attributed_gmv showing them beside the rule-based models
-- Frozen: the DDL exactly as it shipped. Never edit it; add a new migration instead.
-- Statements are separated by a line holding only ';'. {db} stands for the database.
CREATE TABLE IF NOT EXISTS `{db}`.`markov_daily_store` (
  `day` Date COMMENT 'the day (Asia/Shanghai) of the journeys',
  `shop_id` String COMMENT 'the shop of the journeys',
  `from_state` LowCardinality(String) COMMENT 'state left: start | short_video | live | clip | shelf',
  `to_state` LowCardinality(String) COMMENT 'state entered: short_video | live | clip | shelf | conv | null',
  `transitions` UInt64 COMMENT 'how many times that day\'s journeys of the shop made this transition (0: it did before a late fact changed a journey)',
  `refreshed_at` DateTime64(6, 'UTC') COMMENT 'when this row was recomputed from the facts; the latest wins'
)
ENGINE = ReplacingMergeTree(refreshed_at)
PARTITION BY toYYYYMM(day)
ORDER BY (day, shop_id, from_state, to_state)
SETTINGS non_replicated_deduplication_window = 1000
COMMENT 'Journeys of the markov model, per Asia/Shanghai day and shop: how many times each transition of the absorbing chain (start, the four stages, conv, null) happened in that day\'s journeys (one journey per user, shop and day: its engaged touchpoints of the shop up to its first paid order, repeats of a stage collapsed, then the order\'s channel and conv, or null). Recomputed from the facts of the days that changed; a model sums 28 days of this table. Stored rows; may hold not-yet-merged copies: query the view markov_daily.'
;
CREATE VIEW IF NOT EXISTS `{db}`.`markov_daily` (
  `day` Date COMMENT 'the day (Asia/Shanghai) of the journeys',
  `shop_id` String COMMENT 'the shop of the journeys',
  `from_state` LowCardinality(String) COMMENT 'state left: start | short_video | live | clip | shelf',
  `to_state` LowCardinality(String) COMMENT 'state entered: short_video | live | clip | shelf | conv | null',
  `transitions` UInt64 COMMENT 'how many times that day\'s journeys of the shop made this transition (0: it did before a late fact changed a journey)',
  `refreshed_at` DateTime64(6, 'UTC') COMMENT 'when this row was recomputed from the facts; the latest wins'
) AS SELECT `day`, `shop_id`, `from_state`, `to_state`, `transitions`, `refreshed_at` FROM `{db}`.`markov_daily_store` FINAL
COMMENT 'Journeys of the markov model, per Asia/Shanghai day and shop: how many times each transition of the absorbing chain (start, the four stages, conv, null) happened in that day\'s journeys (one journey per user, shop and day: its engaged touchpoints of the shop up to its first paid order, repeats of a stage collapsed, then the order\'s channel and conv, or null). Recomputed from the facts of the days that changed; a model sums 28 days of this table. Exact: each row once, however often it was written.'
;
CREATE TABLE IF NOT EXISTS `{db}`.`markov_model_store` (
  `day` Date COMMENT 'the day D (Asia/Shanghai): the model counts the journeys of D-27 to D',
  `shop_id` String COMMENT 'the shop (\'\' = the platform: every shop\'s journeys)',
  `stage` LowCardinality(String) COMMENT 'short_video | live | clip | shelf',
  `removal_effect` Float64 COMMENT 'RE = (P - P without the stage) / P: the share of conversions lost if every transition into the stage went to null (0 when the window never visits it, or the model is undefined)',
  `removal_effect_exact` String COMMENT 'the same as an exact fraction, e.g. 3/8',
  `p_conv` Float64 COMMENT 'P: the probability of reaching conv from start (0: the model is undefined)',
  `p_conv_exact` String COMMENT 'P as an exact fraction, e.g. 4/7',
  `defined` UInt8 COMMENT '1 when P > 0; 0: orders of this shop and day get linear credits instead',
  `journeys` UInt64 COMMENT 'journeys in the window (transitions from start)',
  `conversions` UInt64 COMMENT 'journeys that converted (transitions into conv)',
  `from_start` UInt64 COMMENT 'transitions start -> this stage in the window (journeys that began here)',
  `to_short_video` UInt64 COMMENT 'transitions from this stage to short_video in the window',
  `to_live` UInt64 COMMENT 'transitions from this stage to live in the window',
  `to_clip` UInt64 COMMENT 'transitions from this stage to clip in the window',
  `to_shelf` UInt64 COMMENT 'transitions from this stage to shelf in the window',
  `to_conv` UInt64 COMMENT 'transitions from this stage to conv (a paid order) in the window',
  `to_null` UInt64 COMMENT 'transitions from this stage to null (the journey ended without an order)',
  `refreshed_at` DateTime64(6, 'UTC') COMMENT 'when this row was recomputed from the facts; the latest wins'
)
ENGINE = ReplacingMergeTree(refreshed_at)
PARTITION BY toYYYYMM(day)
ORDER BY (day, shop_id, stage)
SETTINGS non_replicated_deduplication_window = 1000
COMMENT 'The markov model per Asia/Shanghai day and shop (shop_id \'\' = the platform, every shop\'s journeys; for display only): the first-order absorbing chain of the journeys of the 28 days ending with the day, solved exactly; per stage its removal effect (the share of conversions lost without it), which splits the orders of that shop and day between the stages of their paths. Recomputed from markov_daily for every day a changed day weighs on. Stored rows; may hold not-yet-merged copies: query the view markov_model.'
;
CREATE VIEW IF NOT EXISTS `{db}`.`markov_model` (
  `day` Date COMMENT 'the day D (Asia/Shanghai): the model counts the journeys of D-27 to D',
  `shop_id` String COMMENT 'the shop (\'\' = the platform: every shop\'s journeys)',
  `stage` LowCardinality(String) COMMENT 'short_video | live | clip | shelf',
  `removal_effect` Float64 COMMENT 'RE = (P - P without the stage) / P: the share of conversions lost if every transition into the stage went to null (0 when the window never visits it, or the model is undefined)',
  `removal_effect_exact` String COMMENT 'the same as an exact fraction, e.g. 3/8',
  `p_conv` Float64 COMMENT 'P: the probability of reaching conv from start (0: the model is undefined)',
  `p_conv_exact` String COMMENT 'P as an exact fraction, e.g. 4/7',
  `defined` UInt8 COMMENT '1 when P > 0; 0: orders of this shop and day get linear credits instead',
  `journeys` UInt64 COMMENT 'journeys in the window (transitions from start)',
  `conversions` UInt64 COMMENT 'journeys that converted (transitions into conv)',
  `from_start` UInt64 COMMENT 'transitions start -> this stage in the window (journeys that began here)',
  `to_short_video` UInt64 COMMENT 'transitions from this stage to short_video in the window',
  `to_live` UInt64 COMMENT 'transitions from this stage to live in the window',
  `to_clip` UInt64 COMMENT 'transitions from this stage to clip in the window',
  `to_shelf` UInt64 COMMENT 'transitions from this stage to shelf in the window',
  `to_conv` UInt64 COMMENT 'transitions from this stage to conv (a paid order) in the window',
  `to_null` UInt64 COMMENT 'transitions from this stage to null (the journey ended without an order)',
  `refreshed_at` DateTime64(6, 'UTC') COMMENT 'when this row was recomputed from the facts; the latest wins'
) AS SELECT `day`, `shop_id`, `stage`, `removal_effect`, `removal_effect_exact`, `p_conv`, `p_conv_exact`, `defined`, `journeys`, `conversions`, `from_start`, `to_short_video`, `to_live`, `to_clip`, `to_shelf`, `to_conv`, `to_null`, `refreshed_at` FROM `{db}`.`markov_model_store` FINAL
COMMENT 'The markov model per Asia/Shanghai day and shop (shop_id \'\' = the platform, every shop\'s journeys; for display only): the first-order absorbing chain of the journeys of the 28 days ending with the day, solved exactly; per stage its removal effect (the share of conversions lost without it), which splits the orders of that shop and day between the stages of their paths. Recomputed from markov_daily for every day a changed day weighs on. Exact: each row once, however often it was written.'
;
CREATE TABLE IF NOT EXISTS `{db}`.`markov_credits_store` (
  `event_id` String COMMENT 'the paid order event, or the refund event, this credit comes from',
  `order_id` String COMMENT 'order id',
  `kind` LowCardinality(String) COMMENT 'paid | refund',
  `model` LowCardinality(String) COMMENT 'markov (always)',
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
  `attributed_at` DateTime64(3, 'UTC') COMMENT 'processing time of the restatement (UTC): the latest wins'
)
ENGINE = ReplacingMergeTree(attributed_at)
PARTITION BY toYYYYMM(event_time)
ORDER BY (toStartOfMinute(event_time), event_id, touch_index)
SETTINGS non_replicated_deduplication_window = 1000
COMMENT 'Credits of the markov model, one row per (order or refund event, touch of its path), restated as the model of the order\'s shop and day changes: while the day is open its own journeys move the model; once it is complete they settle. attributed_gmv shows these rows with model = \'markov\'. Stored rows; may hold not-yet-merged copies: query the view markov_credits.'
;
CREATE VIEW IF NOT EXISTS `{db}`.`markov_credits` (
  `event_id` String COMMENT 'the paid order event, or the refund event, this credit comes from',
  `order_id` String COMMENT 'order id',
  `kind` LowCardinality(String) COMMENT 'paid | refund',
  `model` LowCardinality(String) COMMENT 'markov (always)',
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
  `attributed_at` DateTime64(3, 'UTC') COMMENT 'processing time of the restatement (UTC): the latest wins'
) AS SELECT `event_id`, `order_id`, `kind`, `model`, `touch_index`, `is_conversion`, `stage`, `touch_account_id`, `touch_content_id`, `touch_event_id`, `is_self`, `traffic`, `touch_time`, `order_time`, `event_time`, `user_id`, `shop_id`, `seller_id`, `sku_id`, `channel`, `credit_fen`, `path`, `path_length`, `attributed_at` FROM `{db}`.`markov_credits_store` FINAL
COMMENT 'Credits of the markov model, one row per (order or refund event, touch of its path), restated as the model of the order\'s shop and day changes: while the day is open its own journeys move the model; once it is complete they settle. attributed_gmv shows these rows with model = \'markov\'. Exact: each row once, however often it was written.'
;
ALTER TABLE `{db}`.`attributed_gmv_store` MODIFY COMMENT 'Attributed GMV facts: one row per (order event, model, touch of its path). sum(credit_fen) over any grouping is exact to the fen; refunds are negative rows. The rule-based models\' rows are stored here when an order is attributed; the markov rows come from markov_credits, restated while the order\'s day is open. Stored rows; may hold not-yet-merged copies: query the view attributed_gmv.'
;
ALTER TABLE `{db}`.`attributed_gmv_store` COMMENT COLUMN `model` 'last_touch | first_touch | linear | position_based | time_decay | markov (data-driven: by each stage\'s removal effect in the journeys of the order\'s shop and day)'
;
CREATE OR REPLACE VIEW `{db}`.`attributed_gmv` (
  `event_id` String COMMENT 'the paid order event, or the refund event, this credit comes from',
  `order_id` String COMMENT 'order id',
  `kind` LowCardinality(String) COMMENT 'paid | refund',
  `model` LowCardinality(String) COMMENT 'last_touch | first_touch | linear | position_based | time_decay | markov (data-driven: by each stage\'s removal effect in the journeys of the order\'s shop and day)',
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
) AS SELECT `event_id`, `order_id`, `kind`, `model`, `touch_index`, `is_conversion`, `stage`, `touch_account_id`, `touch_content_id`, `touch_event_id`, `is_self`, `traffic`, `touch_time`, `order_time`, `event_time`, `user_id`, `shop_id`, `seller_id`, `sku_id`, `channel`, `credit_fen`, `path`, `path_length`, `attributed_at` FROM `{db}`.`attributed_gmv_store` FINAL UNION ALL SELECT `event_id`, `order_id`, `kind`, `model`, `touch_index`, `is_conversion`, `stage`, `touch_account_id`, `touch_content_id`, `touch_event_id`, `is_self`, `traffic`, `touch_time`, `order_time`, `event_time`, `user_id`, `shop_id`, `seller_id`, `sku_id`, `channel`, `credit_fen`, `path`, `path_length`, `attributed_at` FROM `{db}`.`markov_credits_store` FINAL
COMMENT 'Attributed GMV facts: one row per (order event, model, touch of its path). sum(credit_fen) over any grouping is exact to the fen; refunds are negative rows. The rule-based models\' rows are stored here when an order is attributed; the markov rows come from markov_credits, restated while the order\'s day is open. Exact: each row once, however often it was written.'
