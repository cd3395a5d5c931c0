"""The simulated world of the 短直短 loop: what happens, in event-time order (``World.events``).

Shops, each bound to a brand self-broadcast account and a few distributor accounts
(一店多号, 川流); short videos that seed interest; scheduled live sessions that
convert; clips cut from each live that keep selling after it; shelf purchases
(mall/search/store/recommend); public and private traffic; refunds. Buyers are the
viewers: a user who watched a short video may enter the live it leads to and pay
there, or buy on a clip or on the shelf hours later, so real multi-touch paths arise
from the simulation itself.

Everything is seeded. Time is simulated, minute by minute through the scenario's
days. Future actions (live starts and ends, enters, orders, refunds) wait in a heap
ordered by (time, tie), the tie from a counter of its own; ids come from ``Ids``,
one counter per kind of id, so scheduling more or fewer actions never renumbers the
events, orders or content (``<prefix>-e<n>`` events, ``-o<n>`` orders, ``-v<n>``
videos and clips, ``-L<n>`` lives).
"""

from __future__ import annotations

import heapq
import itertools
import random
from collections import defaultdict, deque
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from gmv.tools.simulator.delivery import INCIDENT, Delivery, Emitted
from gmv.tools.simulator.scenarios import (
    DAY_MS,
    HOUR_MS,
    MINUTE_MS,
    SHANGHAI,
    SHELF_SOURCES,
    SKU_PRICES_FEN,
    Scenario,
)

BRAND_NAMES = ("露米 Lumi", "山野 Shanye", "青禾 Qinghe", "星辰 Xingchen", "云朵 Yunduo")


class Incidents:
    """The incidents preset: what the world injects, and the alerts it expects (ground truth).

    - orders stop for 20 min in shop0's live, one hour in, while viewers keep entering
      (``live_no_orders`` and ``live_gmv_drop`` on that live);
    - shop1's latest ``spike_refunds`` orders are refunded in full, 1.5 s apart, 90 min into its
      live (``refund_spike`` on shop1);
    - ``burst_messages`` malformed messages in a row on the views topic at 03:00
      (``dead_letter_rate`` on it, wall clock);
    - the sender pauses ``pause_s`` at 03:30, then sends what piled up, stamped with the times it
      was due (``consumer_lag``, wall clock).

    An expected alert: rule, subject, when its incident starts and when it is over (event time, epoch ms).
    """

    burst_messages = 2_000
    pause_s = 45.0
    spike_refunds = 120

    def __init__(self) -> None:
        self.expected: list[dict[str, Any]] = []
        self.orders_stop: tuple[str, int, int] | None = None  # (live_id, from, until)

    def expect(self, rule: str, subject_kind: str, subject: str, starts_ms: int, ends_ms: int,
               clock: str = "event") -> None:
        self.expected.append({"rule": rule, "subject_kind": subject_kind, "subject_id": subject,
                              "starts_at_ms": starts_ms, "ends_at_ms": ends_ms, "clock": clock})


