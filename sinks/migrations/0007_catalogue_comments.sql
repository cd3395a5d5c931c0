-- migration 7: table and column comments as the catalogue (gmv.schemas.catalogue) states them: no SPEC section numbers, the ingest_log, content_minute and alerts views described as they are
-- Frozen: the DDL exactly as it shipped. Never edit it; add a new migration instead.
-- Statements are separated by a line holding only ';'. {db} stands for the database.
ALTER TABLE `{db}`.`ingest_log_store` MODIFY COMMENT 'One row per received event (or undecodable message) with its outcome; counters come from here. Accepted events are logged by ClickHouse itself from events (materialized view events_log). Stored rows; may hold not-yet-merged copies: query the view ingest_log.'
;
ALTER TABLE `{db}`.`ingest_log` MODIFY COMMENT 'One row per received event (or undecodable message) with its outcome; counters come from here. Accepted events are logged by ClickHouse itself from events (materialized view events_log). Exact: each row once, however often it was written.'
;
ALTER TABLE `{db}`.`refunds_store` MODIFY COMMENT 'Applied refunds with their reason (the trust scores count quality refunds), one row per refund event, with its order\'s shop, SKU and seller. Quality refunds (is_quality) weigh on the trust scores. Stored rows; may hold not-yet-merged copies: query the view refunds.'
;
ALTER TABLE `{db}`.`refunds` MODIFY COMMENT 'Applied refunds with their reason (the trust scores count quality refunds), one row per refund event, with its order\'s shop, SKU and seller. Quality refunds (is_quality) weigh on the trust scores. Exact: each row once, however often it was written.'
;
ALTER TABLE `{db}`.`reviews_store` MODIFY COMMENT 'Buyers\' reviews of paid orders (inputs of the trust scores), one per order, with the order\'s shop, SKU and seller. Dead-lettered reviews (orphan_review, review_already_given, review_user_mismatch) are not here. Stored rows; may hold not-yet-merged copies: query the view reviews.'
;
ALTER TABLE `{db}`.`reviews` MODIFY COMMENT 'Buyers\' reviews of paid orders (inputs of the trust scores), one per order, with the order\'s shop, SKU and seller. Dead-lettered reviews (orphan_review, review_already_given, review_user_mismatch) are not here. Exact: each row once, however often it was written.'
;
ALTER TABLE `{db}`.`cs_turns_store` MODIFY COMMENT 'Customer-service buyer turns (the trust scores\' response times): a turn starts at a buyer message that opens the conversation or follows an agent message, and ends at the next agent message (bots answer nothing). Recomputed from all the conversation\'s messages whenever one arrives, so arrival order never matters; the view holds the turns only (is_turn = 1). Stored rows; may hold not-yet-merged copies: query the view cs_turns.'
;
ALTER TABLE `{db}`.`cs_turns` MODIFY COMMENT 'Customer-service buyer turns (the trust scores\' response times): a turn starts at a buyer message that opens the conversation or follows an agent message, and ends at the next agent message (bots answer nothing). Recomputed from all the conversation\'s messages whenever one arrives, so arrival order never matters; the view holds the turns only (is_turn = 1). Exact: each row once, however often it was written.'
;
ALTER TABLE `{db}`.`content_minute` MODIFY COMMENT 'GMV per minute by the content it was paid in (the conversion touch, whole amounts), recomputed by the worker from the de-duplicated facts with the other minute rollups. Exact: each row once, however often it was written.'
;
ALTER TABLE `{db}`.`trust_daily_store` MODIFY COMMENT 'What each Asia/Shanghai day\'s facts add to the trust scores, per subject: the scores of a day sum the 30 days of this table ending with it. Recomputed by the worker from the facts of the days that changed. Stored rows; may hold not-yet-merged copies: query the view trust_daily.'
;
ALTER TABLE `{db}`.`trust_daily` MODIFY COMMENT 'What each Asia/Shanghai day\'s facts add to the trust scores, per subject: the scores of a day sum the 30 days of this table ending with it. Recomputed by the worker from the facts of the days that changed. Exact: each row once, however often it was written.'
;
ALTER TABLE `{db}`.`trust_scores_store` MODIFY COMMENT 'Trust scores per Asia/Shanghai day and subject (docs/trust-scores.md): 商品分 (sku), 带货口碑分 (account), 商号体验分 (shop), each over the 30 days ending with day, with every input of its formula. Recomputed by the worker from the de-duplicated facts (reviews, refunds, cs_turns, attributed_gmv): a replay or a crash never changes a score. The current score: the row with the latest day. Stored rows; may hold not-yet-merged copies: query the view trust_scores.'
;
ALTER TABLE `{db}`.`trust_scores_store` COMMENT COLUMN `n` 'n of the formula: reviews in the window, as the column reviews'
;
ALTER TABLE `{db}`.`trust_scores` MODIFY COMMENT 'Trust scores per Asia/Shanghai day and subject (docs/trust-scores.md): 商品分 (sku), 带货口碑分 (account), 商号体验分 (shop), each over the 30 days ending with day, with every input of its formula. Recomputed by the worker from the de-duplicated facts (reviews, refunds, cs_turns, attributed_gmv): a replay or a crash never changes a score. The current score: the row with the latest day. Exact: each row once, however often it was written.'
;
ALTER TABLE `{db}`.`trust_scores` COMMENT COLUMN `n` 'n of the formula: reviews in the window, as the column reviews'
;
ALTER TABLE `{db}`.`alerts_store` MODIFY COMMENT 'Alerts fired by the worker, one row per alert_id: firing, then resolved (docs/alerts.md). Stored rows; may hold not-yet-merged copies: query the view alerts.'
;
ALTER TABLE `{db}`.`alerts` MODIFY COMMENT 'Alerts fired by the worker, one row per alert_id: firing, then resolved (docs/alerts.md). Exact: each row once, however often it was written.'
