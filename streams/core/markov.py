"""Data-driven attribution, model ``markov`` (SPEC §9), as pure functions. No Kafka, no ClickHouse,
no clock, no I/O.

**Journey.** One per (user, shop, Asia/Shanghai day D): the engaged touchpoints (§3) of that user
whose ``shop_id`` is that shop and whose event time falls in D, and the paid orders of that user at
that shop with order time in D. Each fact joins the journey of the day of its *own* time, so a
touch at 23:59 and an order at 00:01 the next day (Asia/Shanghai, UTC+8 all year) are two
journeys. A touchpoint with ``shop_id == ""`` belongs to no journey (it still counts in §3 paths);
a paid order always has a shop (§2), and one without is refused (``ValueError``) rather than
filed under ``""``, the platform's key. Callers pass de-duplicated, accepted facts only: dead
letters never count.

**Sequence** (``journey_sequence``). The journey's *first order* is its earliest paid order, ties
by ``event_id``. Its sequence: the stages of its touchpoints with ``t ≤`` the first order's time
(all of them when it has no order), in time order, ties by ``event_id``, consecutive repeats of one
stage collapsed into one; then, if it has a first order, that order's channel (``shelf`` for shelf
orders) unless it equals the last stage already there, and ``conv``; otherwise ``null``. Later
orders of the same journey add nothing: a journey converts at most once.

**Chain.** States ``start``, the four stages, ``conv`` and ``null`` (absorbing). A sequence
s1…sn, e adds the transitions start→s1, s1→s2, …, sn→e. The model of (shop, D) is solved from the
transitions of that shop's journeys on the 28 days ending with D, D included (``window_counts``);
shop ``""`` is the platform: every shop's journeys, for display only. p(a→b) = count(a→b) /
count(a→anything).

**P and P₋ₖ** (``conversion_probability``). P is the probability of absorption in ``conv`` from
``start``, solved exactly: rational transition probabilities give rational absorption
probabilities, so the result is a ``Fraction``, never a float. P₋ₖ is the same with every
transition *into* stage k sent to ``null`` instead (k's own outgoing transitions then never
matter). Where SPEC leaves a choice:

- a transient state with no outgoing transition (possible only in hand-made counts: every stage a
  journey enters is left again) is a dead end: it never converts, probability 0;
- more generally, any state from which ``conv`` cannot be reached has probability 0 — including a
  closed cycle of stages with no exit, on which the linear system alone would be singular;
- ``start`` is never removed: only the four stages have a removal effect;
- no journey at all gives P = 0.

**Removal effect.** RE_k = (P − P₋ₖ) / P, an exact ``Fraction`` in [0, 1] (removing a stage can
only lose conversions). RE_k = 0 for a stage no transition of the window enters. When P = 0 the
model is *undefined* (``MarkovModel.defined`` is False) and every RE is 0.

**Credits** (``markov_credits``). For a paid order of shop s on day D with its §3 path (conversion
touch included, in path order): K = the set of stages in the path; stage k ∈ K gets
w_k = RE_k / Σ_{j∈K} RE_j of the model of (s, D), shared equally by the path's touches of stage k,
so a stage with RE 0 gets nothing. Fallback: when there is no model, the model is undefined or
Σ_{j∈K} RE_j = 0, the order's ``markov`` credits are its ``linear`` credits (equal shares). Integer
fen by §3's rounding, ``attribution.split_fen``'s rule: largest remainder over the exact weights,
leftover fen on tied remainders to the touch nearer the conversion — so among a stage's equal
shares the later touches get the leftover fen. Credits sum exactly to the amount.
``integer_markov_weights`` states the same weights as integers (one common factor), which callers
may cache per (model, path stages) and split with ``split_fen_int``: the same fen.

**Refunds** (``markov_refund_credits``). A refund of r fen is −r split with the weights and rounding
of its paid order (the model of the paid order's shop and day), summing to −r.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from fractions import Fraction
from types import MappingProxyType
from typing import NamedTuple

from gmv.streams.core.attribution import split_fen_int

STATES = ("start", "short_video", "live", "clip", "shelf", "conv", "null")
STAGES = ("short_video", "live", "clip", "shelf")
WINDOW_DAYS = 28

_TRANSIENT = ("start", *STAGES)
_ENDS = ("conv", "null")
_STATE_SET = frozenset(STATES)
_STAGE_SET = frozenset(STAGES)
_TRANSIENT_SET = frozenset(_TRANSIENT)

_DAY_MS = 86_400_000
_SHANGHAI_OFFSET_MS = 8 * 3_600_000  # Asia/Shanghai has had no DST since 1991: UTC+8 all year
_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()


class JourneyFact(NamedTuple):
    """One engaged touchpoint or one paid order, as a journey sees it."""

    user_id: str
    shop_id: str
    t_ms: int  # event time, epoch ms UTC
    event_id: str
    stage: str  # touch stage (short_video | clip | live), or the order's channel (shelf for shelf orders)


def shanghai_day(t_ms: int) -> date:
    """The Asia/Shanghai calendar day of an epoch-ms instant (floor division: right before 1970 too)."""
    return date.fromordinal(_EPOCH_ORDINAL + (t_ms + _SHANGHAI_OFFSET_MS) // _DAY_MS)


def _check_stage(stage: str) -> None:
    if stage not in _STAGE_SET:
        raise ValueError(f"unknown stage {stage!r}; use one of {', '.join(STAGES)}")


def journey_sequence(touches: Iterable[tuple[int, str, str]],
                     orders: Iterable[tuple[int, str, str]]) -> tuple[str, ...]:
    """The states after ``start`` of one journey, ending with ``conv`` or ``null``.

    ``touches`` and ``orders`` are ``(t_ms, event_id, stage)``; an order's stage is its channel.
    e.g. ``("short_video", "live", "conv")``. A journey holds at least one fact (``ValueError``)."""
    touches, orders = list(touches), list(orders)
    if not touches and not orders:
        raise ValueError("a journey holds at least one touchpoint or one paid order")
    for _, _, stage in touches:
        _check_stage(stage)
    for _, _, stage in orders:
        _check_stage(stage)
    first = min(orders, key=lambda o: (o[0], o[1])) if orders else None
    if first is not None:
        touches = [t for t in touches if t[0] <= first[0]]  # the order's own millisecond counts
    sequence: list[str] = []
    for _, _, stage in sorted(touches, key=lambda t: (t[0], t[1])):
        if not sequence or sequence[-1] != stage:
            sequence.append(stage)
    if first is None:
        sequence.append("null")
    else:
        if not sequence or sequence[-1] != first[2]:
            sequence.append(first[2])
        sequence.append("conv")
    return tuple(sequence)


def sequence_transitions(sequence: Sequence[str]) -> list[tuple[str, str]]:
    """start→s1, s1→s2, …, sn→end for a sequence s1…sn, end (as ``journey_sequence`` returns)."""
    if len(sequence) < 2 or sequence[-1] not in _ENDS:
        raise ValueError(f"a sequence is one or more stages then conv or null, not {tuple(sequence)!r}")
    for stage in sequence[:-1]:
        _check_stage(stage)
    states = ("start", *sequence)
    return list(zip(states, states[1:], strict=False))


def daily_transitions(touches: Iterable[JourneyFact],
                      orders: Iterable[JourneyFact]) -> dict[tuple[str, date], Counter[tuple[str, str]]]:
    """Per (shop_id, Asia/Shanghai day): the transitions of that shop's journeys of that day.

    Touches without a shop belong to no journey; a paid order without one is refused."""
    journeys: dict[tuple[str, str, date], tuple[list[tuple[int, str, str]], list[tuple[int, str, str]]]] = {}
    for f in touches:
        if f.shop_id:
            key = (f.user_id, f.shop_id, shanghai_day(f.t_ms))
            journeys.setdefault(key, ([], []))[0].append((f.t_ms, f.event_id, f.stage))
    for f in orders:
        if not f.shop_id:
            # "" is the platform's key: an order filed there would corrupt the platform model.
            raise ValueError(f"paid order {f.event_id!r} has no shop_id (SPEC §2 requires one)")
        key = (f.user_id, f.shop_id, shanghai_day(f.t_ms))
        journeys.setdefault(key, ([], []))[1].append((f.t_ms, f.event_id, f.stage))
    daily: dict[tuple[str, date], Counter[tuple[str, str]]] = {}
    for (_, shop_id, day), (journey_touches, journey_orders) in journeys.items():
        transitions = sequence_transitions(journey_sequence(journey_touches, journey_orders))
        daily.setdefault((shop_id, day), Counter()).update(transitions)
    return daily


def window_counts(daily: Mapping[tuple[str, date], Counter[tuple[str, str]]], shop_id: str, day: date,
                  days: int = WINDOW_DAYS) -> Counter[tuple[str, str]]:
    """The transitions of ``shop_id``'s journeys on the ``days`` days ending with ``day`` (inclusive);
    ``shop_id == ""`` is the platform: every shop's journeys."""
    if days < 1:
        raise ValueError("a window holds at least one day")
    total: Counter[tuple[str, str]] = Counter()
    if shop_id:
        # One lookup per day rather than a scan of every shop's days.
        for i in range(days):
            counts = daily.get((shop_id, day - timedelta(days=i)))
            if counts:
                total.update(counts)
    else:
        first = day - timedelta(days=days - 1)
        for (_, d), counts in daily.items():
            if first <= d <= day:
                total.update(counts)
    return total


