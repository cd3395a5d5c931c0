"""The dashboard's figures: parameterised, read-only queries over the rollups and facts.

Every panel is one query; every value goes in as a parameter (``{name:Type}``).
The page polls ``/gmv/dashboard/data/?model=...`` and draws what comes back.

Definitions (the same as docs/attribution.md, "Outputs in ClickHouse"):
- GMV: paid amounts credited; refunds are credited negatively; net = GMV - refunds.
- orders / buyers: counted on the conversion touch (once per order and model).
- AOV (客单价) = GMV / orders; GPM = GMV (yuan) per 1,000 views (video views + live
  enters); conversion rate = buyers / unique viewers (UV).
- SKUs have no views of their own: their GPM and conversion rate are over the views
  and viewers of content mounting the SKU's shop.
- The alerts panel lists open alerts first, then those fired in the last ``ALERTS_HOURS``, each with
  its window marked by its clock (event time for business rules, wall clock for pipeline rules),
  when it fired and resolved (wall clock), all in Asia/Shanghai (``alert_display``).
- Trust scores (SPEC §7): every shop's 商号体验分 of the latest day, and the day's movers (any
  subject whose score changed most since the day before).
- The per-minute panels show the ``WINDOW_MINUTES`` whole minutes of event time that end at the
  attribution watermark (a replay of last month shows last month), every minute of them (an empty
  minute is zero), labelled in Asia/Shanghai: paid GMV by stage, refunds apart, net as a line, and
  behind them the band of paid GMV the same minutes of the 7 days before make normal (the alert
  rules' seasonal baseline: median ± 3 spreads; none before 5 such days).
- Views and viewers come from ``funnel_day`` (recomputed by ClickHouse every 5 s), GMV from the
  worker's rollups (``gmv.sinks.levels``; per minute, ``gmv_minute``).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from gmv.schemas.outputs import MODELS, STAGES
from gmv.schemas.seasonal import MIN_SPREAD_PCT, TOLERANCE, baseline

SHANGHAI = ZoneInfo("Asia/Shanghai")
WINDOW_MINUTES = 180
BAND_DAYS, BAND_MIN_DAYS = 7, 5  # the alert rules' seasonal_days and seasonal_min_days defaults
TOP_N = 8
Run = Callable[[str, dict[str, Any]], list[dict[str, Any]]]

# Aliases never reuse a column name: ClickHouse would resolve a later sum(x) to the alias.
# Panels read the stored tables with FINAL, which is what their views do: expanding a view cost
# ~3-4 ms per read here, a third of a small panel.
# Every panel reads rollups only, never the facts: all-time figures from the day rollups
# (``gmv.sinks.levels``; views from funnel_day), the per-minute panels from gmv_minute over their
# window. KPIs and the SKU and path panels do not depend on the model: an order's credits sum to its
# amount under every model, and orders and buyers are counted once per order.
KPIS = """
SELECT toInt64(sum(gmv_fen)) AS k_gmv, toInt64(sum(refund_fen)) AS k_refund, toInt64(sum(net_fen)) AS k_net,
       toUInt64(sum(orders)) AS k_orders, toUInt64(uniqMerge(buyers)) AS k_buyers
FROM {db:Identifier}.shop_gmv_day_store FINAL
"""
FUNNEL = """
SELECT toUInt64(sumIf(views, stage != 'live')) AS f_video_views,
       toUInt64(sumIf(engaged_views, stage != 'live')) AS f_engaged, toUInt64(sum(live_enters)) AS f_enters,
       toUInt64(uniqMerge(viewers)) AS f_viewers, toUInt64(sum(views)) AS f_all_views
FROM {db:Identifier}.funnel_day_store FINAL
"""
DEAD_LETTERS = "SELECT toUInt64(count()) AS n FROM {db:Identifier}.dead_letters_store FINAL"
LATEST = "SELECT toUnixTimestamp(max(minute)) AS latest_s FROM {db:Identifier}.gmv_minute_store FINAL WHERE model = {model:String}"
PER_MINUTE = """
SELECT toUnixTimestamp(minute) AS t, stage, toInt64(sum(gmv_fen)) AS m_gmv, toInt64(sum(refund_fen)) AS m_refund,
       toInt64(sum(net_fen)) AS m_net, toUInt64(sum(orders)) AS m_orders, toUInt64(sum(refunds)) AS m_refunds
