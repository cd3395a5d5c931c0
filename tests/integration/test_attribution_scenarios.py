"""SPEC §3, one named test per rule, through `gmv run` on the real broker and ClickHouse.

Every scenario has its own user, sellers and shops, so all of them share one
input file and one run; each test then checks its order's credits per model
and stage to the fen. Expected numbers are worked out by hand in the comments.
"""

from __future__ import annotations

import json
from collections import defaultdict
from datetime import UTC, datetime, timedelta

import pytest

from tests.integration.conftest import fresh_env, gmv, remove_env, run_counts, sql

pytestmark = pytest.mark.integration

T = datetime(2026, 11, 20, 4, 0, tzinfo=UTC)
H = timedelta(hours=1)
RULE_MODELS = ("last_touch", "first_touch", "linear", "position_based", "time_decay")
MODELS = (*RULE_MODELS, "markov")


def iso(t: datetime) -> str:
    return t.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def view(eid, user, t, author, video, kind="short_video", watch=5000, shop=None, traffic="public", live=None):
    e = {"event_type": "view", "event_id": eid, "event_time": iso(t), "user_id": user, "video_id": video,
         "author_id": author, "kind": kind, "watch_ms": watch, "traffic": traffic}
    if shop:
        e["shop_id"] = shop
    if live:
        e["source_live_id"] = live
    return e


def enter(eid, user, t, anchor, live, shop=None, traffic="public"):
    e = {"event_type": "live_room", "event_id": eid, "event_time": iso(t), "live_id": live, "anchor_id": anchor,
         "action": "enter", "user_id": user, "traffic": traffic, "referrer_kind": "short_video"}
    if shop:
        e["shop_id"] = shop
    return e


def paid(eid, user, t, order_id, amount, seller, shop, channel, channel_id=None):
    e = {"event_type": "order", "event_id": eid, "event_time": iso(t), "order_id": order_id, "user_id": user,
         "shop_id": shop, "sku_id": f"sku-{order_id}", "seller_id": seller, "status": "paid",
         "amount_fen": amount, "channel": channel}
    if channel == "shelf":
        e["shelf_source"] = "mall"
    else:
        e["channel_id"] = channel_id
    return e


def refund(eid, user, t, order_id, fen):
    return {"event_type": "order", "event_id": eid, "event_time": iso(t), "order_id": order_id, "user_id": user,
            "status": "refunded", "refund_fen": fen}


