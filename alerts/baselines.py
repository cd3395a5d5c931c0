"""Seasonal baselines for the business rules: what the same minutes looked like on the days before.

Live commerce runs on a daily schedule (rooms on air at the same hour, a flash sale on the minute
and GMV falling back after it, a warm-up with viewers and no orders yet, refunds approved in a
batch every morning), so a rule that only compares a window with the hour before it pages for each
of those routines every day. Here a rule's window is also judged against the same minutes of each
of the previous ``seasonal_days`` days (``seasonal_weekly``: the same weekday of the previous weeks):

- the history comes from the minute rollups only, read for exactly those shifted windows
  (``history_queries``: parameterised SQL, one range per day), never from the raw facts, so a replay
  judges against the same history and fires the same ``alert_id``s;
- it is judged robustly (``compare``): the median of the days and their median absolute deviation
  (scaled to a standard deviation), so one odd day in the history does not move the baseline; a
  value is unusual when it lies more than ``seasonal_tolerance`` such spreads beyond the median;
- a day counts only when the subject was comparable on it (a live room that was on air in those
  minutes, a shop with data); with fewer than ``seasonal_min_days`` such days the rule judges as it
  did before seasonal baselines, and says so.

The judging part is pure: a test gives it the days' values by hand.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Annotated

from pydantic import BaseModel, Field, model_validator

from gmv.schemas.seasonal import MIN_SPREAD_PCT, TOLERANCE, Baseline, Direction, baseline, unusual

DAY_MINUTES = 24 * 60
WEEK_MINUTES = 7 * DAY_MINUTES


class SeasonalParams(BaseModel):
    """The seasonal-baseline knobs of an event-time rule (a mixin of its parameters)."""

    seasonal: bool = Field(True, description="also judge the window against the same minutes of the days "
                                             "before: fire only when unusual against both")
    seasonal_days: Annotated[int, Field(ge=1, le=28)] = Field(
        7, description="how many previous days (seasonal_weekly: weeks) the baseline looks at")
    seasonal_weekly: bool = Field(False, description="the same weekday of the previous weeks instead of "
                                                     "the previous days")
    seasonal_tolerance: Annotated[float, Field(gt=0, le=100)] = Field(
        TOLERANCE, description="unusual: more than this many spreads (scaled MADs) beyond the days' median")
    seasonal_min_spread_pct: Annotated[float, Field(ge=0, le=100)] = Field(
        MIN_SPREAD_PCT, description="the spread is at least this share of the median: a week of days that happen to look "
                          "alike (a small MAD) must not make an ordinary minute unusual")
    seasonal_min_days: Annotated[int, Field(ge=1, le=28)] = Field(
        5, description="fewer comparable days than this: the rule judges without the baseline, and says so")

    @model_validator(mode="after")
    def _enough_days_to_look_at(self) -> SeasonalParams:
        if self.seasonal_min_days > self.seasonal_days:
            raise ValueError(f"seasonal_min_days ({self.seasonal_min_days}) cannot exceed seasonal_days "
                             f"({self.seasonal_days})")
        return self


def shifts(p: SeasonalParams) -> list[int]:
    """How many minutes back each day (or week) of the baseline is, the most recent first."""
    period = WEEK_MINUTES if p.seasonal_weekly else DAY_MINUTES
    return [d * period for d in range(1, p.seasonal_days + 1)]


# -- judging (pure; the statistic itself is gmv.schemas.seasonal's, which the dashboard draws too) ----
@dataclass(frozen=True)
class Verdict:
    """What the seasonal baseline says of one window: ``judged`` (enough days) and ``unusual``."""

    baseline: Baseline
    needed: int
    unusual: bool

    @property
    def judged(self) -> bool:
        return self.baseline.seen >= self.needed

    @property
    def quiet(self) -> bool:
        """The baseline holds this window for normal: the rule does not fire."""
        return self.judged and not self.unusual

    def describe(self, fmt: Callable[[float], str], weekly: bool = False) -> str:
        """The words for the message: the baseline and the days behind it, or why there is none."""
        b, unit = self.baseline, "weeks" if weekly else "days"
        if not self.judged:
            return f"no seasonal baseline yet: {b.seen} of {self.needed} {unit}"
        days = ", ".join("-" if v is None else fmt(v) for v in b.values)
        return (f"the same minutes on the previous {len(b.values)} {unit} (latest first): {days}; "
                f"median {fmt(b.median)}, spread {fmt(b.spread)}")


def compare(p: SeasonalParams, value: float, days: Sequence[float | None], direction: Direction) -> Verdict:
    """Today's ``value`` against the days' values (None: the subject was not comparable that day)."""
    b = baseline(days, p.seasonal_min_spread_pct)
    return Verdict(b, p.seasonal_min_days, b.seen > 0 and unusual(value, b, p.seasonal_tolerance, direction))


# -- the history, as read from the rollups ------------------------------------------------------
class Cumulative:
    """Prefix sums of a per-minute series: any window's sum in O(1) (a catch-up judges thousands
    of minutes, each over windows of up to an hour and more)."""

    def __init__(self, series: dict[int, int]) -> None:
        self.lo = min(series, default=0)
        hi = max(series, default=-1)
        self.acc = [0]
        for m in range(self.lo, hi + 1):
            self.acc.append(self.acc[-1] + series.get(m, 0))

    def sum(self, first: int, last: int) -> int:
        """Sum over minutes ``first``..``last`` (inclusive)."""
        n = len(self.acc) - 1
        a, b = max(first - self.lo, 0), min(last - self.lo + 1, n)
        return self.acc[b] - self.acc[a] if b > a else 0


@dataclass
class History:
    """Per subject (``account`` of a live room's anchor, or ``shop``) and shift (minutes back), its
    per-minute series moved forward by the shift: the same minutes as today's."""

    series: dict[tuple[str, str, int, str], dict[int, int]] = field(default_factory=dict)
    _sums: dict[tuple[str, str, int, str], Cumulative] = field(default_factory=dict, repr=False)

    def add(self, kind: str, key: str, shift: int, name: str, minute: int, value: int) -> None:
        s = self.series.setdefault((kind, key, shift, name), {})
        s[minute + shift] = s.get(minute + shift, 0) + value

    def total(self, kind: str, key: str, shift: int, name: str, first: int, last: int) -> int:
        """The sum of ``name`` over today's minutes ``first``..``last``, ``shift`` minutes back."""
        k = (kind, key, shift, name)
        if k not in self._sums:
            self._sums[k] = Cumulative(self.series.get(k, {}))
        return self._sums[k].sum(first, last)

    def has(self, kind: str, key: str, shift: int, first: int, last: int) -> bool:
        """The subject had any data in those minutes, ``shift`` minutes back."""
        return any(self.series.get((kind, key, shift, n)) and self.total(kind, key, shift, n, first, last)
                   for n in ("enters", "gmv_fen", "orders", "refund_fen"))


    def view(self, kind: str, key: str) -> Past:
        return Past(self, kind, key)


@dataclass(frozen=True)
class Past:
    """One subject's history: what a condition reads."""

    history: History
    kind: str
    key: str

    def total(self, shift: int, name: str, first: int, last: int) -> int:
        return self.history.total(self.kind, self.key, shift, name, first, last)


_RANGE = "(minute >= {{f{i}:DateTime('UTC')}} AND minute < {{t{i}:DateTime('UTC')}})"
_HISTORY_SQL = {
    "live_enters": "SELECT intDiv(toUInt32(minute), 60) AS m, account_id, sum(live_enters) "
                   "FROM {{db:Identifier}}.funnel_minute WHERE stage = 'live' AND account_id IN {{keys:Array(String)}} "
                   "AND ({ranges}) GROUP BY m, account_id",
    "live_paid": "SELECT intDiv(toUInt32(minute), 60) AS m, seller_id, sum(gmv_fen), sum(orders) "
                 "FROM {{db:Identifier}}.content_minute WHERE channel = 'live' AND seller_id IN {{keys:Array(String)}} "
                 "AND ({ranges}) GROUP BY m, seller_id",
    "shop": "SELECT intDiv(toUInt32(minute), 60) AS m, shop_id, sum(gmv_fen), sum(refund_fen) "
            "FROM {{db:Identifier}}.gmv_minute WHERE model = 'last_touch' AND shop_id IN {{keys:Array(String)}} "
            "AND ({ranges}) GROUP BY m, shop_id",
}


def _minute_start(m: int) -> datetime:
    return datetime.fromtimestamp(m * 60, tz=UTC)


def read_history(rows: Callable[[str, dict], Iterable[tuple]], first: int, end: int, reach: int | tuple[int, int],
                 shift_list: Iterable[int], accounts: Iterable[str], shops: Iterable[str]) -> History:
    """The history judging minutes ``first``..``end`` needs, for every shift, of these anchors' live
    rooms and these shops (``BusinessJudge.seasonal_subjects``: only where a rule's window is already
    unusual against the recent past): one query per rollup, one time range per shift, every value a
    parameter. ``reach``: how many minutes before a judged minute the windows reach, for the live rooms
    and for the shops (one number: both). ``rows(sql, params)`` runs a query (``db`` is the caller's)."""
    out = History()
    ranges = sorted(set(shift_list))
    if not ranges:
        return out
    live_reach, shop_reach = (reach, reach) if isinstance(reach, int) else reach
    where = " OR ".join(_RANGE.format(i=i) for i in range(len(ranges)))
    series = out.series
    for kind, reach_, keys, queries in (("account", live_reach, sorted(set(accounts)),
                                         (("live_enters", ("enters",)), ("live_paid", ("gmv_fen", "orders")))),
                                        ("shop", shop_reach, sorted(set(shops)),
                                         (("shop", ("gmv_fen", "refund_fen")),))):
        if not keys:
            continue
        params: dict[str, object] = {"keys": keys}
        spans = []
        for i, s in enumerate(ranges):
            lo, hi = first - reach_ - s, end - s
            params[f"f{i}"], params[f"t{i}"] = _minute_start(lo), _minute_start(hi + 1)
            spans.append((s, lo, hi))
        for query, names in queries:
            for m, key, *values in rows(_HISTORY_SQL[query].format(ranges=where), params):
                for s, lo, hi in spans:  # a minute in several ranges (a long catch-up chunk) counts in each
                    if lo <= m <= hi:
                        for name, v in zip(names, values, strict=True):
                            d = series.setdefault((kind, key, s, name), {})
                            d[m + s] = d.get(m + s, 0) + int(v)
    return out
