"""The dashboard's figures: parameterised, read-only queries over the rollups and facts.

Every panel is one query; every value goes in as a parameter (``{name:Type}``).
The page polls ``/gmv/dashboard/data/?model=...`` and draws what comes back.

Definitions (the same as the README's outputs table):
- GMV: paid amounts credited; refunds are credited negatively; net = GMV - refunds.
- orders / buyers: counted on the conversion touch (once per order and model).
- AOV (客单价) = GMV / orders; GPM = GMV (yuan) per 1,000 views (video views + live
  enters); conversion rate = buyers / unique viewers (UV).
- SKUs have no views of their own: their GPM and conversion rate are over the views
  and viewers of content mounting the SKU's shop.
- The alerts panel lists open alerts first, then those fired in the last ``ALERTS_HOURS``.
- Trust scores (SPEC §7): every shop's 商号体验分 of the latest day, and the day's movers (any
  subject whose score changed most since the day before).
- The per-minute panels show the ``WINDOW_MINUTES`` whole minutes of event time that end at the
  attribution watermark (a replay of last month shows last month), every minute of them (an empty
  minute is zero), labelled in Asia/Shanghai: paid GMV by stage, refunds apart, net as a line.
- Views and viewers come from ``funnel_day`` (recomputed by ClickHouse every 5 s), GMV from the
  worker's rollups (``gmv.sinks.levels``; per minute, ``gmv_minute``).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from gmv.schemas.outputs import MODELS, STAGES

SHANGHAI = ZoneInfo("Asia/Shanghai")
WINDOW_MINUTES = 180
TOP_N = 8
Run = Callable[[str, dict[str, Any]], list[dict[str, Any]]]

# Aliases never reuse a column name: ClickHouse would resolve a later sum(x) to the alias.
# Every panel reads rollups only (never the facts), so a refresh costs the same at 10M facts as at
# 10k: all-time figures from the day rollups (``gmv.sinks.levels``; views from funnel_day), the
# per-minute panels from gmv_minute over their window. Six queries per refresh.
SUMMARY = """
WITH (SELECT tuple(toInt64(sum(gmv_fen)), toInt64(sum(refund_fen)), toInt64(sum(net_fen)), toUInt64(sum(orders)),
                   toUInt64(uniqMerge(buyers)))
      FROM {db:Identifier}.content_credit_day WHERE model = {model:String}) AS k,
     (SELECT tuple(toUInt64(sumIf(views, stage != 'live')), toUInt64(sumIf(engaged_views, stage != 'live')),
                   toUInt64(sum(live_enters)), toUInt64(uniqMerge(viewers)), toUInt64(sum(views)))
      FROM {db:Identifier}.funnel_day) AS f
SELECT k.1 AS k_gmv, k.2 AS k_refund, k.3 AS k_net, k.4 AS k_orders, k.5 AS k_buyers,
       f.1 AS f_video_views, f.2 AS f_engaged, f.3 AS f_enters, f.4 AS f_viewers, f.5 AS f_all_views,
       (SELECT toUInt64(count()) FROM {db:Identifier}.dead_letters) AS dead_letters,
       (SELECT toUnixTimestamp(max(minute)) FROM {db:Identifier}.gmv_minute WHERE model = {model:String}) AS latest
"""
PER_MINUTE = """
SELECT toUnixTimestamp(minute) AS t, stage, toInt64(sum(gmv_fen)) AS m_gmv, toInt64(sum(refund_fen)) AS m_refund,
       toInt64(sum(net_fen)) AS m_net, toUInt64(sum(orders)) AS m_orders, toUInt64(sum(refunds)) AS m_refunds
FROM {db:Identifier}.gmv_minute
WHERE model = {model:String} AND minute >= {from:DateTime('UTC')} AND minute < {to:DateTime('UTC')}
GROUP BY minute, stage
"""
# The three top-N tables in one query: each part ranks on the day rollup, then joins its views.
TOP = """
SELECT 'lives' AS panel, g.id AS id, g.acct AS account, '' AS shop, g.g_net AS net_fen, g.g_gmv AS gmv_fen,
       toInt64(0) AS self_net_fen, g.g_orders AS orders, g.g_buyers AS buyers, f.f_views AS views,
       f.f_viewers AS viewers
FROM (SELECT content_id AS id, any(account_id) AS acct, toInt64(sum(net_fen)) AS g_net,
             toInt64(sum(gmv_fen)) AS g_gmv, toUInt64(sum(orders)) AS g_orders, toUInt64(uniqMerge(buyers)) AS g_buyers
      FROM {db:Identifier}.content_credit_day WHERE model = {model:String} AND stage = 'live'
      GROUP BY id ORDER BY g_net DESC, id LIMIT {top:UInt32}) AS g
LEFT JOIN (SELECT content_id AS id, toUInt64(sum(views)) AS f_views, toUInt64(uniqMerge(viewers)) AS f_viewers
           FROM {db:Identifier}.funnel_day WHERE stage = 'live' GROUP BY id) AS f USING (id)