def scenario_events() -> list[dict]:
    ev: list[dict] = [
        # A: relevance by account (sA is the seller); xA's view is irrelevant.
        view("A-v1", "uA", T - 24 * H, "sA", "vA"),
        view("A-v2", "uA", T - 2 * H, "xA", "vA2"),
        paid("A-o", "uA", T, "OA", 10_000, "sA", "pA", "live", "LA"),
        # B: relevance by shop: distributor xB's video mounts the seller's shop pB.
        view("B-v1", "uB", T - 12 * H, "xB", "vB", shop="pB"),
        paid("B-o", "uB", T, "OB", 999, "sB", "pB", "clip", "cB9"),
        # C: lookback edge: exactly 7 days counts, 1 ms more does not.
        view("C-v1", "uC", T - timedelta(days=7), "sC", "vC1"),
        view("C-v2", "uC", T - timedelta(days=7, milliseconds=1), "sC", "vC2"),
        paid("C-o", "uC", T, "OC", 700, "sC", "pC", "shelf"),
        # D: engaged threshold: 2999 ms is not a touchpoint, 3000 ms is.
        view("D-v1", "uD", T - 1 * H, "sD", "vD1", watch=2999),
        view("D-v2", "uD", T - 2 * H, "sD", "vD2", watch=3000),
        paid("D-o", "uD", T, "OD", 300, "sD", "pD", "live", "LD"),
        # E: same content merges: the enter of LE merges into the conversion in LE (keeping its
        # private traffic); two views of vE are one touch, at the later time.
        enter("E-e1", "uE", T - 1 * H, "sE", "LE", traffic="private"),
        view("E-v1", "uE", T - 3 * H, "sE", "vE"),
        view("E-v2", "uE", T - 2 * H, "sE", "vE"),
        paid("E-o", "uE", T, "OE", 1_000, "sE", "pE", "live", "LE"),
        # F: 25 relevant videos: the path keeps the 19 most recent + the conversion.
        *[view(f"F-v{i:02d}", "uF", T - (25 - i) * H, "sF", f"vF{i:02d}") for i in range(25)],
        paid("F-o", "uF", T, "OF", 2_000, "sF", "pF", "live", "LF"),
        # G: rounding ties go to the touch nearer the conversion.
        view("G-v1", "uG", T - 3 * H, "sG", "vG1"),
        view("G-v2", "uG", T - 2 * H, "sG", "vG2"),
        view("G-v3", "uG", T - 1 * H, "sG", "vG3"),
        paid("G-o", "uG", T, "OG", 101, "sG", "pG", "live", "LG"),
        # H: partial refunds split with the paid weights.
        view("H-v1", "uH", T - 24 * H, "sH", "vH"),
        paid("H-o", "uH", T, "OH", 10_000, "sH", "pH", "live", "LH"),
        refund("H-r1", "uH", T + H, "OH", 3_000),
        refund("H-r2", "uH", T + 2 * H, "OH", 2_001),
        # I: a refund for an order never seen: held, then dead-lettered as orphan.
        refund("I-r1", "uI", T + H, "OI-never-paid", 500),
        # J: cumulative refunds may not exceed the paid amount.
        paid("J-o", "uJ", T, "OJ", 1_000, "", "pJ", "shelf"),
        refund("J-r1", "uJ", T + H, "OJ", 600),
        refund("J-r2", "uJ", T + 2 * H, "OJ", 600),
        # K: the touch arrives after its order (event_time <= order_time): it still counts.
        paid("K-o", "uK", T, "OK", 500, "sK", "pK", "live", "LK"),
        view("K-v1", "uK", T - H, "sK", "vK"),
        # L: the same order event sent twice counts once.
        paid("L-o", "uL", T, "OL", 800, "", "pL", "shelf"),
        paid("L-o", "uL", T, "OL", 800, "", "pL", "shelf"),
        # M: a distributor's clip (relevant by shop) assists the brand's own live.
        enter("M-e1", "uM", T - 6 * H, "sM", "LM", shop="pM"),
        view("M-v1", "uM", T - 5 * H, "dM", "cM", kind="clip", shop="pM", live="LM"),
        paid("M-o", "uM", T, "OM", 900, "sM", "pM", "live", "LM"),
    ]
    return ev


@pytest.fixture(scope="module")
def attributed(backend, tmp_path_factory):
    env = fresh_env(backend)
    path = tmp_path_factory.mktemp("scenarios") / "scenarios.jsonl"
    path.write_text("\n".join(json.dumps(e) for e in scenario_events()) + "\n")
    counts = run_counts(env, path)
    db = env["GMV_CLICKHOUSE_DATABASE"]
    rows = sql(env, f"SELECT order_id, event_id, kind, model, stage, touch_content_id, touch_time, is_self, traffic, "
                    f"credit_fen, path, touch_index FROM {db}.attributed_gmv")
    dead = sql(env, f"SELECT event_id, reason_code, reason FROM {db}.dead_letters")
    yield {"env": env, "path": path, "counts": counts, "rows": rows, "dead": dead, "db": db}
    remove_env(env)


def credits(attributed, order_id: str, kind: str | None = None) -> dict[str, dict[str, int]]:
    """model -> stage -> credit_fen, for one order (paid and refunds unless ``kind``); every model
    present, or the order has no rows at all ({})."""
    out: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for r in attributed["rows"]:
        if r["order_id"] == order_id and (kind is None or r["kind"] == kind):
            out[r["model"]][r["stage"]] += int(r["credit_fen"])
    assert not out or set(out) == set(MODELS), f"order {order_id}: rows for models {sorted(out)} only"
    return {m: dict(s) for m, s in out.items()}


def expected_rows(attributed, order_id: str) -> dict[str, dict[str, int]]:
    """``credits`` of an order the scenario says was attributed: it must have rows before any
    assertion on them (an `all(...)` over no rows would pass)."""
    got = credits(attributed, order_id)
    assert got, f"order {order_id} has no attributed rows"
    return got


def contents(attributed, order_id: str) -> list[str]:
    rows = sorted((r for r in attributed["rows"] if r["order_id"] == order_id and r["model"] == "linear"
                   and r["kind"] == "paid"), key=lambda r: int(r["touch_index"]))
    return [r["touch_content_id"] for r in rows]


def test_counts_add_up(attributed):
    c = attributed["counts"]
    assert c["received"] == len(scenario_events())
    assert c["received"] == c["accepted"] + c["duplicates"] + c["dead_lettered"]
    assert c["duplicates"] == 1 and c["dead_lettered"] == 2