FROM {db:Identifier}.gmv_minute_store FINAL
WHERE model = {model:String} AND minute >= {from:DateTime('UTC')} AND minute < {to:DateTime('UTC')}
GROUP BY minute, stage
"""
# The expected band behind the per-minute GMV: paid GMV of the same minutes on each of the
# ``BAND_DAYS`` days before the window (the alert rules' seasonal baseline, ``gmv.schemas.seasonal``).
PER_MINUTE_DAYS = """
SELECT toUnixTimestamp(minute) AS t, toInt64(sum(gmv_fen)) AS b_gmv
FROM {db:Identifier}.gmv_minute_store FINAL
WHERE model = {model:String} AND minute >= {from:DateTime('UTC')} - INTERVAL 7 DAY
  AND minute < {to:DateTime('UTC')} - INTERVAL 1 DAY
  AND positiveModulo(toInt64(toUnixTimestamp(minute)) - toInt64(toUnixTimestamp({from:DateTime('UTC')})), 86400)
      < toInt64(toUnixTimestamp({to:DateTime('UTC')})) - toInt64(toUnixTimestamp({from:DateTime('UTC')}))
GROUP BY minute
"""
# The top-N tables rank on sums of the day rollups; the buyers and views of the ranked rows come
# after, for their ids only (``TOP_DETAILS``): merging every row's buyer state to rank on sums cost
# ~12 ms per table at 10M facts here, and a JOIN with funnel_day ~18 ms; looking up 8 ids, ~2 ms.
TOP_LIVES = """
SELECT content_id AS id, any(account_id) AS account, toInt64(sum(net_fen)) AS g_net, toInt64(sum(gmv_fen)) AS gmv_fen,
       toUInt64(sum(orders)) AS orders
FROM {db:Identifier}.content_credit_day_store FINAL WHERE model = {model:String} AND stage = 'live'
GROUP BY id ORDER BY g_net DESC, id LIMIT {top:UInt32}
"""
TOP_ACCOUNTS = """
SELECT account_id AS id, toInt64(sum(net_fen)) AS g_net, toInt64(sum(gmv_fen)) AS gmv_fen,
       toInt64(sumIf(net_fen, is_self = 1)) AS self_net_fen, toUInt64(sum(orders)) AS orders
FROM {db:Identifier}.content_credit_day_store FINAL WHERE model = {model:String} AND account_id != ''
GROUP BY id ORDER BY g_net DESC, id LIMIT {top:UInt32}
"""
TOP_SKUS = """
SELECT sku_id AS id, any(shop_id) AS shop, toInt64(sum(net_fen)) AS g_net, toInt64(sum(gmv_fen)) AS gmv_fen,
       toUInt64(sum(orders)) AS orders
FROM {db:Identifier}.sku_gmv_day_store FINAL GROUP BY id ORDER BY g_net DESC, id LIMIT {top:UInt32}
"""
# The ranked rows' distinct buyers, and the views and unique viewers of the ranked lives, accounts and
# the ranked SKUs' shops (a SKU has no views of its own: those of content mounting its shop).
TOP_DETAILS = """
SELECT 'lives' AS panel, content_id AS id, toUInt64(uniqMerge(buyers)) AS d_buyers, toUInt64(0) AS f_views,
       toUInt64(0) AS f_viewers
FROM {db:Identifier}.content_credit_day_store FINAL
WHERE model = {model:String} AND stage = 'live' AND content_id IN {lives:Array(String)} GROUP BY id
UNION ALL
SELECT 'accounts', account_id AS id, toUInt64(uniqMerge(buyers)), 0, 0
FROM {db:Identifier}.content_credit_day_store FINAL
WHERE model = {model:String} AND account_id IN {accounts:Array(String)} GROUP BY id
UNION ALL
SELECT 'skus', sku_id AS id, toUInt64(uniqMerge(buyers)), 0, 0
FROM {db:Identifier}.sku_gmv_day_store FINAL WHERE sku_id IN {skus:Array(String)} GROUP BY id
UNION ALL
SELECT multiIf(grouping(content_id) = 0, 'live_views', grouping(account_id) = 0, 'account_views', 'shop_views'),
       multiIf(grouping(content_id) = 0, content_id, grouping(account_id) = 0, account_id, shop_id), 0,
       toUInt64(sum(views)), toUInt64(uniqMerge(viewers))
