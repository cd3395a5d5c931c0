"""A generative model of the 短直短 loop, with its own ground truth (``gmv simulate``).

The world: shops, each bound to a brand self-broadcast account and a few
distributor accounts (一店多号, 川流); short videos that seed interest; scheduled
live sessions that convert; clips cut from each live that keep selling after it;
shelf purchases (mall/search/store/recommend); public and private traffic.
Buyers are the viewers: a user who watched a short video may enter the live it
leads to and pay there, or buy on a clip or on the shelf hours later, so real
multi-touch paths arise from the simulation itself.

Noise, each at a configurable rate: partial and full refunds, re-sent
(duplicate) events, late / out-of-order delivery, malformed messages.

Everything is seeded: the same scenario, seed and start give byte-identical
output. Time is simulated (event time advances minute by minute through the
scenario's days); the emit rate in wall-clock time is the writer's business.

**Ground truth** (``GroundTruth``) is kept from the simulator's own knowledge of
each buyer's path — the touches it generated for that user — not from anything
the pipeline computed: for every paid order it applies the SPEC §3 rules (via
the pure functions of ``streams.attribution``) and sums net GMV per model and
stage. Duplicates and malformed messages never enter it. Delivery is only ever
delayed by a bounded number of messages (``max_displacement``), far less than
``attribution_delay`` at any demo rate, so a late touch still reaches the
pipeline before its order is attributed, as SPEC §3 "Out-of-order" requires.
"""

from __future__ import annotations

import heapq
import json
import random
import signal
import sys
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from streams.attribution import (
    MODELS,
    STAGES,
    OrderFacts,
    Touch,
    attribute,
    build_path,
    refund_credits,
)

SHANGHAI = ZoneInfo("Asia/Shanghai")
MINUTE_MS = 60_000
HOUR_MS = 60 * MINUTE_MS
DAY_MS = 24 * HOUR_MS
SKU_PRICES_FEN = (990, 1990, 2990, 4990, 6990, 9990, 15990, 19990, 29990, 49990)
SHELF_SOURCES = ("mall", "search", "store", "recommend")
MALFORMED_KINDS = ("invalid_json", "wrong_type", "missing_field", "naive_timestamp", "negative_money",
                   "unknown_event_type", "not_an_object")


@dataclass(frozen=True)
class Rates:
    """Behaviour and noise rates (probabilities per event unless said otherwise)."""

    engaged: float = 0.55  # a view watched >= 3 s (a touchpoint)
    video_buy: float = 0.010  # engaged short-video viewer pays in the video
    clip_buy: float = 0.030  # engaged clip viewer pays in the clip
    video_to_live: float = 0.20  # engaged viewer enters a live of the same account or shop, if one is on
    live_buy: float = 0.04  # live enter that pays in the live (a few minutes later)
    shelf_later: float = 0.012  # engaged viewer who buys on the shelf hours later
    shelf_cold: float = 0.08  # shelf orders per minute per shop from users with no content touch
    refund: float = 0.08  # paid orders refunded (5-10% in the product's markets)
    full_refund_share: float = 0.5  # of refunds, full; the rest partial (sometimes in two parts)
    duplicate: float = 0.01  # events re-sent with the same event_id
    late: float = 0.02  # events delivered out of order, up to max_displacement messages late
    malformed: float = 0.0005  # malformed messages (dead letters)
    private: float = 0.25  # private-domain (私域) traffic share
    epoch_ms: float = 0.2  # events whose event_time is epoch milliseconds rather than ISO-8601