class TrustBehaviour:
    """How buyers judge each shop after paying (SPEC §7), from a random stream of its own (so the
    rest of the world is the same with it as without it): shop0-like shops sell good products and
    answer within 3 s, shop1-like ones are middling and answer slowly, shop2-like ones sell poor
    products and leave turns unanswered (every third shop alike)."""

    review_rate = 0.35  # paid orders reviewed, 1-48 h later
    conversation_rate = 0.12  # paid orders whose buyer talks to customer service, 5 min-12 h later
    PROFILES = (
        {"name": "fast", "quality": 4.6, "quality_refunds": 0.15},
        {"name": "slow", "quality": 3.6, "quality_refunds": 0.35},
        {"name": "absent", "quality": 2.8, "quality_refunds": 0.6},
    )

    def __init__(self, seed: str) -> None:
        self.rng = random.Random(f"{seed}:trust")

    def profile(self, shop_id: str) -> dict[str, Any]:
        digits = "".join(c for c in shop_id if c.isdigit())
        return self.PROFILES[int(digits or 0) % len(self.PROFILES)]

    def _rating(self, mean: float) -> int:
        return min(5, max(1, round(self.rng.gauss(mean, 0.7))))

    def ratings(self, profile: dict[str, Any]) -> dict[str, int]:
        q = profile["quality"]
        return {"product_rating": self._rating(q), "service_rating": self._rating(q + 0.2),
                "logistics_rating": self._rating(4.2)}

    def refund_reason(self, profile: dict[str, Any]) -> str | None:
        """A quality reason with the profile's share; otherwise another one, or none (means other)."""
        rng = self.rng
        if rng.random() < profile["quality_refunds"]:
            return rng.choice(("quality", "not_as_described", "damaged", "wrong_item"))
        return rng.choice(("changed_mind", "logistics", "other", None))

    def _answer_after(self, profile: dict[str, Any]) -> int | None:
        """How long the shop takes to answer a buyer turn (ms), None for never."""
        rng, roll = self.rng, self.rng.random()
        if profile["name"] == "fast":
            return rng.randrange(300, 3_001) if roll < 0.9 else rng.randrange(3_001, 30_000)
        if profile["name"] == "slow":
            return rng.randrange(5_000, 180_001) if roll < 0.7 else rng.randrange(180_001, 900_000)
        if roll < 0.35:
            return None
        return rng.randrange(20_000, 300_000) if roll < 0.9 else rng.randrange(HOUR_MS + 1, 2 * HOUR_MS)

    def conversation(self, t_ms: int, profile: dict[str, Any]) -> list[tuple[int, str]]:
        """A conversation's messages (time, sender): 1-3 buyer turns, some with a second buyer
        message or a bot's auto-reply; it ends at a turn the shop leaves unanswered."""
        rng, out, t = self.rng, [], t_ms
        for _ in range(rng.randint(1, 3)):
            out.append((t, "buyer"))
            if rng.random() < 0.3:
                out.append((t + rng.randrange(500, 20_000), "buyer"))
            if rng.random() < 0.4:
                out.append((t + 1_000, "bot"))
            answer = self._answer_after(profile)
            if answer is None:
                break
            t += answer
            out.append((t, "agent"))
            t += rng.randrange(10_000, 600_000)
        return out


