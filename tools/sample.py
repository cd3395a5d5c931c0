"""A deterministic sample of valid events mixed with bad lines of every kind in SPEC §5.

``python -m gmv.tools.sample OUT.jsonl --events 10000 --bad-per-kind 8`` writes the
file; the expected counts are printed so a run can be checked against them.
"""

from __future__ import annotations

import argparse
import json
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path

BAD_KINDS = (
    "invalid_json", "wrong_type", "missing_field", "naive_timestamp", "negative_money",
    "unknown_event_type", "oversized", "not_utf8", "not_an_object", "empty_batch",
)


def _valid_events(n: int, rng: random.Random, start: datetime) -> list[dict]:
    events: list[dict] = []
    users = [f"u{i}" for i in range(max(1, n // 20))]
    for i in range(n):
        t = start + timedelta(seconds=i)
        user = rng.choice(users)
        r = rng.random()
        base = {"event_id": f"e{i}", "event_time": t.isoformat(), "user_id": user}
        if r < 0.6:
            events.append({**base, "event_type": "view", "video_id": f"v{rng.randrange(50)}",
                           "author_id": f"a{rng.randrange(5)}", "kind": rng.choice(["short_video", "clip"]),
                           "source_live_id": "L1", "watch_ms": rng.randrange(0, 20_000), "shop_id": "s1"})
        elif r < 0.85:
            events.append({**base, "event_type": "live_room", "live_id": f"L{rng.randrange(3)}",
                           "anchor_id": f"a{rng.randrange(5)}", "action": "enter", "referrer_kind": "feed"})
        else:
            channel = rng.choice(["live", "short_video", "clip", "shelf"])
            order = {**base, "event_type": "order", "order_id": f"o{i}", "shop_id": "s1",
                     "sku_id": f"k{rng.randrange(20)}", "seller_id": f"a{rng.randrange(5)}", "status": "paid",
                     "amount_fen": rng.randrange(100, 100_000), "channel": channel}
            if channel == "shelf":
                order["shelf_source"] = "mall"
            else:
                order["channel_id"] = f"L{rng.randrange(3)}" if channel == "live" else f"v{rng.randrange(50)}"
            events.append(order)
    return events


def bad_line(kind: str, i: int, max_bytes: int = 1024 * 1024) -> bytes:
    t = "2026-11-20T12:00:00+08:00"
    view = {"event_type": "view", "event_id": f"bad-{kind}-{i}", "event_time": t, "user_id": "u1",
            "video_id": "v1", "author_id": "a1", "kind": "short_video", "watch_ms": 5000}
    order = {"event_type": "order", "event_id": f"bad-{kind}-{i}", "event_time": t, "order_id": f"bo{i}",
             "user_id": "u1", "shop_id": "s1", "sku_id": "k1", "seller_id": "a1", "status": "paid",
             "amount_fen": 100, "channel": "live", "channel_id": "L1"}
    if kind == "invalid_json":
        return b'{"event_type": "view", "event_id": "bad-json-' + str(i).encode() + b'", '
    if kind == "wrong_type":
        return json.dumps({**view, "watch_ms": "five thousand"}).encode()
    if kind == "missing_field":
        return json.dumps({k: v for k, v in order.items() if k != "order_id"}).encode()
    if kind == "naive_timestamp":
        return json.dumps({**view, "event_time": "2026-11-20T12:00:00"}).encode()
    if kind == "negative_money":
        return json.dumps({**order, "amount_fen": -100 - i}).encode()
    if kind == "unknown_event_type":
        return json.dumps({**view, "event_type": "click"}).encode()
    if kind == "oversized":
        return json.dumps({**view, "padding": "x" * (max_bytes + 10)}).encode()
    if kind == "not_utf8":
        return b'{"event_type": "view", "event_id": "\xff\xfe' + str(i).encode() + b'"}'
    if kind == "not_an_object":
        return json.dumps(i if i % 2 else "just a string").encode()
    if kind == "empty_batch":
        return b"[]"
    raise ValueError(kind)


def write_sample(path: Path, events: int = 10_000, bad_per_kind: int = 5, duplicates: int = 0,
                 seed: int = 7) -> dict[str, int]:
    rng = random.Random(seed)
    start = datetime(2026, 11, 20, 4, 0, tzinfo=UTC)
    valid = _valid_events(events, rng, start)
    lines = [json.dumps(e, ensure_ascii=False).encode() for e in valid]
    lines += [json.dumps(valid[rng.randrange(len(valid))]).encode() for _ in range(duplicates)]
    bad = [bad_line(kind, i) for kind in BAD_KINDS for i in range(bad_per_kind)]
    # Bad lines interleaved at random places; duplicates always after their original.
    for b in bad:
        lines.insert(rng.randrange(len(lines) + 1), b)
    path.write_bytes(b"\n".join(lines) + b"\n")
    return {"received": len(lines), "accepted": events, "duplicates": duplicates, "dead_lettered": len(bad)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("out", type=Path)
    ap.add_argument("--events", type=int, default=10_000)
    ap.add_argument("--bad-per-kind", type=int, default=5)
    ap.add_argument("--duplicates", type=int, default=0)
    ap.add_argument("--seed", type=int, default=7)
    a = ap.parse_args()
    print(json.dumps(write_sample(a.out, a.events, a.bad_per_kind, a.duplicates, a.seed)))


if __name__ == "__main__":
    main()