@dataclass(frozen=True)
class Scenario:
    name: str
    title: str
    days: int
    shops: int = 3
    distributors: int = 2  # distributor accounts per shop (川流)
    users: int = 20_000
    audience: float = 1.0  # views per minute of a video of popularity 1 (scales everything)
    self_lives: tuple[tuple[float, float], ...] = ((19.0, 3.0),)  # daily (start hour in Shanghai, hours)
    distributor_lives: tuple[tuple[float, float], ...] = ((20.5, 2.0),)
    live_audience: float = 6.0  # live enters per minute (at popularity 1), before referrals
    videos_per_day: int = 2  # short videos per account per day
    growth: float = 1.0  # daily audience multiplier
    takeoff_day: int | None = None  # a short video posted the day before takes off (0-based day)
    takeoff_boost: float = 40.0
    big_live_day: int | None = None  # a big self-broadcast live this day (followed by a clip tail)
    big_live_boost: float = 12.0
    clip_half_life_h: float = 18.0  # clip views halve every this many hours
    clips_per_live: int = 3
    rates: Rates = field(default_factory=Rates)

    def scaled(self, factor: float) -> Scenario:
        """The same story with ``factor`` times the audience and users (denser event time)."""
        if factor == 1:
            return self
        return replace(self, audience=self.audience * factor, live_audience=self.live_audience * factor,
                       users=max(1, int(self.users * factor)))


SCENARIOS: dict[str, Scenario] = {s.name: s for s in (
    Scenario("mixed", "Three shops, brand self-broadcast and distributors, every stage and source of noise",
             days=3, shops=3, distributors=2, users=12_000, audience=0.5),
    Scenario("cold_start", "Brand cold start: one shop lives ~16 h a day and posts 5+ short videos a day",
             days=5, shops=1, distributors=1, users=8_000, audience=0.35,
             self_lives=((8.0, 8.0), (16.0, 8.0)), distributor_lives=(), videos_per_day=6, growth=1.35,
             live_audience=1.2),
    Scenario("takeoff", "A short video takes off on day 4; the live that follows sells 100k+ yuan",
             days=5, shops=2, distributors=2, users=15_000, audience=0.25, takeoff_day=3, takeoff_boost=800.0,
             live_audience=2.0),
    Scenario("clip_tail", "A big live, then its clips keep selling for days (二次销售)",
             days=5, shops=2, distributors=1, users=15_000, audience=0.25, big_live_day=0, big_live_boost=25.0,
             clip_half_life_h=36.0, clips_per_live=5, live_audience=2.0),
)}


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


@dataclass
class Emitted:
    """One message to send: ``kind`` is valid | duplicate | malformed."""

    topic_type: str  # view | live_room | order (malformed: the topic it is sent to)
    key: str | None
    value: bytes
    kind: str
    event: dict[str, Any] | None = None


class World:
    """Generates the scenario's events in event-time order, minute by minute."""

    def __init__(self, scenario: Scenario, seed: int, start: datetime, engaged_ms: int = 3000,
                 max_displacement: int = 40) -> None:
        self.sc = scenario
        self.rng = random.Random(f"{scenario.name}:{seed}")
        self.start_ms = int(start.timestamp() * 1000)
        self.engaged_ms = engaged_ms
        self.max_displacement = max_displacement
        self.seq = 0
        self.prefix = f"{scenario.name[:3]}{seed}"
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

    # -- identities ------------------------------------------------------------------
    def _id(self, kind: str) -> str:
        self.seq += 1
        return f"{self.prefix}-{kind}{self.seq}"

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
                for h, hours in sessions:
                    t = day_ms + int(h * HOUR_MS) + rng.randrange(0, 20) * MINUTE_MS
                    pop = sc.live_audience * growth * rng.uniform(0.7, 1.3) * (1.0 if acct == shop["brand"] else 0.6)
                    live = Content("live", self._id("L"), acct, shop["shop"], t, t + int(hours * HOUR_MS), pop)
                    if sc.big_live_day == day and acct == shop["brand"] and shop is self.shops[0]:
                        live.boost, live.boost_from_ms, live.boost_until_ms = sc.big_live_boost, t, live.end_ms
                    self.contents.append(live)
                    heapq.heappush(self.future, (live.start_ms, self._next(), "live_start", {"live": live}))
                    heapq.heappush(self.future, (live.end_ms, self._next(), "live_end", {"live": live}))
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

    def _next(self) -> int:
        self.seq += 1
        return self.seq

    # -- events ------------------------------------------------------------------------
    def _time(self, t_ms: int) -> str | int:
        if self.rng.random() < self.sc.rates.epoch_ms:
            return t_ms
        dt = datetime.fromtimestamp(t_ms / 1000, tz=SHANGHAI)
        return dt.isoformat(timespec="milliseconds")

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
        if rng.random() < r.refund:
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
        return [ev]

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
            shop = next(s for s in self.shops if s["shop"] == c.shop)
            seller = c.account
            if d["channel"] == "shelf" and self.rng.random() < 0.5:
                seller = ""  # a pure shelf sale: no account made it
            return self._order(t_ms, d["user"], shop, seller, d["channel"], d["channel_id"])
        if action == "refund":
            return self._refund(t_ms, d["order"], d["refund_fen"])
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
        """Valid events of the whole scenario, in event-time order (event_time as epoch ms)."""
        end = self.start_ms + self.sc.days * DAY_MS
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
        """The stream as sent: valid events (times formatted), plus duplicates, late delivery, malformed."""
        r, rng = self.sc.rates, self.rng
        delayed: list[tuple[int, int, Emitted]] = []  # (release at message no., seq, message)
        n = 0
        for ev in self.events():
            ev = {**ev, "event_time": self._time(ev["event_time"])}
            msg = Emitted(ev["event_type"], ev.get("user_id") or ev.get("live_id"),
                          json.dumps(ev, ensure_ascii=False, separators=(",", ":")).encode(), "valid", ev)
            if rng.random() < r.late:
                heapq.heappush(delayed, (n + rng.randrange(1, self.max_displacement + 1), self._next(), msg))
            else:
                n += 1
                yield msg
            if rng.random() < r.duplicate:
                heapq.heappush(delayed, (n + rng.randrange(0, self.max_displacement + 1), self._next(),
                                         replace(msg, kind="duplicate")))
            if rng.random() < r.malformed:
                n += 1
                yield _malformed(rng, self._id("bad"))
            while delayed and delayed[0][0] <= n:
                n += 1
                yield heapq.heappop(delayed)[2]
        while delayed:
            yield heapq.heappop(delayed)[2]


