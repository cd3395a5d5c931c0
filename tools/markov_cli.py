"""``gmv attribution``: the markov model of a shop (or the platform) on a day, with the transition counts
behind it; and the markov part of ``gmv explain``: how an order's removal effects became its credits.

Reads ``gmv.markov_model`` (works while a worker runs). Removal effects are shown as the exact
fractions the credits were split by, and as decimals.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from fractions import Fraction
from typing import Any

from gmv.schemas.errors import NotFound
from gmv.schemas.outputs import STAGES
from gmv.sinks.sql_formats import dump
from gmv.streams.settings import Settings

MODEL_SQL = """
SELECT toString(day) AS model_day, shop_id, stage, removal_effect, removal_effect_exact, p_conv, p_conv_exact, defined,
       journeys, conversions, from_start, to_short_video, to_live, to_clip, to_shelf, to_conv, to_null,
       toString(refreshed_at) AS refreshed_at
FROM {db:Identifier}.markov_model
WHERE shop_id = {shop:String}
  AND day = if({day:String} = '', (SELECT max(day) FROM {db:Identifier}.markov_model WHERE shop_id = {shop:String}),
               toDate({day:String}))
ORDER BY stage
"""
SHOPS_SQL = """
SELECT toString(day) AS model_day, shop_id, stage, removal_effect, p_conv, journeys, conversions
FROM {db:Identifier}.markov_model
WHERE day = if({day:String} = '', (SELECT max(day) FROM {db:Identifier}.markov_model), toDate({day:String}))
ORDER BY shop_id, stage
"""
TARGETS = ("short_video", "live", "clip", "shelf", "conv", "null")

Rows = Callable[[str, dict[str, Any]], list[dict[str, Any]]]


def model_rows(rows: Rows, db: str, shop: str, day: str = "") -> list[dict[str, Any]]:
    """The four stage rows of the model of ``shop`` ('' = platform) on ``day`` ('' = its latest)."""
    out = rows(MODEL_SQL, {"db": db, "shop": shop, "day": day})
    return sorted(out, key=lambda r: STAGES.index(r["stage"]))


def describe_model(shop: str, stage_rows: list[dict[str, Any]]) -> list[str]:
    first = stage_rows[0]
    who = f"shop {shop}" if shop else "the platform (every shop's journeys; for display only)"
    lines = [f"markov model of {who} on {first['model_day']} (Asia/Shanghai): the journeys of the 28 days ending that day",
             f"  journeys {int(first['journeys']):,}, converted {int(first['conversions']):,}; P(conv) = "
             f"{first['p_conv_exact']} = {float(first['p_conv']):.6f}"
             + ("" if int(first["defined"]) else "  (undefined: no journey converted; orders get linear credits)"),
             "  transitions (from -> to):"]
    header = f"    {'from':<12}" + "".join(f"{t:>12}" for t in TARGETS)
    lines.append(header)
    start = {r["stage"]: int(r["from_start"]) for r in stage_rows}
    lines.append(f"    {'start':<12}" + "".join(f"{start.get(t, 0):>12,}" for t in TARGETS))
    for r in stage_rows:
        lines.append(f"    {r['stage']:<12}" + "".join(f"{int(r[f'to_{t}']):>12,}" for t in TARGETS))
    lines.append("  removal effect per stage (the share of conversions lost without it):")
    for r in stage_rows:
        lines.append(f"    {r['stage']:<12} {float(r['removal_effect']):.6f}  = {r['removal_effect_exact']}")
    lines.append(f"  (restated {r['refreshed_at']} UTC; a day still open moves as its journeys arrive)")
    return lines


def show_model(settings: Settings, rows: Rows, shop: str | None, day: str, fmt: str) -> int:
    db = settings.clickhouse_database
    if shop is None:
        table = rows(SHOPS_SQL, {"db": db, "day": day})
        if not table:
            raise NotFound("no markov model yet: it is computed once journeys are stored (gmv demo or gmv run first)")
        if fmt in ("json", "jsonl"):
            sys.stdout.write(dump(table, fmt))
            return 0
        by_shop: dict[str, dict[str, float]] = {}
        for r in table:
            by_shop.setdefault(r["shop_id"], {})[r["stage"]] = float(r["removal_effect"])
        print(f"removal effect per stage and shop on {table[0]['model_day']} (Asia/Shanghai; the journeys of the 28 "
              "days ending that day; --day for another); --shop ID shows one with its transitions")
        print(f"  {'shop':<16}" + "".join(f"{s:>13}" for s in STAGES))
        for s, res in sorted(by_shop.items()):
            print(f"  {s or '(platform)':<16}" + "".join(f"{res.get(st, 0.0):>13.4f}" for st in STAGES))
        return 0
    stage_rows = model_rows(rows, db, shop, day)
    if not stage_rows:
        raise NotFound(f"no markov model of shop {shop!r}{' on ' + day if day else ''}: a shop gets one once a journey "
                       "of it (an engaged touch of its content, or a paid order) is stored; check the id")
    if fmt in ("json", "jsonl"):
        sys.stdout.write(dump(stage_rows, fmt))
        return 0
    print("\n".join(describe_model(shop, stage_rows)))
    return 0


def explain_credits(stages: Sequence[str], stage_rows: list[dict[str, Any]]) -> list[str]:
    """How an order's path and its shop and day's removal effects became its markov weights."""
    if not stage_rows:
        return ["markov: no model of the order's shop and day stored yet (restated with the slow refresh)"]
    re = {r["stage"]: Fraction(r["removal_effect_exact"]) for r in stage_rows}
    kinds = sorted(set(stages), key=STAGES.index)
    total = sum((re.get(k, Fraction(0)) for k in kinds), Fraction(0))
    first = stage_rows[0]
    lines = [f"markov: the model of shop {first['shop_id']} on {first['model_day']} (P = {first['p_conv_exact']}), "
             f"stages of the path K = {{{', '.join(kinds)}}}"]
    if not int(first["defined"]) or total == 0:
        why = "the model is undefined (no conversion)" if not int(first["defined"]) else "Σ RE over K is 0"
        return [*lines, f"  {why}: the order's markov credits are its linear credits"]
    for k in kinds:
        n = stages.count(k)
        w = re.get(k, Fraction(0)) / total
        lines.append(f"  {k:<12} RE {re.get(k, Fraction(0))} -> w = RE / Σ RE = {w} = {float(w):.4f}, "
                     f"shared by {n} touch{'es' if n > 1 else ''}: {w / n} each")
    lines.append("  then integer fen by largest remainder over those exact shares (ties to the touch nearer the "
                 "conversion); a refund is -r split the same way")
    return lines
