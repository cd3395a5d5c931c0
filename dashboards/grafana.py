"""The Grafana dashboard of the production stack: the built-in page's panels, plus a pipeline row.

``python -m gmv.dashboards.grafana > deploy/grafana/dashboards/gmv.json`` writes the file that
compose provisions; a unit test checks that the committed file is this module's output, and an
integration test runs every ClickHouse panel's SQL on the real engine, expanded the way the
Grafana ClickHouse plugin expands it (``expand``).

The GMV panels read the same rollups as the built-in page, under the same definitions
(``gmv.dashboards.queries``), but follow Grafana's time picker instead of the attribution
watermark: day rollups by Asia/Shanghai day of the range, the per-minute panels by minute.
Money is shown in yuan (fen / 100). Variables: ``database`` (default gmv) and ``model`` (the
attribution model of the GMV-by-stage, live-room and account panels). The pipeline row queries
Prometheus (``gmv.streams.metrics``).

Plugin macros used (and the only ones ``expand`` knows, so a panel using another one fails
its test): ``$__timeFilter(col)`` -> ``col >= toDateTime(from) AND col <= toDateTime(to)``;
``$__fromTime`` / ``$__toTime`` -> ``toDateTime(<epoch s>)``;
``$__timeInterval(col)`` -> ``toStartOfInterval(toDateTime(col), INTERVAL <s> second)``.
"""

from __future__ import annotations

import itertools
import json
import re
import sys
from datetime import datetime
from typing import Any

from gmv.dashboards.queries import TOP_N
from gmv.schemas.outputs import MODELS

CLICKHOUSE = {"type": "grafana-clickhouse-datasource", "uid": "gmv-clickhouse"}
PROMETHEUS = {"type": "prometheus", "uid": "gmv-prometheus"}
DAYS = ("day >= toDate($__fromTime, 'Asia/Shanghai') AND day <= toDate($__toTime, 'Asia/Shanghai')")
FUNNEL_DAYS = ("toDate(day, 'Asia/Shanghai') >= toDate($__fromTime, 'Asia/Shanghai') "
               "AND toDate(day, 'Asia/Shanghai') <= toDate($__toTime, 'Asia/Shanghai')")

