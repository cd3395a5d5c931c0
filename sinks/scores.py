"""Trust scores recomputed from the de-duplicated facts (SPEC §7), like the minute rollups.

Two steps, both after each flush the facts changed, before the journal is marked:

1. ``trust_daily``: per Asia/Shanghai day and subject, what that day's facts add (reviews
   and rating sums, paid orders, refunds, the quality-refunded orders as a uniqExact state,
   turns answered fast and within 3 min), recomputed for the days that got facts from
   those days' facts alone (``DAILY``; a subject that had a row that day is rewritten too,
   with zeros if its facts went: a turn that is a turn no more).
2. ``trust_scores``: for each day a changed day weighs on (it and the 29 after, up to the
   newest day of any fact; plus every day since the newest stored score, so a quiet day
   still gets its subjects' rows), every subject's window sums from ``trust_daily``
   (``INPUTS``, a read of subjects × 30 days, never of the facts), then the pure formulas
   of ``gmv.schemas.trust``.

Both tables replace rows (ReplacingMergeTree on ``refreshed_at``): a score always equals the
formula over the facts, however often and in whatever order it was recomputed.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from clickhouse_connect.driver.client import Client

from gmv.schemas.catalogue import TRUST_DAILY, TRUST_SCORES
from gmv.schemas.times import shanghai_midnight
from gmv.schemas.trust import WINDOW_DAYS, ScoreInputs, score

EPOCH_DAY = date(1970, 1, 1)

# Each source as (day, subject_kind, subject_id, its contribution); subjects '' (a shelf sale's
# seller) are nobody's. Paid orders are the conversion rows of last_touch: one per order.
_SUBJECTS = "[('sku', sku_id), ('account', seller_id), ('shop', shop_id)]"
_SPAN = "{{lo:DateTime64(3, 'UTC')}} AND {col} < {{hi:DateTime64(3, 'UTC')}}"
_DAILY_FROM = f"""
FROM (
    SELECT toDate(event_time, 'Asia/Shanghai') AS fact_day, who.1 AS kind, who.2 AS subject,
           toUInt64(1) AS review, toUInt64(product_rating) AS product, toUInt64(service_rating) AS service,
           toUInt64(logistics_rating) AS logistics, toUInt64(0) AS paid, toUInt64(0) AS refund, '' AS order_id,
           toUInt8(0) AS quality, toUInt64(0) AS turn, toUInt64(0) AS fast, toUInt64(0) AS within_3min
    FROM {{db:Identifier}}.reviews ARRAY JOIN {_SUBJECTS} AS who
    WHERE event_time >= {_SPAN.format(col="event_time")}
    UNION ALL
    SELECT toDate(event_time, 'Asia/Shanghai'), who.1, who.2, 0, 0, 0, 0, 1, 0, '', 0, 0, 0, 0
    FROM {{db:Identifier}}.attributed_gmv ARRAY JOIN {_SUBJECTS} AS who
    WHERE kind = 'paid' AND model = 'last_touch' AND is_conversion = 1 AND event_time >= {_SPAN.format(col="event_time")}
    UNION ALL
    SELECT toDate(event_time, 'Asia/Shanghai'), who.1, who.2, 0, 0, 0, 0, 0, 1, order_id, is_quality, 0, 0, 0
    FROM {{db:Identifier}}.refunds ARRAY JOIN {_SUBJECTS} AS who
    WHERE event_time >= {_SPAN.format(col="event_time")}
    UNION ALL
    SELECT toDate(start_time, 'Asia/Shanghai'), 'shop', shop_id, 0, 0, 0, 0, 0, 0, '', 0, 1, fast, within_3min
    FROM {{db:Identifier}}.cs_turns
    WHERE start_time >= {_SPAN.format(col="start_time")}
    UNION ALL
    SELECT day, subject_kind, subject_id, 0, 0, 0, 0, 0, 0, '', 0, 0, 0, 0
    FROM {{db:Identifier}}.trust_daily WHERE day IN {{days:Array(Date)}}
)
WHERE fact_day IN {{days:Array(Date)}} AND subject != ''
GROUP BY fact_day, kind, subject
"""
DAILY = TRUST_DAILY.insert_select("{db:Identifier}", {
    "day": "fact_day", "subject_kind": "kind", "subject_id": "subject", "reviews": "sum(review)",
    "product_rating_sum": "sum(product)", "service_rating_sum": "sum(service)", "logistics_rating_sum": "sum(logistics)",
    "paid_orders": "sum(paid)", "refunds": "sum(refund)", "quality_refunded": "uniqExactStateIf(order_id, quality = 1)",
    "turns": "sum(turn)", "fast_turns": "sum(fast)", "within_3min_turns": "sum(within_3min)", "refreshed_at": "now64(6)",
}, _DAILY_FROM)
INPUTS = f"""
SELECT day, subject_kind, subject_id,
       sum(reviews), sum(product_rating_sum), sum(service_rating_sum), sum(logistics_rating_sum), sum(paid_orders),
       uniqExactMerge(quality_refunded), sum(turns), sum(fast_turns), sum(within_3min_turns), sum(refunds)
