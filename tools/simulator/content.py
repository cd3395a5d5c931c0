"""What the simulated world is made of: ids, shops, content, the schedule of future actions, and
the state the world's parts share (``WorldState``).

Ids come from ``Ids``, one counter per kind of id, and the schedule's heap ties from a counter of
their own, so scheduling more or fewer actions never renumbers the events, orders or content
(``<prefix>-e<n>`` events, ``-o<n>`` orders, ``-v<n>`` videos and clips, ``-L<n>`` lives).
"""

from __future__ import annotations

import bisect
import heapq
import itertools
import random
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from gmv.tools.simulator.scenarios import HOUR_MS, SKU_PRICES_FEN, Rates, Scenario

BRAND_NAMES = ("露米 Lumi", "山野 Shanye", "青禾 Qinghe", "星辰 Xingchen", "云朵 Yunduo")


class Ids:
    """Identifiers per kind, numbered in creation order within each kind."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self._counters: dict[str, itertools.count[int]] = defaultdict(lambda: itertools.count(1))

    def new(self, kind: str) -> str:
        return f"{self.prefix}-{kind}{next(self._counters[kind])}"


@dataclass
class Shop:
    """A shop, its brand's self-broadcast account and its distributor accounts (一店多号, 川流)."""

    shop_id: str
    brand: str
    distributors: list[str]
    skus: list[tuple[str, int]]  # (sku_id, price in fen)
    rates: Rates  # how its buyers behave (the scenario's rates unless it gives the shop its own)

    @property
    def accounts(self) -> list[str]:
        return [self.brand, *self.distributors]


@dataclass
class Content:
    kind: str  # short_video | clip | live
    content_id: str
    account: str
    shop: str
    start_ms: int
    end_ms: int  # live: session end; videos: when it stops being shown
    popularity: float
    source_live_id: str = ""
    boost_from_ms: int = 0
    boost_until_ms: int = 0
    boost: float = 1.0
    buy_boost: float = 1.0  # conversion multiplier (the live a hit video feeds)
    # Live: who entered it; clip: its live's list. Kept only for shops whose clips recall the live's
    # audience (``Rates.clip_recall``): every other world never reads it.
    audience: list[str] = field(default_factory=list)
    order_times: list[int] = field(default_factory=list)  # live: its orders scheduled so far, in time order

    def sells_near(self, t_ms: int, within_ms: int) -> bool:
        """A live: an order of it is scheduled within ``within_ms`` of ``t_ms``, before or after."""
        i = bisect.bisect_left(self.order_times, t_ms - within_ms)
        return i < len(self.order_times) and self.order_times[i] <= t_ms + within_ms

    def rate_at(self, t_ms: int, half_life_h: float) -> float:
        if not (self.start_ms <= t_ms < self.end_ms):
            return 0.0
        age_h = (t_ms - self.start_ms) / HOUR_MS
        if self.kind == "live":
            r = self.popularity
        elif self.kind == "clip":
            r = self.popularity * 0.5 ** (age_h / half_life_h)
        else:
            r = self.popularity * 0.5 ** (age_h / 8.0)
        if self.boost_from_ms <= t_ms < self.boost_until_ms:
            r *= self.boost
        return r


Action = tuple[int, int, str, dict[str, Any]]  # (t_ms, tie, action, data)


class Schedule:
    """Future actions (live starts and ends, enters, orders, refunds...) in a heap ordered by
    (time, tie): at the same time, scheduled first, fired first."""

    def __init__(self) -> None:
        self.heap: list[Action] = []
        self._ties = itertools.count()  # never an id: see the module's docstring

    def next_tie(self) -> int:
        """The tie-breaker of the next scheduled action."""
        return next(self._ties)

    def push(self, t_ms: int, action: str, data: dict[str, Any]) -> None:
        heapq.heappush(self.heap, (t_ms, self.next_tie(), action, data))

    def due_before(self, t_ms: int) -> Iterator[tuple[int, str, dict[str, Any]]]:
        """Pops, in order, the actions due before ``t_ms`` (those they schedule before it included)."""
        while self.heap and self.heap[0][0] < t_ms:
            t, _, action, data = heapq.heappop(self.heap)
            yield t, action, data


@dataclass
class WorldState:
    """What the world's parts share: the scenario, its main random stream, ids, shops, content on
    show, lives on air and the schedule. One main stream for all the parts: the order of its draws
    *is* the story, so one draw more or less changes every story from there on. New behaviour draws
    from a stream of its own."""

    sc: Scenario
    rng: random.Random
    start_ms: int
    ids: Ids
    shops: list[Shop] = field(default_factory=list)
    contents: list[Content] = field(default_factory=list)
    live_now: dict[str, Content] = field(default_factory=dict)  # account -> its live on air
    schedule: Schedule = field(default_factory=Schedule)
    _by_id: dict[str, Shop] = field(default_factory=dict, init=False, repr=False)  # looked up on every view

    def add_shops(self) -> None:
        """The scenario's shops, each with 8 SKUs at prices drawn from the main stream."""
        sc = self.sc
        for s in range(sc.shops):
            shop_id = f"shop{s}"
            shop = Shop(shop_id, f"brand{s}", [f"dist{s}_{d}" for d in range(sc.distributors)],
                        [(f"{shop_id}-sku{k}", self.rng.choice(SKU_PRICES_FEN)) for k in range(8)],
                        sc.shop_rates_of(s))
            self.shops.append(shop)
            self._by_id[shop_id] = shop

    def shop(self, shop_id: str) -> Shop:
        return self._by_id[shop_id]

    def user(self, account: str, private: bool) -> str:
        """A viewer: private traffic comes from the account's followers, a fixed slice of the users."""
        n = self.sc.users
        if private:
            base = (sum(map(ord, account)) * 7919) % n
            return f"u{(base + self.rng.randrange(max(1, n // 20))) % n}"
        return f"u{self.rng.randrange(n)}"


def count_draw(rng: random.Random, lam: float) -> int:
    """A cheap deterministic draw with mean ``lam``."""
    whole = int(lam)
    return whole + (1 if rng.random() < lam - whole else 0)