KPIS = f"""
SELECT g.k_gmv / 100 AS `GMV ¥`, g.k_refund / 100 AS `退款 refunds ¥`, g.k_net / 100 AS `净额 net ¥`,
       g.orders AS `订单 orders`, g.buyers AS `买家 buyers`,
       if(g.orders = 0, 0, round(g.k_gmv / 100 / g.orders, 2)) AS `客单价 AOV ¥`,
       if(f.views = 0, 0, round(g.k_gmv / 100 * 1000 / f.views, 2)) AS `GPM ¥`,
       if(f.viewers = 0, 0, round(g.buyers / f.viewers, 4)) AS `转化率 conversion`
FROM (SELECT toInt64(sum(gmv_fen)) AS k_gmv, toInt64(sum(refund_fen)) AS k_refund, toInt64(sum(net_fen)) AS k_net,
             toUInt64(sum(orders)) AS orders, toUInt64(uniqMerge(buyers)) AS buyers
      FROM ${{database}}.shop_gmv_day WHERE {DAYS}) AS g
CROSS JOIN
     (SELECT toUInt64(sum(views)) AS views, toUInt64(uniqMerge(viewers)) AS viewers
      FROM ${{database}}.funnel_day WHERE {FUNNEL_DAYS}) AS f
"""
FUNNEL = f"""
SELECT toUInt64(sumIf(views, stage != 'live')) AS `浏览 views`,
       toUInt64(sumIf(engaged_views, stage != 'live')) AS `有效浏览 engaged views`,
       toUInt64(sum(live_enters)) AS `进直播间 live enters`,
       (SELECT toUInt64(sum(orders)) FROM ${{database}}.shop_gmv_day WHERE {DAYS}) AS `订单 orders`
FROM ${{database}}.funnel_day WHERE {FUNNEL_DAYS}
"""
GMV_BY_STAGE = """
SELECT $__timeInterval(minute) AS time, stage, toInt64(sum(gmv_fen)) / 100 AS `paid ¥`
FROM ${database}.gmv_minute WHERE model = '${model}' AND $__timeFilter(minute)
GROUP BY time, stage ORDER BY time
"""
REFUNDS_AND_NET = """
SELECT $__timeInterval(minute) AS time, -toInt64(sum(refund_fen)) / 100 AS `退款 refunds ¥`,
       toInt64(sum(net_fen)) / 100 AS `净额 net ¥`
FROM ${database}.gmv_minute WHERE model = '${model}' AND $__timeFilter(minute)
GROUP BY time ORDER BY time
"""
# The expected band behind it: per time bucket, the paid GMV of the same bucket on each of the 7 days
# before, judged as the alert rules' seasonal baseline judges (gmv.schemas.seasonal): median ± 3
# spreads (MAD × 1.4826, at least 25% of the median); empty (NULL) with fewer than 5 such days.
EXPECTED_BAND = """
SELECT time, if(n >= 5, greatest(0, med - 3 * spread), NULL) AS `预期下沿 expected paid low ¥`,
       if(n >= 5, med + 3 * spread, NULL) AS `预期上沿 expected paid high ¥`
FROM (SELECT time, count() AS n, groupArray(v) AS vs, arrayReduce('quantileExactInclusive(0.5)', vs) AS med,
             greatest(1.4826 * arrayReduce('quantileExactInclusive(0.5)', arrayMap(x -> abs(x - med), vs)),
                      0.25 * abs(med)) AS spread
      FROM (SELECT $__timeInterval(minute + INTERVAL d DAY) AS time, d, toInt64(sum(gmv_fen)) / 100 AS v
            FROM ${database}.gmv_minute ARRAY JOIN [1, 2, 3, 4, 5, 6, 7] AS d
            WHERE model = '${model}' AND minute >= $__fromTime - INTERVAL 7 DAY AND minute <= $__toTime
              AND minute + INTERVAL d DAY >= $__fromTime AND minute + INTERVAL d DAY <= $__toTime
            GROUP BY time, d)
      GROUP BY time)
ORDER BY time
"""
ORDERS_PER_MINUTE = """
SELECT $__timeInterval(minute) AS time, toUInt64(sum(orders)) AS `订单 paid orders`,
       toUInt64(sum(refunds)) AS `退款 refunds`
FROM ${database}.gmv_minute WHERE model = '${model}' AND $__timeFilter(minute)
GROUP BY time ORDER BY time
"""
PATH_MIX = f"""
SELECT path AS `路径 path`, toInt64(sum(net_fen)) / 100 AS `净额 net ¥`, toUInt64(sum(orders)) AS `订单 orders`
FROM ${{database}}.path_gmv_day WHERE {DAYS}
GROUP BY path ORDER BY sum(net_fen) DESC, path LIMIT 12
"""
# Views and viewers of a ranked row: of the live room, of the account, of the SKU's shop (a SKU has
# none of its own), as on the built-in page.
TOP_LIVES = f"""
SELECT c.id AS `直播间 live`, c.account AS `账号 account`, c.n_net / 100 AS `净额 net ¥`, c.n_gmv / 100 AS `GMV ¥`,
       c.orders AS `订单 orders`, c.buyers AS `买家 buyers`, if(c.orders = 0, 0, round(c.n_gmv / 100 / c.orders, 2)) AS `客单价 AOV ¥`,
       if(v.views = 0, 0, round(c.n_gmv / 100 * 1000 / v.views, 2)) AS `GPM ¥`,
       if(v.viewers = 0, 0, round(c.buyers / v.viewers, 4)) AS `转化率 conversion`
FROM (SELECT content_id AS id, any(account_id) AS account, toInt64(sum(net_fen)) AS n_net, toInt64(sum(gmv_fen)) AS n_gmv,
             toUInt64(sum(orders)) AS orders, toUInt64(uniqMerge(buyers)) AS buyers
      FROM ${{database}}.content_credit_day WHERE model = '${{model}}' AND stage = 'live' AND {DAYS}
      GROUP BY id ORDER BY n_net DESC, id LIMIT {TOP_N}) AS c
LEFT JOIN (SELECT content_id AS id, toUInt64(sum(views)) AS views, toUInt64(uniqMerge(viewers)) AS viewers
           FROM ${{database}}.funnel_day WHERE stage = 'live' AND {FUNNEL_DAYS} GROUP BY id) AS v ON v.id = c.id
ORDER BY c.n_net DESC, c.id
"""
TOP_ACCOUNTS = f"""
SELECT c.id AS `账号 account`, c.n_net / 100 AS `净额 net ¥`, c.n_self / 100 AS `自播 self ¥`,
       (c.n_net - c.n_self) / 100 AS `分销 assist ¥`, c.orders AS `订单 orders`, c.buyers AS `买家 buyers`,
       if(v.views = 0, 0, round(c.n_gmv / 100 * 1000 / v.views, 2)) AS `GPM ¥`,
       if(v.viewers = 0, 0, round(c.buyers / v.viewers, 4)) AS `转化率 conversion`
FROM (SELECT account_id AS id, toInt64(sum(net_fen)) AS n_net, toInt64(sum(gmv_fen)) AS n_gmv,
             toInt64(sumIf(net_fen, is_self = 1)) AS n_self, toUInt64(sum(orders)) AS orders,
             toUInt64(uniqMerge(buyers)) AS buyers
      FROM ${{database}}.content_credit_day WHERE model = '${{model}}' AND account_id != '' AND {DAYS}
      GROUP BY id ORDER BY n_net DESC, id LIMIT {TOP_N}) AS c
LEFT JOIN (SELECT account_id AS id, toUInt64(sum(views)) AS views, toUInt64(uniqMerge(viewers)) AS viewers
           FROM ${{database}}.funnel_day WHERE {FUNNEL_DAYS} GROUP BY id) AS v ON v.id = c.id
ORDER BY c.n_net DESC, c.id
"""
TOP_SKUS = f"""
SELECT c.id AS `商品 SKU`, c.shop AS `店铺 shop`, c.n_net / 100 AS `净额 net ¥`, c.n_gmv / 100 AS `GMV ¥`,
       c.orders AS `订单 orders`, c.buyers AS `买家 buyers`, if(c.orders = 0, 0, round(c.n_gmv / 100 / c.orders, 2)) AS `客单价 AOV ¥`,
       if(v.views = 0, 0, round(c.n_gmv / 100 * 1000 / v.views, 2)) AS `GPM ¥ (shop views)`,
       if(v.viewers = 0, 0, round(c.buyers / v.viewers, 4)) AS `转化率 conversion (shop viewers)`
FROM (SELECT sku_id AS id, any(shop_id) AS shop, toInt64(sum(net_fen)) AS n_net, toInt64(sum(gmv_fen)) AS n_gmv,
             toUInt64(sum(orders)) AS orders, toUInt64(uniqMerge(buyers)) AS buyers
      FROM ${{database}}.sku_gmv_day WHERE {DAYS}
      GROUP BY id ORDER BY n_net DESC, id LIMIT {TOP_N}) AS c
LEFT JOIN (SELECT shop_id AS shop, toUInt64(sum(views)) AS views, toUInt64(uniqMerge(viewers)) AS viewers
           FROM ${{database}}.funnel_day WHERE {FUNNEL_DAYS} GROUP BY shop) AS v ON v.shop = c.shop
ORDER BY c.n_net DESC, c.id
"""
DEAD_LETTERS = """
SELECT toUInt64(count()) AS `死信 dead letters` FROM ${database}.dead_letters WHERE $__timeFilter(received_at)
"""
# As on the built-in page: every open alert, and those fired in the time range.
ALERTS = f"""
SELECT formatDateTime(toTimeZone(fired_at, 'Asia/Shanghai'), '%m-%d %H:%i') AS `触发 fired`, state AS `状态 state`,
       severity AS `级别 severity`, rule AS `规则 rule`, subject_kind AS `对象 kind`, subject_id AS `对象 subject`,
       message AS `说明 message`
FROM ${{database}}.alerts WHERE state = 'firing' OR $__timeFilter(fired_at)
ORDER BY state = 'firing' DESC, fired_at DESC, alert_id LIMIT {TOP_N * 4}
"""
SHOP_SCORES = """
SELECT t.subject_id AS `店铺 shop`, round(t.score, 2) AS `商号体验分 score`,
       if(y.score IS NULL, NULL, round(t.score - y.score, 2)) AS `± since the day before`, t.reviews AS `评价 reviews`,
       round(t.qrr, 4) AS `品退率 QRR`, round(t.fast, 4) AS `3秒回复 ≤3 s`
FROM (SELECT * FROM ${database}.trust_scores WHERE subject_kind = 'shop' AND day = (
        SELECT max(day) FROM ${database}.trust_scores WHERE day <= toDate($__toTime, 'Asia/Shanghai'))) AS t
LEFT JOIN (SELECT subject_id, toNullable(score) AS score, day + 1 AS next_day FROM ${database}.trust_scores
           WHERE subject_kind = 'shop') AS y ON y.subject_id = t.subject_id AND y.next_day = t.day
ORDER BY t.score DESC, t.subject_id LIMIT 20
"""
SCORE_MOVERS = f"""
SELECT t.subject_kind AS `类型 kind`, t.subject_id AS `对象 subject`, round(t.score, 2) AS `分 score`,
       round(t.score - y.score, 2) AS `± since the day before`
FROM (SELECT * FROM ${{database}}.trust_scores WHERE day = (
        SELECT max(day) FROM ${{database}}.trust_scores WHERE day <= toDate($__toTime, 'Asia/Shanghai'))) AS t
INNER JOIN (SELECT subject_kind, subject_id, score, day + 1 AS next_day FROM ${{database}}.trust_scores) AS y
  ON y.subject_kind = t.subject_kind AND y.subject_id = t.subject_id AND y.next_day = t.day
WHERE t.score != y.score
ORDER BY abs(t.score - y.score) DESC, t.subject_kind, t.subject_id LIMIT {TOP_N}
"""