UNION ALL
SELECT 'accounts', g.id, '', '', g.g_net, g.g_gmv, g.g_self_net, g.g_orders, g.g_buyers, f.f_views, f.f_viewers
FROM (SELECT account_id AS id, toInt64(sum(net_fen)) AS g_net, toInt64(sum(gmv_fen)) AS g_gmv,
             toInt64(sumIf(net_fen, is_self = 1)) AS g_self_net, toUInt64(sum(orders)) AS g_orders,
             toUInt64(uniqMerge(buyers)) AS g_buyers
      FROM {db:Identifier}.content_credit_day WHERE model = {model:String} AND account_id != ''
      GROUP BY id ORDER BY g_net DESC, id LIMIT {top:UInt32}) AS g
LEFT JOIN (SELECT account_id AS id, toUInt64(sum(views)) AS f_views, toUInt64(uniqMerge(viewers)) AS f_viewers
           FROM {db:Identifier}.funnel_day GROUP BY id) AS f USING (id)
UNION ALL
SELECT 'skus', g.id, '', g.shop, g.g_net, g.g_gmv, toInt64(0), g.g_orders, g.g_buyers, f.f_views, f.f_viewers
FROM (SELECT sku_id AS id, any(shop_id) AS shop, toInt64(sum(net_fen)) AS g_net, toInt64(sum(gmv_fen)) AS g_gmv,
             toUInt64(sum(orders)) AS g_orders, toUInt64(uniqMerge(buyers)) AS g_buyers
      FROM {db:Identifier}.sku_gmv_day GROUP BY id ORDER BY g_net DESC, id LIMIT {top:UInt32}) AS g
LEFT JOIN (SELECT shop_id AS shop, toUInt64(sum(views)) AS f_views, toUInt64(uniqMerge(viewers)) AS f_viewers
           FROM {db:Identifier}.funnel_day GROUP BY shop) AS f ON f.shop = g.shop
"""
PATH_MIX = """
SELECT path, toUInt64(sum(orders)) AS orders, toInt64(sum(net_fen)) AS net_fen
FROM {db:Identifier}.path_gmv_day GROUP BY path ORDER BY net_fen DESC, path LIMIT 12
"""
ALERTS = """
SELECT alert_id AS id, rule, severity, subject_kind, subject_id, state, message,
       formatDateTime(toTimeZone(window_start, 'Asia/Shanghai'), '%m-%d %H:%i') AS window_from,
       formatDateTime(toTimeZone(window_end, 'Asia/Shanghai'), '%H:%i') AS window_to
FROM {db:Identifier}.alerts
WHERE state = 'firing' OR fired_at >= now64(3) - INTERVAL {alerts_hours:UInt32} HOUR
ORDER BY state = 'firing' DESC, fired_at DESC, alert_id LIMIT {top:UInt32}
"""
ALERTS_HOURS = 24  # the alerts panel: every open alert, and those fired within this many hours
# Trust scores (SPEC §7) of the latest day, with the change since the day before (NULL: no score then).
_SCORES_OF_THE_DAY = """
WITH (SELECT max(day) FROM {db:Identifier}.trust_scores) AS d
SELECT t.subject_kind AS kind, t.subject_id AS id, t.score AS score, toString(d) AS day,
       if(p.subject_id = '', NULL, t.score - p.score) AS change, t.reviews AS reviews, t.qrr AS qrr, t.fast AS fast,
       t.paid_orders AS orders
FROM (SELECT subject_kind, subject_id, score, reviews, qrr, fast, paid_orders FROM {db:Identifier}.trust_scores
      WHERE day = d) AS t
LEFT JOIN (SELECT subject_kind, subject_id, score FROM {db:Identifier}.trust_scores WHERE day = d - 1) AS p
  ON p.subject_kind = t.subject_kind AND p.subject_id = t.subject_id
"""
SCORES = ("SELECT 'shops' AS panel, * FROM (" + _SCORES_OF_THE_DAY
          + "WHERE kind = 'shop' ORDER BY score DESC, id LIMIT {shops:UInt32}) UNION ALL SELECT 'movers', * FROM ("
          + _SCORES_OF_THE_DAY
          + "WHERE change IS NOT NULL AND change != 0 ORDER BY abs(change) DESC, kind, id LIMIT {top:UInt32})")
SHOPS_SHOWN = 20


def _ratios(row: dict[str, Any]) -> dict[str, Any]:
    """AOV (fen), GPM (yuan per 1,000 views) and conversion rate, from a row's sums."""
    gmv, orders = int(row.get("gmv_fen") or 0), int(row.get("orders") or 0)
    views, viewers, buyers = int(row.get("views") or 0), int(row.get("viewers") or 0), int(row.get("buyers") or 0)
    return {**row, "aov_fen": round(gmv / orders) if orders else 0,
            "gpm_yuan": round(gmv / 100 * 1000 / views, 2) if views else 0.0,
            "conversion_rate": round(buyers / viewers, 4) if viewers else 0.0}


