"""短直短 attribution as pure functions over a path (SPEC §3). No Kafka, no ClickHouse, no I/O.

``build_path`` turns a user's touchpoints and one paid order into the path the
models credit; ``attribute`` splits an amount over that path for each model,
in integer fen that sum exactly to the amount. A refund of ``r`` fen is the
same split of ``r`` over the same path, negated (``refund_credits``).

Rounding is largest remainder over exact rationals: time-decay weights are
floats, but every float is an exact binary rational, so the same path always
gives the same fen on every machine, whatever order its touches arrived in.
``model_weights`` states the weights as ``Fraction``; the hot path computes the
same proportions as integers (``integer_weights``, ``split_fen_int``). Leftover fen on tied remainders go to the touch nearer the
conversion (the later one in the path).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import NamedTuple

from gmv.schemas.outputs import RULE_MODELS

MAX_PATH = 20  # touches in a path, the conversion included


class Touch(NamedTuple):
    """A touchpoint (engaged view or live enter), or the conversion touch of an order.

    A NamedTuple rather than a frozen dataclass: one is built per engaged view or live enter,
    and a frozen dataclass costs several times as much to construct."""

    t_ms: int  # event time, epoch ms (UTC)
    event_id: str  # the touch's own event id (the order's for the conversion touch)
    stage: str  # short_video | live | clip | shelf
    account_id: str  # author_id / anchor_id; seller_id for the conversion
    content_id: str  # video_id / live_id; channel_id for the conversion ('' for shelf)
    shop_id: str = ""
    traffic: str = "public"



@dataclass(frozen=True, slots=True)
class OrderFacts:
    """What attribution needs to know about a paid order."""

    t_ms: int
    event_id: str
    seller_id: str
    shop_id: str
    stage: str  # conversion stage: channel, or 'shelf'
    content_id: str  # channel_id ('' for shelf)


def is_relevant(touch: Touch, order: OrderFacts) -> bool:
    """Same account as the seller, or same shop (empty ids never match)."""
    return bool((touch.account_id and touch.account_id == order.seller_id)
                or (touch.shop_id and touch.shop_id == order.shop_id))


def build_path(touches: Iterable[Touch], order: OrderFacts, lookback_ms: int) -> list[Touch]:
    """Relevant touches within the lookback, in time order, then the conversion touch.

    Each content id appears once, at its latest time; a touch on the conversion's
    content merges into the conversion touch (the conversion keeps the traffic of
    the touch it absorbs, e.g. a private-traffic live enter). At most ``MAX_PATH``
    touches: the conversion and the most recent touchpoints before it.
    """
    lo = order.t_ms - lookback_ms
    window = sorted(
        (t for t in touches if lo <= t.t_ms <= order.t_ms and is_relevant(t, order)),
        key=lambda t: (t.t_ms, t.event_id),
    )
    latest: dict[str, Touch] = {}
    for t in window:  # ascending: a later touch on the same content replaces the earlier one
        latest[t.content_id] = t
    merged = latest.pop(order.content_id, None) if order.content_id else None
    before = sorted(latest.values(), key=lambda t: (t.t_ms, t.event_id))
    conversion = Touch(order.t_ms, order.event_id, order.stage, order.seller_id, order.content_id,
                       order.shop_id, merged.traffic if merged else "public")
    return [*before[-(MAX_PATH - 1):], conversion]


def model_weights(model: str, path: Sequence[Touch], half_life_ms: int) -> list[Fraction]:
    """Unnormalised exact weights of each touch of ``path`` (the last one is the conversion)."""
    n = len(path)
    if model == "time_decay":
        t_order = path[-1].t_ms
        return [Fraction(2.0 ** (-(t_order - t.t_ms) / half_life_ms)) for t in path]
    if model == "position_based" and n >= 3:
        middle = Fraction(1, 5) / (n - 2)
        return [Fraction(2, 5)] + [middle] * (n - 2) + [Fraction(2, 5)]
    return [Fraction(w) for w in integer_weights(model, path, half_life_ms)]


def integer_weights(model: str, path: Sequence[Touch], half_life_ms: int) -> list[int]:
    """``model_weights`` scaled by one common factor to integers: the same proportions, exactly,
    so the same split, far cheaper than ``Fraction`` arithmetic on the hot path)."""
    n = len(path)
    if model == "last_touch":
        return [0] * (n - 1) + [1]
    if model == "first_touch":
        return [1] + [0] * (n - 1)
    if model == "linear":
        return [1] * n
    if model == "position_based":
        if n <= 2:
            return [1] * n
        # 2/5, then 1/5 shared by the n-2 middle touches, then 2/5; times 5(n-2).
        return [2 * (n - 2)] + [1] * (n - 2) + [2 * (n - 2)]
    if model == "time_decay":
        # Each float weight is an exact binary fraction m / 2^k: bring all to the largest 2^k.
        t_order = path[-1].t_ms
        ratios = [(2.0 ** (-(t_order - t.t_ms) / half_life_ms)).as_integer_ratio() for t in path]
        scale = max(d for _, d in ratios)
        return [m * (scale // d) for m, d in ratios]
    raise ValueError(f"unknown attribution model {model!r}; use one of {', '.join(RULE_MODELS)}")


def split_fen(amount: int, weights: Sequence[Fraction | int]) -> list[int]:
    """Largest-remainder split of ``amount`` (≥ 0) fen by ``weights``; ties go to the later index."""
    fractions = [Fraction(w) for w in weights]
    common = math.lcm(*(f.denominator for f in fractions))
    return split_fen_int(amount, [f.numerator * (common // f.denominator) for f in fractions])


def split_fen_int(amount: int, weights: Sequence[int]) -> list[int]:
    """``split_fen`` over non-negative integer weights, in integer arithmetic (the same result:
    each quota is ``amount·w/total``, its remainder ``amount·w mod total`` over one denominator)."""
    total = sum(weights)
    if amount < 0:
        raise ValueError("split_fen splits a non-negative amount; negate the result for refunds")
    if total <= 0:
        raise ValueError("weights must sum to a positive number")
    shares, remainders = [], []
    for w in weights:
        share, rem = divmod(amount * w, total)
        shares.append(share)
        remainders.append(rem)
    leftover = amount - sum(shares)
    if leftover:
        # Largest remainder first; on equal remainders the touch nearer the conversion (higher index).
        order = sorted(range(len(weights)), key=lambda i: (remainders[i], i), reverse=True)
        for i in order[:leftover]:
            shares[i] += 1
    return shares


def attribute(amount_fen: int, path: Sequence[Touch], half_life_ms: int,
              models: Sequence[str] = RULE_MODELS) -> dict[str, list[int]]:
    """Credits in fen per model, one per touch of the path, each summing to ``amount_fen``."""
    return {m: split_fen_int(amount_fen, integer_weights(m, path, half_life_ms)) for m in models}


def refund_credits(refund_fen: int, path: Sequence[Touch], half_life_ms: int,
                   models: Sequence[str] = RULE_MODELS) -> dict[str, list[int]]:
    """A refund of ``refund_fen``: the paid split's weights and rounding, negated (sums to −refund)."""
    return {m: [-c for c in credits] for m, credits in attribute(refund_fen, path, half_life_ms, models).items()}


def path_label(path: Sequence[Touch]) -> str:
    """e.g. ``short_video>live``: the stages of the path in order."""
    return ">".join(t.stage for t in path)
