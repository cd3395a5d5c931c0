"""A generative model of the 短直短 loop, with its own ground truth (``gmv simulate``).

- ``scenarios``: the presets (``mixed``, ``cold_start``, ``takeoff``, ``clip_tail``, ``incidents``,
  ``stage_worth``) and their rates;
- ``world``: what happens, in event-time order, put together from ``content`` (ids, shops, content,
  the schedule), ``planner`` (each day's videos and lives), ``events`` (the event builders),
  ``incidents`` (the incidents preset), ``trust`` (reviews, refund reasons, customer service) and
  ``dimensions`` (accounts and the SKU catalog);
- ``delivery``: how it is sent (time formats, duplicates, late delivery, malformed messages);
- ``truth``: the expected net GMV per model and stage, from the simulator's own paths, and
  ``markov_truth``: the same for the data-driven model (SPEC §9), from its own journeys;
- ``cli``: ``gmv simulate``, to JSONL or Kafka.

Delivery is only ever delayed by a bounded number of messages (``max_displacement``),
far less than ``attribution_delay`` at any demo rate, so a late touch still reaches
the pipeline before its order is attributed, as SPEC §3 "Out-of-order" requires.
"""

from gmv.tools.simulator.delivery import Delivery, Emitted
from gmv.tools.simulator.scenarios import (
           DAY_MS,
           HOUR_MS,
           MINUTE_MS,
           SCENARIOS,
           Rates,
           Scenario,
           default_start,
)
from gmv.tools.simulator.truth import GroundTruth, event_ms
from gmv.tools.simulator.world import World

__all__ = ["DAY_MS", "HOUR_MS", "MINUTE_MS", "SCENARIOS", "Delivery", "Emitted", "GroundTruth", "Rates",
           "Scenario", "World", "default_start", "event_ms"]
