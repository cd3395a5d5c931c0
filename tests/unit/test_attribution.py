"""The pure attribution module: SPEC §3 rules, exact to the fen."""

from __future__ import annotations

import random
from fractions import Fraction

from hypothesis import given, settings
from hypothesis import strategies as st

from gmv.streams.core.attribution import (
    MAX_PATH,
    OrderFacts,
    Touch,
    attribute,
    build_path,
    model_weights,
    path_label,
    refund_credits,
    split_fen,
)
from gmv.streams.core.attribution import (
    RULE_MODELS as MODELS,
)

H = 3_600_000
DAY = 24 * H
LOOKBACK = 7 * DAY
HALF_LIFE = DAY
T0 = 1_780_000_000_000


def order(t_ms: int = T0, seller: str = "anchor1", shop: str = "shop1", stage: str = "live",
          content: str = "L1", event_id: str = "o1") -> OrderFacts:
    return OrderFacts(t_ms, event_id, seller, shop, stage, content)


def touch(t_ms: int, eid: str, stage: str = "short_video", account: str = "anchor1", content: str = "v1",
          shop: str = "", traffic: str = "public") -> Touch:
    return Touch(t_ms, eid, stage, account, content, shop, traffic)


def test_relevance_by_account_and_by_shop() -> None:
    by_account = touch(T0 - H, "a", account="anchor1", content="v1")
    by_shop = touch(T0 - H, "b", account="someone", content="v2", shop="shop1")
    neither = touch(T0 - H, "c", account="someone", content="v3", shop="other")
    path = build_path([by_account, by_shop, neither], order(), LOOKBACK)
    assert [t.event_id for t in path] == ["a", "b", "o1"]


def test_lookback_edge_is_inclusive_and_future_touches_do_not_count() -> None:
    edge = touch(T0 - LOOKBACK, "edge", content="v1")
    too_old = touch(T0 - LOOKBACK - 1, "old", content="v2")
    after = touch(T0 + 1, "after", content="v3")
    at_order = touch(T0, "same_ms", content="v4")
    path = build_path([edge, too_old, after, at_order], order(), LOOKBACK)
    assert [t.event_id for t in path] == ["edge", "same_ms", "o1"]


def test_same_content_merges_into_conversion_and_keeps_latest() -> None:
    enter = touch(T0 - 2 * H, "enter", stage="live", content="L1", traffic="private")
    v_early = touch(T0 - 5 * H, "v_early", content="v1")
    v_late = touch(T0 - 3 * H, "v_late", content="v1")
    path = build_path([enter, v_early, v_late], order(), LOOKBACK)
    assert [t.event_id for t in path] == ["v_late", "o1"]
    assert path[-1].traffic == "private"  # the merged enter's traffic
    assert path_label(path) == "short_video>live"


def test_path_is_capped_at_twenty_with_most_recent_touches() -> None:
    touches = [touch(T0 - (30 - i) * H, f"t{i:02d}", content=f"v{i}") for i in range(30)]
    path = build_path(touches, order(), LOOKBACK)
    assert len(path) == MAX_PATH
    assert path[0].event_id == "t11" and path[-2].event_id == "t29"


def test_ties_in_time_are_ordered_by_event_id() -> None:
    a, b = touch(T0 - H, "b", content="v2"), touch(T0 - H, "a", content="v1")
    assert [t.event_id for t in build_path([a, b], order(), LOOKBACK)] == ["a", "b", "o1"]


def test_each_model_on_a_worked_example() -> None:
    # short video 48 h before, clip 24 h before, then paid in live: 3 touches, 10,001 fen.
    path = build_path([touch(T0 - 2 * DAY, "sv", content="v1"),
                       touch(T0 - DAY, "clip", stage="clip", content="c1")], order(), LOOKBACK)
    credits = attribute(10_001, path, HALF_LIFE)
    assert credits["last_touch"] == [0, 0, 10_001]
    assert credits["first_touch"] == [10_001, 0, 0]
    assert credits["linear"] == [3_333, 3_334, 3_334]  # 3333.67 each: the 2 leftover fen go nearest the conversion
    assert credits["position_based"] == [4_000, 2_000, 4_001]  # 4000.4 / 2000.2 / 4000.4
    # weights 1/4, 1/2, 1 -> 1428.71, 2857.43, 5714.86
    assert credits["time_decay"] == [1_429, 2_857, 5_715]


