"""The day planner: each day's short videos and live sessions of every account, the scenario's
one-off stories (a big live, a video that takes off) and, for the incidents preset, its incidents."""

from __future__ import annotations

import random

from gmv.tools.simulator.content import Content, Shop, WorldState
from gmv.tools.simulator.incidents import Incidents
from gmv.tools.simulator.routines import Routines
from gmv.tools.simulator.scenarios import DAY_MS, HOUR_MS, MINUTE_MS


class DayPlanner:
    """Plans one day at a time, at its first minute, from the world's main random stream (and the
    distributors' days off from a stream of their own)."""

    def __init__(self, state: WorldState, incidents: Incidents, seed_label: str,
                 routines: Routines | None = None) -> None:
        self.state = state
        self.incidents = incidents
        self.routines = routines
        # Its own stream: the days off came later than the rest, which stayed as it was.
        self._days_off = random.Random(f"{seed_label}:days-off")

    def plan(self, day: int) -> None:
        state, sc = self.state, self.state.sc
        day_ms = state.start_ms + day * DAY_MS
        growth = sc.growth ** min(day, sc.days - 1)  # an endless world's later days grow no more
        for shop in state.shops:
            for acct in shop.accounts:
                self._videos(shop, acct, day_ms, growth)
                self._lives(shop, acct, day, day_ms, growth)
            # The order of these steps is part of the story (ids and draws): keep it.
            if sc.incidents and day == 0 and shop is state.shops[-1]:
                self.incidents.plan(state, day_ms)
            if self.routines is not None and shop is state.shops[-1]:
                self.routines.plan(state, day, day_ms)
            if sc.takeoff_day is not None and day == sc.takeoff_day - 1 and shop is state.shops[0]:
                self._takeoff_video(shop, day_ms)
            if sc.takeoff_day is not None and day == sc.takeoff_day and shop is state.shops[0]:
                self._takeoff_live(shop, day_ms)

    def _videos(self, shop: Shop, acct: str, day_ms: int, growth: float) -> None:
        state, sc, rng = self.state, self.state.sc, self.state.rng
        for _ in range(sc.videos_per_day):
            t = day_ms + rng.randrange(7 * HOUR_MS, 23 * HOUR_MS)
            pop = rng.lognormvariate(0, 0.8) * growth * (1.0 if acct == shop.brand else 0.7)
            state.contents.append(Content("short_video", state.ids.new("v"), acct, shop.shop_id, t,
                                          t + 2 * DAY_MS, pop))

    def _lives(self, shop: Shop, acct: str, day: int, day_ms: int, growth: float) -> None:
        state, sc, rng = self.state, self.state.sc, self.state.rng
        sessions = sc.self_lives if acct == shop.brand else sc.distributor_lives
        if acct != shop.brand and self._days_off.random() >= sc.distributor_live_share:
            sessions = ()  # a day of short videos only (the linkage-lift views compare these)
        for h, hours in sessions:
            t = day_ms + int(h * HOUR_MS) + rng.randrange(0, sc.live_jitter_minutes) * MINUTE_MS
            pop = sc.live_audience * growth * rng.uniform(0.7, 1.3) * (1.0 if acct == shop.brand else 0.6)
            live = Content("live", state.ids.new("L"), acct, shop.shop_id, t, t + int(hours * HOUR_MS), pop)
            if sc.big_live_day == day and acct == shop.brand and shop is state.shops[0]:
                live.boost, live.boost_from_ms, live.boost_until_ms = sc.big_live_boost, t, live.end_ms
            self._add_live(live)

    def _takeoff_video(self, shop: Shop, day_ms: int) -> None:
        """The one that takes off: posted the evening before, ordinary until its day comes."""
        state = self.state
        t = day_ms + 21 * HOUR_MS
        video = Content("short_video", state.ids.new("v"), shop.brand, shop.shop_id, t, t + 4 * DAY_MS, 0.8)
        video.boost = state.sc.takeoff_boost
        video.boost_from_ms = day_ms + DAY_MS + 9 * HOUR_MS
        video.boost_until_ms = video.boost_from_ms + 14 * HOUR_MS
        state.contents.append(video)

    def _takeoff_live(self, shop: Shop, day_ms: int) -> None:
        """... and the live it feeds that evening."""
        state = self.state
        t = day_ms + 20 * HOUR_MS
        self._add_live(Content("live", state.ids.new("L"), shop.brand, shop.shop_id, t, t + 4 * HOUR_MS,
                               state.sc.live_audience * 3, buy_boost=8.0))

    def _add_live(self, live: Content) -> None:
        self.state.contents.append(live)
        self.state.schedule.push(live.start_ms, "live_start", {"live": live})
        self.state.schedule.push(live.end_ms, "live_end", {"live": live})
