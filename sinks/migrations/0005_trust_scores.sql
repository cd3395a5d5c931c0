-- migration 5: trust scores (SPEC §7): refunds with their reason, reviews, customer-service turns, trust_daily, trust_scores
-- Frozen: the DDL exactly as it shipped. Never edit it; add a new migration instead.
-- Statements are separated by a line holding only ';'. {db} stands for the database.
CREATE TABLE IF NOT EXISTS `{db}`.`refunds_store` (
  `event_id` String COMMENT 'the refund event',
  `order_id` String COMMENT 'the refunded order',
  `user_id` String COMMENT 'buyer',
  `shop_id` String COMMENT 'shop of the order',
  `sku_id` String COMMENT 'SKU of the order',
  `seller_id` String COMMENT 'account that made the sale (\'\' for pure shelf sales)',
  `refund_fen` Int64 COMMENT 'refunded amount in fen (positive)',
  `reason` LowCardinality(String) COMMENT 'refund_reason: quality | not_as_described | damaged | wrong_item | changed_mind | logistics | other',
  `is_quality` UInt8 COMMENT '1 for quality refunds (quality, not_as_described, damaged, wrong_item)',
  `event_time` DateTime64(3, 'UTC') COMMENT 'time of the refund (UTC): the trust-score window that holds it counts it',
  `order_time` DateTime64(3, 'UTC') COMMENT 'time the order was paid (UTC)',
  `settled_at` DateTime64(3, 'UTC') COMMENT 'processing time the refund was applied (UTC)'
)
ENGINE = ReplacingMergeTree()
PARTITION BY toYYYYMM(event_time)
ORDER BY event_id
SETTINGS non_replicated_deduplication_window = 1000
COMMENT 'Applied refunds with their reason (SPEC §7), one row per refund event, with its order\'s shop, SKU and seller. Quality refunds (is_quality) weigh on the trust scores. Stored rows; may hold not-yet-merged copies: query the view refunds.'
;
CREATE VIEW IF NOT EXISTS `{db}`.`refunds` (
  `event_id` String COMMENT 'the refund event',
  `order_id` String COMMENT 'the refunded order',
  `user_id` String COMMENT 'buyer',
  `shop_id` String COMMENT 'shop of the order',
  `sku_id` String COMMENT 'SKU of the order',
  `seller_id` String COMMENT 'account that made the sale (\'\' for pure shelf sales)',
  `refund_fen` Int64 COMMENT 'refunded amount in fen (positive)',
  `reason` LowCardinality(String) COMMENT 'refund_reason: quality | not_as_described | damaged | wrong_item | changed_mind | logistics | other',
  `is_quality` UInt8 COMMENT '1 for quality refunds (quality, not_as_described, damaged, wrong_item)',
  `event_time` DateTime64(3, 'UTC') COMMENT 'time of the refund (UTC): the trust-score window that holds it counts it',
  `order_time` DateTime64(3, 'UTC') COMMENT 'time the order was paid (UTC)',
  `settled_at` DateTime64(3, 'UTC') COMMENT 'processing time the refund was applied (UTC)'
) AS SELECT `event_id`, `order_id`, `user_id`, `shop_id`, `sku_id`, `seller_id`, `refund_fen`, `reason`, `is_quality`, `event_time`, `order_time`, `settled_at` FROM `{db}`.`refunds_store` FINAL
COMMENT 'Applied refunds with their reason (SPEC §7), one row per refund event, with its order\'s shop, SKU and seller. Quality refunds (is_quality) weigh on the trust scores. Exact: each row once, however often it was written.'
;
CREATE TABLE IF NOT EXISTS `{db}`.`reviews_store` (
  `event_id` String COMMENT 'the review event',
  `order_id` String COMMENT 'the reviewed order',
  `user_id` String COMMENT 'buyer (the order\'s)',
  `shop_id` String COMMENT 'shop of the order',
  `sku_id` String COMMENT 'SKU of the order',
  `seller_id` String COMMENT 'account that made the sale (\'\' for pure shelf sales)',
  `product_rating` UInt8 COMMENT '1-5: the product (商品分, 商号体验分 P)',
  `service_rating` UInt8 COMMENT '1-5: the service (带货口碑分 with product_rating, 商号体验分 S)',
  `logistics_rating` UInt8 COMMENT '1-5: delivery (商号体验分 L)',
  `event_time` DateTime64(3, 'UTC') COMMENT 'time of the review (UTC): the trust-score window that holds it counts it',
  `order_time` DateTime64(3, 'UTC') COMMENT 'time the order was paid (UTC)',
  `reviewed_at` DateTime64(3, 'UTC') COMMENT 'processing time the review was joined to its order (UTC)'
)
ENGINE = ReplacingMergeTree()
PARTITION BY toYYYYMM(event_time)
ORDER BY event_id
SETTINGS non_replicated_deduplication_window = 1000
COMMENT 'Buyers\' reviews of paid orders (SPEC §7), one per order, with the order\'s shop, SKU and seller. Dead-lettered reviews (orphan_review, review_already_given, review_user_mismatch) are not here. Stored rows; may hold not-yet-merged copies: query the view reviews.'
;
CREATE VIEW IF NOT EXISTS `{db}`.`reviews` (
  `event_id` String COMMENT 'the review event',
  `order_id` String COMMENT 'the reviewed order',
  `user_id` String COMMENT 'buyer (the order\'s)',
  `shop_id` String COMMENT 'shop of the order',
  `sku_id` String COMMENT 'SKU of the order',
  `seller_id` String COMMENT 'account that made the sale (\'\' for pure shelf sales)',
  `product_rating` UInt8 COMMENT '1-5: the product (商品分, 商号体验分 P)',
  `service_rating` UInt8 COMMENT '1-5: the service (带货口碑分 with product_rating, 商号体验分 S)',
  `logistics_rating` UInt8 COMMENT '1-5: delivery (商号体验分 L)',
  `event_time` DateTime64(3, 'UTC') COMMENT 'time of the review (UTC): the trust-score window that holds it counts it',
  `order_time` DateTime64(3, 'UTC') COMMENT 'time the order was paid (UTC)',
  `reviewed_at` DateTime64(3, 'UTC') COMMENT 'processing time the review was joined to its order (UTC)'
) AS SELECT `event_id`, `order_id`, `user_id`, `shop_id`, `sku_id`, `seller_id`, `product_rating`, `service_rating`, `logistics_rating`, `event_time`, `order_time`, `reviewed_at` FROM `{db}`.`reviews_store` FINAL
COMMENT 'Buyers\' reviews of paid orders (SPEC §7), one per order, with the order\'s shop, SKU and seller. Dead-lettered reviews (orphan_review, review_already_given, review_user_mismatch) are not here. Exact: each row once, however often it was written.'
;
CREATE TABLE IF NOT EXISTS `{db}`.`cs_turns_store` (
  `conversation_id` String COMMENT 'conversation',
  `start_event_id` String COMMENT 'the buyer message (event_id) that starts the turn',
  `shop_id` String COMMENT 'shop the conversation is with',
  `user_id` String COMMENT 'buyer',
  `is_turn` UInt8 COMMENT '1 = this buyer message starts a turn; 0 = it does not (any more)',
  `start_time` DateTime64(3, 'UTC') COMMENT 'time of the turn\'s first buyer message (UTC): the window that holds it counts it',
  `answer_event_id` String COMMENT 'the agent message that ended the turn (\'\' if none yet)',
  `answer_time` Nullable(DateTime64(3, 'UTC')) COMMENT 'time of that agent message (NULL if none yet)',
  `response_ms` Nullable(Int64) COMMENT 'answer_time - start_time in ms (NULL if no agent answered)',
  `answered` UInt8 COMMENT '1 = an agent answered within cs_unanswered_after (default 1 h of event time)',
  `fast` UInt8 COMMENT '1 = answered within 3 s (response_ms <= 3000): the platform\'s standard',
  `within_3min` UInt8 COMMENT '1 = answered within 3 min (response_ms <= 180000)',
  `version` UInt64 COMMENT 'messages of the conversation the row was computed from; the highest wins',
  `computed_at` DateTime64(3, 'UTC') COMMENT 'processing time of the computation (UTC)'
)
ENGINE = ReplacingMergeTree(version)
ORDER BY (conversation_id, start_event_id)
SETTINGS non_replicated_deduplication_window = 1000
COMMENT 'Customer-service buyer turns (SPEC §7): a turn starts at a buyer message that opens the conversation or follows an agent message, and ends at the next agent message (bots answer nothing). Recomputed from all the conversation\'s messages whenever one arrives, so arrival order never matters; the view holds the turns only (is_turn = 1). Stored rows; may hold not-yet-merged copies: query the view cs_turns.'
;
CREATE VIEW IF NOT EXISTS `{db}`.`cs_turns` (
  `conversation_id` String COMMENT 'conversation',
  `start_event_id` String COMMENT 'the buyer message (event_id) that starts the turn',
  `shop_id` String COMMENT 'shop the conversation is with',
  `user_id` String COMMENT 'buyer',
  `is_turn` UInt8 COMMENT '1 = this buyer message starts a turn; 0 = it does not (any more)',
  `start_time` DateTime64(3, 'UTC') COMMENT 'time of the turn\'s first buyer message (UTC): the window that holds it counts it',
  `answer_event_id` String COMMENT 'the agent message that ended the turn (\'\' if none yet)',
  `answer_time` Nullable(DateTime64(3, 'UTC')) COMMENT 'time of that agent message (NULL if none yet)',
  `response_ms` Nullable(Int64) COMMENT 'answer_time - start_time in ms (NULL if no agent answered)',
  `answered` UInt8 COMMENT '1 = an agent answered within cs_unanswered_after (default 1 h of event time)',
  `fast` UInt8 COMMENT '1 = answered within 3 s (response_ms <= 3000): the platform\'s standard',
  `within_3min` UInt8 COMMENT '1 = answered within 3 min (response_ms <= 180000)',
  `version` UInt64 COMMENT 'messages of the conversation the row was computed from; the highest wins',
  `computed_at` DateTime64(3, 'UTC') COMMENT 'processing time of the computation (UTC)'
) AS SELECT `conversation_id`, `start_event_id`, `shop_id`, `user_id`, `is_turn`, `start_time`, `answer_event_id`, `answer_time`, `response_ms`, `answered`, `fast`, `within_3min`, `version`, `computed_at` FROM `{db}`.`cs_turns_store` FINAL WHERE `is_turn` = 1
COMMENT 'Customer-service buyer turns (SPEC §7): a turn starts at a buyer message that opens the conversation or follows an agent message, and ends at the next agent message (bots answer nothing). Recomputed from all the conversation\'s messages whenever one arrives, so arrival order never matters; the view holds the turns only (is_turn = 1). Exact: each row once, however often it was written.'
;
CREATE TABLE IF NOT EXISTS `{db}`.`trust_daily_store` (
  `day` Date COMMENT 'the day (Asia/Shanghai) the facts happened',
  `subject_kind` LowCardinality(String) COMMENT 'sku | account | shop',
  `subject_id` String COMMENT 'sku_id, the selling account (seller_id) or shop_id',
  `reviews` UInt64 COMMENT 'reviews that day',
  `product_rating_sum` UInt64 COMMENT 'Σ product_rating',
  `service_rating_sum` UInt64 COMMENT 'Σ service_rating',
  `logistics_rating_sum` UInt64 COMMENT 'Σ logistics_rating',
  `paid_orders` UInt64 COMMENT 'paid orders that day',
  `refunds` UInt64 COMMENT 'applied refunds that day (any reason)',
  `quality_refunded` AggregateFunction(uniqExact, String) COMMENT 'orders with a quality refund that day: uniqExactMerge over a window counts each order once',
  `turns` UInt64 COMMENT 'customer-service buyer turns starting that day (shops)',
  `fast_turns` UInt64 COMMENT 'of those, answered within 3 s',
  `within_3min_turns` UInt64 COMMENT 'of those, answered within 3 min',
  `refreshed_at` DateTime64(6, 'UTC') COMMENT 'when this row was recomputed from the facts; the latest wins'
)
ENGINE = ReplacingMergeTree(refreshed_at)
PARTITION BY toYYYYMM(day)
ORDER BY (day, subject_kind, subject_id)
SETTINGS non_replicated_deduplication_window = 1000
COMMENT 'What each Asia/Shanghai day\'s facts add to the trust scores (SPEC §7), per subject: the scores of a day sum the 30 days of this table ending with it. Recomputed by the worker from the facts of the days that changed. Stored rows; may hold not-yet-merged copies: query the view trust_daily.'
;
CREATE VIEW IF NOT EXISTS `{db}`.`trust_daily` (
  `day` Date COMMENT 'the day (Asia/Shanghai) the facts happened',
  `subject_kind` LowCardinality(String) COMMENT 'sku | account | shop',
  `subject_id` String COMMENT 'sku_id, the selling account (seller_id) or shop_id',
  `reviews` UInt64 COMMENT 'reviews that day',
  `product_rating_sum` UInt64 COMMENT 'Σ product_rating',
  `service_rating_sum` UInt64 COMMENT 'Σ service_rating',
  `logistics_rating_sum` UInt64 COMMENT 'Σ logistics_rating',
  `paid_orders` UInt64 COMMENT 'paid orders that day',
  `refunds` UInt64 COMMENT 'applied refunds that day (any reason)',
  `quality_refunded` AggregateFunction(uniqExact, String) COMMENT 'orders with a quality refund that day: uniqExactMerge over a window counts each order once',
  `turns` UInt64 COMMENT 'customer-service buyer turns starting that day (shops)',
  `fast_turns` UInt64 COMMENT 'of those, answered within 3 s',
  `within_3min_turns` UInt64 COMMENT 'of those, answered within 3 min',
  `refreshed_at` DateTime64(6, 'UTC') COMMENT 'when this row was recomputed from the facts; the latest wins'
) AS SELECT `day`, `subject_kind`, `subject_id`, `reviews`, `product_rating_sum`, `service_rating_sum`, `logistics_rating_sum`, `paid_orders`, `refunds`, `quality_refunded`, `turns`, `fast_turns`, `within_3min_turns`, `refreshed_at` FROM `{db}`.`trust_daily_store` FINAL
COMMENT 'What each Asia/Shanghai day\'s facts add to the trust scores (SPEC §7), per subject: the scores of a day sum the 30 days of this table ending with it. Recomputed by the worker from the facts of the days that changed. Exact: each row once, however often it was written.'
;
CREATE TABLE IF NOT EXISTS `{db}`.`trust_scores_store` (
  `day` Date COMMENT 'the day D (Asia/Shanghai) whose window [D-29, D] the score covers',
  `subject_kind` LowCardinality(String) COMMENT 'sku | account | shop',
  `subject_id` String COMMENT 'sku_id, the selling account (seller_id) or shop_id',
  `score` Float64 COMMENT 'the score, 0-5, unrounded (displays round to two decimals)',
  `n` UInt64 COMMENT 'n of the formula (SPEC §7): reviews in the window, as the column reviews',
  `reviews` UInt64 COMMENT 'reviews in the window',
  `product_rating_sum` UInt64 COMMENT 'Σ product_rating of those reviews',
  `service_rating_sum` UInt64 COMMENT 'Σ service_rating',
  `logistics_rating_sum` UInt64 COMMENT 'Σ logistics_rating',
  `rating_sum` Float64 COMMENT 'the Σ this kind smooths: product (sku, shop), (product + service) / 2 (account)',
  `paid_orders` UInt64 COMMENT 'paid orders in the window',
  `refunds` UInt64 COMMENT 'applied refunds in the window (any reason)',
  `quality_refunded_orders` UInt64 COMMENT 'orders with a quality refund in the window',
  `qrr` Float64 COMMENT 'quality_refunded_orders / paid_orders (0 without paid orders)',
  `turns` UInt64 COMMENT 'customer-service buyer turns starting in the window (shops)',
  `fast_turns` UInt64 COMMENT 'of those, answered within 3 s',
  `within_3min_turns` UInt64 COMMENT 'of those, answered within 3 min',
  `fast` Nullable(Float64) COMMENT 'fast_turns / turns, 1 without turns (shops; NULL otherwise)',
  `within_3min` Nullable(Float64) COMMENT 'within_3min_turns / turns, 1 without turns (shops; NULL otherwise)',
  `product_part` Float64 COMMENT 'P = clamp(smooth(rating_sum, reviews) - 10 × qrr): the score of a sku or account',
  `service_part` Nullable(Float64) COMMENT 'S = 0.5 × smooth(service) + 0.5 × 5 × (fast + within_3min) / 2 (shops)',
  `logistics_part` Nullable(Float64) COMMENT 'L = smooth(logistics) (shops)',
  `refreshed_at` DateTime64(6, 'UTC') COMMENT 'when this row was recomputed from the facts; the latest wins'
)
ENGINE = ReplacingMergeTree(refreshed_at)
PARTITION BY toYYYYMM(day)
ORDER BY (day, subject_kind, subject_id)
SETTINGS non_replicated_deduplication_window = 1000
COMMENT 'Trust scores per Asia/Shanghai day and subject (SPEC §7): 商品分 (sku), 带货口碑分 (account), 商号体验分 (shop), each over the 30 days ending with day, with every input of its formula. Recomputed by the worker from the de-duplicated facts (reviews, refunds, cs_turns, attributed_gmv): a replay or a crash never changes a score. The current score: the row with the latest day. Stored rows; may hold not-yet-merged copies: query the view trust_scores.'
;
CREATE VIEW IF NOT EXISTS `{db}`.`trust_scores` (
  `day` Date COMMENT 'the day D (Asia/Shanghai) whose window [D-29, D] the score covers',
  `subject_kind` LowCardinality(String) COMMENT 'sku | account | shop',
  `subject_id` String COMMENT 'sku_id, the selling account (seller_id) or shop_id',
  `score` Float64 COMMENT 'the score, 0-5, unrounded (displays round to two decimals)',
  `n` UInt64 COMMENT 'n of the formula (SPEC §7): reviews in the window, as the column reviews',
  `reviews` UInt64 COMMENT 'reviews in the window',
  `product_rating_sum` UInt64 COMMENT 'Σ product_rating of those reviews',
  `service_rating_sum` UInt64 COMMENT 'Σ service_rating',
  `logistics_rating_sum` UInt64 COMMENT 'Σ logistics_rating',
  `rating_sum` Float64 COMMENT 'the Σ this kind smooths: product (sku, shop), (product + service) / 2 (account)',
  `paid_orders` UInt64 COMMENT 'paid orders in the window',
  `refunds` UInt64 COMMENT 'applied refunds in the window (any reason)',
  `quality_refunded_orders` UInt64 COMMENT 'orders with a quality refund in the window',
  `qrr` Float64 COMMENT 'quality_refunded_orders / paid_orders (0 without paid orders)',
  `turns` UInt64 COMMENT 'customer-service buyer turns starting in the window (shops)',
  `fast_turns` UInt64 COMMENT 'of those, answered within 3 s',
  `within_3min_turns` UInt64 COMMENT 'of those, answered within 3 min',
  `fast` Nullable(Float64) COMMENT 'fast_turns / turns, 1 without turns (shops; NULL otherwise)',
  `within_3min` Nullable(Float64) COMMENT 'within_3min_turns / turns, 1 without turns (shops; NULL otherwise)',
  `product_part` Float64 COMMENT 'P = clamp(smooth(rating_sum, reviews) - 10 × qrr): the score of a sku or account',
  `service_part` Nullable(Float64) COMMENT 'S = 0.5 × smooth(service) + 0.5 × 5 × (fast + within_3min) / 2 (shops)',
  `logistics_part` Nullable(Float64) COMMENT 'L = smooth(logistics) (shops)',
  `refreshed_at` DateTime64(6, 'UTC') COMMENT 'when this row was recomputed from the facts; the latest wins'
) AS SELECT `day`, `subject_kind`, `subject_id`, `score`, `n`, `reviews`, `product_rating_sum`, `service_rating_sum`, `logistics_rating_sum`, `rating_sum`, `paid_orders`, `refunds`, `quality_refunded_orders`, `qrr`, `turns`, `fast_turns`, `within_3min_turns`, `fast`, `within_3min`, `product_part`, `service_part`, `logistics_part`, `refreshed_at` FROM `{db}`.`trust_scores_store` FINAL
COMMENT 'Trust scores per Asia/Shanghai day and subject (SPEC §7): 商品分 (sku), 带货口碑分 (account), 商号体验分 (shop), each over the 30 days ending with day, with every input of its formula. Recomputed by the worker from the de-duplicated facts (reviews, refunds, cs_turns, attributed_gmv): a replay or a crash never changes a score. The current score: the row with the latest day. Exact: each row once, however often it was written.'