class Ids:
    """Identifiers per kind, numbered in creation order within each kind."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self._counters: dict[str, itertools.count] = defaultdict(lambda: itertools.count(1))

    def new(self, kind: str) -> str:
        return f"{self.prefix}-{kind}{next(self._counters[kind])}"


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


class World:
    """Generates the scenario's events in event-time order, minute by minute."""

    def __init__(self, scenario: Scenario, seed: int, start: datetime, engaged_ms: int = 3000,
                 max_displacement: int = 40) -> None:
        self.delivery = Delivery(scenario.rates, f"{scenario.name}:{seed}", max_displacement)
        self.sc = scenario
        self.rng = random.Random(f"{scenario.name}:{seed}")
        self.start_ms = int(start.timestamp() * 1000)
        self.engaged_ms = engaged_ms
        self._ties = itertools.count()  # heap ties of scheduled actions: never an id
        self.prefix = f"{scenario.name[:3]}{seed}"
        self.seed_label = f"{scenario.name}:{seed}"
        self._days_off = random.Random(f"{self.seed_label}:days-off")  # its own stream: the rest stays as it was
        self.ids = Ids(self.prefix)
        self.shops: list[dict[str, Any]] = []
        for s in range(scenario.shops):
            shop = f"shop{s}"
            self.shops.append({
                "shop": shop, "brand": f"brand{s}", "distributors": [f"dist{s}_{d}" for d in range(scenario.distributors)],
                "skus": [(f"{shop}-sku{k}", self.rng.choice(SKU_PRICES_FEN)) for k in range(8)],
            })
        self.contents: list[Content] = []
        self.live_now: dict[str, Content] = {}  # account -> its live on air
        self.future: list[tuple[int, int, str, dict[str, Any]]] = []  # (t_ms, seq, action, data)
        self.paid: dict[str, tuple[str, int]] = {}  # order_id -> (user, amount) for refunds
        self.incidents = Incidents()
        self.trust = TrustBehaviour(f"{scenario.name}:{seed}")
        self._unrefunded: dict[str, deque[dict[str, Any]]] = defaultdict(lambda: deque(maxlen=500))

    # -- identities ------------------------------------------------------------------
    def _id(self, kind: str) -> str:
        return self.ids.new(kind)

    def _user(self, account: str, private: bool) -> str:
        # Private traffic comes from the account's followers: a fixed slice of the users.
        n = self.sc.users
        if private:
            base = (sum(map(ord, account)) * 7919) % n
            return f"u{(base + self.rng.randrange(max(1, n // 20))) % n}"
        return f"u{self.rng.randrange(n)}"

    # -- the schedule ----------------------------------------------------------------
    def _plan_day(self, day: int) -> None:
        sc, rng = self.sc, self.rng
        day_ms = self.start_ms + day * DAY_MS
        growth = sc.growth ** day
        for shop in self.shops:
            accounts = [shop["brand"], *shop["distributors"]]
            for acct in accounts:
                for _ in range(sc.videos_per_day):
                    t = day_ms + rng.randrange(7 * HOUR_MS, 23 * HOUR_MS)
                    pop = rng.lognormvariate(0, 0.8) * growth * (1.0 if acct == shop["brand"] else 0.7)
                    self.contents.append(Content("short_video", self._id("v"), acct, shop["shop"], t,
                                                 t + 2 * DAY_MS, pop))
                sessions = sc.self_lives if acct == shop["brand"] else sc.distributor_lives
                if acct != shop["brand"] and self._days_off.random() >= sc.distributor_live_share:
                    sessions = ()  # a day of short videos only (the linkage-lift views compare these)
                for h, hours in sessions:
                    t = day_ms + int(h * HOUR_MS) + rng.randrange(0, 20) * MINUTE_MS
                    pop = sc.live_audience * growth * rng.uniform(0.7, 1.3) * (1.0 if acct == shop["brand"] else 0.6)
                    live = Content("live", self._id("L"), acct, shop["shop"], t, t + int(hours * HOUR_MS), pop)
                    if sc.big_live_day == day and acct == shop["brand"] and shop is self.shops[0]:
                        live.boost, live.boost_from_ms, live.boost_until_ms = sc.big_live_boost, t, live.end_ms
                    self.contents.append(live)
                    heapq.heappush(self.future, (live.start_ms, self._next(), "live_start", {"live": live}))
                    heapq.heappush(self.future, (live.end_ms, self._next(), "live_end", {"live": live}))
            if sc.incidents and day == 0 and shop is self.shops[-1]:
                self._plan_incidents(day_ms)
            if sc.takeoff_day is not None and day == sc.takeoff_day - 1 and shop is self.shops[0]:
                # The one that takes off: posted the evening before, ordinary until its day comes.
                t = day_ms + 21 * HOUR_MS
                video = Content("short_video", self._id("v"), shop["brand"], shop["shop"], t, t + 4 * DAY_MS, 0.8)
                video.boost = sc.takeoff_boost
                video.boost_from_ms = day_ms + DAY_MS + 9 * HOUR_MS
                video.boost_until_ms = video.boost_from_ms + 14 * HOUR_MS
                self.contents.append(video)
            if sc.takeoff_day is not None and day == sc.takeoff_day and shop is self.shops[0]:
                # ... and the live it feeds that evening.
                t = day_ms + 20 * HOUR_MS
                live = Content("live", self._id("L"), shop["brand"], shop["shop"], t, t + 4 * HOUR_MS,
                               sc.live_audience * 3, buy_boost=8.0)
                self.contents.append(live)
                heapq.heappush(self.future, (live.start_ms, self._next(), "live_start", {"live": live}))
                heapq.heappush(self.future, (live.end_ms, self._next(), "live_end", {"live": live}))

    def _plan_incidents(self, day_ms: int) -> None:
        """The incidents preset (``Incidents``), timed from each brand's first live of the day."""
        lives = [next(c for c in self.contents if c.kind == "live" and c.account == shop["brand"])
                 for shop in self.shops[:2]]
        inc = self.incidents
        stop = lives[0].start_ms + 60 * MINUTE_MS
        inc.orders_stop = (lives[0].content_id, stop, stop + 20 * MINUTE_MS)
        inc.expect("live_no_orders", "live", lives[0].content_id, stop, stop + 20 * MINUTE_MS)
        inc.expect("live_gmv_drop", "live", lives[0].content_id, stop, stop + 20 * MINUTE_MS)
        spike = lives[1].start_ms + 90 * MINUTE_MS
        heapq.heappush(self.future, (spike, self._next(), "refund_spike", {"shop": lives[1].shop}))
        inc.expect("refund_spike", "shop", lives[1].shop, spike, spike + 3 * MINUTE_MS)
        burst = day_ms + 3 * HOUR_MS
        heapq.heappush(self.future, (burst, self._next(), "incident",
                                     {"incident": "malformed_burst", "count": inc.burst_messages}))
        inc.expect("dead_letter_rate", "pipeline", "view", burst, burst, clock="wall")
        pause = day_ms + int(3.5 * HOUR_MS)
        heapq.heappush(self.future, (pause, self._next(), "incident", {"incident": "pause", "seconds": inc.pause_s}))
        inc.expect("consumer_lag", "pipeline", "", pause, pause, clock="wall")

    def _refund_spike(self, t_ms: int, shop: str) -> list[dict[str, Any]]:
        """Refunds, in full, of the shop's latest orders that had none coming, 1.5 s apart."""
        orders = [self._unrefunded[shop].pop() for _ in range(min(self.incidents.spike_refunds,
                                                                  len(self._unrefunded[shop])))]
        out = []
        for i, order in enumerate(orders):
            out.extend(self._refund(t_ms + i * 1_500, order, order["amount_fen"]))
        return out

    def dimensions(self) -> dict[str, list[dict[str, Any]]]:
        """The dimension data matching this world (``gmv load-dim``), from a random stream of its own:
        ``accounts``, each shop's brand account (self) and distributors; ``skus``, the catalog of each
        Asia/Shanghai day of the story: each SKU the shop sells is listed on 9 days in 10, and three
        long-tail SKUs nobody buys on half the days (so 动销率 is below 1)."""
        rng = random.Random(f"{self.seed_label}:catalog")
        accounts, skus = [], []
        first_day = datetime.fromtimestamp(self.start_ms / 1000, SHANGHAI).date()
        for i, shop in enumerate(self.shops):
            brand = f"B{i}"
            name = BRAND_NAMES[i % len(BRAND_NAMES)]
            accounts.append({"account_id": shop["brand"], "shop_id": shop["shop"], "brand_id": brand,
                             "role": "self", "brand_name": name})
            accounts.extend({"account_id": d, "shop_id": shop["shop"], "brand_id": brand, "role": "distributor",
                             "brand_name": name} for d in shop["distributors"])
        for day in range(self.sc.days + 1):  # the story may end in the day after its last full one
            when = (first_day + timedelta(days=day)).isoformat()
            for shop in self.shops:
                tail = [(f"{shop['shop']}-sku{8 + k}", SKU_PRICES_FEN[k]) for k in range(3)]
                for sku, price in shop["skus"]:
                    if rng.random() < 0.9:
                        skus.append({"day": when, "shop_id": shop["shop"], "sku_id": sku, "price_fen": price,
                                     "title": f"{shop['shop']} 商品 {sku.rsplit('-', 1)[1]}"})
                for sku, price in tail:
                    if rng.random() < 0.5:
                        skus.append({"day": when, "shop_id": shop["shop"], "sku_id": sku, "price_fen": price,
                                     "title": f"{shop['shop']} 长尾 {sku.rsplit('-', 1)[1]}"})
        return {"accounts": accounts, "skus": skus}

    def _next(self) -> int:
        """The tie-breaker of the next scheduled action (same time: scheduled first, fired first)."""
        return next(self._ties)

    # -- events ------------------------------------------------------------------------
    def _view(self, c: Content, t_ms: int) -> list[dict[str, Any]]:
        r, rng = self.sc.rates, self.rng
        private = rng.random() < r.private
        user = self._user(c.account, private)
        engaged = rng.random() < r.engaged
        watch = rng.randrange(self.engaged_ms, 90_000) if engaged else rng.randrange(0, self.engaged_ms)
        ev: dict[str, Any] = {"event_type": "view", "event_id": self._id("e"), "event_time": t_ms,
                              "user_id": user, "video_id": c.content_id, "author_id": c.account, "kind": c.kind,
                              "watch_ms": watch, "traffic": "private" if private else "public", "shop_id": c.shop}
        if c.kind == "clip":
            ev["source_live_id"] = c.source_live_id
        out = [ev]
        if not engaged:
            return out
        roll = rng.random()
        live = self.live_now.get(c.account) or next(
            (lv for a, lv in self.live_now.items() if lv.shop == c.shop and a != c.account), None)
        if c.kind == "short_video" and roll < r.video_buy:
            self._schedule_order(t_ms + rng.randrange(20_000, 300_000), user, c, c.kind, c.content_id)
        elif c.kind == "clip" and roll < r.clip_buy:
            self._schedule_order(t_ms + rng.randrange(20_000, 300_000), user, c, "clip", c.content_id)
        elif live is not None and roll < r.video_buy + r.video_to_live:
            heapq.heappush(self.future, (t_ms + rng.randrange(1_000, 30_000), self._next(), "enter",
                                         {"live": live, "user": user, "referrer_kind": c.kind,
                                          "referrer_id": c.content_id, "private": private}))
        elif rng.random() < r.shelf_later:
            self._schedule_order(t_ms + rng.randrange(HOUR_MS, 30 * HOUR_MS), user, c, "shelf", "")
        return out

    def _enter(self, live: Content, t_ms: int, user: str, referrer_kind: str, referrer_id: str | None,
               private: bool) -> list[dict[str, Any]]:
        rng, r = self.rng, self.sc.rates
        ev: dict[str, Any] = {"event_type": "live_room", "event_id": self._id("e"), "event_time": t_ms,
                              "live_id": live.content_id, "anchor_id": live.account, "action": "enter",
                              "user_id": user, "referrer_kind": referrer_kind,
                              "traffic": "private" if private else "public", "shop_id": live.shop}
        if referrer_id:
            ev["referrer_id"] = referrer_id
        buy = r.live_buy * live.buy_boost * (2.0 if referrer_kind in ("short_video", "clip") else 1.0)
        if rng.random() < buy:
            self._schedule_order(max(t_ms + 1_000, min(t_ms + rng.randrange(30_000, 600_000), live.end_ms - 1)),
                                 user, live, "live",
                                 live.content_id)
        if rng.random() < 0.5:
            heapq.heappush(self.future, (t_ms + rng.randrange(60_000, 1_800_000), self._next(), "leave",
                                         {"live": live, "user": user}))
        return [ev]

    def _schedule_order(self, t_ms: int, user: str, c: Content, channel: str, channel_id: str) -> None:
        heapq.heappush(self.future, (t_ms, self._next(), "order",
                                     {"user": user, "content": c, "channel": channel, "channel_id": channel_id}))

    def _order(self, t_ms: int, user: str, shop: dict[str, Any], seller: str, channel: str,
               channel_id: str) -> list[dict[str, Any]]:
        rng, r = self.rng, self.sc.rates
        sku, price = rng.choice(shop["skus"])
        qty = 1 if rng.random() < 0.8 else rng.randrange(2, 4)
        order_id = self._id("o")
        ev: dict[str, Any] = {"event_type": "order", "event_id": self._id("e"), "event_time": t_ms,
                              "order_id": order_id, "user_id": user, "shop_id": shop["shop"], "sku_id": sku,
                              "seller_id": seller, "status": "paid", "amount_fen": price * qty, "quantity": qty,
                              "currency": "CNY", "channel": channel}
        if channel == "shelf":
            ev["shelf_source"] = rng.choice(SHELF_SOURCES)
        else:
            ev["channel_id"] = channel_id
        amount = price * qty
        self._after_payment(t_ms, ev, shop)
        if rng.random() >= r.refund:
            self._unrefunded[shop["shop"]].append(ev)
        else:
            when = t_ms + rng.randrange(HOUR_MS, 36 * HOUR_MS)
            if rng.random() < r.full_refund_share or amount < 2:
                parts = [amount]
            else:
                first = rng.randrange(1, amount)
                parts = [first] if rng.random() < 0.7 or amount - first < 1 else [first, rng.randrange(1, amount - first + 1)]
            for i, part in enumerate(parts):
                heapq.heappush(self.future, (when + i * HOUR_MS, self._next(), "refund",
                                             {"order": ev, "refund_fen": part}))
        return [ev]

    def _refund(self, t_ms: int, order: dict[str, Any], refund_fen: int) -> list[dict[str, Any]]:
        ev = {k: order[k] for k in ("event_type", "order_id", "user_id", "shop_id", "sku_id", "seller_id",
                                    "currency", "channel")}
        for optional in ("channel_id", "shelf_source"):
            if optional in order:
                ev[optional] = order[optional]
        ev.update({"event_id": self._id("e"), "event_time": t_ms, "status": "refunded", "refund_fen": refund_fen})
        reason = self.trust.refund_reason(self.trust.profile(order["shop_id"]))
        if reason is not None:
            ev["refund_reason"] = reason
        return [ev]

    # -- after the payment: reviews and customer service (SPEC §7) -------------------------------
    def _after_payment(self, t_ms: int, order: dict[str, Any], shop: dict[str, Any]) -> None:
        """Schedules the order's review and its buyer's conversation with the shop, if they come."""
        trust, rng = self.trust, self.trust.rng
        profile = trust.profile(shop["shop"])
        if rng.random() < trust.review_rate:
            heapq.heappush(self.future, (t_ms + rng.randrange(HOUR_MS, 48 * HOUR_MS), self._next(), "review",
                                         {"order": order, "profile": profile}))
        if rng.random() < trust.conversation_rate:
            conversation = self._id("c")
            for when, sender in trust.conversation(t_ms + rng.randrange(5 * MINUTE_MS, 12 * HOUR_MS), profile):
                heapq.heappush(self.future, (when, self._next(), "cs", {
                    "conversation_id": conversation, "shop_id": shop["shop"], "user_id": order["user_id"],
                    "sender": sender}))

    def _fire(self, t_ms: int, action: str, d: dict[str, Any]) -> list[dict[str, Any]]:
        if action == "live_start" or action == "live_end":
            live: Content = d["live"]
            if action == "live_start":
                self.live_now[live.account] = live
            else:
                if self.live_now.get(live.account) is live:
                    del self.live_now[live.account]
                self._cut_clips(live)
            return [{"event_type": "live_room", "event_id": self._id("e"), "event_time": t_ms,
                     "live_id": live.content_id, "anchor_id": live.account,
                     "action": "start" if action == "live_start" else "end", "shop_id": live.shop}]
        if action == "enter":
            if t_ms >= d["live"].end_ms:
                return []  # the live ended before they got there
            return self._enter(d["live"], t_ms, d["user"], d["referrer_kind"], d["referrer_id"], d["private"])
        if action == "leave":
            live = d["live"]
            return [{"event_type": "live_room", "event_id": self._id("e"), "event_time": t_ms,
                     "live_id": live.content_id, "anchor_id": live.account, "action": "leave", "user_id": d["user"],
                     "shop_id": live.shop}]
        if action == "order":
            c: Content = d["content"]
            stop = self.incidents.orders_stop
            if stop is not None and d["channel"] == "live" and c.content_id == stop[0] and stop[1] <= t_ms < stop[2]:
                return []  # the incident: viewers stay, nobody can pay

            shop = next(s for s in self.shops if s["shop"] == c.shop)
            seller = c.account
            if d["channel"] == "shelf" and self.rng.random() < 0.5:
                seller = ""  # a pure shelf sale: no account made it
            return self._order(t_ms, d["user"], shop, seller, d["channel"], d["channel_id"])
        if action == "refund":
            return self._refund(t_ms, d["order"], d["refund_fen"])
        if action == "review":
            order = d["order"]
            return [{"event_type": "review", "event_id": self._id("rv"), "event_time": t_ms,
                     "order_id": order["order_id"], "user_id": order["user_id"], **self.trust.ratings(d["profile"])}]
        if action == "cs":
            return [{"event_type": "cs_message", "event_id": self._id("m"), "event_time": t_ms, **d}]
        if action == "refund_spike":
            return self._refund_spike(t_ms, d["shop"])
        if action == "incident":
            return [{"event_type": INCIDENT, "event_id": "", "event_time": t_ms, **d}]
        raise AssertionError(action)

    def _cut_clips(self, live: Content) -> None:
        for _ in range(self.sc.clips_per_live):
            t = live.end_ms + self.rng.randrange(10 * MINUTE_MS, 3 * HOUR_MS)
            pop = live.popularity * (live.boost if live.boost_until_ms else 1.0) * self.rng.uniform(0.05, 0.15)
            self.contents.append(Content("clip", self._id("v"), live.account, live.shop, t, t + 7 * DAY_MS, pop,
                                         source_live_id=live.content_id))

    def _minute(self, t0: int) -> list[dict[str, Any]]:
        sc, rng = self.sc, self.rng
        day = (t0 - self.start_ms) // DAY_MS
        events: list[dict[str, Any]] = []
        while self.future and self.future[0][0] < t0 + MINUTE_MS:
            t, _, action, d = heapq.heappop(self.future)
            events.extend(self._fire(max(t, t0), action, d))
        self.contents = [c for c in self.contents if c.end_ms > t0]
        for c in self.contents:
            if c.kind == "live":
                # Enters from the feed, follows, search...: the live's own audience, before referrals.
                for _ in range(_count(rng, c.rate_at(t0, sc.clip_half_life_h))):
                    private = rng.random() < sc.rates.private
                    heapq.heappush(self.future, (t0 + rng.randrange(MINUTE_MS), self._next(), "enter", {
                        "live": c, "user": self._user(c.account, private),
                        "referrer_kind": "follow" if private else rng.choice(("feed", "search", "shelf", "other")),
                        "referrer_id": None, "private": private}))
                continue
            for _ in range(_count(rng, c.rate_at(t0, sc.clip_half_life_h) * sc.audience)):
                events.extend(self._view(c, t0 + rng.randrange(MINUTE_MS)))
        growth = sc.growth ** day
        for shop in self.shops:
            for _ in range(_count(rng, sc.rates.shelf_cold * growth * sc.audience)):
                user = f"u{rng.randrange(sc.users)}"
                events.extend(self._order(t0 + rng.randrange(MINUTE_MS), user, shop, "", "shelf", ""))
        events.sort(key=lambda e: (e["event_time"], e["event_id"]))
        return events

    def events(self) -> Iterator[dict[str, Any]]:
        """Valid events of the whole scenario, in event-time order (event_time as epoch ms), and the
        delivery incidents it schedules (``event_type`` INCIDENT, for ``Delivery``)."""
        end = self.start_ms + self.sc.days * DAY_MS
        if self.sc.hours is not None:
            end = min(end, self.start_ms + int(self.sc.hours * HOUR_MS))
        day = -1
        t = self.start_ms
        while t < end:
            d = (t - self.start_ms) // DAY_MS
            if d != day:
                day = d
                self._plan_day(d)
            yield from self._minute(t)
            t += MINUTE_MS

    def messages(self) -> Iterator[Emitted]:
        """The stream as sent: the world's events through the delivery noise (``delivery.py``)."""
        return self.delivery.messages(self.events())


def _count(rng: random.Random, lam: float) -> int:
    """A cheap deterministic draw with mean ``lam``."""
    whole = int(lam)
    return whole + (1 if rng.random() < lam - whole else 0)