def _count(rng: random.Random, lam: float) -> int:
    """A cheap deterministic draw with mean ``lam``."""
    whole = int(lam)
    return whole + (1 if rng.random() < lam - whole else 0)


def _malformed(rng: random.Random, ident: str) -> Emitted:
    from streams.sample import bad_line

    kind = rng.choice(MALFORMED_KINDS)
    topic = "order" if kind in ("missing_field", "negative_money") else "view"
    return Emitted(topic, None, bad_line(kind, int(ident.rsplit("bad", 1)[1])), "malformed")


# -- ground truth -------------------------------------------------------------------------------
@dataclass
class GroundTruth:
    """Expected net GMV per model and stage, from the paths the simulator generated."""

    engaged_ms: int = 3000
    lookback_ms: int = 7 * DAY_MS
    half_life_ms: int = DAY_MS
    touches: dict[str, list[Touch]] = field(default_factory=lambda: defaultdict(list))
    orders: dict[str, tuple[str, OrderFacts, int]] = field(default_factory=dict)  # order_id -> (user, facts, fen)
    refunds: list[tuple[str, int]] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    seen: set[str] = field(default_factory=set)

    def observe(self, msg: Emitted) -> None:
        self.counts[msg.kind] += 1
        ev = msg.event
        # Whichever copy of an event is sent first is the one that counts (a late original can
        # follow its re-sent copy); later copies are duplicates.
        if ev is None or ev["event_id"] in self.seen:
            return
        self.seen.add(ev["event_id"])
        t = _ms(ev["event_time"])
        et = ev["event_type"]
        if et == "view" and ev["watch_ms"] >= self.engaged_ms:
            self.touches[ev["user_id"]].append(Touch(t, ev["event_id"], ev["kind"], ev["author_id"], ev["video_id"],
                                                     ev.get("shop_id") or "", ev.get("traffic", "public")))
        elif et == "live_room" and ev["action"] == "enter":
            self.touches[ev["user_id"]].append(Touch(t, ev["event_id"], "live", ev["anchor_id"], ev["live_id"],
                                                     ev.get("shop_id") or "", ev.get("traffic", "public")))
        elif et == "order" and ev["status"] == "paid":
            stage = ev["channel"]
            self.orders[ev["order_id"]] = (ev["user_id"], OrderFacts(
                t, ev["event_id"], ev["seller_id"], ev["shop_id"], stage, ev.get("channel_id") or ""), ev["amount_fen"])
        elif et == "order":
            self.refunds.append((ev["order_id"], ev["refund_fen"]))

    def net_by_model_stage(self) -> dict[str, dict[str, int]]:
        out = {m: dict.fromkeys(STAGES, 0) for m in MODELS}
        paths: dict[str, list[Touch]] = {}
        for order_id, (user, facts, amount) in self.orders.items():
            path = paths[order_id] = build_path(self.touches.get(user, ()), facts, self.lookback_ms)
            for model, credits in attribute(amount, path, self.half_life_ms).items():
                for touch, fen in zip(path, credits, strict=True):
                    out[model][touch.stage] += fen
        for order_id, fen in self.refunds:
            path = paths[order_id]  # the simulator only refunds orders it sent, after sending them
            for model, credits in refund_credits(fen, path, self.half_life_ms).items():
                for touch, c in zip(path, credits, strict=True):
                    out[model][touch.stage] += c
        return out

    def summary(self) -> dict[str, Any]:
        gross = sum(a for _, _, a in self.orders.values())
        refunded = sum(f for _, f in self.refunds)
        return {"orders": len(self.orders), "refunds": len(self.refunds), "gross_fen": gross,
                "refund_fen": refunded, "net_fen": gross - refunded, "messages": dict(self.counts),
                "net_by_model_stage": self.net_by_model_stage()}


