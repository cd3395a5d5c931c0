"""The markov model recomputed from the de-duplicated facts, and the ``markov`` credits restated from it.

Three steps, run with the slow refresh for the Asia/Shanghai days whose facts changed:

1. ``markov_daily``: the transitions of each changed day's journeys, per shop, from the facts
   (engaged touchpoints with a shop in ``funnel_events``, paid orders in ``attributed_gmv``), in
   SQL (``DAILY``; the rules are ``gmv.streams.core.markov.journey_sequence``'s, and a test checks
   the two agree). A transition a late fact removed is rewritten as 0.
2. ``markov_model``: for every day a changed day weighs on (it and the 27 after, up to the newest day
   of any journey), every shop's model and the platform's, solved exactly in Python
   (``gmv.streams.core.markov.solve``) from 28 days of ``markov_daily``; written by ``store`` last,
   after the credits' rollups and levels (a refresh cut short finds the old models and restates).
3. ``markov_credits``: every order (and refund) of a shop and day whose model moved, and every one
   stored since the last refresh, split again by its shop and day's model: its path's stages come
   from its ``linear`` rows, the split from ``markov_credits``'s rounding; the rows go in by an
   INSERT…SELECT joining the new credits to those rows, so nothing else of a row moves.

It returns the minutes of the credits it wrote: their ``markov`` rollups are recomputed next.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable
from datetime import UTC, date, datetime, timedelta
from fractions import Fraction
from typing import Any

from clickhouse_connect.driver.client import Client

from gmv.schemas.catalogue.markov import MARKOV_CREDITS, MARKOV_DAILY, MARKOV_MODEL
from gmv.schemas.outputs import STAGES
from gmv.schemas.times import shanghai_midnight
from gmv.streams.core.attribution import split_fen_int
from gmv.streams.core.markov import (
    WINDOW_DAYS,
    MarkovModel,
    integer_markov_weights,
    solve,
    window_counts,
)

DB = "{db:Identifier}"
_SPAN = "event_time >= {lo:DateTime64(3, 'UTC')} AND event_time < {hi:DateTime64(3, 'UTC')}"

# One journey per (user, shop, day): its facts sorted by (time, event_id); the touches up to its first
# order, repeats collapsed; then the order's channel unless it repeats the last stage, and conv; or null.
_JOURNEYS = f"""
FROM (
    SELECT day, shop_id,
           arraySort(x -> (x.1, x.2), groupArrayIf((t, event_id, stage), is_order = 0)) AS touches,
           arraySort(x -> (x.1, x.2), groupArrayIf((t, event_id, stage), is_order = 1)) AS orders,
           arrayMap(x -> x.3, arrayFilter(x -> length(orders) = 0 OR x.1 <= orders[1].1, touches)) AS stages,
           arrayFilter((s, i) -> i = 1 OR s != stages[i - 1], stages, arrayEnumerate(stages)) AS collapsed,
           if(length(orders) = 0, arrayConcat(collapsed, ['null']),
              arrayConcat(collapsed, if(length(collapsed) > 0 AND collapsed[-1] = orders[1].3, [], [orders[1].3]),
                          ['conv'])) AS sequence,
           arrayConcat(['start'], sequence) AS states
    FROM (
        SELECT user_id, shop_id, toDate(event_time, 'Asia/Shanghai') AS day, event_time AS t, event_id, stage,
               0 AS is_order
        FROM {DB}.funnel_events WHERE engaged = 1 AND shop_id != '' AND user_id != '' AND {_SPAN}
        UNION ALL
        SELECT user_id, shop_id, toDate(event_time, 'Asia/Shanghai'), event_time, event_id, channel, 1
        FROM {DB}.attributed_gmv
        WHERE kind = 'paid' AND model = 'last_touch' AND is_conversion = 1 AND shop_id != '' AND {_SPAN}
    )
    WHERE day IN {{days:Array(Date)}}
    GROUP BY user_id, shop_id, day
)
ARRAY JOIN arrayMap(i -> (states[i], states[i + 1]), range(1, length(states))) AS transition
"""
DAILY = MARKOV_DAILY.insert_select(DB, {
    "day": "day", "shop_id": "shop_id", "from_state": "from_state", "to_state": "to_state",
    "transitions": "sum(n)", "refreshed_at": "now64(6)",
}, f"""FROM (
    SELECT day, shop_id, transition.1 AS from_state, transition.2 AS to_state, toUInt64(1) AS n {_JOURNEYS}
    UNION ALL
    SELECT day, shop_id, from_state, to_state, toUInt64(0) FROM {DB}.markov_daily WHERE day IN {{days:Array(Date)}}
) GROUP BY day, shop_id, from_state, to_state""")

COUNTS = (f"SELECT day, shop_id, from_state, to_state, transitions FROM {DB}.markov_daily "
          "WHERE day >= {first:Date} AND day <= {last:Date} AND transitions > 0")
NEWEST = f"SELECT max(day) FROM {DB}.markov_daily WHERE transitions > 0"
STORED = (f"SELECT day, shop_id, stage, removal_effect_exact, p_conv_exact FROM {DB}.markov_model "
          "WHERE day IN {days:Array(Date)}")
# An event to restate: its kind, shop and order day, its path's stages (from its linear rows) and amount.
PATHS = f"""
SELECT event_id, any(kind), any(shop_id), toDate(any(order_time), 'Asia/Shanghai') AS order_day,
       arrayMap(x -> x.2, arraySort(groupArray((touch_index, stage)))), toInt64(sum(credit_fen)),
       toStartOfMinute(any(event_time))
