"""The pure markov module: SPEC §9's journeys, chain, removal effects and credits, exact."""

from __future__ import annotations

import random
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gmv.streams.core.attribution import split_fen, split_fen_int
from gmv.streams.core.markov import (
    STAGES,
    STATES,
    WINDOW_DAYS,
    JourneyFact,
    MarkovModel,
    conversion_probability,
    daily_transitions,
    integer_markov_weights,
    journey_sequence,
    markov_credits,
    markov_refund_credits,
    markov_weights,
    sequence_transitions,
    shanghai_day,
    solve,
    window_counts,
)

MIN = 60_000
H = 60 * MIN
DAY = date(2026, 11, 25)  # an Asia/Shanghai day
# 10:00 on DAY in Asia/Shanghai (UTC+8) is 02:00 UTC.
T0 = round(datetime(2026, 11, 25, 2, 0, tzinfo=UTC).timestamp() * 1000)
SV, LIVE, CLIP, SHELF = STAGES


def tch(user: str, t_ms: int, eid: str, stage: str, shop: str = "shop1") -> JourneyFact:
    return JourneyFact(user, shop, t_ms, eid, stage)


def paid(user: str, t_ms: int, eid: str, channel: str, shop: str = "shop1") -> JourneyFact:
    return JourneyFact(user, shop, t_ms, eid, channel)


def counts_of(*sequences: tuple[str, ...]) -> Counter[tuple[str, str]]:
    counts: Counter[tuple[str, str]] = Counter()
    for s in sequences:
        counts.update(sequence_transitions(s))
    return counts


WORKED_SEQUENCES = [(SV, LIVE, "conv")] * 2 + [
    (SV, "null"), (LIVE, "conv"), (LIVE, "null"), (CLIP, "null"), (SHELF, "conv")]
WORKED = solve(counts_of(*WORKED_SEQUENCES))


# -- SPEC §9's worked example ----------------------------------------------------------------
def worked_example_facts() -> tuple[list[JourneyFact], list[JourneyFact]]:
    """The seven journeys of SPEC §9, as timed touches and orders of one shop on one day."""
    touches = [
        tch("u1", T0, "u1-sv", SV), tch("u1", T0 + H, "u1-live", LIVE),  # sv → live, paid in live
        tch("u2", T0, "u2-sv", SV),  # sv, then paid in live without a live touch
        tch("u3", T0, "u3-sv", SV),  # sv, no order
        tch("u5", T0, "u5-live", LIVE),  # live, no order
        tch("u6", T0, "u6-clip", CLIP),  # clip, no order
    ]
    orders = [
        paid("u1", T0 + 2 * H, "u1-o", LIVE),
        paid("u2", T0 + 2 * H, "u2-o", LIVE),
        paid("u4", T0 + 2 * H, "u4-o", LIVE),  # paid in live with no touch
        paid("u7", T0 + 2 * H, "u7-o", SHELF),  # a shelf order
    ]
    return touches, orders


def test_spec_worked_example_from_timed_facts_is_exact() -> None:
    touches, orders = worked_example_facts()
    daily = daily_transitions(touches, orders)
    assert set(daily) == {("shop1", DAY)}
    assert daily["shop1", DAY] == counts_of(*WORKED_SEQUENCES)
    model = solve(window_counts(daily, "shop1", DAY))
    assert model.p_conv == Fraction(4, 7)
    assert dict(model.removal_effects) == {SV: Fraction(3, 8), LIVE: Fraction(3, 4),
                                           CLIP: Fraction(0), SHELF: Fraction(1, 4)}
    assert all(type(re) is Fraction for re in model.removal_effects.values())
    assert (model.journeys, model.conversions) == (7, 4)
    assert model.defined
    assert model == WORKED
    # An order of 10,001 fen with path short_video > live: w = 1/3 and 2/3.
    assert markov_weights([SV, LIVE], model) == [Fraction(1, 3), Fraction(2, 3)]
    assert markov_credits(10_001, [SV, LIVE], model) == [3_334, 6_667]