def test_position_based_two_touches_is_half_and_half() -> None:
    path = build_path([touch(T0 - H, "sv")], order(), LOOKBACK)
    assert attribute(101, path, HALF_LIFE)["position_based"] == [50, 51]


def test_rounding_tie_goes_to_touch_nearer_conversion() -> None:
    assert split_fen(1, [1, 1, 1]) == [0, 0, 1]
    assert split_fen(2, [1, 1, 1]) == [0, 1, 1]
    assert split_fen(5, [1, 1]) == [2, 3]


def test_refund_split_uses_the_paid_weights() -> None:
    path = build_path([touch(T0 - DAY, "sv")], order(), LOOKBACK)
    r = refund_credits(1_000, path, HALF_LIFE)
    assert r["linear"] == [-500, -500]
    assert r["time_decay"] == [-333, -667]


touch_strategy = st.builds(
    lambda dt, i, stage, acc, shop, content: Touch(T0 - dt, f"e{i}", stage, acc, content, shop, "public"),
    st.integers(min_value=-H, max_value=LOOKBACK + DAY),
    st.integers(min_value=0, max_value=10_000),
    st.sampled_from(["short_video", "clip", "live"]),
    st.sampled_from(["anchor1", "d1", "d2", ""]),
    st.sampled_from(["shop1", "shop2", ""]),
    st.sampled_from([f"c{i}" for i in range(30)] + ["L1"]),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(touch_strategy, max_size=40, unique_by=lambda t: t.event_id),
       st.integers(min_value=1, max_value=10**12), st.integers(min_value=1, max_value=10**12),
       st.randoms(use_true_random=False))
def test_properties(touches: list[Touch], amount: int, refund: int, rnd: random.Random) -> None:
    o = order()
    path = build_path(touches, o, LOOKBACK)
    credits = attribute(amount, path, HALF_LIFE)
    for model in MODELS:
        assert sum(credits[model]) == amount
        assert all(c >= 0 for c in credits[model])
        assert len(credits[model]) == len(path) <= MAX_PATH
    refunds = refund_credits(refund, path, HALF_LIFE)
    assert all(sum(refunds[m]) == -refund for m in MODELS)
    shuffled = touches[:]
    rnd.shuffle(shuffled)
    assert build_path(shuffled, o, LOOKBACK) == path
    assert attribute(amount, build_path(shuffled, o, LOOKBACK), HALF_LIFE) == credits


@given(st.integers(min_value=1, max_value=10**12))
def test_one_touch_path_gets_everything(amount: int) -> None:
    path = build_path([], order(stage="shelf", content="", seller=""), LOOKBACK)
    assert len(path) == 1
    assert all(c == [amount] for c in attribute(amount, path, HALF_LIFE).values())


def _reference_split(amount: int, weights: list[Fraction]) -> list[int]:
    """SPEC §3 rounding stated directly over rationals: floor of each quota, then leftover fen by
    largest remainder, ties to the later touch. The pipeline computes it in integers."""
    total = sum(weights)
    quotas = [amount * w / total for w in weights]
    shares = [q.numerator // q.denominator for q in quotas]
    ranked = sorted(range(len(quotas)), key=lambda i: (quotas[i] - shares[i], i), reverse=True)
    for i in ranked[: amount - sum(shares)]:
        shares[i] += 1
    return shares


@settings(max_examples=300, deadline=None)
@given(st.lists(touch_strategy, max_size=40, unique_by=lambda t: t.event_id),
       st.integers(min_value=1, max_value=10**12))
def test_integer_split_equals_the_rational_rule(touches: list[Touch], amount: int) -> None:
    path = build_path(touches, order(), LOOKBACK)
    credits = attribute(amount, path, HALF_LIFE)
    for model in MODELS:
        weights = model_weights(model, path, HALF_LIFE)
        assert credits[model] == _reference_split(amount, weights), model
        assert split_fen(amount, weights) == credits[model]
