"""Names the outputs share (SPEC §3, §4): attribution models and funnel stages.

They are contract values: rows of ``gmv.attributed_gmv`` carry them in ``model`` and
``stage``, dashboards and the cookbook filter on them, the simulator's ground truth
is keyed by them.
"""

from __future__ import annotations

MODELS: tuple[str, ...] = ("last_touch", "first_touch", "linear", "position_based", "time_decay")
STAGES: tuple[str, ...] = ("short_video", "live", "clip", "shelf")