def test_worked_example_removal_probabilities() -> None:
    counts = counts_of(*WORKED_SEQUENCES)
    assert conversion_probability(counts) == Fraction(4, 7)
    assert conversion_probability(counts, SV) == Fraction(5, 14)
    assert conversion_probability(counts, LIVE) == Fraction(1, 7)
    assert conversion_probability(counts, CLIP) == Fraction(4, 7)
    assert conversion_probability(counts, SHELF) == Fraction(3, 7)


# -- sequences ---------------------------------------------------------------------------------
def test_consecutive_repeats_of_a_stage_collapse_into_one() -> None:
    touches = [(1, "a", SV), (2, "b", SV), (3, "c", LIVE), (4, "d", LIVE), (5, "e", SV)]
    assert journey_sequence(touches, []) == (SV, LIVE, SV, "null")


def test_the_orders_channel_is_appended_unless_it_equals_the_last_stage() -> None:
    assert journey_sequence([(1, "a", SV), (2, "b", LIVE)], [(3, "o", LIVE)]) == (SV, LIVE, "conv")
    assert journey_sequence([(1, "a", SV)], [(3, "o", LIVE)]) == (SV, LIVE, "conv")
    assert journey_sequence([(1, "a", LIVE), (2, "b", SV)], [(3, "o", LIVE)]) == (LIVE, SV, LIVE, "conv")


def test_touches_after_the_first_order_are_ignored_and_one_at_its_time_counts() -> None:
    touches = [(1, "a", SV), (5, "same_ms", CLIP), (6, "after", LIVE)]
    assert journey_sequence(touches, [(5, "o", SHELF)]) == (SV, CLIP, SHELF, "conv")


def test_the_earliest_order_wins_and_ties_go_by_event_id() -> None:
    touches = [(1, "a", SV), (3, "b", CLIP)]
    assert journey_sequence(touches, [(4, "o-late", LIVE), (2, "o-early", SHELF)]) == (SV, SHELF, "conv")
    assert journey_sequence(touches, [(4, "o2", SHELF), (4, "o1", LIVE)]) == (SV, CLIP, LIVE, "conv")


def test_touches_at_the_same_time_are_ordered_by_event_id() -> None:
    assert journey_sequence([(1, "b", LIVE), (1, "a", SV)], []) == (SV, LIVE, "null")
    assert journey_sequence([(1, "a", LIVE), (1, "b", SV)], []) == (LIVE, SV, "null")


def test_a_journey_without_an_order_ends_in_null() -> None:
    assert journey_sequence([(1, "a", CLIP)], []) == (CLIP, "null")


def test_an_order_without_a_touch_is_its_channel_then_conv() -> None:
    assert journey_sequence([], [(1, "o", SHELF)]) == (SHELF, "conv")
    assert journey_sequence([], [(1, "o", LIVE)]) == (LIVE, "conv")


def test_a_journey_needs_a_fact_and_known_stages() -> None:
    with pytest.raises(ValueError):
        journey_sequence([], [])
    with pytest.raises(ValueError):
        journey_sequence([(1, "a", "feed")], [])
    with pytest.raises(ValueError):
        sequence_transitions((SV,))
    with pytest.raises(ValueError):
        sequence_transitions(("null",))


def test_sequence_transitions_run_from_start_to_the_end_state() -> None:
    assert sequence_transitions((SV, LIVE, "conv")) == [("start", SV), (SV, LIVE), (LIVE, "conv")]
    assert sequence_transitions((CLIP, "null")) == [("start", CLIP), (CLIP, "null")]


def test_touches_without_a_shop_belong_to_no_journey() -> None:
    daily = daily_transitions([tch("u1", T0, "a", SV, shop=""), tch("u2", T0, "b", CLIP, shop="")], [])
    assert daily == {}
    daily = daily_transitions([tch("u1", T0, "a", SV, shop=""), tch("u1", T0 + 1, "b", CLIP)],
                              [paid("u1", T0 + 2, "o", LIVE)])
    assert daily == {("shop1", DAY): counts_of((CLIP, LIVE, "conv"))}


def test_a_paid_order_without_a_shop_is_refused() -> None:
    with pytest.raises(ValueError):
        daily_transitions([], [paid("u1", T0, "o", SHELF, shop="")])


