"""The simulator's ground truth for the data-driven model ``markov`` (SPEC §9), and the ``stage_worth``
story whose shops' stages are worth different amounts."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from fractions import Fraction
from typing import Any

import pytest

from gmv.schemas.outputs import RULE_MODELS, STAGES
from gmv.tools.simulator import SCENARIOS, Emitted, GroundTruth, World

START = datetime(2026, 11, 1, 16, 0, tzinfo=UTC)  # midnight in Asia/Shanghai


def _truth(name: str, seed: int = 1, limit: int | None = None) -> GroundTruth:
    truth = GroundTruth()
    for i, m in enumerate(World(SCENARIOS[name], seed, START).messages()):
        if limit is not None and i >= limit:
            break
        truth.observe(m)
    return truth


@pytest.mark.parametrize(("name", "limit"), [("mixed", 20_000), ("stage_worth", None)])
def test_markov_credits_every_fen_like_every_other_model(name: str, limit: int | None) -> None:
    s = _truth(name, limit=limit).summary()
    by_model = s["net_by_model_stage"]
    assert set(by_model) == {*RULE_MODELS, "markov"}
    assert set(by_model["markov"]) == set(STAGES)
    for model, stages in by_model.items():
        assert sum(stages.values()) == s["net_fen"] == s["gross_fen"] - s["refund_fen"], model
    # Not a copy of a rule-based model: it splits by what stages are worth, not by position.
    assert all(by_model["markov"] != by_model[m] for m in RULE_MODELS)


# -- stage_worth -----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def stage_worth() -> dict[str, Any]:
    return _truth("stage_worth").summary()


def _last_day_effects(summary: dict[str, Any]) -> dict[str, dict[str, float]]:
    """shop -> stage -> removal effect, on the story's last day (the model of its whole 3 days)."""
    rows = summary["expected_markov"]
    last = max(r[0] for r in rows)
    out: dict[str, dict[str, float]] = {}
    for day, shop, stage, effect, _p, _journeys, _conversions in rows:
        if day == last:
            out.setdefault(shop, {})[stage] = effect
    return out


def test_stage_worth_differs_between_shops_the_way_the_story_says(stage_worth: dict[str, Any]) -> None:
    effects = _last_day_effects(stage_worth)
    shops = {shop: e for shop, e in effects.items() if shop}  # '' is the platform
    assert sorted(shops) == ["shop0", "shop1", "shop2"] and "" in effects

    def worth_most(stage: str) -> str:
        return max(shops, key=lambda shop: shops[shop][stage])

    # Each shop's story makes one stage worth most there, and worth more there than anywhere else.
    assert worth_most("short_video") == "shop0"  # short videos seed its lives
    assert worth_most("clip") == "shop1"  # its clips bring buyers back after the live
    assert worth_most("shelf") == "shop2"  # it sells on the shelf
    assert max(shops["shop0"], key=shops["shop0"].get) == "short_video"
    assert max(shops["shop1"], key=shops["shop1"].get) == "clip"
    assert max(shops["shop2"], key=shops["shop2"].get) == "shelf"
    # Clearly, not by a hair: content is worth little where buyers pay on the shelf.
    assert shops["shop0"]["short_video"] > 0.6 > 0.2 > max(shops[s]["short_video"] for s in ("shop1", "shop2"))
    assert shops["shop1"]["clip"] > 0.7 > 0.2 > max(shops[s]["clip"] for s in ("shop0", "shop2"))
    assert shops["shop2"]["shelf"] > 0.9 and max(shops["shop2"][k] for k in ("short_video", "live", "clip")) < 0.1


def test_stage_worth_has_plenty_of_journeys_that_never_convert(stage_worth: dict[str, Any]) -> None:
    rows = stage_worth["expected_markov"]
    last = max(r[0] for r in rows)
    for _day, shop, _stage, _effect, p_conv, journeys, conversions in (r for r in rows if r[0] == last):
        assert journeys > 1_000 and conversions < journeys / 5, shop  # most viewers watch and leave
        assert 0 < p_conv < 0.2


def test_stage_worth_leaves_every_other_story_alone() -> None:
    """Its knobs default to what every other story always did (x * 1.0, x * 2.0), and its own
    draws come from a stream of its own: the other presets give no shop rates of their own."""
    assert all(not sc.shop_rates for name, sc in SCENARIOS.items() if name != "stage_worth")
    assert SCENARIOS["stage_worth"].shop_rates and SCENARIOS["stage_worth"].days in (2, 3)