# The pipeline row (Prometheus): each expression sums over the workers (``instance``).
PIPELINE = [
    ("事件/秒 Events per second, by outcome", "timeseries", [
        ("sum(rate(gmv_events_accepted_total[1m]))", "accepted"),
        ("sum(rate(gmv_events_duplicate_total[1m]))", "duplicate"),
        ("sum(rate(gmv_events_dead_lettered_total[1m]))", "dead-lettered")]),
    ("消费延迟 Consumer lag (messages not yet stored)", "timeseries", [
        ("sum by (topic) (gmv_consumer_lag_messages)", "{{topic}}")]),
    ("距上次写入 Seconds since the last stored batch", "timeseries", [
        ("max by (instance) (gmv_last_flush_age_seconds)", "{{instance}}")]),
    ("归因延迟 Attribution delay (wall clock − watermark)", "timeseries", [
        ("max(gmv_attribution_delay_seconds)", "delay")]),
    ("批处理 p95 Batch processing and ClickHouse write, p95", "timeseries", [
        ("histogram_quantile(0.95, sum by (le) (rate(gmv_batch_process_seconds_bucket[5m])))", "process p95"),
        ("histogram_quantile(0.95, sum by (le) (rate(gmv_sink_flush_seconds_bucket[5m])))", "ClickHouse write p95")]),
    ("ClickHouse 写入失败 Write failures per minute; workers up", "timeseries", [
        ("sum(increase(gmv_clickhouse_write_failures_total[1m]))", "write failures"),
        ("sum(up{job=\"gmv-worker\"})", "workers up")]),
]


