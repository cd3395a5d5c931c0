"""``gmv scores``: a subject's trust score with its inputs and how it was computed, or every shop's.

``--shop`` / ``--account`` / ``--sku`` ID shows that subject's score of the day (default:
its latest day) with the day before beside it; with none, every shop's 商号体验分 of the
day and the day's movers. Reads ``gmv.trust_scores`` (works while a worker runs).
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import date, timedelta
from typing import Any

from gmv.schemas.errors import NotFound
from gmv.schemas.trust import WINDOW_DAYS, ScoreInputs, score
from gmv.sinks.sql_formats import dump
from gmv.streams.settings import Settings
from gmv.tools.runtime import query_readonly

KIND_NAMES = {"sku": "商品分 (SKU)", "account": "带货口碑分 (account)", "shop": "商号体验分 (shop)"}
INPUT_COLUMNS = ("reviews", "product_rating_sum", "service_rating_sum", "logistics_rating_sum", "paid_orders",
                 "quality_refunded_orders", "turns", "fast_turns", "within_3min_turns")

SUBJECT_SQL = """
SELECT toString(day) AS day_iso, score, {inputs}
FROM {{db:Identifier}}.trust_scores
WHERE subject_kind = {{kind:String}} AND subject_id = {{subject:String}}
  AND day <= if({{day:String}} = '', toDate(now(), 'Asia/Shanghai'), toDate({{day:String}}))
ORDER BY day DESC
LIMIT 2
""".format(inputs=", ".join(INPUT_COLUMNS))

SHOPS_SQL = """
WITH if({day:String} = '', (SELECT max(day) FROM {db:Identifier}.trust_scores WHERE subject_kind = 'shop'),
        toDate({day:String})) AS d
SELECT toString(d) AS day, today.subject_id AS shop, today.score AS score,
       if(before.subject_id = '', nan, today.score - before.score) AS change, today.reviews AS reviews,
       today.qrr AS qrr, today.turns AS turns, today.fast AS fast
FROM (SELECT * FROM {db:Identifier}.trust_scores WHERE subject_kind = 'shop' AND day = d) AS today
LEFT JOIN (SELECT subject_id, score FROM {db:Identifier}.trust_scores WHERE subject_kind = 'shop' AND day = d - 1)
  AS before ON before.subject_id = today.subject_id
ORDER BY score DESC, shop
"""


SHOP_DAYS_SQL = """
SELECT toString(day) AS day FROM {db:Identifier}.trust_scores WHERE subject_kind = 'shop' GROUP BY day ORDER BY day
"""


def days_text(days: list[str]) -> str:
    """The days that have scores, as a person reads them: each one if few, else the first and last."""
    if len(days) <= 7:
        return ", ".join(days)
    return f"{days[0]} … {days[-1]} ({len(days)} days)"


def _rows(settings: Settings, sql: str, params: dict[str, str]) -> list[dict[str, Any]]:
    raw = query_readonly(settings, sql, "jsonl", params)
    return [json.loads(line) for line in raw.decode().splitlines() if line.strip()]


def show_scores(settings: Settings, args: argparse.Namespace) -> int:
    day = args.day.isoformat() if args.day else ""
    subject = next(((k, v) for k, v in (("shop", args.shop), ("account", args.account), ("sku", args.sku)) if v), None)
    if subject is None:
        return _shops(settings, day, args.format)
    kind, subject_id = subject
    rows = _rows(settings, SUBJECT_SQL, {"db": settings.clickhouse_database, "kind": kind, "subject": subject_id,
                                         "day": day})
    if not rows:
        print(f"no {KIND_NAMES[kind]} score for {subject_id!r}{' up to ' + day if day else ''}: a subject gets one "
              "once a paid order, refund, review or (shops) service turn of it is stored; check the id "
              "(gmv sql \"SELECT DISTINCT subject_id FROM gmv.trust_scores WHERE subject_kind = '" + kind + "'\")")
        return 1
    today, before = rows[0], (rows[1] if len(rows) > 1 else None)
    inputs = ScoreInputs(*(int(today[c]) for c in INPUT_COLUMNS))
    result = score(kind, inputs)
    if args.format in ("json", "jsonl"):
        sys.stdout.write(dump({"kind": kind, "subject_id": subject_id, **today, "score": result.score,
                               "previous": before}, args.format))
        return 0
    start = date.fromisoformat(today['day_iso']) - timedelta(days=WINDOW_DAYS - 1)
    print(f"{KIND_NAMES[kind]} {subject_id} on {today['day_iso']} (the 30 days from {start}, Asia/Shanghai): "
          f"{result.score:.2f}  ({result.score:.10g})")
    if before is not None:
        print(f"  {before['day_iso']}: {float(before['score']):.2f} ({result.score - float(before['score']):+.2f})")
    for line in result.explain(inputs):
        print(f"  {line}")
    return 0


def _shops(settings: Settings, day: str, fmt: str) -> int:
    rows = _rows(settings, SHOPS_SQL, {"db": settings.clickhouse_database, "day": day})
    if not rows and day:
        days = [r["day"] for r in _rows(settings, SHOP_DAYS_SQL, {"db": settings.clickhouse_database})]
        if not days:
            raise NotFound(f"no shop scores on {day}, nor on any day: they appear once orders, reviews or service "
                           "messages are stored")
        raise NotFound(f"no shop scores on {day} (Asia/Shanghai); the days with scores: {days_text(days)} "
                       f"(gmv scores --day {days[-1]})")
    if fmt in ("json", "jsonl"):
        sys.stdout.write(dump(rows, fmt))
        return 0
    if not rows:
        print("no shop scores yet: they appear once orders, reviews or service messages are stored")
        return 0
    print(f"商号体验分 on {rows[0]['day']} (Asia/Shanghai), best first; --shop ID explains one")
    for r in rows:
        change = "" if r["change"] is None or r["change"] != r["change"] else f"{float(r['change']):+.2f}"
        print(f"  {r['shop']:<20} {float(r['score']):.2f} {change:>6}  reviews={r['reviews']} "
              f"qrr={float(r['qrr']):.3f} turns={r['turns']}")
    return 0
