"""SPEC §7 through `gmv run` on the real broker and ClickHouse: every trust score equals the value
worked out by hand below (to 1e-9); a rerun changes none (a kill -9 mid-run: test_crash_rerun.py); the messages of a
conversation delivered in reverse order give the same turns; bad reviews become dead letters.

Day D is 2026-11-20 (Asia/Shanghai). Shop S1 sells K1 (account A1, live) and K2 (shelf, no
account); shop S2 sells K3 (account A2). One order of K1 (O5) and its review and quality refund
fall 30 days before D: in the windows of D-30 .. D-1, not in D's.
"""

from __future__ import annotations

import json
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from tests.integration.conftest import fresh_env, gmv, remove_env, run_counts, sql

pytestmark = pytest.mark.integration

SH = ZoneInfo("Asia/Shanghai")
D = date(2026, 11, 20)
OLD = D - timedelta(days=30)


def at(day: date, hh: int, mm: int, ss: float = 0) -> str:
    t = datetime(day.year, day.month, day.day, hh, mm, tzinfo=SH) + timedelta(seconds=ss)
    return t.isoformat(timespec="milliseconds")


def paid(eid, user, when, order, amount, shop, sku, seller, channel="live", channel_id="L1"):
    e = {"event_type": "order", "event_id": eid, "event_time": when, "order_id": order, "user_id": user,
         "shop_id": shop, "sku_id": sku, "seller_id": seller, "status": "paid", "amount_fen": amount,
         "channel": channel}
    e.update({"shelf_source": "mall"} if channel == "shelf" else {"channel_id": channel_id})
    return e


def refund(eid, user, when, order, fen, reason=None):
    e = {"event_type": "order", "event_id": eid, "event_time": when, "order_id": order, "user_id": user,
         "status": "refunded", "refund_fen": fen}
    if reason:
        e["refund_reason"] = reason
    return e


def review(eid, user, when, order, p, s, lg):
    return {"event_type": "review", "event_id": eid, "event_time": when, "order_id": order, "user_id": user,
            "product_rating": p, "service_rating": s, "logistics_rating": lg}


def cs(eid, conv, user, when, sender, shop="S1"):
    return {"event_type": "cs_message", "event_id": eid, "event_time": when, "conversation_id": conv,
            "shop_id": shop, "user_id": user, "sender": sender}


# Conversation c1 (S1, buyer u1): turns answered in exactly 3 s (fast), in exactly 3 min (within 3 min),
# in 3.001 s (within 3 min only), and never; a bot message answers nothing; two buyer messages in a row
# are one turn. c2: answered after 90 min of event time, i.e. unanswered (cs_unanswered_after = 1 h).
C1 = [
    cs("c1-m1", "c1", "u1", at(D, 20, 0), "buyer"),
    cs("c1-m2", "c1", "u1", at(D, 20, 0, 1), "bot"),
    cs("c1-m3", "c1", "u1", at(D, 20, 0, 3), "agent"),
    cs("c1-m4", "c1", "u1", at(D, 20, 1), "buyer"),
    cs("c1-m5", "c1", "u1", at(D, 20, 1, 30), "buyer"),
    cs("c1-m6", "c1", "u1", at(D, 20, 4), "agent"),
    cs("c1-m7", "c1", "u1", at(D, 20, 10), "buyer"),
    cs("c1-m8", "c1", "u1", at(D, 20, 10, 3.001), "agent"),
    cs("c1-m9", "c1", "u1", at(D, 21, 0), "buyer"),
    cs("c1-m10", "c1", "u1", at(D, 21, 0, 2), "bot"),
]
C2 = [cs("c2-m1", "c2", "u2", at(D, 22, 0), "buyer"), cs("c2-m2", "c2", "u2", at(D, 23, 30), "agent")]
TURNS = [  # (conversation, start, response_ms, answered, fast, within_3min)
    ("c1", "c1-m1", 3_000, 1, 1, 1),
    ("c1", "c1-m4", 180_000, 1, 0, 1),
    ("c1", "c1-m7", 3_001, 1, 0, 1),
    ("c1", "c1-m9", None, 0, 0, 0),
    ("c2", "c2-m1", 5_400_000, 0, 0, 0),
]