def clickhouse_panels() -> list[tuple[str, str, int, int, list[str]]]:
    """(title, panel type, width, height, [SQL per target]) of the GMV panels, in page order."""
    return [
        ("核心指标 KPIs", "stat", 24, 4, [KPIS]),
        ("告警 Alerts (open first, then fired in the range)", "table", 24, 6, [ALERTS]),
        ("商号体验分 Shop scores (latest day in the range)", "table", 12, 8, [SHOP_SCORES]),
        ("信任分变动 The day's movers", "table", 12, 8, [SCORE_MOVERS]),
        ("每分钟GMV GMV per minute: paid by stage, refunds below, net (${model}); the band: the same minutes "
         "of the 7 days before", "timeseries", 24, 9, [GMV_BY_STAGE, REFUNDS_AND_NET, EXPECTED_BAND]),
        ("每分钟订单与退款 Paid orders and refunds per minute", "timeseries", 12, 8, [ORDERS_PER_MINUTE]),
        ("漏斗 Funnel: views → engaged views → live enters → orders", "bargauge", 12, 8, [FUNNEL]),
        ("短直短路径分布 Path mix (net GMV by path)", "barchart", 12, 8, [PATH_MIX]),
        ("死信 Dead letters received in the range", "stat", 12, 8, [DEAD_LETTERS]),
        ("直播间排行 Top live rooms (${model})", "table", 24, 8, [TOP_LIVES]),
        ("账号排行 Top accounts (${model}; 自播 self vs 分销 assist)", "table", 12, 8, [TOP_ACCOUNTS]),
        ("商品排行 Top SKUs", "table", 12, 8, [TOP_SKUS]),
    ]


