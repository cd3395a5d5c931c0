"""Names the outputs share (SPEC §3, §4): attribution models and funnel stages.

They are contract values: rows of ``gmv.attributed_gmv`` carry them in ``model`` and
``stage``, dashboards and the cookbook filter on them, the simulator's ground truth
is keyed by them.
"""

from __future__ import annotations

# The rule-based models split an order by the positions of its touches, in the stream, when it is
# attributed; ``markov`` splits it by what each stage is worth in the data (removal effects of an
# absorbing Markov chain over the journeys of the order's shop and day), restated as the day's facts arrive.
RULE_MODELS: tuple[str, ...] = ("last_touch", "first_touch", "linear", "position_based", "time_decay")
MARKOV = "markov"
MODELS: tuple[str, ...] = (*RULE_MODELS, MARKOV)
STAGES: tuple[str, ...] = ("short_video", "live", "clip", "shelf")