FROM (SELECT day AS fact_day, * EXCEPT day FROM {{db:Identifier}}.trust_daily
      WHERE day >= {{first:Date}} - {WINDOW_DAYS - 1} AND day <= {{last:Date}})
ARRAY JOIN arrayFilter(d -> d >= fact_day AND d <= fact_day + {WINDOW_DAYS - 1}, {{days:Array(Date)}}) AS day
GROUP BY day, subject_kind, subject_id
HAVING sum(reviews) + sum(paid_orders) + sum(refunds) + sum(turns) > 0
"""
NEWEST_STORED = "SELECT max(day) FROM {db:Identifier}.trust_scores_store"


@dataclass
class ScoreDays:
    """The Asia/Shanghai days whose facts changed since the last refresh."""

    facts: set[date] = field(default_factory=set)  # days of new facts (paid orders, refunds, reviews, turns)
    # days of buyer messages that stopped starting a turn (a late message came before them): their days'
    # scores change, but they are no fact of their own (no day is created for them)
    stale: set[date] = field(default_factory=set)

    def __bool__(self) -> bool:
        return bool(self.facts or self.stale)

    def update(self, other: ScoreDays) -> None:
        self.facts |= other.facts
        self.stale |= other.stale


def days_to_refresh(fact_days: Iterable[date], newest_stored: date | None, stale_days: Iterable[date] = ()
                    ) -> list[date]:
    """The days whose scores the new facts change, up to the newest day there is, and the days
    between the newest stored score and it."""
    fact_days = set(fact_days)
    stale_days = set(stale_days)
    if not fact_days and not stale_days:
        return []
    newest = max(fact_days | ({newest_stored} if newest_stored else set()) | {date.min})
    days = {d + timedelta(days=k) for d in fact_days | stale_days for k in range(WINDOW_DAYS)}
    if newest_stored is not None:
        days |= {newest_stored + timedelta(days=k) for k in range(1, (newest - newest_stored).days + 1)}
    return sorted(d for d in days if d <= newest)


ScoreRow = TRUST_SCORES.row_type("ScoreRow")


def score_row(day: date, kind: str, subject: str, inputs: ScoreInputs, refunds: int, refreshed_at: datetime) -> tuple:
    """A ``trust_scores`` row, its columns by name."""
    s = score(kind, inputs)
    return ScoreRow(
        day=day, subject_kind=kind, subject_id=subject, score=s.score, n=inputs.reviews, reviews=inputs.reviews,
        product_rating_sum=inputs.product_rating_sum, service_rating_sum=inputs.service_rating_sum,
        logistics_rating_sum=inputs.logistics_rating_sum, rating_sum=s.rating_sum, paid_orders=inputs.paid_orders,
        refunds=refunds, quality_refunded_orders=inputs.quality_refunded_orders, qrr=s.qrr, turns=inputs.turns,
        fast_turns=inputs.fast_turns, within_3min_turns=inputs.within_3min_turns, fast=s.fast,
        within_3min=s.within_3min, product_part=s.product_part, service_part=s.service_part,
        logistics_part=s.logistics_part, refreshed_at=refreshed_at)


def refresh_scores(client: Client, db: str, changed: ScoreDays) -> int:
    """Recompute the daily inputs of the changed days, then the scores they weigh on; returns the
    score rows written."""
    fact_days = sorted(changed.facts | changed.stale)
    if not fact_days:
        return 0
    client.command(DAILY, parameters={"db": db, "days": fact_days, "lo": shanghai_midnight(fact_days[0]),
                                      "hi": shanghai_midnight(fact_days[-1] + timedelta(days=1))})
    newest = client.query(NEWEST_STORED, parameters={"db": db}).result_rows[0][0]
    days = days_to_refresh(changed.facts, newest if newest and newest > EPOCH_DAY else None, changed.stale)
    if not days:
        return 0
    params: dict[str, Any] = {"db": db, "days": days, "first": days[0], "last": days[-1]}
    now = datetime.now(UTC)
    rows = [score_row(day, kind, subject, ScoreInputs(*(int(v) for v in values[:-1])), int(values[-1]), now)
            for day, kind, subject, *values in client.query(INPUTS, parameters=params).result_rows]
    if rows:
        client.insert(TRUST_SCORES.store, [tuple(r) for r in rows], database=db, column_names=TRUST_SCORES.column_names,
                      column_type_names=TRUST_SCORES.column_types)
    return len(rows)