def test_relevance_by_account_and_each_model(attributed):
    # short video 24 h before, paid in live: time decay weights 1/2 and 1 -> 3333.33 / 6666.67
    assert credits(attributed, "OA") == {
        "last_touch": {"short_video": 0, "live": 10_000},
        "first_touch": {"short_video": 10_000, "live": 0},
        "linear": {"short_video": 5_000, "live": 5_000},
        "position_based": {"short_video": 5_000, "live": 5_000},
        "time_decay": {"short_video": 3_333, "live": 6_667},
        # shop pA's only journey is the order itself, live -> conv (uA's video carries no shop): RE live 1,
        # short_video 0 (never visited), so live earns it all
        "markov": {"short_video": 0, "live": 10_000},
    }
    assert "vA2" not in contents(attributed, "OA")


def test_relevance_by_shop_and_is_self(attributed):
    # 999 fen over two touches: 499.5 each, the tie goes to the conversion; time decay 12 h: 413.80 / 585.20
    c = credits(attributed, "OB")
    assert c["linear"] == {"short_video": 499, "clip": 500}
    assert c["position_based"] == {"short_video": 499, "clip": 500}
    assert c["time_decay"] == {"short_video": 414, "clip": 585}
    selfs = {r["touch_content_id"]: int(r["is_self"]) for r in attributed["rows"] if r["order_id"] == "OB"}
    assert selfs == {"vB": 0, "cB9": 1}


def test_lookback_edge(attributed):
    assert contents(attributed, "OC") == ["vC1", ""]
    # 7 days at a 24 h half life: weight 1/128 -> 700/129 = 5.43 and 694.57
    assert credits(attributed, "OC")["time_decay"] == {"short_video": 5, "shelf": 695}


def test_engaged_threshold(attributed):
    assert contents(attributed, "OD") == ["vD2", "LD"]
    assert credits(attributed, "OD")["first_touch"] == {"short_video": 300, "live": 0}


def test_same_content_merge(attributed):
    rows = [r for r in attributed["rows"] if r["order_id"] == "OE" and r["model"] == "linear"]
    assert contents(attributed, "OE") == ["vE", "LE"]
    first = next(r for r in rows if r["touch_content_id"] == "vE")
    assert first["touch_time"].startswith("2026-11-20 02:00:00")  # the later of the two views
    conversion = next(r for r in rows if r["touch_content_id"] == "LE")
    assert conversion["traffic"] == "private"  # kept from the merged enter
    assert {r["path"] for r in rows} == {"short_video>live"}


def test_path_cap_of_twenty(attributed):
    path = contents(attributed, "OF")
    assert len(path) == 20 and path[0] == "vF06" and path[-2] == "vF24"
    c = credits(attributed, "OF")
    assert c["linear"] == {"short_video": 1_900, "live": 100}
    assert c["first_touch"] == {"short_video": 2_000, "live": 0}
    first_touch = [r for r in attributed["rows"] if r["order_id"] == "OF" and r["model"] == "first_touch"
                   and int(r["credit_fen"]) > 0]
    assert [r["touch_content_id"] for r in first_touch] == ["vF06"]


def test_rounding_ties(attributed):
    # linear 25.25 x 4 -> the leftover fen goes to the conversion; position 40.4/10.1/10.1/40.4 -> 40/10/10/41
    c = credits(attributed, "OG")
    assert c["linear"] == {"short_video": 75, "live": 26}
    assert c["position_based"] == {"short_video": 60, "live": 41}


def test_partial_refunds(attributed):
    r = credits(attributed, "OH", kind="refund")
    # 3000 -> 1500/1500; 2001 -> 1000.5 each, the tie to the conversion -> 1000/1001
    assert r["linear"] == {"short_video": -2_500, "live": -2_501}
    # weights 1/2 and 1: 3000 -> 1000/2000; 2001 -> 667/1334
    assert r["time_decay"] == {"short_video": -1_667, "live": -3_334}
    net = expected_rows(attributed, "OH")
    assert {m: sum(s.values()) for m, s in net.items()} == dict.fromkeys(MODELS, 10_000 - 5_001)


def test_orphan_refund(attributed):
    (dl,) = [d for d in attributed["dead"] if d["event_id"] == "I-r1"]
    assert dl["reason_code"] == "orphan_refund" and "OI-never-paid" in dl["reason"]
    assert credits(attributed, "OI-never-paid") == {}