# -- the chain ---------------------------------------------------------------------------------
def _out_edges(counts: Mapping[tuple[str, str], int]) -> dict[str, dict[str, int]]:
    """Validated positive counts as state → {next state: count} (zero counts are no transition)."""
    out: dict[str, dict[str, int]] = {a: {} for a in _TRANSIENT}
    for (a, b), n in counts.items():
        if a not in _TRANSIENT_SET or b not in _STATE_SET:
            raise ValueError(f"no transition {a!r}→{b!r} in the chain: from start or a stage, "
                             f"to one of {', '.join(STATES)}")
        if not isinstance(n, int) or n < 0:
            raise ValueError(f"transition count {a!r}→{b!r} must be a non-negative integer, not {n!r}")
        if n:
            out[a][b] = out[a].get(b, 0) + n
    return out


def _absorption(out: dict[str, dict[str, int]], removed: str | None) -> Fraction:
    """P (or P₋removed) from validated out-edges: see ``conversion_probability``."""
    # States that can reach conv once transitions into `removed` go to null. Every other state has
    # probability 0 (dead ends, exitless cycles), and leaving them out keeps the system nonsingular.
    live = {"conv"}
    grown = True
    while grown:
        grown = False
        for a in _TRANSIENT:
            # `removed` never joins: nothing enters it any more, so it needs no unknown.
            if a not in live and a != removed and any(b in live for b in out[a]):
                live.add(a)
                grown = True
    if "start" not in live:
        return Fraction(0)
    # Unknowns: the live stages, then start *last*: after forward elimination the last row holds
    # start's probability alone, so no back substitution is needed.
    unknowns = [a for a in STAGES if a in live] + ["start"]
    index = {a: i for i, a in enumerate(unknowns)}
    m = len(unknowns)
    # Row of state a: total(a)·x_a − Σ_b count(a→b)·x_b = count(a→conv). Integer coefficients:
    # Gaussian elimination over the rationals done with integer rows (each row an integer multiple
    # of the rational one), exact like Fraction arithmetic and several times faster. Transitions to
    # null, to the removed stage or to a state that cannot convert contribute 0.
    rows: list[list[int]] = []
    for a in unknowns:
        row = [0] * (m + 1)
        edges = out[a]
        row[index[a]] = sum(edges.values())
        for b, n in edges.items():
            if b == "conv":
                row[m] += n
            elif b in index:
                row[index[b]] -= n
        rows.append(row)
    for i in range(m):
        pivot_row = next((r for r in range(i, m) if rows[r][i]), None)
        if pivot_row is None:  # cannot happen: every remaining state reaches conv (I − Q invertible)
            raise ArithmeticError("singular absorbing-chain system")
        rows[i], rows[pivot_row] = rows[pivot_row], rows[i]
        pivot = rows[i]
        p = pivot[i]
        for j in range(i + 1, m):
            row = rows[j]
            f = row[i]
            if f:
                row = [p * x - f * y for x, y in zip(row, pivot, strict=True)]
                g = math.gcd(*row)
                rows[j] = [x // g for x in row] if g > 1 else row
    return Fraction(rows[m - 1][m], rows[m - 1][m - 1])


def conversion_probability(counts: Mapping[tuple[str, str], int], removed: str | None = None) -> Fraction:
    """P: the exact probability of reaching ``conv`` from ``start`` in the chain of ``counts``;
    with ``removed`` (a stage), P₋ₖ: every transition into that stage sent to ``null`` instead.

    A state with no outgoing transition, or from which ``conv`` cannot be reached, has probability 0."""
    if removed is not None:
        _check_stage(removed)  # start, conv and null are not removable
    return _absorption(_out_edges(counts), removed)


@dataclass(frozen=True)
class MarkovModel:
    """The solved chain of one (shop, day) window. Hashable: callers may key caches by it."""

    counts: Mapping[tuple[str, str], int]  # the transition counts it was solved from (positive ones)
    p_conv: Fraction  # P: probability to reach conv from start (0 when no journey)
    removal_effects: Mapping[str, Fraction]  # every stage of STAGES -> RE_k (0 for a stage never visited)
    journeys: int  # count(start -> anything)
    conversions: int  # count(anything -> conv)

    def __post_init__(self) -> None:
        # Frozen means frozen: read-only copies, so the hash below can never go stale.
        object.__setattr__(self, "counts", MappingProxyType(dict(self.counts)))
        object.__setattr__(self, "removal_effects", MappingProxyType(dict(self.removal_effects)))

    def __hash__(self) -> int:
        # Everything else is derived from the counts.
        return hash(frozenset(self.counts.items()))

    @property
    def defined(self) -> bool:
        """P > 0: otherwise there are no removal effects to split by (credits fall back to linear)."""
        return self.p_conv > 0


def solve(counts: Mapping[tuple[str, str], int]) -> MarkovModel:
    """P, every stage's removal effect, journeys and conversions of the chain of ``counts``."""
    out = _out_edges(counts)  # validated once for P and the four P₋ₖ
    p = _absorption(out, None)
    entered = {b for edges in out.values() for b in edges}
    effects: dict[str, Fraction] = {}
    for k in STAGES:
        if p and k in entered:
            effects[k] = (p - _absorption(out, k)) / p
        else:  # never visited (nothing to remove), or undefined model
            effects[k] = Fraction(0)
    positive = {(a, b): n for a, edges in out.items() for b, n in edges.items()}
    return MarkovModel(
        counts=positive,
        p_conv=p,
        removal_effects=effects,
        journeys=sum(out["start"].values()),
        conversions=sum(edges.get("conv", 0) for edges in out.values()),
    )


# -- credits -----------------------------------------------------------------------------------
def _stage_shares(path_stages: Sequence[str], model: MarkovModel | None) -> dict[str, Fraction] | None:
    """Each path stage's RE divided by its number of touches in the path; None = linear fallback."""
    if not path_stages:
        raise ValueError("a path holds at least its conversion touch")
    touches_of = Counter(path_stages)
    for stage in touches_of:
        _check_stage(stage)
    if model is None or not model.defined:
        return None
    effects = model.removal_effects
    if not any(effects[k] for k in touches_of):  # Σ_{j∈K} RE_j = 0 (RE is never negative)
        return None
    return {k: effects[k] / n for k, n in touches_of.items()}


def markov_weights(path_stages: Sequence[str], model: MarkovModel | None) -> list[Fraction] | None:
    """Per touch of the path: w_k / (touches of stage k), w_k = RE_k / Σ_{j∈K} RE_j; they sum to 1.
    None when the order falls back to ``linear`` (no model, undefined model, Σ_{j∈K} RE_j = 0)."""
    shares = _stage_shares(path_stages, model)
    if shares is None:
        return None
    total = sum(shares[k] * n for k, n in Counter(path_stages).items())
    return [shares[k] / total for k in path_stages]


def integer_markov_weights(path_stages: Sequence[str], model: MarkovModel | None) -> list[int] | None:
    """``markov_weights`` times one common factor, in lowest integer terms: the same proportions, so
    ``split_fen_int`` over them gives ``split_fen`` over the exact weights (the normalising sum
    Σ RE_j cancels out). None when the order falls back to ``linear``."""
    shares = _stage_shares(path_stages, model)
    if shares is None:
        return None
    common = math.lcm(*(s.denominator for s in shares.values()))
    scaled = {k: s.numerator * (common // s.denominator) for k, s in shares.items()}
    g = math.gcd(*scaled.values())
    return [scaled[k] // g for k in path_stages]


def markov_credits(amount_fen: int, path_stages: Sequence[str], model: MarkovModel | None) -> list[int]:
    """Integer fen per touch of the path, summing exactly to ``amount_fen`` (≥ 0); the linear split
    when ``markov_weights`` is None."""
    weights = integer_markov_weights(path_stages, model)
    return split_fen_int(amount_fen, weights if weights is not None else [1] * len(path_stages))


def markov_refund_credits(refund_fen: int, path_stages: Sequence[str], model: MarkovModel | None) -> list[int]:
    """A refund of ``refund_fen`` (≥ 0): the paid order's split of it, negated (sums to −refund_fen)."""
    return [-c for c in markov_credits(refund_fen, path_stages, model)]
