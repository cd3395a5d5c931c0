"""``gmv explain ORDER_ID``: how one order's GMV was attributed, read back from ClickHouse.

Shows the path (each touch with time, stage, account, content), each model's
weights and credits in fen, how the markov model's removal effects (of the order's shop
and day) became its markov weights, and every refund's split — the rows of
``attributed_gmv`` and ``markov_model`` an analyst would otherwise assemble by hand.
"""

from __future__ import annotations

import json
from collections import defaultdict
from datetime import datetime

from gmv.schemas.errors import NotFound
from gmv.schemas.outputs import MODELS
from gmv.schemas.times import SHANGHAI
from gmv.streams.settings import Settings
from gmv.tools.markov_cli import explain_credits, model_rows
from gmv.tools.runtime import query_readonly

QUERY = """
SELECT event_id, kind, model, touch_index, is_conversion, stage, touch_account_id, touch_content_id, is_self,
       traffic, toString(touch_time) AS touch_time, toString(order_time) AS order_time,
       toString(event_time) AS event_time, user_id, shop_id, seller_id, sku_id, channel, credit_fen, path
FROM `{db}`.attributed_gmv
WHERE order_id = {{order_id:String}}
ORDER BY event_time, kind, event_id, model, touch_index
"""

REJECTED = """
SELECT event_id, reason_code, reason FROM `{db}`.dead_letters
WHERE event_type = 'order' AND reason_code IN ('over_refund', 'orphan_refund', 'order_already_paid')
  AND position(reason, {{needle:String}}) > 0
ORDER BY received_at
"""


class OrderNotFound(NotFound):
    """No credit row of the order is stored (``gmv explain`` exits 1)."""


def _local(ts: str) -> str:
    when = datetime.fromisoformat(ts.replace(" ", "T") + "+00:00")
    return when.astimezone(SHANGHAI).strftime("%Y-%m-%d %H:%M:%S") + " CST"


def _json(raw: bytes) -> list[dict]:
    return [json.loads(line) for line in raw.decode().splitlines() if line.strip()]


def _fen(n: int) -> str:
    return f"{n:,}"


def explain_order(settings: Settings, order_id: str) -> str:
    db = settings.clickhouse_database
    raw = query_readonly(settings, QUERY.format(db=db), "jsonl", {"order_id": order_id})
    rows = [json.loads(line) for line in raw.decode().splitlines() if line.strip()]
    if not rows:
        raise OrderNotFound(
            f"order {order_id!r}: no attributed GMV. Either it was never received, it is waiting for attribution "
            f"(attribution_delay), or it was rejected; its dead letters, if any: gmv sql \"SELECT reason_code, "
            f"reason FROM {db}.dead_letters WHERE position(raw, {{id:String}}) > 0\" --param 'id={order_id}'")
    by_event: dict[str, list[dict]] = defaultdict(list)
    for r in rows:
        by_event[r["event_id"]].append(r)
    paid = next((rs for rs in by_event.values() if rs[0]["kind"] == "paid"), None)
    lines: list[str] = []
    first = (paid or rows)[0]
    lines.append(f"order {order_id}  buyer {first['user_id']}  shop {first['shop_id']}  "
                 f"seller {first['seller_id'] or '(shelf)'}  sku {first['sku_id']}  channel {first['channel']}")
    lines.append(f"paid at {_local(first['order_time'])} ({first['order_time']} UTC)")
    if paid:
        touches = sorted({int(r["touch_index"]): r for r in paid}.items())
        lines.append(f"path ({len(touches)} touches): {first['path']}")
        lines.append(f"  {'#':>2}  {'time (Asia/Shanghai)':<23} {'stage':<12} {'account':<16} {'content':<16} "
                     f"{'self':<5} traffic")
        for i, r in touches:
            tag = "  <- conversion" if int(r["is_conversion"]) else ""
            lines.append(f"  {i:>2}  {_local(r['touch_time']):<23} {r['stage']:<12} {r['touch_account_id']:<16} "
                         f"{r['touch_content_id'] or '-':<16} {'yes' if int(r['is_self']) else 'no':<5} "
                         f"{r['traffic']}{tag}")
        lines.append("")
        lines.extend(_credit_table("paid credits (fen) and weights", paid, len(touches)))
        lines.append("")
        order_day = _local(first["order_time"])[:10]
        stage_rows = model_rows(lambda q, p: _json(query_readonly(settings, q, "jsonl", p)), db, first["shop_id"],
                                order_day)
        lines.extend(explain_credits([r["stage"] for _, r in touches], stage_rows))
    for eid, rs in by_event.items():
        if rs[0]["kind"] != "refund":
            continue
        amount = -sum(int(r["credit_fen"]) for r in rs if r["model"] == "last_touch")
        lines.append("")
        lines.extend(_credit_table(f"refund {eid} at {_local(rs[0]['event_time'])}: {_fen(amount)} fen", rs,
                                   max(int(r["touch_index"]) for r in rs) + 1))
    net = defaultdict(int)
    for r in rows:
        net[r["model"]] += int(r["credit_fen"])
    lines.append("")
    lines.append("net per model (fen): " + "  ".join(f"{m}={_fen(net[m])}" for m in MODELS if m in net))
    rejected = query_readonly(settings, REJECTED.format(db=db), "jsonl", {"needle": f"order {order_id}"})
    for line in rejected.decode().splitlines():
        if line.strip():
            d = json.loads(line)
            lines.append(f"rejected {d['event_id']} ({d['reason_code']}): {d['reason']}")
    return "\n".join(lines)


def _credit_table(title: str, rows: list[dict], n: int) -> list[str]:
    grid: dict[tuple[int, str], int] = {(int(r["touch_index"]), r["model"]): int(r["credit_fen"]) for r in rows}
    totals = {m: sum(grid.get((i, m), 0) for i in range(n)) for m in MODELS}
    out = [title, f"  {'#':>2}  {'stage':<12}" + "".join(f"{m:>22}" for m in MODELS)]
    stages = {int(r["touch_index"]): r["stage"] for r in rows}
    for i in range(n):
        cells = []
        for m in MODELS:
            c = grid.get((i, m), 0)
            share = (c / totals[m] * 100) if totals[m] else 0.0
            cells.append(f"{_fen(c):>14} ({share:5.1f}%)")
        out.append(f"  {i:>2}  {stages.get(i, ''):<12}" + "".join(cells))
    out.append(f"  {'':>2}  {'total':<12}" + "".join(f"{_fen(totals[m]):>22}" for m in MODELS))
    return out