def test_journeys_are_per_user_and_per_shop() -> None:
    touches = [tch("u1", T0, "a", SV, shop="A"), tch("u1", T0 + 1, "b", LIVE, shop="B"),
               tch("u2", T0 + 2, "c", CLIP, shop="A")]
    orders = [paid("u1", T0 + 3, "o", SHELF, shop="B")]
    assert daily_transitions(touches, orders) == {
        ("A", DAY): counts_of((SV, "null"), (CLIP, "null")),
        ("B", DAY): counts_of((LIVE, SHELF, "conv")),
    }


def test_a_journey_converts_once_whatever_its_later_orders() -> None:
    orders = [paid("u1", T0, "o1", LIVE), paid("u1", T0 + H, "o2", SHELF)]
    daily = daily_transitions([tch("u1", T0 + 1, "late", SV)], orders)
    assert daily == {("shop1", DAY): counts_of((LIVE, "conv"))}


def test_shanghai_day_turns_at_16_00_utc() -> None:
    midnight_cst = round(datetime(2026, 11, 25, 16, 0, tzinfo=UTC).timestamp() * 1000)
    assert shanghai_day(midnight_cst - 1) == date(2026, 11, 25)
    assert shanghai_day(midnight_cst) == date(2026, 11, 26)
    assert shanghai_day(-1) == date(1970, 1, 1)  # 07:59:59.999 CST
    assert shanghai_day(-8 * H - 1) == date(1969, 12, 31)


def test_a_journey_spans_one_shanghai_day() -> None:
    # 23:59 CST on the 25th and 00:01 CST on the 26th: the same UTC day, two Shanghai days.
    t_2359 = round(datetime(2026, 11, 25, 15, 59, tzinfo=UTC).timestamp() * 1000)
    t_0001 = round(datetime(2026, 11, 25, 16, 1, tzinfo=UTC).timestamp() * 1000)
    daily = daily_transitions([tch("u1", t_2359, "sv", SV)], [paid("u1", t_0001, "o", LIVE)])
    assert daily == {("shop1", date(2026, 11, 25)): counts_of((SV, "null")),
                     ("shop1", date(2026, 11, 26)): counts_of((LIVE, "conv"))}


@settings(max_examples=100, deadline=None)
@given(st.randoms(use_true_random=False))
def test_daily_transitions_do_not_depend_on_arrival_order(rnd: random.Random) -> None:
    facts = [JourneyFact(rnd.choice(["u1", "u2"]), rnd.choice(["A", "B", ""]),
                         T0 + rnd.randrange(-2 * 24 * H, 2 * 24 * H, 30 * MIN), f"e{i}", rnd.choice(STAGES))
             for i in range(30)]
    touches = [f for f in facts[:20] if f.stage != SHELF]
    orders = [f._replace(shop_id=f.shop_id or "A") for f in facts[20:]]
    daily = daily_transitions(touches, orders)
    rnd.shuffle(touches)
    rnd.shuffle(orders)
    assert daily_transitions(touches, orders) == daily


# -- the window --------------------------------------------------------------------------------
def test_the_window_is_the_28_days_ending_with_the_day_inclusive() -> None:
    def one(stage: str) -> Counter[tuple[str, str]]:
        return counts_of((stage, "null"))

    first = DAY - timedelta(days=WINDOW_DAYS - 1)
    daily = {
        ("A", DAY - timedelta(days=WINDOW_DAYS)): one(CLIP),  # 29 days ending with DAY: too old
        ("A", first): one(SV),
        ("A", DAY - timedelta(days=10)): one(SV),
        ("A", DAY): one(LIVE),
        ("A", DAY + timedelta(days=1)): one(SHELF),  # later than the day
        ("B", DAY): one(LIVE),
    }
    assert window_counts(daily, "A", DAY) == counts_of((SV, "null"), (SV, "null"), (LIVE, "null"))
    assert window_counts(daily, "B", DAY) == one(LIVE)
    assert window_counts(daily, "C", DAY) == Counter()
    assert window_counts(daily, "", DAY) == counts_of((SV, "null"), (SV, "null"), (LIVE, "null"),
                                                      (LIVE, "null"))
    assert window_counts(daily, "A", DAY, days=1) == one(LIVE)
    assert window_counts(daily, "", DAY + timedelta(days=1), days=1) == one(SHELF)