FROM {DB}.attributed_gmv
WHERE model = 'linear' AND event_time >= {{lo:DateTime64(3, 'UTC')}}
  AND ((shop_id, toDate(order_time, 'Asia/Shanghai')) IN {{pairs:Array(Tuple(String, Date))}}
       OR toStartOfMinute(event_time) IN {{minutes:Array(DateTime('UTC'))}})
GROUP BY event_id
"""
RESTATE = MARKOV_CREDITS.insert_select(DB, {
    **{c: f"a.{c}" for c in MARKOV_CREDITS.column_names},
    "model": "'markov'", "credit_fen": "c.credit", "attributed_at": "now64(3)",
}, f"""FROM {DB}.attributed_gmv AS a
INNER JOIN (SELECT x.1 AS event_id, x.2 AS touch_index, x.3 AS credit
            FROM (SELECT arrayJoin({{credits:Array(Tuple(String, UInt8, Int64))}}) AS x)) AS c
    ON a.event_id = c.event_id AND a.touch_index = c.touch_index
WHERE a.model = 'linear' AND a.event_time >= {{lo:DateTime64(3, 'UTC')}}
  AND toStartOfMinute(a.event_time) IN {{minutes:Array(DateTime('UTC'))}}""")
# Credits per restating statement: the parameter stays a few MB. Each statement names the minutes of its
# events too, the first part of the facts' sorting key, so it reads their granules only: with ``lo``
# alone it read every linear row since the earliest restated day (FINAL), once per statement, and a
# refresh that restated old days (rows re-emitted after a rebalance) held the soak's ingest for minutes.
CHUNK = 20_000


def models(counts: dict[tuple[str, date], Counter], days: Iterable[date]) -> dict[tuple[str, date], MarkovModel]:
    """The model of every shop with a journey in each day's window, and the platform's (shop '')."""
    out: dict[tuple[str, date], MarkovModel] = {}
    for day in days:
        first = day - timedelta(days=WINDOW_DAYS - 1)
        per_shop: dict[str, Counter] = {}
        for (shop, d), c in counts.items():
            if first <= d <= day:
                per_shop.setdefault(shop, Counter()).update(c)
        platform: Counter = Counter()
        for shop, c in per_shop.items():
            out[(shop, day)] = solve(c)
            platform.update(c)
        if platform:
            out[("", day)] = solve(platform)
    return out


ModelRow = MARKOV_MODEL.row_type("ModelRow")


def model_rows(key: tuple[str, date], m: MarkovModel, now: datetime) -> list[tuple]:
    shop, day = key
    rows = []
    for stage in STAGES:
        re = m.removal_effects.get(stage, Fraction(0))
        out = {b: n for (a, b), n in m.counts.items() if a == stage}
        rows.append(ModelRow(
            day=day, shop_id=shop, stage=stage, removal_effect=float(re), removal_effect_exact=_text(re),
            p_conv=float(m.p_conv), p_conv_exact=_text(m.p_conv), defined=int(m.defined), journeys=m.journeys,
            conversions=m.conversions, from_start=m.counts.get(("start", stage), 0),
            to_short_video=out.get("short_video", 0), to_live=out.get("live", 0), to_clip=out.get("clip", 0),
            to_shelf=out.get("shelf", 0), to_conv=out.get("conv", 0), to_null=out.get("null", 0), refreshed_at=now))
    return rows


def _text(f: Fraction) -> str:
    return f"{f.numerator}/{f.denominator}" if f.denominator != 1 else str(f.numerator)


class MarkovRefresh:
    """One slow refresh's markov work on one ClickHouse client (its caller holds the writer lock)."""

    def __init__(self, client: Client, db: str) -> None:
        self.client = client
        self.db = db
        self.unstored: dict[tuple[str, date], MarkovModel] = {}

    def _rows(self, sql: str, params: dict[str, Any]) -> list[tuple]:
        return self.client.query(sql, parameters={"db": self.db, **params}).result_rows

    def run(self, changed_days: set[date], new_minutes: set[datetime]) -> set[datetime]:
        """Steps 1-3 for the days whose facts changed and the credit minutes stored since the last run;
        the minutes of the markov credits written."""
        if not changed_days and not new_minutes:
            return set()
        days = sorted(changed_days)
        if days:
            self.client.command(DAILY, parameters={"db": self.db, "days": days, "lo": shanghai_midnight(days[0]),
                                                   "hi": shanghai_midnight(days[-1] + timedelta(days=1))})
        newest = self._rows(NEWEST, {})[0][0]
        if not newest or newest.year < 2000:
            return set()
        weighed = [d for d in sorted({d + timedelta(days=k) for d in days for k in range(WINDOW_DAYS)}) if d <= newest]
        new_models = self._models(weighed)
        moved = self._moved(weighed, new_models)
        self.unstored = new_models  # for ``store``, once the credits' rollups and levels are refreshed
        return self._restate(new_models, moved, new_minutes)

    def store(self) -> None:
        """Write the models ``run`` computed. Last: the minutes of the credits it restated are known only
        to this refresh, so one cut short before their rollups and levels are refreshed (a crash, a
        retry, a stop) must find the old models and restate them again."""
        self._store_models(self.unstored)
        self.unstored = {}

    def _models(self, days: list[date]) -> dict[tuple[str, date], MarkovModel]:
        if not days:
            return {}
        return models(self._daily(days), days)

    def _daily(self, days: list[date]) -> dict[tuple[str, date], Counter]:
        """``markov_daily``'s transitions per (shop, day), over the windows of ``days`` (sorted)."""
        daily: dict[tuple[str, date], Counter] = {}
        for day, shop, a, b, n in self._rows(COUNTS, {"first": days[0] - timedelta(days=WINDOW_DAYS - 1),
                                                     "last": days[-1]}):
            daily.setdefault((shop, day), Counter())[(a, b)] += int(n)
        return daily

    def _moved(self, days: list[date], new: dict[tuple[str, date], MarkovModel]) -> set[tuple[str, date]]:
        """The (shop, day) pairs whose removal effects or P moved from the stored models (orders to restate)."""
        if not days:
            return set()
        old: dict[tuple[str, date], dict[str, str]] = {}
        for day, shop, stage, re, p in self._rows(STORED, {"days": days}):
            old.setdefault((shop, day), {"p": p})[stage] = re
        moved = set()
        for key, m in new.items():
            now_values = {"p": _text(m.p_conv), **{s: _text(m.removal_effects.get(s, Fraction(0))) for s in STAGES}}
            if key[0] and old.get(key) != now_values:
                moved.add(key)
        return moved

    def _store_models(self, new: dict[tuple[str, date], MarkovModel]) -> None:
        now = datetime.now(UTC)
        rows = [tuple(r) for key, m in sorted(new.items()) for r in model_rows(key, m, now)]
        if rows:
            self.client.insert(MARKOV_MODEL.store, rows, database=self.db, column_names=MARKOV_MODEL.column_names,
                               column_type_names=MARKOV_MODEL.column_types)

    def _restate(self, new: dict[tuple[str, date], MarkovModel], moved: set[tuple[str, date]],
                 new_minutes: set[datetime]) -> set[datetime]:
        """The markov credits of every order (and refund) of a moved (shop, day), and of every event in
        the new minutes, from its linear rows' path and its shop and day's model."""
        if not moved and not new_minutes:
            return set()
        starts = [shanghai_midnight(day) for _, day in moved] + list(new_minutes)
        lo = min(starts)
        events = self._rows(PATHS, {"lo": lo, "pairs": sorted(moved), "minutes": sorted(new_minutes)})
        known: dict[tuple[str, date], MarkovModel | None] = dict(new)
        known.update(self._models_of({(shop, day) for _, _, shop, day, *_ in events} - known.keys()))
        weights_of: dict[tuple[str, date, tuple[str, ...]], list[int] | None] = {}
        credited: list[tuple[datetime, list[tuple[str, int, int]]]] = []  # per event: its minute, its credits
        for event_id, kind, shop, day, stages, amount, minute in events:
            key = (shop, day, tuple(stages))
            if key not in weights_of:
                weights_of[key] = integer_markov_weights(stages, known[(shop, day)])
            weights = weights_of[key] or [1] * len(stages)  # undefined model, or no removal effect: linear
            split = split_fen_int(abs(int(amount)), weights)
            sign = -1 if kind == "refund" else 1  # a refund is -r split with its paid order's weights
            credited.append((minute.replace(tzinfo=UTC) if minute.tzinfo is None else minute,
                             [(event_id, i, sign * c) for i, c in enumerate(split)]))
        credited.sort(key=lambda e: e[0])  # a statement's events in few minutes
        credits: list[tuple[str, int, int]] = []
        chunk_minutes: set[datetime] = set()
        for n, (minute, rows) in enumerate(credited, 1):
            credits += rows
            chunk_minutes.add(minute)
            if len(credits) >= CHUNK or n == len(credited):
                self.client.command(RESTATE, parameters={"db": self.db, "lo": lo, "credits": credits,
                                                         "minutes": sorted(chunk_minutes)})
                credits, chunk_minutes = [], set()
        return {minute for minute, _ in credited}

    def _models_of(self, pairs: set[tuple[str, date]]) -> dict[tuple[str, date], MarkovModel | None]:
        """The models of (shop, day) pairs not recomputed in this run (orders of a day whose journeys did
        not change: a refund's order of an earlier day), from one read of their days' windows. (A read per
        pair, each returning every shop's window, made a refresh quadratic in shops: it held the soak's
        ingest for 100 s at 2.4M events.)"""
        if not pairs:
            return {}
        daily = self._daily(sorted({d for _, d in pairs}))
        out: dict[tuple[str, date], MarkovModel | None] = {}
        for shop, day in pairs:
            # A shop's own window; no journey has an empty shop, so none has a model (as before, when
            # each pair read its rows: not the platform's window, which window_counts gives for "").
            counts = window_counts(daily, shop, day) if shop else Counter()
            out[(shop, day)] = solve(counts) if counts else None
        return out


