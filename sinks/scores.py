"""Trust scores recomputed from the de-duplicated facts (SPEC §7), like the minute rollups.

A fact (a paid order, an applied refund, a review, a turn) of Asia/Shanghai day d
weighs on the scores of days d .. d+29. After each flush the worker recomputes those
days that exist — up to the newest day of any fact, so no score is written for a day
the stream has not reached — plus every day between the newest stored score and that
day (a quiet day still gets its subjects' rows). One query reads every subject's
window inputs for those days (``INPUTS``); the formulas are the pure ones of
``gmv.schemas.trust``; the rows replace the earlier ones (ReplacingMergeTree on
``refreshed_at``), so a score always equals the formula over the facts.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from clickhouse_connect.driver.client import Client

from gmv.schemas.trust import WINDOW_DAYS, ScoreInputs, score
from gmv.sinks.schema import TRUST_SCORES

SHANGHAI = ZoneInfo("Asia/Shanghai")
EPOCH_DAY = date(1970, 1, 1)

# Each source as (day, subject_kind, subject_id, its contribution); subjects '' (a shelf sale's
# seller) are nobody's. Paid orders are the conversion rows of last_touch: one per order.
_SUBJECTS = "[('sku', sku_id), ('account', seller_id), ('shop', shop_id)]"
INPUTS = f"""
SELECT day, subject_kind, subject_id,
       sum(review) AS reviews, sum(product) AS product_rating_sum, sum(service) AS service_rating_sum,
       sum(logistics) AS logistics_rating_sum, sum(paid) AS paid_orders,
       uniqExactIf(order_id, quality = 1) AS quality_refunded_orders,
       sum(turn) AS turns, sum(fast) AS fast_turns, sum(within_3min) AS within_3min_turns
FROM (
    SELECT toDate(event_time, 'Asia/Shanghai') AS fact_day, subject.1 AS subject_kind, subject.2 AS subject_id,
           toUInt64(1) AS review, toUInt64(product_rating) AS product, toUInt64(service_rating) AS service,
           toUInt64(logistics_rating) AS logistics, toUInt64(0) AS paid, '' AS order_id, toUInt8(0) AS quality,
           toUInt64(0) AS turn, toUInt64(0) AS fast, toUInt64(0) AS within_3min
    FROM {{db:Identifier}}.reviews ARRAY JOIN {_SUBJECTS} AS subject
    WHERE event_time >= {{lo:DateTime64(3, 'UTC')}} AND event_time < {{hi:DateTime64(3, 'UTC')}}
    UNION ALL
    SELECT toDate(event_time, 'Asia/Shanghai'), subject.1, subject.2, 0, 0, 0, 0, 1, '', 0, 0, 0, 0
    FROM {{db:Identifier}}.attributed_gmv ARRAY JOIN {_SUBJECTS} AS subject
    WHERE kind = 'paid' AND model = 'last_touch' AND is_conversion = 1
      AND event_time >= {{lo:DateTime64(3, 'UTC')}} AND event_time < {{hi:DateTime64(3, 'UTC')}}
    UNION ALL
    SELECT toDate(event_time, 'Asia/Shanghai'), subject.1, subject.2, 0, 0, 0, 0, 0, order_id, 1, 0, 0, 0
    FROM {{db:Identifier}}.refunds ARRAY JOIN {_SUBJECTS} AS subject
    WHERE is_quality = 1 AND event_time >= {{lo:DateTime64(3, 'UTC')}} AND event_time < {{hi:DateTime64(3, 'UTC')}}
    UNION ALL
    SELECT toDate(start_time, 'Asia/Shanghai'), 'shop', shop_id, 0, 0, 0, 0, 0, '', 0, 1, fast, within_3min
    FROM {{db:Identifier}}.cs_turns
    WHERE start_time >= {{lo:DateTime64(3, 'UTC')}} AND start_time < {{hi:DateTime64(3, 'UTC')}}
)
ARRAY JOIN arrayFilter(d -> d >= fact_day AND d <= fact_day + {WINDOW_DAYS - 1}, {{days:Array(Date)}}) AS day
WHERE subject_id != ''
GROUP BY day, subject_kind, subject_id
"""
NEWEST_STORED = "SELECT max(day) FROM {db:Identifier}.trust_scores_store"
_INPUT_FIELDS = ("reviews", "product_rating_sum", "service_rating_sum", "logistics_rating_sum", "paid_orders",
                 "quality_refunded_orders", "turns", "fast_turns", "within_3min_turns")


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


def shanghai_day(when: datetime) -> date:
    return when.astimezone(SHANGHAI).date()


def shanghai_midnight(day: date) -> datetime:
    """The start of an Asia/Shanghai day, in UTC."""
    return datetime.combine(day, time(), SHANGHAI).astimezone(UTC)


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


def score_row(day: date, kind: str, subject: str, inputs: ScoreInputs, refreshed_at: datetime) -> tuple:
    """A ``trust_scores`` row in column order."""
    s = score(kind, inputs)
    return (day, kind, subject, s.score, inputs.reviews, inputs.product_rating_sum, inputs.service_rating_sum,
            inputs.logistics_rating_sum, s.rating_sum, inputs.paid_orders, inputs.quality_refunded_orders, s.qrr,
            inputs.turns, inputs.fast_turns, inputs.within_3min_turns, s.fast, s.within_3min, s.product_part,
            s.service_part, s.logistics_part, refreshed_at)


def refresh_scores(client: Client, db: str, changed: ScoreDays) -> int:
    """Recompute the scores the changed facts weigh on; returns the rows written."""
    newest = client.query(NEWEST_STORED, parameters={"db": db}).result_rows[0][0]
    days = days_to_refresh(changed.facts, newest if newest and newest > EPOCH_DAY else None, changed.stale)
    if not days:
        return 0
    params: dict[str, Any] = {"db": db, "days": days,
                              "lo": shanghai_midnight(days[0] - timedelta(days=WINDOW_DAYS - 1)),
                              "hi": shanghai_midnight(days[-1] + timedelta(days=1))}
    result = client.query(INPUTS, parameters=params)
    now = datetime.now(UTC)
    rows = [score_row(r[0], r[1], r[2], ScoreInputs(*(int(v) for v in r[3:])), now) for r in result.result_rows]
    assert [c for c in result.column_names[3:]] == list(_INPUT_FIELDS)
    if rows:
        client.insert(TRUST_SCORES.store, rows, database=db, column_names=TRUST_SCORES.column_names,
                      column_type_names=TRUST_SCORES.column_types)
    return len(rows)
