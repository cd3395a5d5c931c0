"""Minute rollups recomputed from the de-duplicated facts (SPEC §4: exact under retries and replays).

After each flush the worker recomputes the minutes its batch touched:
``INSERT INTO <rollup>_store SELECT ... FROM <facts view, FINAL> WHERE minute IN {minutes}``
(``gmv_minute``, ``content_minute`` from the credits; ``funnel_minute`` from the funnel events).
A recomputed row replaces the previous one (ReplacingMergeTree on ``refreshed_at``),
so the rollup always equals an aggregate of the facts — never a running sum that
a replayed batch could inflate. Their hours and days are recomputed from these
(``gmv.sinks.levels``).
"""

from __future__ import annotations

from datetime import datetime

GMV_MINUTE_REFRESH = """
INSERT INTO `{db}`.`gmv_minute_store`
SELECT toStartOfMinute(event_time) AS minute, model, stage, channel, traffic, shop_id, seller_id,
       touch_account_id, is_self,
       sumIf(credit_fen, kind = 'paid') AS gmv_fen, -sumIf(credit_fen, kind = 'refund') AS refund_fen,
       sum(credit_fen) AS net_fen,
       countIf(kind = 'paid' AND is_conversion = 1) AS orders,
       countIf(kind = 'refund' AND is_conversion = 1) AS refunds,
       uniqStateIf(user_id, kind = 'paid' AND is_conversion = 1) AS buyers,
       now64(6) AS refreshed_at
FROM `{db}`.`attributed_gmv`
WHERE toStartOfMinute(event_time) IN {{minutes:Array(DateTime('UTC'))}}
GROUP BY minute, model, stage, channel, traffic, shop_id, seller_id, touch_account_id, is_self
"""

# Live-room rules (``gmv.alerts``) need GMV per room: the conversion touch under last_touch
# carries each order's whole amount and its content (live_id / video_id).
CONTENT_MINUTE_REFRESH = """
INSERT INTO `{db}`.`content_minute_store`
SELECT toStartOfMinute(event_time) AS minute, channel, touch_content_id AS content_id, shop_id, seller_id,
       sumIf(credit_fen, kind = 'paid') AS gmv_fen, -sumIf(credit_fen, kind = 'refund') AS refund_fen,
       countIf(kind = 'paid') AS orders, countIf(kind = 'refund') AS refunds,
       uniqStateIf(user_id, kind = 'paid') AS buyers,
       now64(6) AS refreshed_at
FROM `{db}`.`attributed_gmv`
WHERE toStartOfMinute(event_time) IN {{minutes:Array(DateTime('UTC'))}} AND model = 'last_touch' AND is_conversion = 1
GROUP BY minute, channel, content_id, shop_id, seller_id
"""

FUNNEL_MINUTE_REFRESH = """
INSERT INTO `{db}`.`funnel_minute_store`
SELECT toStartOfMinute(event_time) AS minute, stage, account_id, content_id, shop_id, traffic,
       countIf(action IN ('view', 'enter')) AS views,
       countIf(engaged = 1) AS engaged_views,
       countIf(action = 'enter') AS live_enters,
       uniqStateIf(user_id, action IN ('view', 'enter')) AS viewers,
       now64(6) AS refreshed_at
FROM `{db}`.`funnel_events`
WHERE toStartOfMinute(event_time) IN {{minutes:Array(DateTime('UTC'))}}
GROUP BY minute, stage, account_id, content_id, shop_id, traffic
"""


def refresh_statements(db: str, gmv_minutes: set[datetime], funnel_minutes: set[datetime]
                       ) -> list[tuple[str, dict]]:
    """(SQL, parameters) to recompute the given minutes; chunks keep each statement small."""
    out: list[tuple[str, dict]] = []
    for sql, minutes in ((GMV_MINUTE_REFRESH, gmv_minutes), (CONTENT_MINUTE_REFRESH, gmv_minutes),
                         (FUNNEL_MINUTE_REFRESH, funnel_minutes)):
        ordered = sorted(minutes)
        for i in range(0, len(ordered), 500):
            out.append((sql.format(db=db), {"minutes": ordered[i:i + 500]}))
    return out
