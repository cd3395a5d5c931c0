"""The dashboard as it was before it read rollups only (issue 13): the baseline `python -m bench`
times beside the current one, on the same facts in the same run. Kept verbatim but for its JSON
decoding (the bench decodes both dashboards' rows with the current ``json_rows``); not shipped."""
# ruff: noqa

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from gmv.schemas.outputs import RULE_MODELS as MODELS  # the dashboard before knew these five
from gmv.schemas.outputs import STAGES

WINDOW_MINUTES = 180
TOP_N = 8
Run = Callable[[str, dict[str, Any]], list[dict[str, Any]]]

# Aliases never reuse a column name: ClickHouse would resolve a later sum(x) to the alias.
KPIS = """
SELECT toInt64(sum(gmv_fen)) AS k_gmv, toInt64(sum(refund_fen)) AS k_refund, toInt64(sum(net_fen)) AS k_net,
       toUInt64(sum(orders)) AS k_orders, toUInt64(uniqMerge(buyers)) AS k_buyers
FROM {db:Identifier}.gmv_minute WHERE model = {model:String}
"""
FUNNEL = """
SELECT toUInt64(sumIf(views, stage != 'live')) AS f_video_views,
       toUInt64(sumIf(engaged_views, stage != 'live')) AS f_engaged, toUInt64(sum(live_enters)) AS f_enters,
       toUInt64(uniqMerge(viewers)) AS f_viewers, toUInt64(sum(views)) AS f_all_views
FROM {db:Identifier}.funnel_minute
"""
LATEST = "SELECT toString(max(minute)) AS latest FROM {db:Identifier}.gmv_minute WHERE model = {model:String}"
PER_MINUTE = """
SELECT formatDateTime(toTimeZone(minute, 'Asia/Shanghai'), '%m-%d %H:%i') AS label, stage,
       toInt64(sum(gmv_fen)) AS m_gmv, toInt64(sum(refund_fen)) AS m_refund, toInt64(sum(net_fen)) AS m_net
FROM {db:Identifier}.gmv_minute
WHERE model = {model:String}
  AND minute > (SELECT max(minute) FROM {db:Identifier}.gmv_minute WHERE model = {model:String}) - INTERVAL {window:UInt32} MINUTE
GROUP BY minute, stage ORDER BY minute, stage
"""
TOP_LIVES = """
SELECT g.content AS id, g.anchor AS account, g.g_net AS net_fen, g.g_gmv AS gmv_fen, g.g_orders AS orders,
       g.g_buyers AS buyers, f.f_views AS views, f.f_viewers AS viewers
FROM (SELECT touch_content_id AS content, any(touch_account_id) AS anchor, toInt64(sum(credit_fen)) AS g_net,
             toInt64(sumIf(credit_fen, kind = 'paid')) AS g_gmv,
             toUInt64(countIf(kind = 'paid' AND is_conversion = 1)) AS g_orders,
             toUInt64(uniqExactIf(user_id, kind = 'paid' AND is_conversion = 1)) AS g_buyers
      FROM {db:Identifier}.attributed_gmv WHERE model = {model:String} AND stage = 'live'
      GROUP BY content ORDER BY g_net DESC LIMIT {top:UInt32}) AS g
LEFT JOIN (SELECT content_id AS content, toUInt64(sum(views)) AS f_views, toUInt64(uniqMerge(viewers)) AS f_viewers
           FROM {db:Identifier}.funnel_minute WHERE stage = 'live' GROUP BY content) AS f USING (content)
ORDER BY net_fen DESC
"""
TOP_ACCOUNTS = """
SELECT g.account AS id, g.g_net AS net_fen, g.g_gmv AS gmv_fen, g.g_self_net AS self_net_fen, g.g_orders AS orders,
       g.g_buyers AS buyers, f.f_views AS views, f.f_viewers AS viewers
FROM (SELECT touch_account_id AS account, toInt64(sum(net_fen)) AS g_net, toInt64(sum(gmv_fen)) AS g_gmv,
             toInt64(sumIf(net_fen, is_self = 1)) AS g_self_net, toUInt64(sum(orders)) AS g_orders,
             toUInt64(uniqMerge(buyers)) AS g_buyers
      FROM {db:Identifier}.gmv_minute WHERE model = {model:String} AND touch_account_id != ''
      GROUP BY account ORDER BY g_net DESC LIMIT {top:UInt32}) AS g
LEFT JOIN (SELECT account_id AS account, toUInt64(sum(views)) AS f_views, toUInt64(uniqMerge(viewers)) AS f_viewers
           FROM {db:Identifier}.funnel_minute GROUP BY account) AS f USING (account)
ORDER BY net_fen DESC
"""
TOP_SKUS = """
SELECT g.sku AS id, g.shop AS shop, g.g_net AS net_fen, g.g_gmv AS gmv_fen, g.g_orders AS orders,
       g.g_buyers AS buyers, f.f_views AS views, f.f_viewers AS viewers
FROM (SELECT sku_id AS sku, any(shop_id) AS shop, toInt64(sum(credit_fen)) AS g_net,
             toInt64(sumIf(credit_fen, kind = 'paid')) AS g_gmv,
             toUInt64(countIf(kind = 'paid' AND is_conversion = 1)) AS g_orders,
             toUInt64(uniqExactIf(user_id, kind = 'paid' AND is_conversion = 1)) AS g_buyers
      FROM {db:Identifier}.attributed_gmv WHERE model = {model:String}
      GROUP BY sku ORDER BY g_net DESC LIMIT {top:UInt32}) AS g
LEFT JOIN (SELECT shop_id AS shop, toUInt64(sum(views)) AS f_views, toUInt64(uniqMerge(viewers)) AS f_viewers
           FROM {db:Identifier}.funnel_minute GROUP BY shop) AS f USING (shop)
ORDER BY net_fen DESC
"""
PATH_MIX = """
SELECT path, toUInt64(countIf(kind = 'paid' AND is_conversion = 1)) AS orders, toInt64(sum(credit_fen)) AS net_fen
FROM {db:Identifier}.attributed_gmv WHERE model = {model:String}
GROUP BY path ORDER BY net_fen DESC LIMIT 12
"""
DEAD_LETTERS = "SELECT toUInt64(count()) AS n FROM {db:Identifier}.dead_letters"
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
SHOP_SCORES = _SCORES_OF_THE_DAY + "WHERE kind = 'shop' ORDER BY score DESC, id LIMIT {shops:UInt32}"
SCORE_MOVERS = _SCORES_OF_THE_DAY + "WHERE change IS NOT NULL AND change != 0 ORDER BY abs(change) DESC, kind, id LIMIT {top:UInt32}"
SHOPS_SHOWN = 20


