"""The journeys the markov model counts, computed in ClickHouse from the facts (``gmv.sinks.markov``),
equal what the pure rules of ``gmv.streams.core.markov`` give on the same facts; so do the models.

Random facts (engaged touches with and without a shop, paid orders, several users, shops and
Asia/Shanghai days, ties in time) go straight into the real engine's fact tables; the refresh's
``markov_daily`` and ``markov_model`` are compared with ``daily_transitions`` and ``solve``. A late
fact that changes a journey rewrites its day: transitions it removed read 0, and the model follows.
"""

from __future__ import annotations

import json
import random
import uuid
from collections import Counter
from datetime import UTC, datetime
from fractions import Fraction

import pytest
from pydantic import SecretStr

from gmv.schemas.catalogue import ATTRIBUTED_GMV, FUNNEL_EVENTS
from gmv.sinks.clickhouse import ClickHouseSink, connect
from gmv.sinks.markov import MarkovRefresh
from gmv.sinks.migrations import migrate
from gmv.streams.core.markov import (
    JourneyFact,
    daily_transitions,
    shanghai_day,
    solve,
    window_counts,
)

pytestmark = pytest.mark.integration


def _check(seed: int, client, db: str) -> dict:
    """Random facts into ``db``, the refresh, the comparison; then a late fact and again."""
    rng = random.Random(seed)
    migrate(client, db)
    T0 = int(datetime(2026, 11, 20, 15, 0, tzinfo=UTC).timestamp() * 1000)  # 23:00 in Shanghai: days turn soon
    touches, orders = [], []
    funnel_rows, credit_rows = [], []

    def add_touch(user, shop, t, eid, stage):
        touches.append(JourneyFact(user, shop, t, eid, stage))
        action = "enter" if stage == "live" else "view"
        funnel_rows.append((eid, t / 1000, stage, action, user, "a1", "c1", shop, "public", 5000, 1, "", ""))

    def add_order(user, shop, t, eid, channel):
        orders.append(JourneyFact(user, shop, t, eid, channel))
        credit_rows.append({**{c: None for c in ATTRIBUTED_GMV.column_names}, "event_id": eid, "order_id": "o" + eid,
                            "kind": "paid", "model": "last_touch", "touch_index": 0, "is_conversion": 1, "stage": channel,
                            "touch_account_id": "a1", "touch_content_id": "", "touch_event_id": eid, "is_self": 1,
                            "traffic": "public", "touch_time": t / 1000, "order_time": t / 1000, "event_time": t / 1000,
                            "user_id": user, "shop_id": shop, "seller_id": "a1", "sku_id": "k", "channel": channel,
                            "credit_fen": 100, "path": channel, "path_length": 1, "attributed_at": t / 1000})
        credit_rows.append({**credit_rows[-1], "model": "linear"})  # the path the markov credits are restated on

    n = 0
    for _ in range(400):
        n += 1
        user, shop = f"u{rng.randrange(6)}", rng.choice(["s1", "s2", "s3", ""])
        t = T0 + rng.randrange(0, 30) * 3_600_000 + rng.choice([0, 0, 1, 7]) * 1000  # ties on purpose
        if rng.random() < 0.25 and shop:
            add_order(user, shop, t, f"e{n:04d}", rng.choice(["short_video", "live", "clip", "shelf"]))
        else:
            add_touch(user, shop, t, f"e{n:04d}", rng.choice(["short_video", "live", "clip"]))
    funnel_rows.append(("x-leave", T0 / 1000, "live", "leave", "u1", "a1", "c1", "s1", "public", 0, 0, "", ""))  # no touch

    def store():  # as the worker's sink writes them
        sink = ClickHouseSink(lambda: client, db, tables=[FUNNEL_EVENTS, ATTRIBUTED_GMV])
        sink.add(FUNNEL_EVENTS.name, funnel_rows)
        sink.add(ATTRIBUTED_GMV.name, [tuple(r[c] for c in ATTRIBUTED_GMV.column_names) for r in credit_rows])
        sink.flush_sync()

    def compare():
        days = sorted({shanghai_day(f.t_ms) for f in touches + orders})
        cut_short = MarkovRefresh(client, db).run(set(days), set())  # a refresh that never stored its models
        refresh = MarkovRefresh(client, db)
        restated = refresh.run(set(days), set())  # restates every minute the one cut short did
        refresh.store()
        got = Counter()
        for day, shop, a, b, k in client.query(f"SELECT day, shop_id, from_state, to_state, transitions FROM {db}.markov_daily").result_rows:
            if k:
                got[(shop, str(day), a, b)] = k
        daily = daily_transitions(touches, orders)
        want = Counter({(shop, str(day), a, b): k for (shop, day), c in daily.items() for (a, b), k in c.items()})
        zeros = client.query(f"SELECT count() FROM {db}.markov_daily WHERE transitions = 0").result_rows[0][0]
        bad_models = []
        for day, shop, stage, re_exact, p_exact in client.query(
                f"SELECT day, shop_id, stage, removal_effect_exact, p_conv_exact FROM {db}.markov_model").result_rows:
            m = solve(window_counts(daily, shop, day))
            if Fraction(re_exact) != m.removal_effects[stage] or Fraction(p_exact) != m.p_conv:
                bad_models.append([str(day), shop, stage, re_exact, str(m.removal_effects[stage])])
        n_models = client.query(f"SELECT count() FROM {db}.markov_model").result_rows[0][0]
        # the models a restatement reads for days it did not recompute, from one read of their windows
        pairs = {(shop, day) for shop, day in daily if shop} | {("s9", days[0])}  # s9: no journey, no model
        for (shop, day), m in MarkovRefresh(client, db)._models_of(pairs).items():
            counts = window_counts(daily, shop, day)
            if (m is None) != (not counts) or (m is not None and m != solve(counts)):
                bad_models.append([str(day), shop, "window", str(m), str(counts)])
        return {"equal": got == want, "n": sum(want.values()), "only_sql": sorted(map(list, (got - want).items()))[:5],
                "only_python": sorted(map(list, (want - got).items()))[:5], "zeros": zeros, "bad_models": bad_models[:5],
                "models": n_models, "cut_short_minutes": len(cut_short),
                "not_restated_again": sorted(map(str, cut_short - restated))[:5]}

    store()
    first = compare()
    # A late touch before u0's first s1 order of its day changes that journey: the day is rewritten.
    o = min((f for f in orders if f.user_id == "u0" and f.shop_id == "s1"), key=lambda f: (f.t_ms, f.event_id), default=None)
    funnel_rows.clear()
    credit_rows.clear()
    if o is not None:
        add_touch("u0", "s1", o.t_ms - 1, "late-1", "clip")
        add_touch("u0", "s1", o.t_ms - 2, "late-2", "clip")
    store()
    second = compare()
    return json.loads(json.dumps({"first": first, "second": second, "late": o is not None}))


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_journeys_counted_in_clickhouse_equal_the_pure_rules_and_a_late_fact_rewrites_its_day(backend, seed: int):
    password = backend.env.get("GMV_CLICKHOUSE_PASSWORD")
    client = connect(backend.env["GMV_CLICKHOUSE_DSN"], SecretStr(password) if password else None)
    try:
        out = _check(seed, client, f"markov_{uuid.uuid4().hex[:8]}")
    finally:
        client.close()
    for run in ("first", "second"):
        r = out[run]
        assert r["equal"], (run, r)
        assert r["n"] > 100 and r["models"] > 10 and not r["bad_models"], (run, r)
        assert not r["not_restated_again"], (run, r)
    assert out["first"]["cut_short_minutes"] > 0
    assert out["late"]