FROM {db:Identifier}.funnel_day_store FINAL
WHERE (stage = 'live' AND content_id IN {lives:Array(String)}) OR account_id IN {accounts:Array(String)}
   OR shop_id IN {shops:Array(String)}
GROUP BY GROUPING SETS ((content_id), (account_id), (shop_id))
"""
PATH_MIX = """
SELECT path, toUInt64(sum(orders)) AS orders, toInt64(sum(net_fen)) AS net_fen
FROM {db:Identifier}.path_gmv_day_store FINAL GROUP BY path ORDER BY net_fen DESC, path LIMIT 12
"""
# Times as epoch ms: ``alert_display`` writes them for the page (Asia/Shanghai), by the alert's clock.
ALERTS = """
SELECT alert_id AS id, rule, severity, subject_kind, subject_id, state, message, clock,
       toUnixTimestamp64Milli(window_start) AS window_start_ms, toUnixTimestamp64Milli(window_end) AS window_end_ms,
       toUnixTimestamp64Milli(fired_at) AS fired_at_ms, toUnixTimestamp64Milli(resolved_at) AS resolved_at_ms
FROM {db:Identifier}.alerts_store FINAL
WHERE state = 'firing' OR fired_at >= now64(3) - INTERVAL {alerts_hours:UInt32} HOUR
ORDER BY state = 'firing' DESC, fired_at DESC, alert_id LIMIT {top:UInt32}
"""
ALERTS_HOURS = 24  # the alerts panel: every open alert, and those fired within this many hours
# Trust scores (SPEC §7) of the latest day and the day before; ``score_panels`` ranks them.
SCORES = """
SELECT subject_kind AS kind, subject_id AS id, day, score, reviews, qrr, fast, paid_orders AS orders
FROM {db:Identifier}.trust_scores_store FINAL WHERE day >= (SELECT max(day) FROM {db:Identifier}.trust_scores_store FINAL) - 1
"""
SHOPS_SHOWN = 20
# What each stage is worth (the markov model of the latest day, platform and shops) and each shop's paid
# GMV over the model's 28 days: the GMV at stake of a stage is its removal effect times that GMV.
STAGE_WORTH = """
SELECT shop_id AS shop, stage, removal_effect AS re, p_conv AS p, journeys, conversions, toString(day) AS model_day
FROM {db:Identifier}.markov_model_store FINAL
WHERE day = (SELECT max(day) FROM {db:Identifier}.markov_model_store FINAL)
"""
STAGE_WORTH_GMV = """
SELECT shop_id AS shop, toInt64(sum(gmv_fen)) AS window_gmv FROM {db:Identifier}.shop_gmv_day_store FINAL
WHERE day > (SELECT max(day) FROM {db:Identifier}.markov_model_store FINAL) - 28
  AND day <= (SELECT max(day) FROM {db:Identifier}.markov_model_store FINAL)
GROUP BY shop_id
"""
# A refresh runs two lines of statements at once, each statement a UNION ALL of panels whose rows
# come back as JSON objects: the ranking, then the ranked rows' details (``TOP_DETAILS``); and every
# other panel. Two statements at once use both cores, where one statement ran its branches one after
# the other (over 2M facts: ~60 ms against ~110 ms), and the details wait for the ranking only.
PANELS = {"kpis": KPIS, "funnel": FUNNEL, "dead_letters": DEAD_LETTERS, "per_minute": PER_MINUTE,
          "per_minute_days": PER_MINUTE_DAYS,
          "top_lives": TOP_LIVES, "top_accounts": TOP_ACCOUNTS, "top_skus": TOP_SKUS, "path_mix": PATH_MIX,
          "alerts": ALERTS, "scores": SCORES, "stage_worth": STAGE_WORTH, "stage_worth_gmv": STAGE_WORTH_GMV}


def _union(names: tuple[str, ...]) -> str:
    return "\nUNION ALL\n".join(
        f"SELECT '{name}' AS panel, formatRowNoNewline('JSONEachRow', *) AS row FROM ({PANELS[name].strip()})"
        for name in names)


RANKING = _union(("top_lives", "top_accounts", "top_skus"))
OTHERS = _union(("per_minute", "per_minute_days", "kpis", "funnel", "dead_letters", "path_mix", "alerts", "scores", "stage_worth",
                 "stage_worth_gmv"))


def _ratios(row: dict[str, Any]) -> dict[str, Any]:
    """AOV (fen), GPM (yuan per 1,000 views) and conversion rate, from a row's sums."""
    gmv, orders = int(row.get("gmv_fen") or 0), int(row.get("orders") or 0)
    views, viewers, buyers = int(row.get("views") or 0), int(row.get("viewers") or 0), int(row.get("buyers") or 0)
    return {**row, "aov_fen": round(gmv / orders) if orders else 0,
            "gpm_yuan": round(gmv / 100 * 1000 / views, 2) if views else 0.0,
            "conversion_rate": round(buyers / viewers, 4) if viewers else 0.0}