def _ratios(row: dict[str, Any]) -> dict[str, Any]:
    """AOV (fen), GPM (yuan per 1,000 views) and conversion rate, from a row's sums."""
    gmv, orders = int(row.get("gmv_fen") or 0), int(row.get("orders") or 0)
    views, viewers, buyers = int(row.get("views") or 0), int(row.get("viewers") or 0), int(row.get("buyers") or 0)
    return {**row, "aov_fen": round(gmv / orders) if orders else 0,
            "gpm_yuan": round(gmv / 100 * 1000 / views, 2) if views else 0.0,
            "conversion_rate": round(buyers / viewers, 4) if viewers else 0.0}


def dashboard_data(run: Run, db: str, model: str) -> dict[str, Any]:
    if model not in MODELS:
        raise ValueError(f"unknown model {model!r}; one of {', '.join(MODELS)}")
    p = {"db": db, "model": model, "window": WINDOW_MINUTES, "top": TOP_N, "alerts_hours": ALERTS_HOURS,
         "shops": SHOPS_SHOWN}
    k = run(KPIS, p)[0]
    f = run(FUNNEL, p)[0]
    kpis = _ratios({"gmv_fen": k["k_gmv"], "refund_fen": k["k_refund"], "net_fen": k["k_net"],
                    "orders": k["k_orders"], "buyers": k["k_buyers"], "views": f["f_all_views"],
                    "viewers": f["f_viewers"]})
    minutes: dict[str, dict[str, Any]] = {}
    for r in run(PER_MINUTE, p):
        m = minutes.setdefault(r["label"], {"label": r["label"], "gmv_fen": 0, "refund_fen": 0, "net_fen": 0,
                                            **{f"net_{s}": 0 for s in STAGES}})
        m["gmv_fen"] += r["m_gmv"]
        m["refund_fen"] += r["m_refund"]
        m["net_fen"] += r["m_net"]
        m[f"net_{r['stage']}"] += r["m_net"]
    return {
        "model": model,
        "kpis": kpis,
        "funnel": {"views": f["f_video_views"], "engaged_views": f["f_engaged"], "live_enters": f["f_enters"],
                   "orders": kpis["orders"]},
        "per_minute": list(minutes.values()),
        "stages": list(STAGES),
        "top_lives": [_ratios(r) for r in run(TOP_LIVES, p)],
        "top_accounts": [_ratios(r) for r in run(TOP_ACCOUNTS, p)],
        "top_skus": [_ratios(r) for r in run(TOP_SKUS, p)],
        "path_mix": run(PATH_MIX, p),
        "dead_letters": run(DEAD_LETTERS, p)[0]["n"],
        "alerts": run(ALERTS, p),
        "shop_scores": run(SHOP_SCORES, p),
        "score_movers": run(SCORE_MOVERS, p),
        "latest_minute": (run(LATEST, p)[0] or {}).get("latest"),
    }