def _ms(t: str | int) -> int:
    if isinstance(t, int):
        return t
    return int(datetime.fromisoformat(t).timestamp() * 1000)


def default_start(days: int, now: datetime | None = None) -> datetime:
    """Midnight (Asia/Shanghai) ``days`` days ago: the scenario ends about today, never in the future."""
    now = (now or datetime.now(UTC)).astimezone(SHANGHAI)
    midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
    return (midnight - timedelta(days=days)).astimezone(UTC)


# -- writers --------------------------------------------------------------------------------------
def write_jsonl(world: World, out: Path, truth: GroundTruth, max_messages: int | None = None) -> int:
    n = 0
    with open(out, "wb") as fh:
        for msg in world.messages():
            if max_messages is not None and n >= max_messages:
                break
            fh.write(msg.value + b"\n")
            truth.observe(msg)
            n += 1
    return n


class KafkaWriter:
    """Sends the stream to the source topics at a target rate; stops on request, flushing first."""

    def __init__(self, bootstrap: str, topics: dict[str, str], compression: str | None = "lz4") -> None:
        from kafka import KafkaProducer

        self.topics = topics  # event_type -> topic
        self.producer = KafkaProducer(bootstrap_servers=bootstrap, linger_ms=10, batch_size=256 * 1024,
                                      acks="all", max_request_size=2 * 1024 * 1024, compression_type=compression)
        self.failures: list[str] = []
        self.stop = False

    def run(self, world: World, truth: GroundTruth, rate: float, duration_s: float | None = None,
            skip: int = 0, max_messages: int | None = None,
            on_progress: Callable[[int, bool], None] | None = None) -> int:
        """Returns messages emitted in all (skipped ones included): the resume point."""
        n = sent = 0
        started = time.monotonic()
        last_report = 0.0
        for msg in world.messages():
            if max_messages is not None and n >= max_messages:
                break
            n += 1
            truth.observe(msg)
            if n <= skip:
                continue  # sent by an earlier run on this data dir: regenerated only for the truth
            fut = self.producer.send(self.topics[msg.topic_type], key=msg.key.encode() if msg.key else None,
                                     value=msg.value)
            fut.add_errback(lambda e: self.failures.append(str(e)))
            sent += 1
            now = time.monotonic()
            ahead = sent / rate - (now - started)
            if ahead > 0.02:
                time.sleep(ahead)
            if on_progress is not None and now - last_report >= 0.5:
                self.producer.flush()
                on_progress(n, False)
                last_report = now
            if self.stop or (duration_s is not None and now - started >= duration_s):
                break
        self.producer.flush()
        self.producer.close()
        if self.failures:
            raise RuntimeError(f"{len(self.failures)} messages could not be sent (first: {self.failures[0]})")
        if on_progress is not None:
            on_progress(n, True)
        return n


