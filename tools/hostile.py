"""Hostile input interleaved with valid events (the check itself: ``python -m bench.hostile``).

``write`` makes a JSONL file of ``count`` hostile lines — truncated JSON, wrong types, huge
strings, deep nesting, NaN/Infinity, unicode edge cases, oversized messages,
SQL-looking ids, timestamps far in the future or past — interleaved with as many
valid events (some of them hostile-looking but valid: SQL text and emoji in ids,
which must be stored literally). Every line must be accounted for after ``gmv run``
(accepted + duplicates + dead-lettered = received) and every valid event accepted.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

T = "2026-11-20T12:00:00+08:00"
SQLISH = ["'; DROP TABLE gmv.attributed_gmv; --", "1 OR 1=1", "\" OR \"\"=\"", "{db:Identifier}", "`x`; SELECT 1",
          "'); INSERT INTO gmv.events_store VALUES ('x"]
UNICODE = ["用户😀", "\u200b\u200d", "مرحبا", "e\u0301", "\U0001F600" * 20, "\ufeffbom", "a\u2028b"]


def valid_event(i: int, rng: random.Random) -> dict[str, Any]:
    user = rng.choice([f"u{i % 97}", rng.choice(UNICODE) + str(i % 7), rng.choice(SQLISH)])
    kind = rng.random()
    base = {"event_id": f"ok-{i}", "event_time": T if rng.random() < 0.7 else 1_763_611_200_000 + i, "user_id": user}
    if rng.random() < 0.2:
        base["event_id"] = f"{rng.choice(SQLISH)}-{i}"  # valid, and must be stored literally
    if kind < 0.6:
        return {**base, "event_type": "view", "video_id": rng.choice(SQLISH + UNICODE), "author_id": "a1",
                "kind": "short_video", "watch_ms": rng.randrange(0, 20_000), "shop_id": "s1"}
    if kind < 0.8:
        return {**base, "event_type": "live_room", "live_id": "L1", "anchor_id": "a1", "action": "enter"}
    return {**base, "event_type": "order", "order_id": f"o-{i}", "shop_id": "s1", "sku_id": rng.choice(UNICODE),
            "seller_id": "a1", "status": "paid", "amount_fen": rng.randrange(1, 100_000), "channel": "live",
            "channel_id": "L1"}


def hostile_line(i: int, rng: random.Random, max_bytes: int) -> tuple[str, bytes]:
    """(kind, line) of a message that must be dead-lettered."""
    ev = valid_event(i, rng)
    ev["event_id"] = f"bad-{i}"
    kind = rng.choice(["truncated", "wrong_type", "huge_string", "deep_nesting", "nan", "infinity",
                       "lone_surrogate", "oversized", "future", "past", "naive", "negative", "bool_time",
                       "not_object", "missing", "null_bytes", "unknown_type"])
    if kind == "truncated":
        text = json.dumps(ev)
        return kind, text[: rng.randrange(1, len(text) - 1)].encode()
    if kind == "wrong_type":
        # Far instants as well: they once escaped validation as an OverflowError (a crash).
        ev["event_time"] = rng.choice([[1, 2], {"t": 1}, 1.5, "yesterday", 2**52, -(2**52),
                                       "9999-12-31T23:59:59-01:00", "0001-01-01T00:00:00+01:00"])
    elif kind == "huge_string":
        ev["user_id"] = "x" * rng.randrange(5_000, 200_000)
    elif kind == "deep_nesting":
        depth = rng.randrange(200, 5000)
        return kind, b"[" * depth + b"]" * depth
    elif kind == "nan":
        return kind, json.dumps(ev)[:-1].encode() + b', "watch_ms": NaN}'
    elif kind == "infinity":
        return kind, json.dumps({**ev, "amount_fen": 1})[:-1].encode() + b', "amount_fen": Infinity}'
    elif kind == "lone_surrogate":
        return kind, json.dumps(ev)[:-1].encode() + b', "user_id": "\\ud800"}'
    elif kind == "oversized":
        ev["padding"] = "p" * (max_bytes + 100)
    elif kind == "future":
        ev["event_time"] = rng.choice(["9999-12-31T23:59:59+00:00", "2150-01-01T00:00:00Z", 99_999_999_999_999])
    elif kind == "past":
        ev["event_time"] = rng.choice(["1970-01-01T00:00:00Z", "1899-12-31T00:00:00+08:00", -5])
    elif kind == "naive":
        ev["event_time"] = "2026-11-20T12:00:00"
    elif kind == "negative":
        ev.update({"event_type": "order", "order_id": "o", "shop_id": "s", "sku_id": "k", "seller_id": "a1",
                   "status": "paid", "amount_fen": -rng.randrange(1, 10**6), "channel": "shelf",
                   "shelf_source": "mall"})
    elif kind == "bool_time":
        ev["event_time"] = True
    elif kind == "not_object":
        return kind, json.dumps(rng.choice([None, 42, "str", True])).encode()
    elif kind == "missing":
        ev.pop(rng.choice(["event_id", "event_time", "event_type"]))
    elif kind == "null_bytes":
        return kind, b'{"event_type": "view", "event_id": "nul\x00' + str(i).encode() + b'"'
    elif kind == "unknown_type":
        ev["event_type"] = rng.choice(["click", "VIEW", "", "order; DROP TABLE x"])
    return kind, json.dumps(ev, ensure_ascii=rng.random() < 0.5).encode()


def write(path: Path, count: int, seed: int = 13, max_bytes: int = 1024 * 1024) -> dict[str, Any]:
    rng = random.Random(seed)
    lines: list[bytes] = []
    kinds: dict[str, int] = {}
    for i in range(count):
        kind, line = hostile_line(i, rng, max_bytes)
        kinds[kind] = kinds.get(kind, 0) + 1
        lines.append(line.replace(b"\n", b" ").replace(b"\r", b" "))
        lines.append(json.dumps(valid_event(i, rng), ensure_ascii=rng.random() < 0.5).encode())
    path.write_bytes(b"\n".join(lines) + b"\n")
    return {"hostile": count, "valid": count, "kinds": kinds}