# -- a story small enough to check by hand ---------------------------------------------------
T0 = int(datetime(2026, 11, 2, 10, 0, tzinfo=UTC).timestamp() * 1000) - 8 * 3_600_000  # 10:00 in Shanghai
DAY = 86_400_000
S, M = 1_000, 60_000


def _view(eid: str, t: int, user: str, video: str, kind: str, watch_ms: int, shop: str, author: str = "a1") -> Emitted:
    ev = {"event_type": "view", "event_id": eid, "event_time": t, "user_id": user, "video_id": video,
          "author_id": author, "kind": kind, "watch_ms": watch_ms, "traffic": "public", "shop_id": shop}
    if kind == "clip":
        ev["source_live_id"] = "L1"
    return Emitted("view", user, b"", "valid", ev)


def _enter(eid: str, t: int, user: str, shop: str = "s1") -> Emitted:
    return Emitted("live_room", user, b"", "valid", {
        "event_type": "live_room", "event_id": eid, "event_time": t, "live_id": "L1", "anchor_id": "a1",
        "action": "enter", "user_id": user, "shop_id": shop})


def _order(eid: str, t: int, user: str, order_id: str, fen: int, channel: str, channel_id: str = "",
           shop: str = "s1", seller: str = "a1", refund: bool = False) -> Emitted:
    ev: dict[str, Any] = {"event_type": "order", "event_id": eid, "event_time": t, "order_id": order_id,
                          "user_id": user, "shop_id": shop, "sku_id": f"{shop}-sku0", "seller_id": seller,
                          "currency": "CNY", "channel": channel}
    ev.update({"status": "refunded", "refund_fen": fen} if refund else {"status": "paid", "amount_fen": fen})
    if channel_id:
        ev["channel_id"] = channel_id
    return Emitted("order", user, b"", "valid", ev)


def _hand_story() -> Iterable[Emitted]:
    """SPEC §9's worked example at shop s1 on one day, then a day after it (journey = sequence):

    - u1: short_video v1, enters live L1, pays 10,001 fen in L1 (short_video→live→conv); watches a
      clip after paying (not in the journey: after its first order); later refunds 1,001 fen;
    - u2: short_video v1, enters L1, pays 5,000 fen in L1 (short_video→live→conv);
    - u3: watches v2 exactly engaged_ms and leaves (short_video→null); its view is sent twice;
    - u4: watches v3, which has no shop (in its §3 path, in no journey), enters L1, pays 2,990 fen
      (live→conv);
    - u5: enters L1 and leaves (live→null); a clip view under engaged_ms is no touchpoint;
    - u6: watches clip c1 and leaves (clip→null);
    - u7: pays 990 fen on the shelf (shelf→conv);
    - a malformed message;
    - the next day: u1 enters L1 and leaves (s1: live→null); u8 watches b2's v9 of shop s2 and pays
      1,990 fen in it (s2: short_video→conv).
    """
    yield _view("e01", T0, "u1", "v1", "short_video", 5_000, "s1")
    yield _enter("e02", T0 + 1 * M, "u1")
    yield _view("e05", T0 + 100 * S, "u2", "v1", "short_video", 4_000, "s1")
    yield _enter("e06", T0 + 160 * S, "u2")
    yield _view("e08", T0 + 200 * S, "u3", "v2", "short_video", 3_000, "s1")
    yield Emitted("view", None, b"{not json", "malformed")
    yield _view("e09", T0 + 250 * S, "u4", "v3", "short_video", 6_000, "")
    yield _view("e08", T0 + 200 * S, "u3", "v2", "short_video", 3_000, "s1")  # a duplicate: counts once
    yield _enter("e10", T0 + 260 * S, "u4")
    yield _enter("e12", T0 + 270 * S, "u5")
    yield _view("e13", T0 + 280 * S, "u5", "c1", "clip", 1_000, "s1")
    yield _view("e14", T0 + 290 * S, "u6", "c1", "clip", 9_000, "s1")
    yield _order("e03", T0 + 5 * M, "u1", "o1", 10_001, "live", "L1")
    yield _order("e07", T0 + 400 * S, "u2", "o2", 5_000, "live", "L1")
    yield _order("e11", T0 + 500 * S, "u4", "o4", 2_990, "live", "L1")
    yield _order("e15", T0 + 10 * M, "u7", "o7", 990, "shelf", seller="")
    yield _view("e04", T0 + 30 * M, "u1", "c1", "clip", 8_000, "s1")
    yield _order("e16", T0 + 2 * 60 * M, "u1", "o1", 1_001, "live", "L1", refund=True)
    yield _enter("e22", T0 + DAY + 100 * S, "u1")
    yield _view("e20", T0 + DAY, "u8", "v9", "short_video", 5_000, "s2", author="b2")
    yield _order("e21", T0 + DAY + 1 * M, "u8", "o8", 1_990, "short_video", "v9", shop="s2", seller="b2")