def scenario(conversation_order: str = "as_sent") -> list[dict]:
    c1 = list(reversed(C1)) if conversation_order == "reversed" else C1
    return [
        paid("o5", "u1", at(OLD, 10, 0), "O5", 4_000, "S1", "K1", "A1", channel_id="L0"),
        review("rv8", "u1", at(OLD, 11, 0), "O5", 3, 3, 3),
        refund("r4", "u1", at(OLD, 12, 0), "O5", 4_000, "quality"),
        paid("o1", "u1", at(D, 10, 0), "O1", 10_000, "S1", "K1", "A1"),
        paid("o2", "u2", at(D, 10, 5), "O2", 5_000, "S1", "K1", "A1"),
        *(paid(f"o{i}", f"u{i}", at(D, 10, i), f"O{i}", 2_000, "S1", "K1", "A1") for i in (6, 7, 8, 9)),
        paid("o3", "u3", at(D, 11, 0), "O3", 3_000, "S1", "K2", "", channel="shelf"),
        paid("o4", "u4", at(D, 12, 0), "O4", 8_000, "S2", "K3", "A2", channel="short_video", channel_id="V1"),
        refund("r1", "u1", at(D, 15, 0), "O1", 10_000, "quality"),
        refund("r2", "u2", at(D, 15, 10), "O2", 1_000, "changed_mind"),
        refund("r3", "u4", at(D, 16, 0), "O4", 8_000, "damaged"),
        refund("r5", "u6", at(D, 16, 5), "O6", 500),  # no reason: "other", not a quality refund
        review("rv1", "u1", at(D, 18, 0), "O1", 5, 4, 3),
        review("rv2", "u2", at(D, 18, 5), "O2", 4, 5, 5),
        review("rv3", "u3", at(D, 18, 10), "O3", 2, 3, 4),
        review("rv4", "u4", at(D, 18, 15), "O4", 1, 1, 2),
        review("rv5", "u2", at(D, 18, 20), "O2", 1, 1, 1),  # a second review of O2
        review("rv6", "u9", at(D, 18, 25), "O3", 5, 5, 5),  # u9 did not pay O3
        review("rv7", "u5", at(D, 18, 30), "O99", 5, 5, 5),  # an order never seen
        *c1, *C2,
    ]


# Worked out by hand from SPEC §7: smooth(sum, n) = (40 + sum) / (10 + n); qrr = quality-refunded / paid.
S1_P = (40 + 5 + 4 + 2) / (10 + 3) - 10 * 1 / 7  # O1..O3, O6..O9 paid; O1 quality-refunded (O2's is changed_mind)
S1_S = 0.5 * (40 + 4 + 5 + 3) / 13 + 0.5 * 5 * (1 / 5 + 3 / 5) / 2  # 5 turns: 1 within 3 s, 3 within 3 min
S1_L = (40 + 3 + 5 + 4) / 13
S2_S = 0.5 * (40 + 1) / 11 + 0.5 * 5 * (1 + 1) / 2  # no turns: fast = within_3min = 1
OLD_S = 0.5 * (40 + 3) / 11 + 0.5 * 5 * (1 + 1) / 2
EXPECTED = {
    (D, "sku", "K1"): (40 + 5 + 4) / (10 + 2) - 10 * 1 / 6,  # = 2.41666...: rv1, rv2; 6 paid, O1 quality
    (D, "sku", "K2"): (40 + 2) / (10 + 1),  # = 3.81818...: rv3, no refund
    (D, "sku", "K3"): 0.0,  # (40 + 1) / 11 - 10 × 1/1 < 0: clamped
    (D, "account", "A1"): (40 + (5 + 4 + 4 + 5) / 2) / 12 - 10 * 1 / 6,
    (D, "account", "A2"): 0.0,
    (D, "shop", "S1"): 0.4 * S1_P + 0.3 * S1_S + 0.3 * S1_L,  # = 3.09780...
    (D, "shop", "S2"): 0.4 * 0.0 + 0.3 * S2_S + 0.3 * (40 + 2) / 11,  # P clamped at 0
    # 30 days before: O5 paid, quality-refunded in full, reviewed 3/3/3
    (OLD, "sku", "K1"): 0.0,
    (OLD, "account", "A1"): 0.0,
    (OLD, "shop", "S1"): 0.4 * 0.0 + 0.3 * OLD_S + 0.3 * (40 + 3) / 11,
    # the window of D-1 still holds O5 (its 30th day); D's does not
    (D - timedelta(days=1), "shop", "S1"): 0.4 * 0.0 + 0.3 * OLD_S + 0.3 * (40 + 3) / 11,
}

SCORES = ("SELECT toString(day) AS day, subject_kind, subject_id, score, n, reviews, paid_orders, "
          "quality_refunded_orders, turns, fast_turns, within_3min_turns FROM {db}.trust_scores "
          "ORDER BY day, subject_kind, subject_id")
TURNS_SQL = ("SELECT conversation_id, start_event_id, response_ms, answered, fast, within_3min FROM {db}.cs_turns "
             "ORDER BY conversation_id, start_time")


def write(path, events) -> None:
    path.write_text("\n".join(json.dumps(e, ensure_ascii=False) for e in events) + "\n")


def scores(env) -> dict[tuple, dict]:
    rows = sql(env, SCORES.format(db=env["GMV_CLICKHOUSE_DATABASE"]))
    return {(date.fromisoformat(r["day"]), r["subject_kind"], r["subject_id"]): r for r in rows}


def turns(env) -> list[tuple]:
    return [(r["conversation_id"], r["start_event_id"], r["response_ms"], r["answered"], r["fast"], r["within_3min"])
            for r in sql(env, TURNS_SQL.format(db=env["GMV_CLICKHOUSE_DATABASE"]))]