def test_over_refund(attributed):
    (dl,) = [d for d in attributed["dead"] if d["event_id"] == "J-r2"]
    assert dl["reason_code"] == "over_refund" and "1000 fen paid" in dl["reason"]
    assert expected_rows(attributed, "OJ") == {m: {"shelf": 400} for m in MODELS}


def test_out_of_order_touch_counts(attributed):
    assert contents(attributed, "OK") == ["vK", "LK"]
    assert credits(attributed, "OK")["linear"] == {"short_video": 250, "live": 250}


def test_duplicate_order_event_counts_once(attributed):
    assert expected_rows(attributed, "OL") == {m: {"shelf": 800} for m in MODELS}


def test_distributor_clip_assists_self_broadcast(attributed):
    rows = [r for r in attributed["rows"] if r["order_id"] == "OM" and r["model"] == "linear"]
    assert {(r["stage"], int(r["is_self"]), int(r["credit_fen"])) for r in rows} == {("clip", 0, 450), ("live", 1, 450)}


def test_every_model_sums_to_net_and_rollups_agree(attributed):
    env, db = attributed["env"], attributed["db"]
    paid_total, refund_total = 28_300, 5_601
    by_model = sql(env, f"SELECT model, sum(credit_fen) AS net, sumIf(credit_fen, kind = 'paid') AS gmv "
                        f"FROM {db}.attributed_gmv GROUP BY model")
    assert {r["model"]: (int(r["gmv"]), int(r["net"])) for r in by_model} == {
        m: (paid_total, paid_total - refund_total) for m in MODELS}
    # minute, hour and day rollups agree with the facts, per model and stage
    facts = sql(env, f"SELECT model, stage, sumIf(credit_fen, kind='paid') AS g, sum(credit_fen) AS n "
                     f"FROM {db}.attributed_gmv GROUP BY model, stage")
    expected = {(r["model"], r["stage"]): (int(r["g"]), int(r["n"])) for r in facts}
    for table in ("gmv_minute", "gmv_hour", "gmv_day"):
        got = sql(env, f"SELECT model, stage, sum(gmv_fen) AS g, sum(net_fen) AS n FROM {db}.{table} "
                       "GROUP BY model, stage")
        assert {(r["model"], r["stage"]): (int(r["g"]), int(r["n"])) for r in got} == expected, table
    orders = sql(env, f"SELECT sum(orders) AS o, uniqMerge(buyers) AS b FROM {db}.gmv_minute WHERE model = 'linear'")
    assert int(orders[0]["o"]) == 12 and int(orders[0]["b"]) == 12


def test_replay_changes_no_sum(attributed):
    env, db = attributed["env"], attributed["db"]
    query = (f"SELECT model, stage, kind, sum(credit_fen) AS s, count() AS n FROM {db}.attributed_gmv "
             "GROUP BY model, stage, kind ORDER BY model, stage, kind")
    before = sql(env, query)
    again = run_counts(env, attributed["path"])
    assert {k: again[k] for k in ("received", "accepted", "duplicates", "dead_lettered")} == \
        {k: attributed["counts"][k] for k in ("received", "accepted", "duplicates", "dead_lettered")}
    assert sql(env, query) == before
    assert gmv(env, "sql", f"SELECT count() FROM {db}.dead_letters").stdout.strip() == "2"


SNAPSHOT = ("SELECT model, stage, kind, sum(credit_fen) AS s, count() AS n FROM {db}.attributed_gmv "
            "GROUP BY model, stage, kind ORDER BY model, stage, kind")
MARKOV_SNAPSHOT = ("SELECT toString(day) AS d, shop_id, stage, removal_effect_exact, p_conv_exact, journeys, conversions "
                   "FROM {db}.markov_model ORDER BY day, shop_id, stage")


def test_explain_shows_path_weights_credits_and_refunds(attributed):
    out = gmv(attributed["env"], "explain", "OH").stdout
    assert "path (2 touches): short_video>live" in out
    assert "vH" in out and "<- conversion" in out
    assert "refund H-r1" in out and "refund H-r2" in out
    assert "linear=4,999" in out and "time_decay=4,999" in out
    assert "6,667 ( 66.7%)" in out  # time-decay share of the conversion on the paid split
    rejected = gmv(attributed["env"], "explain", "OJ").stdout
    assert "rejected J-r2 (over_refund)" in rejected
    assert "markov=4,999" in out and "markov: the model of shop pH" in out  # how RE became the weights
    missing = gmv(attributed["env"], "explain", "no-such-order", check=False)
    assert missing.returncode == 1 and "no attributed GMV" in missing.stderr