def _layout(panels: list[dict[str, Any]], start_y: int) -> int:
    """Place panels left to right in rows of 24 columns; returns the next free y."""
    x, y, row_h = 0, start_y, 0
    for p in panels:
        w, h = p["gridPos"]["w"], p["gridPos"]["h"]
        if x + w > 24:
            x, y, row_h = 0, y + row_h, 0
        p["gridPos"].update({"x": x, "y": y})
        x, row_h = x + w, max(row_h, h)
    return y + row_h


def dashboard() -> dict[str, Any]:
    """The dashboard JSON model (Grafana 11, ClickHouse plugin 4.x)."""
    ids = itertools.count(1)

    gmv: list[dict[str, Any]] = []
    for title, kind, w, h, sqls in clickhouse_panels():
        series = kind == "timeseries"
        panel: dict[str, Any] = {
            "id": next(ids), "type": kind, "title": title, "datasource": CLICKHOUSE,
            "gridPos": {"h": h, "w": w, "x": 0, "y": 0},
            "targets": [{"refId": chr(ord("A") + i), "datasource": CLICKHOUSE, "editorType": "sql",
                         "queryType": "timeSeries" if series else "table", "format": 0 if series else 1,
                         "rawSql": sql.strip()} for i, sql in enumerate(sqls)],
            "fieldConfig": {"defaults": {}, "overrides": []}, "options": {},
        }
        if kind == "timeseries" and len(sqls) > 1:
            panel["fieldConfig"]["defaults"]["custom"] = {"stacking": {"mode": "normal", "group": "A"},
                                                          "drawStyle": "bars", "fillOpacity": 80}
        if EXPECTED_BAND in sqls:  # dashed lines, not stacked, the area between them shaded
            band = {"stacking": {"mode": "none"}, "drawStyle": "line", "lineStyle": {"fill": "dash", "dash": [4, 3]},
                    "fillOpacity": 0, "lineWidth": 1}
            panel["fieldConfig"]["overrides"] = [
                {"matcher": {"id": "byName", "options": "预期下沿 expected paid low ¥"},
                 "properties": [{"id": "custom", "value": band}, {"id": "color", "value": {"mode": "fixed",
                                                                                           "fixedColor": "gray"}}]},
                {"matcher": {"id": "byName", "options": "预期上沿 expected paid high ¥"},
                 "properties": [{"id": "custom", "value": {**band, "fillBelowTo": "预期下沿 expected paid low ¥",
                                                           "fillOpacity": 15}},
                                {"id": "color", "value": {"mode": "fixed", "fixedColor": "gray"}}]}]
        if kind == "stat":
            panel["options"] = {"reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
                                "textMode": "value_and_name"}
        gmv.append(panel)
    pipeline: list[dict[str, Any]] = []
    for title, kind, exprs in PIPELINE:
        pipeline.append({
            "id": next(ids), "type": kind, "title": title, "datasource": PROMETHEUS,
            "gridPos": {"h": 7, "w": 8, "x": 0, "y": 0},
            "targets": [{"refId": chr(ord("A") + i), "datasource": PROMETHEUS, "expr": expr, "legendFormat": legend}
                        for i, (expr, legend) in enumerate(exprs)],
            "fieldConfig": {"defaults": {}, "overrides": []}, "options": {},
        })
    gmv_row = {"id": next(ids), "type": "row", "title": "GMV (ClickHouse)", "collapsed": False,
               "gridPos": {"h": 1, "w": 24, "x": 0, "y": 0}, "panels": []}
    y = _layout(gmv, 1)
    pipe_row = {"id": next(ids), "type": "row", "title": "流水线 Pipeline (Prometheus)", "collapsed": False,
                "gridPos": {"h": 1, "w": 24, "x": 0, "y": y}, "panels": []}
    _layout(pipeline, y + 1)
    return {
        "uid": "gmv-live", "title": "短直短 GMV · Live GMV", "tags": ["gmv"], "timezone": "Asia/Shanghai",
        "schemaVersion": 39, "version": 1, "editable": True, "refresh": "10s",
        "time": {"from": "now-7d", "to": "now"},
        "templating": {"list": [
            {"name": "database", "label": "database", "type": "constant", "query": "gmv", "hide": 2},
            {"name": "model", "label": "归因模型 model", "type": "custom", "query": ",".join(MODELS),
             "current": {"text": "last_touch", "value": "last_touch"},
             "options": [{"text": m, "value": m, "selected": m == "last_touch"} for m in MODELS]},
        ]},
        "panels": [gmv_row, *gmv, pipe_row, *pipeline],
    }


