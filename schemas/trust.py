"""Trust scores (SPEC §7): customer-service turns and the three score formulas. Pure.

**Turns.** The messages of one conversation, in event-time order (ties by
``event_id``), whatever order they arrived in; bot messages answer nothing and
start nothing, so they are left out. A *buyer turn* starts at a buyer message that
opens the conversation or follows an agent message, and ends at the next agent
message: its response time is that message's time minus the turn's start. A turn
whose answer comes later than ``unanswered_after_ms`` after its start (or never)
is unanswered. A turn counts in the window holding its start.

**Scores**, per day D over the 30 days ending with D (``WINDOW_DAYS``):
``smooth(sum, n) = (10 × 4.0 + sum) / (10 + n)``; ``qrr`` = quality-refunded
orders / paid orders (0 without paid orders); every score clamped to [0, 5].

- 商品分 (SKU): ``smooth(Σ product_rating, n) − 10 × qrr``
- 带货口碑分 (account): ``smooth(Σ (product_rating + service_rating) / 2, n) − 10 × qrr``
- 商号体验分 (shop): ``0.4 P + 0.3 S + 0.3 L`` with P the shop's 商品分 formula (clamped),
  ``L = smooth(Σ logistics_rating, n)`` and
  ``S = 0.5 × smooth(Σ service_rating, n) + 0.5 × 5 × (fast + within_3min) / 2``,
  ``fast`` / ``within_3min`` the shares of the shop's turns answered within 3 s / 3 min
  (both 1 without turns).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import NamedTuple

WINDOW_DAYS = 30
PRIOR_MEAN = 4.0  # a subject with few reviews starts near this
PRIOR_WEIGHT = 10  # ... as if it had this many reviews at PRIOR_MEAN
QRR_PENALTY = 10.0
FAST_MS = 3_000  # the platform's standard for good service: answered within 3 s
WITHIN_3MIN_MS = 180_000
SUBJECT_KINDS = ("sku", "account", "shop")


# -- turns ------------------------------------------------------------------------------------
class CsMessage(NamedTuple):
    t_ms: int
    event_id: str
    sender: str  # buyer | agent | bot
    shop_id: str


class Turn(NamedTuple):
    start_event_id: str
    start_ms: int
    shop_id: str
    answer_event_id: str  # '' when no agent answered (at all)
    answer_ms: int | None
    answered: bool  # an agent answered within unanswered_after_ms

    @property
    def response_ms(self) -> int | None:
        return None if self.answer_ms is None else self.answer_ms - self.start_ms

    @property
    def fast(self) -> bool:
        return self.answered and self.response_ms is not None and self.response_ms <= FAST_MS

    @property
    def within_3min(self) -> bool:
        return self.answered and self.response_ms is not None and self.response_ms <= WITHIN_3MIN_MS


def buyer_turns(messages: Iterable[CsMessage], unanswered_after_ms: int) -> list[Turn]:
    """The buyer turns of one conversation's messages (any order in, event-time order out)."""
    turns: list[Turn] = []
    start: CsMessage | None = None
    previous = ""  # sender of the previous buyer or agent message
    for m in sorted(messages, key=lambda m: (m.t_ms, m.event_id)):
        if m.sender == "bot":
            continue
        if m.sender == "buyer":
            if previous in ("", "agent"):
                start = m
        elif start is not None:  # the agent answers the open turn
            answered = m.t_ms - start.t_ms <= unanswered_after_ms
            turns.append(Turn(start.event_id, start.t_ms, start.shop_id, m.event_id, m.t_ms, answered))
            start = None
        previous = m.sender
    if start is not None:
        turns.append(Turn(start.event_id, start.t_ms, start.shop_id, "", None, False))
    return turns


# -- scores -----------------------------------------------------------------------------------
def smooth(total: float, n: int) -> float:
    return (PRIOR_WEIGHT * PRIOR_MEAN + total) / (PRIOR_WEIGHT + n)


def clamp(score: float) -> float:
    return min(5.0, max(0.0, score))


def qrr(quality_refunded_orders: int, paid_orders: int) -> float:
    return quality_refunded_orders / paid_orders if paid_orders else 0.0


@dataclass(frozen=True)
class ScoreInputs:
    """Everything a subject's score depends on, over one 30-day window."""

    reviews: int = 0  # n
    product_rating_sum: int = 0
    service_rating_sum: int = 0
    logistics_rating_sum: int = 0
    paid_orders: int = 0
    quality_refunded_orders: int = 0
    turns: int = 0  # shops only
    fast_turns: int = 0
    within_3min_turns: int = 0