def _rows(day: str, shop: str, p: Fraction, journeys: int, conversions: int,
          **effects: Fraction) -> list[list[Any]]:
    return [[day, shop, stage, float(effects.get(stage, Fraction(0))), float(p), journeys, conversions]
            for stage in STAGES]


def test_the_markov_truth_of_a_story_checked_by_hand() -> None:
    truth = GroundTruth()
    for m in _hand_story():
        truth.observe(m)
    s = truth.summary()
    f = Fraction
    # Day 1, s1 = the platform: SPEC §9's example, P = 4/7, RE short_video 3/8, live 3/4, shelf 1/4.
    # Day 2, s1's window adds u1's live→null: P(live) = 3/5, P(short_video) = 2/3 · 3/5 = 2/5,
    #   P = (3·2/5 + 3·3/5 + 1)/8 = 1/2; without short_video (3·3/5 + 1)/8 = 7/20 → RE 3/10;
    #   without live 1/8 → 3/4; without shelf 3/8 → 1/4.
    # Day 2, s2: short_video→conv alone: P = 1, RE short_video 1.
    # Day 2, platform: s1's 8 journeys and s2's one; short_video goes on to live 2, null 1, conv 1:
    #   P(short_video) = (2·3/5 + 1)/4 = 11/20, P = (4·11/20 + 3·3/5 + 1)/9 = 5/9; without
    #   short_video (3·3/5 + 1)/9 = 14/45 → RE 11/25; without live (4·1/4 + 1)/9 = 2/9 → 3/5;
    #   without shelf 4/9 → 1/5.
    day1, day2 = "2026-11-02", "2026-11-03"
    assert s["expected_markov"] == sorted([
        *_rows(day1, "", f(4, 7), 7, 4, short_video=f(3, 8), live=f(3, 4), shelf=f(1, 4)),
        *_rows(day1, "s1", f(4, 7), 7, 4, short_video=f(3, 8), live=f(3, 4), shelf=f(1, 4)),
        *_rows(day2, "", f(5, 9), 9, 5, short_video=f(11, 25), live=f(3, 5), shelf=f(1, 5)),
        *_rows(day2, "s1", f(1, 2), 8, 4, short_video=f(3, 10), live=f(3, 4), shelf=f(1, 4)),
        *_rows(day2, "s2", f(1), 1, 1, short_video=f(1)),
    ])
    # Credits with day 1's model of s1: paths short_video > live get 3/8 : 3/4 = 1/3 : 2/3.
    #   o1 10,001 → 3,334 + 6,667 (SPEC's example); o2 5,000 → 1,666.67 + 3,333.33 → 1,667 + 3,333;
    #   o4 2,990 (v3 has no shop but is in its path) → 996.67 + 1,993.33 → 997 + 1,993; o7 990 → shelf.
    #   The refund of 1,001 on o1: 333.67 + 667.33 → −334 − 667. o8 (s2, day 2): 1,990 → short_video.
    assert s["net_by_model_stage"]["markov"] == {
        "short_video": 3_334 + 1_667 + 997 + 1_990 - 334,
        "live": 6_667 + 3_333 + 1_993 - 667,
        "clip": 0,
        "shelf": 990,
    }
    assert s["net_fen"] == 10_001 + 5_000 + 2_990 + 990 + 1_990 - 1_001 == sum(s["net_by_model_stage"]["markov"].values())
    # The rule-based models are still there, from the same paths: linear splits o4's path in halves.
    assert s["net_by_model_stage"]["linear"]["short_video"] == 5_000 + 2_500 + 1_495 + 1_990 - 500
