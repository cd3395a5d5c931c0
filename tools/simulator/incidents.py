"""The ``incidents`` preset: what the world injects for the alert rules, and the alerts it expects
(ground truth for ``gmv reconcile``)."""

from __future__ import annotations

from collections import defaultdict, deque
from typing import Any

from gmv.tools.simulator.content import WorldState
from gmv.tools.simulator.scenarios import HOUR_MS, MINUTE_MS


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
        # Per shop, its latest paid orders with no refund coming: what a refund spike refunds.
        self.unrefunded: dict[str, deque[dict[str, Any]]] = defaultdict(lambda: deque(maxlen=500))

    def expect(self, rule: str, subject_kind: str, subject: str, starts_ms: int, ends_ms: int,
               clock: str = "event", **extra: float) -> None:
        self.expected.append({"rule": rule, "subject_kind": subject_kind, "subject_id": subject,
                              "starts_at_ms": starts_ms, "ends_at_ms": ends_ms, "clock": clock, **extra})

    def plan(self, state: WorldState, day_ms: int) -> None:
        """Schedules the incidents, timed from the first two shops' brand lives of the day (planned
        already: the planner calls this after the day's last shop)."""
        lives = [next(c for c in state.contents if c.kind == "live" and c.account == shop.brand)
                 for shop in state.shops[:2]]
        schedule = state.schedule
        stop = lives[0].start_ms + 60 * MINUTE_MS
        self.orders_stop = (lives[0].content_id, stop, stop + 20 * MINUTE_MS)
        self.expect("live_no_orders", "live", lives[0].content_id, stop, stop + 20 * MINUTE_MS)
        self.expect("live_gmv_drop", "live", lives[0].content_id, stop, stop + 20 * MINUTE_MS)
        spike = lives[1].start_ms + 90 * MINUTE_MS
        schedule.push(spike, "refund_spike", {"shop": lives[1].shop})
        self.expect("refund_spike", "shop", lives[1].shop, spike, spike + 3 * MINUTE_MS)
        burst = day_ms + 3 * HOUR_MS
        schedule.push(burst, "incident", {"incident": "malformed_burst", "count": self.burst_messages})
        self.expect("dead_letter_rate", "pipeline", "view", burst, burst, clock="wall")
        pause = day_ms + int(3.5 * HOUR_MS)
        schedule.push(pause, "incident", {"incident": "pause", "seconds": self.pause_s})
        # pause_s: the lag rule fires only if the pause outlasts its max_age_s (gmv reconcile checks)
        self.expect("consumer_lag", "pipeline", "", pause, pause, clock="wall", pause_s=self.pause_s)

    def orders_stopped(self, live_id: str, t_ms: int) -> bool:
        """The incident: viewers stay in this live, nobody can pay."""
        stop = self.orders_stop
        return stop is not None and live_id == stop[0] and stop[1] <= t_ms < stop[2]

    def spike_orders(self, shop_id: str) -> list[dict[str, Any]]:
        """The shop's latest ``spike_refunds`` orders that had no refund coming, newest first."""
        pending = self.unrefunded[shop_id]
        return [pending.pop() for _ in range(min(self.spike_refunds, len(pending)))]