@dataclass(frozen=True)
class Score:
    """A score and its parts (``None`` where the subject kind has no such part)."""

    kind: str
    score: float
    rating_sum: float  # the Σ smoothed by this kind's formula (product; (product + service) / 2 for accounts)
    qrr: float
    product_part: float  # P: the smoothed, penalised, clamped product part (the score itself for SKUs and accounts)
    service_part: float | None = None  # S (shops)
    logistics_part: float | None = None  # L (shops)
    fast: float | None = None  # shops: share of turns answered within 3 s (1 without turns)
    within_3min: float | None = None

    def explain(self, i: ScoreInputs) -> list[str]:
        """How the score was computed, one line per step, with the numbers."""
        q = f"qrr = {i.quality_refunded_orders}/{i.paid_orders} = {self.qrr:.6g}"
        if self.kind == "account":
            head = [f"n = {i.reviews}; Σ (product + service) / 2 = {self.rating_sum:g}; {q}",
                    f"带货口碑分 = clamp((40 + {self.rating_sum:g}) / (10 + {i.reviews}) − 10 × {self.qrr:.6g}) "
                    f"= {self.score:.6f}"]
            return head
        part = (f"(40 + {i.product_rating_sum}) / (10 + {i.reviews}) − 10 × {self.qrr:.6g}")
        if self.kind == "sku":
            return [f"n = {i.reviews}; Σ product_rating = {i.product_rating_sum}; {q}",
                    f"商品分 = clamp({part}) = {self.score:.6f}"]
        assert self.service_part is not None and self.logistics_part is not None
        return [
            f"n = {i.reviews}; Σ product = {i.product_rating_sum}, Σ service = {i.service_rating_sum}, "
            f"Σ logistics = {i.logistics_rating_sum}; {q}",
            f"P = clamp({part}) = {self.product_part:.6f}",
            f"turns = {i.turns}: fast (≤ 3 s) = {i.fast_turns}/{i.turns} → {self.fast:.6g}, "
            f"within 3 min = {i.within_3min_turns}/{i.turns} → {self.within_3min:.6g} (1 without turns)",
            f"S = 0.5 × (40 + {i.service_rating_sum}) / (10 + {i.reviews}) + 0.5 × 5 × ({self.fast:.6g} + "
            f"{self.within_3min:.6g}) / 2 = {self.service_part:.6f}",
            f"L = (40 + {i.logistics_rating_sum}) / (10 + {i.reviews}) = {self.logistics_part:.6f}",
            f"商号体验分 = clamp(0.4 × P + 0.3 × S + 0.3 × L) = {self.score:.6f}",
        ]


def product_score(i: ScoreInputs) -> Score:
    """商品分 of a SKU."""
    q = qrr(i.quality_refunded_orders, i.paid_orders)
    score = clamp(smooth(i.product_rating_sum, i.reviews) - QRR_PENALTY * q)
    return Score("sku", score, float(i.product_rating_sum), q, score)


def seller_score(i: ScoreInputs) -> Score:
    """带货口碑分 of a selling account."""
    q = qrr(i.quality_refunded_orders, i.paid_orders)
    total = (i.product_rating_sum + i.service_rating_sum) / 2
    score = clamp(smooth(total, i.reviews) - QRR_PENALTY * q)
    return Score("account", score, total, q, score)


def shop_score(i: ScoreInputs) -> Score:
    """商号体验分 of a shop."""
    q = qrr(i.quality_refunded_orders, i.paid_orders)
    p = clamp(smooth(i.product_rating_sum, i.reviews) - QRR_PENALTY * q)
    fast = i.fast_turns / i.turns if i.turns else 1.0
    within = i.within_3min_turns / i.turns if i.turns else 1.0
    s = 0.5 * smooth(i.service_rating_sum, i.reviews) + 0.5 * 5 * (fast + within) / 2
    lg = smooth(i.logistics_rating_sum, i.reviews)
    return Score("shop", clamp(0.4 * p + 0.3 * s + 0.3 * lg), float(i.product_rating_sum), q, p, s, lg, fast, within)


SCORERS = {"sku": product_score, "account": seller_score, "shop": shop_score}


def score(kind: str, inputs: ScoreInputs) -> Score:
    return SCORERS[kind](inputs)