__all__ = ["DAILY", "MarkovRefresh", "model_rows", "models"]


NEEDS_BACKFILL = (f"SELECT (SELECT count() FROM {DB}.markov_credits_store) = 0 "
                  f"AND (SELECT count() FROM {DB}.attributed_gmv_store) > 0")
FACT_DAYS = (f"SELECT min(d), max(d) FROM (SELECT toDate(event_time, 'Asia/Shanghai') AS d FROM {DB}.attributed_gmv_store "
             f"UNION ALL SELECT toDate(event_time, 'Asia/Shanghai') FROM {DB}.funnel_events_store WHERE engaged = 1)")
BACKFILL_DAYS = 7  # days per step: each step's restatement reads and writes one week of credits


def backfill(client: Client, db: str, say: Callable[[str], None]) -> int:
    """An install from before the markov model (migration 8) has facts and no markov credits: compute the
    model and the credits of its whole history once, a week at a time, oldest first, saying how far it
    got; then their rollups. Returns the days done (0: nothing to do)."""
    from gmv.sinks.levels import level_statements
    from gmv.sinks.rollups import markov_statements

    if not client.query(NEEDS_BACKFILL, parameters={"db": db}).result_rows[0][0]:
        return 0
    first, last = client.query(FACT_DAYS, parameters={"db": db}).result_rows[0]
    days = [first + timedelta(days=k) for k in range((last - first).days + 1)]
    say(f"markov model: computing {len(days)} days of history once (an install from before the model), a week at "
        "a time")
    refresh = MarkovRefresh(client, db)
    minutes: set[datetime] = set()
    for i in range(0, len(days), BACKFILL_DAYS):
        chunk = days[i:i + BACKFILL_DAYS]
        minutes |= refresh.run(set(chunk), set())
        refresh.store()  # the next week's restatement compares its models with these
        say(f"markov model: {chunk[-1]} done ({min(i + BACKFILL_DAYS, len(days))} of {len(days)} days)")
    for sql, params in [*markov_statements(db, minutes), *level_statements(db, set(), set(), minutes)]:
        client.command(sql, parameters=params)
    say("markov model: history done; from now on it is restated as facts arrive")
    return len(days)