def panel_queries(model: dict[str, Any], source_type: str) -> list[tuple[str, str, str]]:
    """(panel title, refId, query) of every target on data sources of this type (the ClickHouse
    plugin's ``rawSql``, Prometheus's ``expr``)."""
    return [(p["title"], t["refId"], t.get("rawSql") or t.get("expr") or "") for p in model["panels"]
            for t in p.get("targets", []) if t["datasource"]["type"] == source_type]


_MACRO = re.compile(r"\$__(\w+)(?:\(([^)]*)\))?")


def expand(sql: str, variables: dict[str, str], time_from: datetime, time_to: datetime, interval_s: int) -> str:
    """The SQL the ClickHouse plugin sends for ``sql``: variables substituted (as Grafana does before
    the plugin sees the query), then the macros. An unknown macro or variable raises ``ValueError``."""
    def variable(m: re.Match[str]) -> str:
        name = m.group(1) or m.group(2)
        if name not in variables:
            raise ValueError(f"unknown dashboard variable ${name}")
        return variables[name]

    text = re.sub(r"\$\{(\w+)\}|\$(?!__)(\w+)", variable, sql)
    f, t = int(time_from.timestamp()), int(time_to.timestamp())

    def macro(m: re.Match[str]) -> str:
        name, arg = m.group(1), (m.group(2) or "").strip()
        if name == "timeFilter":
            return f"{arg} >= toDateTime({f}) AND {arg} <= toDateTime({t})"
        if name == "fromTime":
            return f"toDateTime({f})"
        if name == "toTime":
            return f"toDateTime({t})"
        if name == "timeInterval":
            return f"toStartOfInterval(toDateTime({arg}), INTERVAL {max(interval_s, 1)} second)"
        raise ValueError(f"macro $__{name} is not one this dashboard is tested with")

    return _MACRO.sub(macro, text)


def main() -> int:
    sys.stdout.write(json.dumps(dashboard(), indent=2, ensure_ascii=False) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
