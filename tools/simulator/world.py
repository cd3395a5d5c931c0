"""The simulated world of the 短直短 loop: what happens, in event-time order (``World.events``).

Shops, each bound to a brand self-broadcast account and a few distributor accounts
(一店多号, 川流); short videos that seed interest; scheduled live sessions that
convert; clips cut from each live that keep selling after it; shelf purchases
(mall/search/store/recommend); public and private traffic; refunds. Buyers are the
viewers: a user who watched a short video may enter the live it leads to and pay
there, or buy on a clip or on the shelf hours later, so real multi-touch paths arise
from the simulation itself.

Everything is seeded. Time is simulated, minute by minute through the scenario's
days. The world is put together from parts, one job each:

- ``content``: ids, shops, content, the schedule of future actions and the state the parts share;
- ``planner``: each day's videos and lives (``DayPlanner``);
- ``events``: the event builders and what each event sets in motion (``EventBuilder``);
- ``incidents``: the incidents preset and the alerts it expects (``Incidents``);
- ``routines``: the routines preset's daily routines and incidents (``Routines``);
- ``trust``: how buyers judge each shop after paying (``TrustBehaviour``);
- ``dimensions``: the accounts and daily SKU catalog matching the world.

Future actions wait in a heap ordered by (time, tie), the tie from a counter of its own; ids come
from ``Ids``, one counter per kind of id, so scheduling more or fewer actions never renumbers the
events, orders or content.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import datetime
from typing import Any

from gmv.tools.simulator.content import Content, Ids, Shop, WorldState, count_draw
from gmv.tools.simulator.delivery import Delivery, Emitted
from gmv.tools.simulator.dimensions import dimensions
from gmv.tools.simulator.events import Event, EventBuilder
from gmv.tools.simulator.incidents import Incidents
from gmv.tools.simulator.planner import DayPlanner
from gmv.tools.simulator.routines import Routines
from gmv.tools.simulator.scenarios import DAY_MS, HOUR_MS, MINUTE_MS, Scenario
from gmv.tools.simulator.trust import TrustBehaviour


class World:
    """Generates the scenario's events in event-time order, minute by minute."""

    def __init__(self, scenario: Scenario, seed: int, start: datetime, engaged_ms: int = 3000,
                 max_displacement: int = 40, endless: bool = False) -> None:
        self.sc = scenario
        # Endless (``gmv demo`` without --duration): after its days the world goes on, day after day
        # planned as its last one was; the sender keeps its event times behind the wall clock.
        self.endless = endless
        self.seed_label = f"{scenario.name}:{seed}"
        self.prefix = f"{scenario.name[:3]}{seed}"
        self.start_ms = int(start.timestamp() * 1000)
        self.engaged_ms = engaged_ms
        self.delivery = Delivery(scenario.rates, self.seed_label, max_displacement)
        self.state = WorldState(scenario, random.Random(self.seed_label), self.start_ms, Ids(self.prefix))
        self.state.add_shops()  # the first draws of the main stream: the shops' prices
        self.incidents = Incidents()
        self.trust = TrustBehaviour(self.seed_label)
        self.routines = Routines(self.incidents, self.seed_label) if scenario.routines else None
        self.planner = DayPlanner(self.state, self.incidents, self.seed_label, self.routines)
        self.builder = EventBuilder(self.state, self.trust, self.incidents, engaged_ms, self.seed_label,
                                    self.routines)

    # The shared state, by the names it always had.
    @property
    def rng(self) -> random.Random:
        return self.state.rng

    @property
    def ids(self) -> Ids:
        return self.state.ids

    @property
    def shops(self) -> list[Shop]:
        return self.state.shops

    @property
    def contents(self) -> list[Content]:
        return self.state.contents

    @property
    def live_now(self) -> dict[str, Content]:
        return self.state.live_now

    def dimensions(self) -> dict[str, list[dict[str, Any]]]:
        """The dimension data matching this world (``gmv load-dim``): see ``dimensions.dimensions``."""
        return dimensions(self.state.shops, self.sc.days, self.start_ms, self.seed_label)

    def _minute(self, t0: int) -> list[Event]:
        state, sc, rng, builder = self.state, self.sc, self.state.rng, self.builder
        day = (t0 - self.start_ms) // DAY_MS
        events: list[Event] = []
        for t, action, d in state.schedule.due_before(t0 + MINUTE_MS):
            events.extend(builder.fire(max(t, t0), action, d))
        state.contents = [c for c in state.contents if c.end_ms > t0]
        for c in state.contents:
            if c.kind == "live":
                builder.live_audience(c, t0, sc.clip_half_life_h)
                continue
            for _ in range(count_draw(rng, c.rate_at(t0, sc.clip_half_life_h) * sc.audience)):
                events.extend(builder.view(c, t0 + rng.randrange(MINUTE_MS)))
        growth = sc.growth ** min(day, sc.days - 1)  # an endless world's later days grow no more
        for shop in state.shops:
            events.extend(builder.cold_shelf(shop, t0, shop.rates.shelf_cold * growth * sc.audience))
        events.sort(key=lambda e: (e["event_time"], e["event_id"]))
        return events

    def events(self) -> Iterator[Event]:
        """Valid events of the whole scenario, in event-time order (event_time as epoch ms), and the
        delivery incidents it schedules (``event_type`` INCIDENT, for ``Delivery``)."""
        end: float = self.start_ms + self.sc.days * DAY_MS
        if self.sc.hours is not None:
            end = min(end, self.start_ms + int(self.sc.hours * HOUR_MS))
        elif self.endless:
            end = float("inf")
        day = -1
        t = self.start_ms
        while t < end:
            d = (t - self.start_ms) // DAY_MS
            if d != day:
                day = d
                self.planner.plan(d)
            yield from self._minute(t)
            t += MINUTE_MS

    def messages(self) -> Iterator[Emitted]:
        """The stream as sent: the world's events through the delivery noise (``delivery.py``)."""
        return self.delivery.messages(self.events())
