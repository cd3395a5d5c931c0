"""The robust statistic of the seasonal baselines, shared by the alert rules (``gmv.alerts.baselines``)
and the dashboard's expected band: the median of the days' values and their spread, the median
absolute deviation scaled to a standard deviation, at least a share of the median. One odd day in
the history moves neither. Pure."""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

MAD_TO_SIGMA = 1.4826  # the MAD of normally distributed values, scaled to their standard deviation
TOLERANCE = 3.0  # the rules' default seasonal_tolerance, and the dashboard band's half-width in spreads
MIN_SPREAD_PCT = 25.0  # the rules' default seasonal_min_spread_pct

Direction = Literal["low", "high"]


@dataclass(frozen=True)
class Baseline:
    """The days' values (None: not comparable that day), their median and spread."""

    values: tuple[float | None, ...]
    median: float
    spread: float

    @property
    def seen(self) -> int:
        return sum(v is not None for v in self.values)


def baseline(values: Sequence[float | None], min_spread_pct: float = MIN_SPREAD_PCT) -> Baseline:
    """Median and spread (scaled MAD, at least ``min_spread_pct`` % of the median) of the days with a value."""
    seen = [float(v) for v in values if v is not None]
    if not seen:
        return Baseline(tuple(values), 0.0, 0.0)
    med = statistics.median(seen)
    mad = statistics.median(abs(v - med) for v in seen)
    return Baseline(tuple(values), med, max(MAD_TO_SIGMA * mad, min_spread_pct / 100 * abs(med)))


def unusual(value: float, b: Baseline, tolerance: float, direction: Direction) -> bool:
    """``value`` lies more than ``tolerance`` spreads below (``low``) or above (``high``) the median."""
    if direction == "low":
        return value < b.median - tolerance * b.spread
    return value > b.median + tolerance * b.spread