@pytest.fixture(scope="module")
def scored(backend, tmp_path_factory):
    path = tmp_path_factory.mktemp("trust") / "events.jsonl"
    write(path, scenario())
    env = fresh_env(backend)
    counts = run_counts(env, path)
    yield {"env": env, "path": path, "counts": counts}
    remove_env(env)


def test_every_score_equals_the_hand_worked_value(scored):
    got = scores(scored["env"])
    for key, value in EXPECTED.items():
        assert key in got, f"no score for {key}"
        assert got[key]["score"] == pytest.approx(value, abs=1e-9), key
    s1 = got[(D, "shop", "S1")]
    assert s1["n"] == s1["reviews"]  # SPEC §7 names the review count n
    assert (s1["reviews"], s1["paid_orders"], s1["quality_refunded_orders"], s1["turns"], s1["fast_turns"],
            s1["within_3min_turns"]) == (3, 7, 1, 5, 1, 3)
    # a subject has a row for each day whose window holds one of its facts, and only those
    assert {k[0] for k in got if k[1:] == ("sku", "K1")} == {OLD + timedelta(days=k) for k in range(31)}
    assert {k[0] for k in got if k[1:] == ("sku", "K2")} == {D}
    assert not any(k[2] == "" for k in got)  # the shelf sale's empty seller is nobody's account


def test_turns_follow_event_time_bots_answer_nothing_and_late_answers_are_unanswered(scored):
    assert turns(scored["env"]) == TURNS


def test_bad_reviews_are_dead_lettered_with_their_reason_and_the_counts_add_up(scored):
    env, counts = scored["env"], scored["counts"]
    db = env["GMV_CLICKHOUSE_DATABASE"]
    reasons = sql(env, f"SELECT event_id, reason_code FROM {db}.dead_letters ORDER BY event_id")
    assert reasons == [{"event_id": "rv5", "reason_code": "review_already_given"},
                       {"event_id": "rv6", "reason_code": "review_user_mismatch"},
                       {"event_id": "rv7", "reason_code": "orphan_review"}]
    assert counts["received"] == len(scenario()) == counts["accepted"] + counts["dead_lettered"]
    assert counts["dead_lettered"] == 3
    refunds = sql(env, f"SELECT event_id, reason, is_quality FROM {db}.refunds ORDER BY event_id")
    assert [(r["event_id"], r["reason"], r["is_quality"]) for r in refunds] == [
        ("r1", "quality", 1), ("r2", "changed_mind", 0), ("r3", "damaged", 1), ("r4", "quality", 1),
        ("r5", "other", 0)]


def test_a_rerun_changes_no_score(scored):
    env = scored["env"]
    before, turns_before = scores(env), turns(env)
    run_counts(env, scored["path"])
    after = scores(env)
    assert {k: r["score"] for k, r in after.items()} == {k: r["score"] for k, r in before.items()}
    assert after == before and turns(env) == turns_before


def test_a_conversation_delivered_in_reverse_gives_the_same_turns(backend, tmp_path):
    path = tmp_path / "reversed.jsonl"
    write(path, scenario("reversed"))
    env = fresh_env(backend)
    run_counts(env, path)
    assert turns(env) == TURNS
    got = scores(env)
    assert got[(D, "shop", "S1")]["score"] == pytest.approx(EXPECTED[(D, "shop", "S1")], abs=1e-9)


def test_scores_explains_a_shop_score_with_its_inputs(scored):
    out = gmv(scored["env"], "scores", "--shop", "S1", "--day", D.isoformat()).stdout
    assert f"{EXPECTED[(D, 'shop', 'S1')]:.2f}" in out
    assert "turns = 5" in out and "qrr = 1/7" in out
    out = gmv(scored["env"], "scores", "--sku", "K1", "--day", D.isoformat()).stdout
    assert f"{EXPECTED[(D, 'sku', 'K1')]:.2f}" in out


def test_the_dashboard_lists_shop_scores_and_the_days_movers(scored):
    from gmv.dashboards.queries import SCORES, score_panels

    env = scored["env"]
    params = ["--param", f"db={env['GMV_CLICKHOUSE_DATABASE']}"]
    rows = json.loads(gmv(env, "sql", SCORES, *params, "--format", "json").stdout)
    shops, movers = score_panels(rows)
    assert [(r["id"], r["day"]) for r in shops] == [("S1", D.isoformat()), ("S2", D.isoformat())]
    assert shops[0]["score"] == pytest.approx(EXPECTED[(D, "shop", "S1")], abs=1e-9)
    # since D-1 (whose window still held O5): K1 and A1 rose from 0, S1 from its D-1 score; S2, K2, K3 and A2
    # had no score on D-1 (no change to show)
    got = {(r["kind"], r["id"]): r["change"] for r in movers}
    assert set(got) == {("sku", "K1"), ("account", "A1"), ("shop", "S1")}
    assert got[("shop", "S1")] == pytest.approx(EXPECTED[(D, "shop", "S1")] - EXPECTED[(OLD, "shop", "S1")], abs=1e-9)