def test_the_platform_window_sums_every_shop() -> None:
    touches, orders = worked_example_facts()
    other = [tch("v1", T0, "v1-sv", SV, shop="shop2")]
    daily = daily_transitions(touches + other, orders)
    platform = window_counts(daily, "", DAY)
    assert platform == window_counts(daily, "shop1", DAY) + window_counts(daily, "shop2", DAY)
    assert solve(platform).journeys == 8


# -- the chain, exact --------------------------------------------------------------------------
def test_a_cycle_is_solved_exactly() -> None:
    # live → short_video happens: sv and live loop before converting or not.
    counts = counts_of((SV, LIVE, SV, LIVE, "conv"), (LIVE, SV, "null"), (SV, LIVE, "null"))
    # start: sv 2/3, live 1/3; sv: live 3/4, null 1/4; live: sv 1/2, conv 1/4, null 1/4.
    # x_sv = 3/4·x_live and x_live = 1/4 + 1/2·x_sv give x_live = 2/5, x_sv = 3/10;
    # P = 2/3·3/10 + 1/3·2/5 = 1/3.
    assert conversion_probability(counts) == Fraction(1, 3)
    # Without sv (start→sv and live→sv to null): P₋sv = 1/3·1/4 = 1/12. Without live: nothing converts.
    assert conversion_probability(counts, SV) == Fraction(1, 12)
    assert conversion_probability(counts, LIVE) == 0
    model = solve(counts)
    assert model.removal_effects[SV] == Fraction(3, 4)
    assert model.removal_effects[LIVE] == Fraction(1)


def test_a_dead_end_or_an_exitless_cycle_never_converts() -> None:
    dead_end = {("start", CLIP): 1, ("start", SHELF): 1, (SHELF, "conv"): 1}  # clip has no way out
    assert conversion_probability(dead_end) == Fraction(1, 2)
    loop = {("start", SV): 1, ("start", SHELF): 3, (SV, LIVE): 2, (LIVE, SV): 2, (SHELF, "conv"): 1,
            (SHELF, "null"): 1}
    assert conversion_probability(loop) == Fraction(3, 8)
    assert solve(loop).removal_effects == {SV: 0, LIVE: 0, CLIP: 0, SHELF: 1}


def test_no_journey_or_no_conversion_is_an_undefined_model() -> None:
    empty = solve({})
    assert (empty.p_conv, empty.journeys, empty.conversions, empty.defined) == (0, 0, 0, False)
    assert dict(empty.removal_effects) == dict.fromkeys(STAGES, Fraction(0))
    lost = solve(counts_of((SV, LIVE, "null"), (CLIP, "null")))
    assert not lost.defined and lost.journeys == 2 and lost.conversions == 0
    assert set(lost.removal_effects.values()) == {Fraction(0)}


def test_a_stage_never_visited_has_no_removal_effect() -> None:
    model = solve(counts_of((SV, "conv"), (LIVE, "null")))
    assert model.removal_effects[CLIP] == 0 and model.removal_effects[SHELF] == 0
    assert model.removal_effects[SV] == 1


def test_only_stages_are_removable_and_counts_are_checked() -> None:
    counts = counts_of((SV, "conv"))
    for state in ("start", "conv", "null", "feed"):
        with pytest.raises(ValueError):
            conversion_probability(counts, state)
    with pytest.raises(ValueError):
        solve({("conv", SV): 1})
    with pytest.raises(ValueError):
        solve({("start", "feed"): 1})
    with pytest.raises(ValueError):
        solve({("start", SV): -1})


def test_the_model_is_frozen_and_hashable() -> None:
    again = solve(counts_of(*WORKED_SEQUENCES))
    assert again == WORKED and hash(again) == hash(WORKED)
    with pytest.raises(TypeError):
        WORKED.removal_effects[SV] = Fraction(1)  # type: ignore[index]
    assert {WORKED: 1}[again] == 1


def _value_iteration(counts: Counter[tuple[str, str]], removed: str | None) -> float:
    """P (or P₋removed) by Gauss–Seidel value iteration in floats, started from 0: it converges
    up to the least solution, i.e. the absorption probability, dead ends and closed cycles included."""
    transient = [s for s in STATES if s not in ("conv", "null")]
    totals = {a: sum(n for (x, _), n in counts.items() if x == a) for a in transient}
    moves = {a: [(b, n / totals[a]) for (x, b), n in counts.items() if x == a and n] for a in transient}
    x = dict.fromkeys(STATES, 0.0)
    x["conv"] = 1.0
    for _ in range(1_000_000):
        delta = 0.0
        for a in transient:
            new = sum(p * (0.0 if b == removed else x[b]) for b, p in moves[a])
            delta = max(delta, abs(new - x[a]))
            x[a] = new
        if delta < 1e-16:
            break
    return x["start"]