def main(argv: list[str] | None = None) -> int:
    """``gmv simulate``: write a scenario to JSONL or Kafka, and its ground truth."""
    import argparse

    ap = argparse.ArgumentParser(prog="gmv simulate", description=__doc__.split("\n\n")[0])
    ap.add_argument("--scenario", default="mixed", choices=sorted(SCENARIOS))
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--scale", type=float, default=1.0, help="audience multiplier: more events per simulated minute")
    ap.add_argument("--start", help="scenario start (ISO-8601 with offset); default: midnight Asia/Shanghai "
                                    "<days> days ago")
    ap.add_argument("--out", type=Path, help="write JSONL here (one message per line)")
    ap.add_argument("--kafka", help="bootstrap servers: send to the source topics instead")
    ap.add_argument("--topic-prefix", default="gmv.")
    ap.add_argument("--rate", type=float, default=2000.0, help="messages/s to Kafka (default 2000)")
    ap.add_argument("--compression", default="lz4", choices=["none", "gzip", "lz4"],
                    help="producer compression (default lz4, as production producers of JSON would use)")
    ap.add_argument("--duration", type=float, help="stop sending to Kafka after this many seconds")
    ap.add_argument("--max-messages", type=int, help="stop after this many messages")
    ap.add_argument("--skip", type=int, default=0, help="regenerate but do not send the first N messages (resume)")
    ap.add_argument("--truth", type=Path, help="write the ground truth JSON here")
    ap.add_argument("--engaged-ms", type=int, default=3000)
    ap.add_argument("--lookback-days", type=float, default=7.0)
    ap.add_argument("--half-life-hours", type=float, default=24.0)
    ap.add_argument("--progress", action="store_true", help="print a JSON progress line to stdout every 0.5 s")
    ap.add_argument("--list", action="store_true", help="list the scenarios and exit")
    a = ap.parse_args(argv)
    if a.list:
        for sc in SCENARIOS.values():
            print(f"{sc.name:<12} {sc.days} days  {sc.title}")
        return 0
    if bool(a.out) == bool(a.kafka):
        ap.error("give exactly one of --out FILE.jsonl or --kafka BOOTSTRAP")
    if a.scale <= 0:
        ap.error("--scale must be > 0")
    sc = SCENARIOS[a.scenario].scaled(a.scale)
    start = datetime.fromisoformat(a.start) if a.start else default_start(sc.days)
    if start.tzinfo is None:
        ap.error("--start needs a UTC offset, e.g. 2026-11-01T00:00:00+08:00")
    world = World(sc, a.seed, start, engaged_ms=a.engaged_ms)
    truth = GroundTruth(a.engaged_ms, int(a.lookback_days * DAY_MS), int(a.half_life_hours * HOUR_MS))
    header = {"scenario": sc.name, "seed": a.seed, "scale": a.scale, "start": start.isoformat()}
    t0 = time.monotonic()
    if a.out:
        n = write_jsonl(world, a.out, truth, a.max_messages)
    else:
        topics = {"view": f"{a.topic_prefix}views", "live_room": f"{a.topic_prefix}live_rooms",
                  "order": f"{a.topic_prefix}orders"}
        writer = KafkaWriter(a.kafka, topics, None if a.compression == "none" else a.compression)
        signal.signal(signal.SIGINT, lambda *_: setattr(writer, "stop", True))
        signal.signal(signal.SIGTERM, lambda *_: setattr(writer, "stop", True))

        def progress(emitted: int, done: bool) -> None:
            if a.progress:
                print(json.dumps({"emitted": emitted, "done": done}), flush=True)

        n = writer.run(world, truth, a.rate, a.duration, a.skip, a.max_messages, progress)
    result = {**header, "emitted": n, "seconds": round(time.monotonic() - t0, 2), **truth.summary()}
    if a.truth:
        tmp = a.truth.with_suffix(".tmp")
        tmp.write_text(json.dumps(result, indent=1))
        tmp.replace(a.truth)
    if not a.progress:
        print(json.dumps({k: v for k, v in result.items() if k != "net_by_model_stage"}), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