def minute_window(watermark_ms: int | None, latest_s: int | None) -> tuple[datetime, datetime] | None:
    """The per-minute panels' window: ``WINDOW_MINUTES`` whole minutes ending at the attribution
    watermark (every order up to it is attributed, so no minute in the window is missing paid
    orders still waiting for ``attribution_delay``). Without one (a process that has attributed
    nothing yet), the window ends after the latest minute stored. None: no data at all."""
    if watermark_ms:
        end = datetime.fromtimestamp(watermark_ms // 60_000 * 60, UTC)
    elif latest_s:
        end = datetime.fromtimestamp(latest_s, UTC) + timedelta(minutes=1)
    else:
        return None
    return end - timedelta(minutes=WINDOW_MINUTES), end


def per_minute(rows: list[dict[str, Any]], window: tuple[datetime, datetime] | None) -> list[dict[str, Any]]:
    """Every minute of the window, in order, an empty one as zeros (a continuous time axis):
    paid GMV per stage, refunds, net, orders and refunds counted."""
    if window is None:
        return []
    start, end = window
    minutes: dict[int, dict[str, Any]] = {}
    t = start
    while t < end:
        label = t.astimezone(SHANGHAI).strftime("%m-%d %H:%M")
        minutes[int(t.timestamp())] = {"label": label, "t": int(t.timestamp()), "gmv_fen": 0, "refund_fen": 0,
                                       "net_fen": 0, "orders": 0, "refunds": 0, **{f"gmv_{s}": 0 for s in STAGES}}
        t += timedelta(minutes=1)
    for r in rows:
        m = minutes[int(r["t"])]
        m["gmv_fen"] += r["m_gmv"]
        m["refund_fen"] += r["m_refund"]
        m["net_fen"] += r["m_net"]
        m["orders"] += r["m_orders"]
        m["refunds"] += r["m_refunds"]
        m[f"gmv_{r['stage']}"] += r["m_gmv"]
    return list(minutes.values())


def dashboard_data(run: Run, db: str, model: str, watermark_ms: int | None = None) -> dict[str, Any]:
    """Every figure of the page, in six read-only queries over the rollups. ``watermark_ms``: the
    attribution watermark of the worker serving the page (event time, epoch ms), where the
    per-minute panels end."""
    if model not in MODELS:
        raise ValueError(f"unknown model {model!r}; one of {', '.join(MODELS)}")
    p: dict[str, Any] = {"db": db, "model": model, "top": TOP_N, "alerts_hours": ALERTS_HOURS, "shops": SHOPS_SHOWN}
    k = run(SUMMARY, p)[0]
    kpis = _ratios({"gmv_fen": k["k_gmv"], "refund_fen": k["k_refund"], "net_fen": k["k_net"],
                    "orders": k["k_orders"], "buyers": k["k_buyers"], "views": k["f_all_views"],
                    "viewers": k["f_viewers"]})
    window = minute_window(watermark_ms, int(k["latest"] or 0) or None)
    rows = run(PER_MINUTE, {**p, "from": window[0], "to": window[1]}) if window else []
    tops: dict[str, list[dict[str, Any]]] = {"lives": [], "accounts": [], "skus": []}
    for r in sorted(run(TOP, p), key=lambda r: (-r["net_fen"], r["id"])):
        tops[r.pop("panel")].append(_ratios(r))
    scores: dict[str, list[dict[str, Any]]] = {"shops": [], "movers": []}
    for r in run(SCORES, p):
        scores[r.pop("panel")].append(r)
    return {
        "model": model,
        "kpis": kpis,
        "funnel": {"views": k["f_video_views"], "engaged_views": k["f_engaged"], "live_enters": k["f_enters"],
                   "orders": kpis["orders"]},
        "per_minute": per_minute(rows, window),
        "window_end": window[1].isoformat() if window else None,
        "watermark_ms": watermark_ms or None,
        "stages": list(STAGES),
        "top_lives": tops["lives"],
        "top_accounts": tops["accounts"],
        "top_skus": tops["skus"],
        "path_mix": run(PATH_MIX, p),
        "dead_letters": k["dead_letters"],
        "alerts": run(ALERTS, p),
        "shop_scores": scores["shops"],
        "score_movers": scores["movers"],
    }


_COUNTS = frozenset({"orders", "reviews", "buyers", "views", "viewers", "n", "k_gmv", "k_refund", "k_net", "k_orders", "k_buyers",
                     "f_video_views", "f_engaged", "f_enters", "f_viewers", "f_all_views", "m_gmv", "m_refund", "m_net",
                     "m_orders", "m_refunds", "dead_letters", "latest", "t"})


def json_rows(raw: bytes) -> list[dict[str, Any]]:
    """JSONEachRow -> dicts; ClickHouse quotes 64-bit integers in JSON, so money and counts are
    turned back into ints here (readonly SQL may not change the output settings)."""
    out = []
    for line in raw.splitlines():
        if line.strip():
            row = json.loads(line)
            out.append({k: int(v) if (k.endswith("_fen") or k in _COUNTS) and v is not None else v
                        for k, v in row.items()})
    return out