def _collapsed(stages: list[str]) -> tuple[str, ...]:
    out: list[str] = []
    for s in stages:
        if not out or out[-1] != s:
            out.append(s)
    return tuple(out)


journey_strategy = st.tuples(st.lists(st.sampled_from(STAGES), min_size=1, max_size=7),
                             st.sampled_from(["conv", "null"])).map(lambda j: (*_collapsed(j[0]), j[1]))
journeys_strategy = st.lists(journey_strategy, min_size=1, max_size=12)


@settings(max_examples=200, deadline=None)
@given(journeys_strategy)
def test_removal_effects_match_value_iteration_on_random_journeys(sequences: list[tuple[str, ...]]) -> None:
    counts = counts_of(*sequences)
    model = solve(counts)
    p = _value_iteration(counts, None)
    assert abs(float(model.p_conv) - p) < 1e-9
    assert model.journeys == len(sequences)
    assert model.conversions == sum(s[-1] == "conv" for s in sequences)
    for k in STAGES:
        p_k = conversion_probability(counts, k)
        assert abs(float(p_k) - _value_iteration(counts, k)) < 1e-9
        assert 0 <= p_k <= model.p_conv
        if model.p_conv:
            assert model.removal_effects[k] == (model.p_conv - p_k) / model.p_conv
        else:
            assert model.removal_effects[k] == 0


@settings(max_examples=200, deadline=None)
@given(journeys_strategy)
def test_removal_loss_is_the_chance_to_reach_the_stage_times_its_conversion(
        sequences: list[tuple[str, ...]]) -> None:
    # Exact, by first visit: P − P₋ₖ = P(reach k from start) · P(conv from k).
    counts = counts_of(*sequences)
    p = conversion_probability(counts)
    for k in STAGES:
        entering = {(a, b): n for (a, b), n in counts.items() if b == k}
        if not entering:
            continue
        from_k = {key: n for key, n in counts.items() if key[0] != "start"} | {("start", k): 1}
        # Reaching k becomes converting; converting without k becomes being lost.
        reach_k: Counter[tuple[str, str]] = Counter()
        for (a, b), n in counts.items():
            reach_k[a, "conv" if b == k else "null" if b == "conv" else b] += n
        loss = conversion_probability(reach_k) * conversion_probability(from_k)
        assert p - conversion_probability(counts, k) == loss


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.tuples(st.sampled_from(STATES[:5]), st.sampled_from(STATES[1:])),
                       st.integers(min_value=0, max_value=5), max_size=14))
def test_any_counts_match_value_iteration_self_loops_dead_ends_and_closed_cycles_included(
        counts: dict[tuple[str, str], int]) -> None:
    counts = Counter(counts)
    for removed in (None, *STAGES):
        exact = conversion_probability(counts, removed)
        assert abs(float(exact) - _value_iteration(counts, removed)) < 1e-9


def test_removal_effects_on_seeded_random_chains_with_uneven_counts() -> None:
    rnd = random.Random(20261125)
    for _ in range(200):
        sequences = []
        for _ in range(rnd.randint(1, 10)):
            stages = _collapsed([rnd.choice(STAGES) for _ in range(rnd.randint(1, 8))])
            sequences.append((*stages, rnd.choice(["conv", "null"])))
        # Counts scaled apart, so transition probabilities are not the journeys' small ratios.
        counts = Counter({k: n * rnd.randint(1, 50) for k, n in counts_of(*sequences).items()})
        model = solve(counts)
        assert abs(float(model.p_conv) - _value_iteration(counts, None)) < 1e-9
        for k in STAGES:
            assert abs(float(conversion_probability(counts, k)) - _value_iteration(counts, k)) < 1e-9


