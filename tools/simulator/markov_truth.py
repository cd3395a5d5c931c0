"""Ground truth of the data-driven model ``markov`` (SPEC §9), from the simulator's own knowledge of
every journey — the ones that never converted too.

The facts are the ones ``GroundTruth`` kept, de-duplicated as it keeps them (the first copy of an
event_id counts, malformed messages never do): the engaged touchpoints with a shop (views with
``watch_ms ≥ engaged_ms``, stage = the view's kind; live-room enters, stage ``live``) and the paid
orders (stage = channel). The rules are applied by the pure functions of
``gmv.streams.core.markov``, never by anything the pipeline computed: journeys and their daily
transitions (``daily_transitions``), each (shop, day)'s model solved from its 28-day window
(``window_counts``, ``solve``), and each order's split (``markov_credits``,
``markov_refund_credits``) over the stages of its SPEC §3 path.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from datetime import date, timedelta
from typing import Any

from gmv.schemas.outputs import STAGES
from gmv.streams.core.attribution import OrderFacts, Touch
from gmv.streams.core.markov import (
    JourneyFact,
    MarkovModel,
    daily_transitions,
    markov_credits,
    markov_refund_credits,
    shanghai_day,
    solve,
    window_counts,
)

PLATFORM = ""  # the shop_id of the platform model (every shop's journeys, for display only)


class MarkovTruth:
    """The journeys of what was sent, and the models and credits that follow from them."""

    def __init__(self, touches: Mapping[str, Iterable[Touch]],
                 orders: Mapping[str, tuple[str, OrderFacts, int]]) -> None:
        """``touches``: user -> that user's engaged touchpoints; ``orders``: order_id -> (user, its
        facts, paid fen) — ``GroundTruth``'s own records."""
        # Touchpoints without a shop belong to no journey (they still count in §3 paths).
        touch_facts = [JourneyFact(user, t.shop_id, t.t_ms, t.event_id, t.stage)
                       for user, user_touches in touches.items() for t in user_touches if t.shop_id]
        order_facts = [JourneyFact(user, facts.shop_id, facts.t_ms, facts.event_id, facts.stage)
                       for user, facts, _ in orders.values()]
        self.daily: dict[tuple[str, date], Counter[tuple[str, str]]] = daily_transitions(touch_facts, order_facts)
        self.shops = sorted({shop for shop, _ in self.daily})
        self._models: dict[tuple[str, date], MarkovModel | None] = {}

    def model(self, shop_id: str, day: date) -> MarkovModel | None:
        """The model of (shop, day): its journeys of the 28 days ending with ``day`` (``""``: every
        shop's); None when that window holds no journey."""
        key = (shop_id, day)
        if key not in self._models:
            counts = window_counts(self.daily, shop_id, day)
            self._models[key] = solve(counts) if counts else None
        return self._models[key]

    def days(self) -> list[date]:
        """Every Asia/Shanghai day from the first journey's to the newest journey's (the days the
        pipeline keeps a model for)."""
        if not self.daily:
            return []
        first, last = min(d for _, d in self.daily), max(d for _, d in self.daily)
        return [first + timedelta(days=i) for i in range((last - first).days + 1)]

    def expected(self) -> list[list[Any]]:
        """``[day ISO, shop_id, stage, removal_effect, p_conv, journeys, conversions]`` (RE and P as
        floats) for each of the four stages of every (shop, day) whose window holds a journey, and of
        the platform (shop_id ``""``), sorted."""
        rows: list[list[Any]] = []
        for day in self.days():
            for shop_id in (PLATFORM, *self.shops):
                m = self.model(shop_id, day)
                if m is None:
                    continue
                rows.extend([day.isoformat(), shop_id, stage, float(m.removal_effects[stage]), float(m.p_conv),
                             m.journeys, m.conversions] for stage in STAGES)
        return sorted(rows)

    def _order_split(self, facts: OrderFacts, path: Sequence[Touch]) -> tuple[list[str], MarkovModel | None]:
        """The stages of an order's path and the model that splits it: its shop's on its order day."""
        return [t.stage for t in path], self.model(facts.shop_id, shanghai_day(facts.t_ms))

    def net_by_stage(self, orders: Mapping[str, tuple[str, OrderFacts, int]],
                     refunds: Iterable[tuple[str, int, int]], paths: Mapping[str, Sequence[Touch]]) -> dict[str, int]:
        """Net ``markov`` GMV per stage: each paid order split by ``markov_credits``, each refund
        (order_id, fen, time) by ``markov_refund_credits`` with the weights of its paid order."""
        out = dict.fromkeys(STAGES, 0)
        splits: dict[str, tuple[list[str], MarkovModel | None]] = {}
        for order_id, (_, facts, amount) in orders.items():
            stages, model = splits[order_id] = self._order_split(facts, paths[order_id])
            for stage, fen in zip(stages, markov_credits(amount, stages, model), strict=True):
                out[stage] += fen
        for order_id, fen, _ in refunds:
            stages, model = splits[order_id]  # the simulator only refunds orders it sent, after sending them
            for stage, credit in zip(stages, markov_refund_credits(fen, stages, model), strict=True):
                out[stage] += credit
        return out
