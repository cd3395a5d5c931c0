"""Minute rollups recomputed from the de-duplicated facts (exact under retries and replays).

After each flush the worker recomputes the minutes its batch touched: ``INSERT INTO <rollup>_store
(columns) SELECT ... FROM <facts view, FINAL> WHERE minute IN {minutes}`` (``gmv_minute``,
``content_minute`` from the credits; ``funnel_minute`` from the funnel events), every column named
with its expression (``Table.insert_select``). A recomputed row replaces the previous one
(ReplacingMergeTree on ``refreshed_at``), so the rollup always equals an aggregate of the facts —
never a running sum that a replayed batch could inflate. Their hours and days are recomputed from
these (``gmv.sinks.levels``).
"""

from __future__ import annotations

from datetime import datetime

from gmv.schemas.catalogue import CONTENT_MINUTE, FUNNEL_MINUTE, GMV_MINUTE

DB = "{db:Identifier}"  # bound as a parameter, like every value
_MINUTES = "toStartOfMinute(event_time) IN {minutes:Array(DateTime('UTC'))}"

GMV_MINUTE_REFRESH = GMV_MINUTE.insert_select(DB, {
    "minute": "toStartOfMinute(event_time)", "model": "model", "stage": "stage", "channel": "channel",
    "traffic": "traffic", "shop_id": "shop_id", "seller_id": "seller_id", "touch_account_id": "touch_account_id",
    "is_self": "is_self", "gmv_fen": "sumIf(credit_fen, kind = 'paid')",
    "refund_fen": "-sumIf(credit_fen, kind = 'refund')", "net_fen": "sum(credit_fen)",
    "orders": "countIf(kind = 'paid' AND is_conversion = 1)", "refunds": "countIf(kind = 'refund' AND is_conversion = 1)",
    "buyers": "uniqStateIf(user_id, kind = 'paid' AND is_conversion = 1)", "refreshed_at": "now64(6)",
}, f"FROM {DB}.attributed_gmv WHERE {_MINUTES} "
   "GROUP BY minute, model, stage, channel, traffic, shop_id, seller_id, touch_account_id, is_self")

# Live-room rules (``gmv.alerts``) need GMV per room: the conversion touch under last_touch
# carries each order's whole amount and its content (live_id / video_id).
CONTENT_MINUTE_REFRESH = CONTENT_MINUTE.insert_select(DB, {
    "minute": "toStartOfMinute(event_time)", "channel": "channel", "content_id": "touch_content_id",
    "shop_id": "shop_id", "seller_id": "seller_id", "gmv_fen": "sumIf(credit_fen, kind = 'paid')",
    "refund_fen": "-sumIf(credit_fen, kind = 'refund')", "orders": "countIf(kind = 'paid')",
    "refunds": "countIf(kind = 'refund')", "buyers": "uniqStateIf(user_id, kind = 'paid')", "refreshed_at": "now64(6)",
}, f"FROM {DB}.attributed_gmv WHERE {_MINUTES} AND model = 'last_touch' AND is_conversion = 1 "
   "GROUP BY minute, channel, content_id, shop_id, seller_id")

FUNNEL_MINUTE_REFRESH = FUNNEL_MINUTE.insert_select(DB, {
    "minute": "toStartOfMinute(event_time)", "stage": "stage", "account_id": "account_id",
    "content_id": "content_id", "shop_id": "shop_id", "traffic": "traffic",
    "views": "countIf(action IN ('view', 'enter'))", "engaged_views": "countIf(engaged = 1)",
    "live_enters": "countIf(action = 'enter')", "viewers": "uniqStateIf(user_id, action IN ('view', 'enter'))",
    "refreshed_at": "now64(6)",
}, f"FROM {DB}.funnel_events WHERE {_MINUTES} GROUP BY minute, stage, account_id, content_id, shop_id, traffic")


# Stale funnel minutes, looked for once at start: the minutes of view and live-room events stored
# since (a margin before) the last funnel refresh. Their offsets may have been committed by a process
# killed before it refreshed them, and unlike credits (re-emitted from the journal) nothing re-sends
# them. The margin covers a refresh that began before the last rows it did not cover were noted, and
# clock skew with a server; a minute re-rolled needlessly costs one small statement.
STALE_MARGIN_S = 60
STALE_FUNNEL_MINUTES = (
    f"SELECT DISTINCT toStartOfMinute(event_time) FROM {DB}.events_store PREWHERE event_type IN ('view', 'live_room') "
    f"AND ingested_at >= (SELECT max(refreshed_at) FROM {DB}.funnel_minute_store) - INTERVAL {STALE_MARGIN_S} SECOND")


def refresh_statements(db: str, gmv_minutes: set[datetime], funnel_minutes: set[datetime]
                       ) -> list[tuple[str, dict]]:
    """(SQL, parameters) to recompute the given minutes; chunks keep each statement small."""
    out: list[tuple[str, dict]] = []
    for sql, minutes in ((GMV_MINUTE_REFRESH, gmv_minutes), (CONTENT_MINUTE_REFRESH, gmv_minutes),
                         (FUNNEL_MINUTE_REFRESH, funnel_minutes)):
        ordered = sorted(minutes)
        for i in range(0, len(ordered), 500):
            out.append((sql, {"db": db, "minutes": ordered[i:i + 500]}))
    return out


def markov_statements(db: str, minutes: set[datetime]) -> list[tuple[str, dict]]:
    """(SQL, parameters) recomputing the ``markov`` rows of ``gmv_minute`` for restated minutes (no other
    model's credits moved)."""
    sql = GMV_MINUTE_REFRESH.replace(f" WHERE {_MINUTES} ", f" WHERE {_MINUTES} AND model = 'markov' ", 1)
    ordered = sorted(minutes)
    return [(sql, {"db": db, "minutes": ordered[i:i + 500]}) for i in range(0, len(ordered), 500)]