# -- credits -----------------------------------------------------------------------------------
def test_each_stage_shares_its_weight_equally_leftover_fen_nearer_the_conversion() -> None:
    # w_live = 2/3, w_sv = 1/3 shared by two touches: quotas 2, 1/2, 1/2 of 3 fen.
    path = [LIVE, SV, SV]
    assert markov_weights(path, WORKED) == [Fraction(2, 3), Fraction(1, 6), Fraction(1, 6)]
    assert integer_markov_weights(path, WORKED) == [4, 1, 1]
    assert markov_credits(3, path, WORKED) == [2, 0, 1]
    assert markov_credits(4, path, WORKED) == [2, 1, 1]  # 8/3, 2/3, 2/3: a three-way tie


def test_a_stage_with_no_removal_effect_gets_nothing_beside_one_with_an_effect() -> None:
    assert markov_weights([CLIP, SHELF], WORKED) == [Fraction(0), Fraction(1)]
    assert markov_credits(999, [CLIP, SHELF], WORKED) == [0, 999]


def test_zero_removal_effect_over_the_whole_path_falls_back_to_linear() -> None:
    assert markov_weights([CLIP], WORKED) is None
    assert integer_markov_weights([CLIP, CLIP], WORKED) is None
    assert markov_credits(3, [CLIP, CLIP], WORKED) == [1, 2]
    assert markov_credits(3, [CLIP, CLIP], WORKED) == split_fen_int(3, [1, 1])


def test_an_undefined_model_falls_back_to_linear() -> None:
    undefined = solve(counts_of((SV, "null"), (LIVE, "null")))
    assert not undefined.defined
    assert markov_weights([SV, LIVE], undefined) is None
    assert markov_credits(10_001, [SV, SV, LIVE], undefined) == [3_333, 3_334, 3_334]


def test_no_model_falls_back_to_linear() -> None:
    assert markov_weights([SV, LIVE], None) is None
    assert markov_credits(10_001, [SV, LIVE], None) == [5_000, 5_001]
    assert markov_refund_credits(10_001, [SV, LIVE], None) == [-5_000, -5_001]


def test_a_refund_is_the_negated_split_of_the_refund_with_the_paid_weights() -> None:
    assert markov_refund_credits(10_001, [SV, LIVE], WORKED) == [-3_334, -6_667]
    assert markov_refund_credits(3, [LIVE, SV, SV], WORKED) == [-2, 0, -1]
    assert markov_refund_credits(1, [CLIP, SHELF], WORKED) == [0, -1]


def test_a_path_has_known_stages_and_at_least_one_touch() -> None:
    with pytest.raises(ValueError):
        markov_credits(1, [], WORKED)
    with pytest.raises(ValueError):
        markov_weights(["feed", LIVE], WORKED)
    with pytest.raises(ValueError):
        markov_credits(-1, [LIVE], WORKED)


path_strategy = st.lists(st.sampled_from(STAGES), min_size=1, max_size=20)
amount_strategy = st.one_of(st.just(1), st.integers(min_value=1, max_value=10**12), st.just(10**15))


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.none(), journeys_strategy), path_strategy, amount_strategy, amount_strategy)
def test_credits_sum_to_the_amount_and_follow_the_exact_weights(
        sequences: list[tuple[str, ...]] | None, path: list[str], amount: int, refund: int) -> None:
    model: MarkovModel | None = solve(counts_of(*sequences)) if sequences is not None else None
    credits = markov_credits(amount, path, model)
    assert sum(credits) == amount and len(credits) == len(path)
    assert all(c >= 0 for c in credits)
    weights = markov_weights(path, model)
    integers = integer_markov_weights(path, model)
    if weights is None:
        assert integers is None
        assert credits == split_fen_int(amount, [1] * len(path))
    else:
        assert sum(weights) == 1
        assert [Fraction(w, sum(integers)) for w in integers] == weights
        assert credits == split_fen(amount, weights)
    # Touches of one stage share equally: at most a fen apart, the extra fen on the later touches.
    for stage in set(path):
        mine = [c for c, s in zip(credits, path, strict=True) if s == stage]
        assert mine == sorted(mine) and mine[-1] - mine[0] <= 1
    refunds = markov_refund_credits(refund, path, model)
    assert sum(refunds) == -refund
    assert refunds == [-c for c in markov_credits(refund, path, model)]
