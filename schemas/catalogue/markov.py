"""Data-driven attribution (model ``markov``): the journeys' transitions per shop and day, the model
of each shop and day (removal effects), and the credits restated from them.

All three are recomputed by the worker from the de-duplicated facts (``gmv.sinks.markov``), never
kept as running sums: a replay or a crash rewrites rows, never adds to them. ``markov_credits``
holds the ``markov`` rows that ``attributed_gmv`` shows beside the rule-based models' (its view
reads both tables), with the same identity (event, touch) and a version (``attributed_at``) so the
latest restatement wins.
"""

from __future__ import annotations

from dataclasses import replace

from gmv.schemas.catalogue.base import Column, Table
from gmv.schemas.catalogue.facts import ATTRIBUTED_GMV

_REFRESHED = Column("refreshed_at", "DateTime64(6, 'UTC')", "when this row was recomputed from the facts; the latest wins")
_STATE = "start | short_video | live | clip | shelf"

MARKOV_DAILY = Table(
    name="markov_daily",
    comment=("Journeys of the markov model, per Asia/Shanghai day and shop: how many times each transition of the "
             "absorbing chain (start, the four stages, conv, null) happened in that day's journeys (one journey per "
             "user, shop and day: its engaged touchpoints of the shop up to its first paid order, repeats of a stage "
             "collapsed, then the order's channel and conv, or null). Recomputed from the facts of the days that "
             "changed; a model sums 28 days of this table."),
    columns=(
        Column("day", "Date", "the day (Asia/Shanghai) of the journeys"),
        Column("shop_id", "String", "the shop of the journeys"),
        Column("from_state", "LowCardinality(String)", f"state left: {_STATE}"),
        Column("to_state", "LowCardinality(String)", "state entered: short_video | live | clip | shelf | conv | null"),
        Column("transitions", "UInt64", "how many times that day's journeys of the shop made this transition "
                                        "(0: it did before a late fact changed a journey)"),
        _REFRESHED,
    ),
    order_by="(day, shop_id, from_state, to_state)",
    version="refreshed_at",
    partition_by="toYYYYMM(day)",
)

MARKOV_MODEL = Table(
    name="markov_model",
    comment=("The markov model per Asia/Shanghai day and shop (shop_id '' = the platform, every shop's journeys; "
             "for display only): the first-order absorbing chain of the journeys of the 28 days ending with the day, "
             "solved exactly; per stage its removal effect (the share of conversions lost without it), which splits "
             "the orders of that shop and day between the stages of their paths. Recomputed from markov_daily for "
             "every day a changed day weighs on."),
    columns=(
        Column("day", "Date", "the day D (Asia/Shanghai): the model counts the journeys of D-27 to D"),
        Column("shop_id", "String", "the shop ('' = the platform: every shop's journeys)"),
        Column("stage", "LowCardinality(String)", "short_video | live | clip | shelf"),
        Column("removal_effect", "Float64", "RE = (P - P without the stage) / P: the share of conversions lost if every "
                                            "transition into the stage went to null (0 when the window never "
                                            "visits it, or the model is undefined)"),
        Column("removal_effect_exact", "String", "the same as an exact fraction, e.g. 3/8"),
        Column("p_conv", "Float64", "P: the probability of reaching conv from start (0: the model is undefined)"),
        Column("p_conv_exact", "String", "P as an exact fraction, e.g. 4/7"),
        Column("defined", "UInt8", "1 when P > 0; 0: orders of this shop and day get linear credits instead"),
        Column("journeys", "UInt64", "journeys in the window (transitions from start)"),
        Column("conversions", "UInt64", "journeys that converted (transitions into conv)"),
        Column("from_start", "UInt64", "transitions start -> this stage in the window (journeys that began here)"),
        Column("to_short_video", "UInt64", "transitions from this stage to short_video in the window"),
        Column("to_live", "UInt64", "transitions from this stage to live in the window"),
        Column("to_clip", "UInt64", "transitions from this stage to clip in the window"),
        Column("to_shelf", "UInt64", "transitions from this stage to shelf in the window"),
        Column("to_conv", "UInt64", "transitions from this stage to conv (a paid order) in the window"),
        Column("to_null", "UInt64", "transitions from this stage to null (the journey ended without an order)"),
        _REFRESHED,
    ),
    order_by="(day, shop_id, stage)",
    version="refreshed_at",
    partition_by="toYYYYMM(day)",
)

# The markov rows of attributed_gmv: the same columns, keyed by (minute, event, touch) and versioned by
# the restatement time, so the latest restatement of an order's credits replaces the earlier ones.
MARKOV_CREDITS = Table(
    name="markov_credits",
    comment=("Credits of the markov model, one row per (order or refund event, touch of its path), restated as the "
             "model of the order's shop and day changes: while the day is open its own journeys move the model; "
             "once it is complete they settle. attributed_gmv shows these rows with model = 'markov'."),
    columns=tuple(replace(c, comment="markov (always)") if c.name == "model" else
                  replace(c, comment="processing time of the restatement (UTC): the latest wins")
                  if c.name == "attributed_at" else c for c in ATTRIBUTED_GMV.columns),
    order_by="(toStartOfMinute(event_time), event_id, touch_index)",
    version="attributed_at",
    partition_by="toYYYYMM(event_time)",
)

MARKOV_TABLES: tuple[Table, ...] = (MARKOV_DAILY, MARKOV_MODEL, MARKOV_CREDITS)