CLOCK_LABELS = {"event": "事件时间 event time", "wall": "系统时间 wall clock"}
NOT_YET = "—"  # an alert still firing has no resolved time


def _shanghai(ms: int | str | None) -> datetime | None:
    """Epoch ms (ClickHouse may quote 64-bit integers) -> an aware Asia/Shanghai datetime."""
    if ms is None or ms == "":
        return None
    ms = int(ms)
    return (datetime.fromtimestamp(ms // 1000, UTC) + timedelta(milliseconds=ms % 1000)).astimezone(SHANGHAI)


def _midnight(t: datetime) -> bool:
    return t.hour == t.minute == t.second == t.microsecond == 0


def instant_text(ms: int | str | None) -> str:
    """An instant as the page shows it: 'MM-DD HH:MM:SS' in Asia/Shanghai; '—' for none."""
    t = _shanghai(ms)
    return NOT_YET if t is None else t.strftime("%m-%d %H:%M:%S")


def window_text(start_ms: int | str, end_ms: int | str) -> tuple[str, str]:
    """An alert window [start, end) in Asia/Shanghai, and what kind of window it is:

    - ``day``: one whole day (00:00 to the next 00:00, the daily ``shop_score_drop``):
      '12-01 (全天 whole day)';
    - ``days``: several whole days: '12-01–12-03 (全天 whole days)' (the last day included);
    - ``within_day``: starts and ends on one date: '12-01 14:00–14:10';
    - ``across_midnight``: ends on a later date than it starts, so both dates show:
      '12-01 23:55–12-02 00:05'.

    Times are to the minute, or to the second when a bound is not on a whole minute (wall-clock
    pipeline windows, e.g. the last 60 s), so a short window never reads '01:33–01:33'."""
    start, end = _shanghai(start_ms), _shanghai(end_ms)
    assert start is not None and end is not None
    if end > start and _midnight(start) and _midnight(end):
        last = (end - timedelta(days=1)).date()
        if last == start.date():
            return f"{start:%m-%d} (全天 whole day)", "day"
        return f"{start:%m-%d}–{last:%m-%d} (全天 whole days)", "days"
    clock = "%H:%M:%S" if any(t.second or t.microsecond for t in (start, end)) else "%H:%M"
    if end.date() == start.date():
        return f"{start.strftime('%m-%d ' + clock)}–{end.strftime(clock)}", "within_day"
    return f"{start.strftime('%m-%d ' + clock)}–{end.strftime('%m-%d ' + clock)}", "across_midnight"


def alert_display(row: dict[str, Any]) -> dict[str, Any]:
    """An alerts-panel row with what the page shows: its window (``window``, ``window_kind``, see
    ``window_text``), the clock that window is on (``clock``: event | wall, ``clock_label``), when it
    fired and resolved (wall clock; ``resolved`` is '—' while firing), all in Asia/Shanghai."""
    window, kind = window_text(row["window_start_ms"], row["window_end_ms"])
    clock = str(row.get("clock") or "")
    return {**row, "window": window, "window_kind": kind, "clock": clock,
            "clock_label": CLOCK_LABELS.get(clock, clock or "?"),
            "fired": instant_text(row.get("fired_at_ms")), "resolved": instant_text(row.get("resolved_at_ms"))}


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


def expected_band(rows: list[dict[str, Any]], window: tuple[datetime, datetime] | None
                  ) -> dict[int, tuple[int, int] | None]:
    """Per minute of the window (epoch s), the band of paid GMV the same minute of the days before
    makes normal: median ± TOLERANCE spreads (as the alert rules judge), from the days that had any
    GMV in the window's minutes; None with fewer than BAND_MIN_DAYS such days."""
    if window is None:
        return {}
    start, end = (int(t.timestamp()) for t in window)
    gmv = {int(r["t"]): int(r["b_gmv"]) for r in rows}
    days = [d for d in range(1, BAND_DAYS + 1) if any(start - d * 86_400 <= t < end - d * 86_400 for t in gmv)]
    out: dict[int, tuple[int, int] | None] = {}
    for t in range(start, end, 60):
        b = baseline([gmv.get(t - d * 86_400, 0) if d in days else None for d in range(1, BAND_DAYS + 1)],
                     MIN_SPREAD_PCT)
        out[t] = None if b.seen < BAND_MIN_DAYS else (max(0, round(b.median - TOLERANCE * b.spread)),
                                                       round(b.median + TOLERANCE * b.spread))
    return out


def _top_details(run: Run, p: dict[str, Any], panels: dict[str, list[dict[str, Any]]]) -> dict[str, dict]:
    """panel -> id -> (buyers, views, viewers) of the ranked rows (views of a SKU's shop under 'skus')."""
    ids = {"lives": [r["id"] for r in panels["top_lives"]], "accounts": [r["id"] for r in panels["top_accounts"]],
           "skus": [r["id"] for r in panels["top_skus"]], "shops": sorted({r["shop"] for r in panels["top_skus"]})}
    found: dict[str, dict[str, dict[str, int]]] = {}
    if any(ids.values()):
        for r in run(TOP_DETAILS, {**p, **ids}):
            found.setdefault(r["panel"], {})[r["id"]] = r
    out: dict[str, dict] = {}
    for panel, views, key in (("lives", "live_views", "id"), ("accounts", "account_views", "id"),
                              ("skus", "shop_views", "shop")):
        rows = {r["id"]: r for r in panels[f"top_{panel}"]}
        out[panel] = {i: (found.get(panel, {}).get(i, {}).get("d_buyers", 0),
                          found.get(views, {}).get(r[key], {}).get("f_views", 0),
                          found.get(views, {}).get(r[key], {}).get("f_viewers", 0)) for i, r in rows.items()}
    return out


def _ranked(rows: list[dict[str, Any]], details: dict[str, tuple[int, int, int]]) -> list[dict[str, Any]]:
    """A top-N table's rows, largest net GMV first, with their buyers, views and ratios."""
    out = []
    for r in sorted(rows, key=lambda r: (-r["g_net"], r["id"])):
        buyers, views, viewers = details.get(r["id"], (0, 0, 0))
        out.append(_ratios({**{k: x for k, x in r.items() if k != "g_net"}, "net_fen": r["g_net"], "buyers": buyers,
                            "views": views, "viewers": viewers}))
    return out


def score_panels(rows: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Every shop's score of the latest day with its change since the day before (None: no score
    then), and the day's movers: any subject whose score changed, the largest changes first."""
    if not rows:
        return [], []
    latest = max(r["day"] for r in rows)
    before = {(r["kind"], r["id"]): r["score"] for r in rows if r["day"] != latest}
    today = [{**r, "change": (r["score"] - before[(r["kind"], r["id"])]) if (r["kind"], r["id"]) in before else None}
             for r in rows if r["day"] == latest]
    shops = sorted((r for r in today if r["kind"] == "shop"), key=lambda r: (-r["score"], r["id"]))[:SHOPS_SHOWN]
    movers = sorted((r for r in today if r["change"]), key=lambda r: (-abs(r["change"]), r["kind"], r["id"]))[:TOP_N]
    return shops, movers


def dashboard_data(run: Run, db: str, model: str, watermark_ms: int | None = None) -> dict[str, Any]:
    """Every figure of the page, in three read-only statements over the rollups: the ranking, then
    the ranked rows' buyers and views, while the other panels run beside them (``run`` must allow
    concurrent calls). One more before them when the serving process has no attribution watermark
    yet: the latest minute stored then ends the window. ``watermark_ms``: that watermark (event
    time, epoch ms), where the per-minute panels end."""
    if model not in MODELS:
        raise ValueError(f"unknown model {model!r}; one of {', '.join(MODELS)}")
    p: dict[str, Any] = {"db": db, "model": model, "top": TOP_N, "alerts_hours": ALERTS_HOURS}
    latest = None if watermark_ms else (run(LATEST, p)[0]["latest_s"] or None)
    window = minute_window(watermark_ms, int(latest) if latest else None)
    # An empty window (no data yet) still runs: from == to selects nothing.
    start, end = window or (datetime.fromtimestamp(0, UTC), datetime.fromtimestamp(0, UTC))
    panels: dict[str, list[dict[str, Any]]] = {name: [] for name in PANELS}

    def take(sql: str) -> None:
        for r in run(sql, {**p, "from": start, "to": end}):
            panels[r["panel"]].append(json.loads(r["row"]))

    def ranked_with_details() -> dict[str, dict]:
        take(RANKING)
        return _top_details(run, p, panels)

    with ThreadPoolExecutor(2) as pool:
        others = pool.submit(take, OTHERS)
        details = pool.submit(ranked_with_details).result()
        others.result()
    k, f = panels["kpis"][0], panels["funnel"][0]
    kpis = _ratios({"gmv_fen": k["k_gmv"], "refund_fen": k["k_refund"], "net_fen": k["k_net"],
                    "orders": k["k_orders"], "buyers": k["k_buyers"], "views": f["f_all_views"],
                    "viewers": f["f_viewers"]})
    shops, movers = score_panels(panels["scores"])
    bands = expected_band(panels["per_minute_days"], window)
    return {
        "model": model,
        "kpis": kpis,
        "funnel": {"views": f["f_video_views"], "engaged_views": f["f_engaged"], "live_enters": f["f_enters"],
                   "orders": kpis["orders"]},
        "per_minute": [{**m, "band_low_fen": (bands.get(m["t"]) or (None, None))[0],
                        "band_high_fen": (bands.get(m["t"]) or (None, None))[1]}
                       for m in per_minute(panels["per_minute"], window)],
        "window_end": window[1].isoformat() if window else None,
        "watermark_ms": watermark_ms or None,
        "stages": list(STAGES),
        "top_lives": _ranked(panels["top_lives"], details["lives"]),
        "top_accounts": _ranked(panels["top_accounts"], details["accounts"]),
        "top_skus": _ranked(panels["top_skus"], details["skus"]),
        "path_mix": panels["path_mix"],
        "dead_letters": panels["dead_letters"][0]["n"],
        "alerts": [alert_display(a) for a in panels["alerts"]],
        "shop_scores": shops,
        "score_movers": movers,
        "stage_worth": stage_worth(panels["stage_worth"], panels["stage_worth_gmv"]),
    }


def stage_worth(rows: list[dict[str, Any]], gmv_rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The markov model of the latest day: per subject (the platform first, then shops by paid GMV in the
    model's 28 days), each stage's removal effect and the GMV at stake (removal effect x that GMV: what
    the shop's GMV would lose, by the model, without the stage)."""
    gmv = {r["shop"]: int(r["window_gmv"]) for r in gmv_rows}
    subjects: dict[str, dict[str, Any]] = {}
    for r in rows:
        s = subjects.setdefault(r["shop"], {"id": r["shop"], "journeys": int(r["journeys"]),
                                            "conversions": int(r["conversions"]), "p": float(r["p"]),
                                            "gmv_fen": gmv.get(r["shop"], 0) if r["shop"] else sum(gmv.values()),
                                            "stages": {}})
        s["stages"][r["stage"]] = {"re": float(r["re"]), "at_stake_fen": round(float(r["re"]) * s["gmv_fen"])}
    platform = subjects.pop("", None)
    shops = sorted(subjects.values(), key=lambda s: (-s["gmv_fen"], s["id"]))[:TOP_N]
    return {"day": rows[0]["model_day"] if rows else None, "subjects": ([platform] if platform else []) + shops}


_COUNTS = frozenset({"orders", "reviews", "buyers", "views", "viewers", "n", "k_gmv", "k_refund", "k_net", "k_orders", "k_buyers",
                     "f_video_views", "f_engaged", "f_enters", "f_viewers", "f_all_views", "m_gmv", "m_refund", "m_net",
                     "m_orders", "m_refunds", "latest_s", "t", "f_views", "d_buyers", "b_gmv"})


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