def test_markov_credits_follow_the_removal_effects_of_each_orders_shop_and_day(attributed):
    """Every order's and refund's markov credits, per stage, equal SPEC §9 computed on the scenario's own
    events with the pure rules: journeys from the engaged touches with a shop and the paid orders; the
    model of the order's shop and day; the split of its path's stages."""
    from gmv.streams.core.markov import (
        JourneyFact,
        daily_transitions,
        markov_credits,
        shanghai_day,
        solve,
        window_counts,
    )

    events = {e["event_id"]: e for e in scenario_events()}.values()  # a re-sent event counts once
    ms = lambda e: int(datetime.fromisoformat(e["event_time"].replace("Z", "+00:00")).timestamp() * 1000)  # noqa: E731
    touches = [JourneyFact(e["user_id"], e.get("shop_id") or "", ms(e), e["event_id"],
                           e["kind"] if e["event_type"] == "view" else "live") for e in events
               if (e["event_type"] == "view" and e["watch_ms"] >= 3000) or e.get("action") == "enter"]
    orders = [JourneyFact(e["user_id"], e["shop_id"], ms(e), e["event_id"], e["channel"]) for e in events
              if e["event_type"] == "order" and e["status"] == "paid"]
    daily = daily_transitions(touches, orders)
    paid_by_order = {e["order_id"]: e for e in orders_events(events)}
    checked = 0
    for order_id, order in paid_by_order.items():
        got = credits(attributed, order_id)
        if not got:
            continue
        rows = sorted((r for r in attributed["rows"] if r["order_id"] == order_id and r["model"] == "linear"
                       and r["kind"] == "paid"), key=lambda r: int(r["touch_index"]))
        stages = [r["stage"] for r in rows]
        model = solve(window_counts(daily, order["shop_id"], shanghai_day(ms(order))))
        want: dict[str, int] = defaultdict(int)
        for stage, fen in zip(stages, markov_credits(order["amount_fen"], stages, model), strict=True):
            want[stage] += fen
        # each refund: -r split with the paid order's weights (r from its linear rows)
        refunds = {r["event_id"]: -sum(int(x["credit_fen"]) for x in attributed["rows"] if x["event_id"] == r["event_id"]
                                       and x["model"] == "linear") for r in attributed["rows"]
                   if r["order_id"] == order_id and r["kind"] == "refund"}
        for fen in refunds.values():
            for stage, c in zip(stages, markov_credits(fen, stages, model), strict=True):
                want[stage] -= c
        assert got["markov"] == {s: want.get(s, 0) for s in got["markov"]}, order_id
        checked += 1
    assert checked >= 10


def orders_events(events) -> list[dict]:
    return [e for e in events if e["event_type"] == "order" and e["status"] == "paid"]


def test_an_install_from_before_the_markov_model_gets_its_history_once_at_the_next_start(attributed, tmp_path):
    """Facts stored by a version without the model: the next worker start computes the model and the credits of
    the whole history, the same as a run that had them from the start, and says so."""
    from pydantic import SecretStr

    from gmv.sinks.clickhouse import connect

    env, db = attributed["env"], attributed["db"]
    before = sql(env, SNAPSHOT.format(db=db)), sql(env, MARKOV_SNAPSHOT.format(db=db))
    password = env.get("GMV_CLICKHOUSE_PASSWORD")
    client = connect(env["GMV_CLICKHOUSE_DSN"], SecretStr(password) if password else None)  # as a version without the model left it: facts, no markov
    try:
        for table in ("markov_credits_store", "markov_daily_store", "markov_model_store"):
            client.command(f"TRUNCATE TABLE `{db}`.`{table}`")
    finally:
        client.close()
    assert not [r for r in sql(env, SNAPSHOT.format(db=db)) if r["model"] == "markov"]
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    started = gmv(env, "run", "--events", str(empty), "--quiet")
    assert "markov model: computing" in started.stderr and "history done" in started.stderr
    assert (sql(env, SNAPSHOT.format(db=db)), sql(env, MARKOV_SNAPSHOT.format(db=db))) == before
    rolled = sql(env, f"SELECT sum(net_fen) AS n FROM {db}.gmv_day WHERE model = 'markov'")
    assert int(rolled[0]["n"]) == sum(int(r["s"]) for r in before[0] if r["model"] == "markov")
