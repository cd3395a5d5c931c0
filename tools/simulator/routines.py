"""The ``routines`` preset: two weeks of the daily routines of live commerce, and real incidents on
its last days, with the alerts they expect (ground truth for ``gmv reconcile``).

Every day, at the same minutes:

- shop0's room goes on air at 01:00 and the host warms it up for ``warmup_minutes``: viewers enter,
  nothing is on sale yet (no order);
- ``sale_at_minutes`` after shop1's room opens at 01:00, a flash sale (秒杀) of its dearest SKU sells
  ``sale_orders`` a minute for ``sale_minutes``; then GMV falls back to the room's usual level;
- both rooms go off air at 02:30 for a break and come back at 02:45 (two sessions);
- at 09:00 shop1's customer service approves the day's refunds in a batch (``batch_refunds``
  refunds, 3 s apart).

A rule that compares a window only with the hour before it pages for the warm-up
(``live_no_orders``), after the flash sale (``live_gmv_drop``) and at the refund batch
(``refund_spike``) every day. The planned incidents, on the last three days: shop0's room stops
selling for 20 min while viewers stay (``live_no_orders``, ``live_gmv_drop``); shop1's latest
orders are refunded in 3 min at 01:30 (``refund_spike``); shop1's second session stops selling
for 20 min (``live_no_orders``, ``live_gmv_drop``). Alerts are compared from ``judged_from_day``
on (0-based), once a week of history exists; earlier days build the history.
"""

from __future__ import annotations

import random
from typing import Any

from gmv.tools.simulator.content import Content, WorldState
from gmv.tools.simulator.incidents import Incidents
from gmv.tools.simulator.scenarios import DAY_MS, HOUR_MS, MINUTE_MS


class Routines:
    warmup_minutes = 25  # the first window the rule may judge (10 min on air before it) falls inside it
    sale_at_minutes = 40
    sale_minutes = 5
    sale_orders = 80  # a minute: GMV then falls back by more than live_gmv_drop's 80%
    batch_hour = 9.0
    batch_refunds = 40
    judged_from_day = 7

    def __init__(self, incidents: Incidents, seed_label: str) -> None:
        self.incidents = incidents  # the expected alerts go to its list (the truth's expected_alerts)
        self.rng = random.Random(f"{seed_label}:routines")  # its own stream: no other story changes
        self.warmups: dict[str, int] = {}  # live_id -> when its warm-up ends
        self.stops: list[tuple[str, int, int]] = []  # (live_id, from, until): nobody can pay meanwhile

    def judged_from_ms(self, start_ms: int) -> int:
        return start_ms + self.judged_from_day * DAY_MS

    def plan(self, state: WorldState, day: int, day_ms: int) -> None:
        """The day's routines and, on the last days, its incidents (the day's lives are planned already)."""
        lives = {shop.shop_id: sorted((c for c in state.contents if c.kind == "live" and c.account == shop.brand
                                       and c.start_ms >= day_ms), key=lambda c: c.start_ms)
                 for shop in state.shops[:2]}
        room, other = lives["shop0"][0], lives["shop1"]
        self.warmups[room.content_id] = room.start_ms + self.warmup_minutes * MINUTE_MS
        self._flash_sale(state, other[0])
        state.schedule.push(day_ms + int(self.batch_hour * HOUR_MS), "refund_batch",
                            {"shop": "shop1", "count": self.batch_refunds})
        last = state.sc.days - 1
        if day == last - 2:
            self._orders_stop(room, room.start_ms + 65 * MINUTE_MS)
        elif day == last - 1:
            spike = day_ms + int(1.5 * HOUR_MS)
            state.schedule.push(spike, "refund_spike", {"shop": "shop1"})
            self.incidents.expect("refund_spike", "shop", "shop1", spike, spike + 3 * MINUTE_MS)
        elif day == last:
            self._orders_stop(other[-1], other[-1].start_ms + 35 * MINUTE_MS)

    def _flash_sale(self, state: WorldState, room: Content) -> None:
        sku = max(state.shop(room.shop).skus, key=lambda s: s[1])
        start = room.start_ms + self.sale_at_minutes * MINUTE_MS
        for _ in range(self.sale_minutes * self.sale_orders):
            t = start + self.rng.randrange(self.sale_minutes * MINUTE_MS)
            state.schedule.push(t, "order", {"user": f"u{self.rng.randrange(state.sc.users)}", "content": room,
                                             "channel": "live", "channel_id": room.content_id, "sku": sku})

    def _orders_stop(self, live: Content, at: int) -> None:
        until = at + 20 * MINUTE_MS
        self.stops.append((live.content_id, at, until))
        self.incidents.expect("live_no_orders", "live", live.content_id, at, until)
        self.incidents.expect("live_gmv_drop", "live", live.content_id, at, until)

    def no_order(self, live_id: str, t_ms: int) -> bool:
        """The room's host is still warming up, or the incident: viewers stay, nobody can pay."""
        if t_ms < self.warmups.get(live_id, 0):
            return True
        return any(live_id == lid and lo <= t_ms < hi for lid, lo, hi in self.stops)

    def batch(self, shop_id: str, count: int) -> list[dict[str, Any]]:
        """The shop's latest ``count`` orders that had no refund coming, newest first."""
        pending = self.incidents.unrefunded[shop_id]
        return [pending.pop() for _ in range(min(count, len(pending)))]
