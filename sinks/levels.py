"""Content-, SKU- and path-level rollups at three grains, each recomputed from the one below.

The dashboard and the cookbook views read these instead of the facts, so a refresh costs the
same at 10M facts as at 10k. Each family (``gmv.schemas.catalogue.rollups``: its keys and measures)
has a minute table recomputed from the de-duplicated facts (``attributed_gmv``) for the minutes
batches touched; an hour table recomputed from the minute table for the hours those minutes fall
in; and a day table (Asia/Shanghai days) recomputed from the hour table. They are refreshed with
the trust scores (the slow refresh: every 5 s while caught up, 15 s under a backlog, and at the
end of a run), not after every batch like the minute rollups the per-minute panels read: nine
statements per batch cost the bench ~15% of its throughput. Every table is a ReplacingMergeTree on
``refreshed_at`` behind a FINAL view, keyed by its grain and the family's keys, so each row always
equals an aggregate of the facts: a replay or a crash rewrites rows, it never adds to them.

Every statement names the columns it fills, each with its expression (``Table.insert_select``).

Families (measures: ``gmv_fen``, ``refund_fen`` (positive), ``net_fen``, ``orders``,
``refunds``, ``buyers`` as a uniq state):

- ``content_credit``: GMV *credited* under each model to each touch (stage, account, content);
  orders and buyers are counted on the conversion touch, once per order and model.
- ``sku_gmv``: whole amounts per SKU, shop, seller, the channel paid in and the conversion's
  traffic (one row per order: the last-touch conversion row carries the whole amount).
- ``shop_gmv``: the same per shop only: the dashboard's KPIs merge a buyer state per shop and day.
- ``path_gmv``: whole amounts per path (its stages), shop, seller, channel and the sorted
  distinct accounts of the path's touches before the conversion (``touch_accounts``): what
  川流 (distributor content assisting self-broadcast sales) is measured by.
- ``gmv`` and ``funnel``: the hours and days of the minute rollups ``gmv_minute`` and
  ``funnel_minute`` (refreshed after every batch by ``gmv.sinks.rollups``).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, datetime, timedelta

from gmv.schemas.catalogue import FAMILIES, Family
from gmv.schemas.catalogue.rollups import (
    CONTENT_CREDIT,
    FUNNEL,
    GMV,
    GRAINS,
    PATH_GMV,
    SHOP_GMV,
    SKU_GMV,
)

DB = "{db:Identifier}"
_MINUTES = "toStartOfMinute(event_time) IN {minutes:Array(DateTime('UTC'))}"
_NOW = "now64(6)"


def _measures_from_credits(counted: str) -> dict[str, str]:
    """The measures of credit rows (``counted``: which rows count as orders, buyers and refunds)."""
    return {"gmv_fen": "sumIf(credit_fen, kind = 'paid')", "refund_fen": "-sumIf(credit_fen, kind = 'refund')",
            "net_fen": "sum(credit_fen)", "orders": f"countIf(kind = 'paid' AND {counted})",
            "refunds": f"countIf(kind = 'refund' AND {counted})",
            "buyers": f"uniqStateIf(user_id, kind = 'paid' AND {counted})", "refreshed_at": _NOW}


# Each family's minute rows from the facts: (column -> expression, the rest of the statement).
_FROM_FACTS: dict[str, tuple[dict[str, str], str]] = {
    CONTENT_CREDIT.name: (
        {"minute": "toStartOfMinute(event_time)", "model": "model", "stage": "stage",
         "account_id": "touch_account_id", "content_id": "touch_content_id", "is_self": "is_self",
         "shop_id": "shop_id", **_measures_from_credits("is_conversion = 1")},
        f"FROM {DB}.attributed_gmv WHERE {_MINUTES} GROUP BY minute, model, stage, touch_account_id, "
        "touch_content_id, is_self, shop_id"),
    SKU_GMV.name: (
        {"minute": "toStartOfMinute(event_time)", "shop_id": "shop_id", "sku_id": "sku_id", "seller_id": "seller_id",
         "channel": "channel", "traffic": "traffic", **_measures_from_credits("1")},
        f"FROM {DB}.attributed_gmv WHERE {_MINUTES} AND model = 'last_touch' AND is_conversion = 1 "
        "GROUP BY minute, shop_id, sku_id, seller_id, channel, traffic"),
    SHOP_GMV.name: (
        {"minute": "toStartOfMinute(event_time)", "shop_id": "shop_id", **_measures_from_credits("1")},
        f"FROM {DB}.attributed_gmv WHERE {_MINUTES} AND model = 'last_touch' AND is_conversion = 1 "
        "GROUP BY minute, shop_id"),
    # One row per order event first (its whole amount and the accounts of its touches), then the grain.
    PATH_GMV.name: (
        {"minute": "m", "path": "path", "shop_id": "shop_id", "seller_id": "seller_id", "channel": "channel",
         "touch_accounts": "touch_accounts", "gmv_fen": "sumIf(amount, kind = 'paid')",
         "refund_fen": "-sumIf(amount, kind = 'refund')", "net_fen": "sum(amount)",
         "orders": "countIf(kind = 'paid')", "refunds": "countIf(kind = 'refund')",
         "buyers": "uniqStateIf(user_id, kind = 'paid')", "refreshed_at": _NOW},
        "FROM (SELECT event_id, toStartOfMinute(any(event_time)) AS m, any(path) AS path, any(shop_id) AS shop_id, "
        "any(seller_id) AS seller_id, any(channel) AS channel, any(kind) AS kind, any(user_id) AS user_id, "
        "sum(credit_fen) AS amount, arraySort(groupUniqArrayIf(touch_account_id, is_conversion = 0 AND "
        f"touch_account_id != '')) AS touch_accounts FROM {DB}.attributed_gmv WHERE {_MINUTES} "
        "AND model = 'last_touch' GROUP BY event_id) GROUP BY m, path, shop_id, seller_id, channel, touch_accounts"),
}


def _merged(f: Family) -> dict[str, str]:
    """A coarser row's measures from the finer rows': sums, and the buyer (viewer) states merged."""
    return {c.name: (_NOW if c.name == "refreshed_at" else
                     f"uniqMergeState({c.name})" if c.type.startswith("AggregateFunction") else f"sum({c.name})")
            for c in f.measures}


def minute_sql(f: Family, model: str = "") -> str:
    """The family's minute rows from the facts (``model``: only that model's rows: the markov
    restatement moves no other model's credits)."""
    exprs, rest = _FROM_FACTS[f.name]
    if model:
        rest = rest.replace(f" WHERE {_MINUTES} ", f" WHERE {_MINUTES} AND model = '{model}' ", 1)
    return f.table("minute").insert_select(DB, exprs, rest)


def coarser_sql(f: Family, grain: str, periods: bool = True) -> str:
    """Recompute ``grain`` (hour or day) rows from the grain below, for the given periods (by a
    function of the grain below's key: ClickHouse reads only their granules)."""
    below = GRAINS[GRAINS.index(grain) - 1]
    if grain == "hour":
        period, key = "toStartOfHour(minute)", "toStartOfHour(minute) IN {periods:Array(DateTime('UTC'))}"
    else:
        to_day = "toDate" if f.day_type == "Date" else "toStartOfDay"
        period = f"{to_day}(hour, 'Asia/Shanghai')"
        key = "toDate(hour, 'Asia/Shanghai') IN {periods:Array(Date)}"
    where = f"WHERE {key} " if periods else ""
    exprs = {grain: period, **{k.name: k.name for k in f.keys}, **_merged(f)}
    return f.table(grain).insert_select(DB, exprs, f"FROM {DB}.{f.table_name(below)} {where}GROUP BY {grain}, "
                                                   f"{f.key_names}")


def hours_of(minutes: Iterable[datetime]) -> list[datetime]:
    return sorted({m.replace(minute=0, second=0, microsecond=0) for m in minutes})


def days_of(hours: Iterable[datetime]) -> list[date]:
    return sorted({(h + timedelta(hours=8)).date() for h in hours})  # Asia/Shanghai: UTC+8 all year


# Periods per statement: one statement per family and grain in all but the longest catch-ups
# (each INSERT costs ~20 ms here whatever its size, most of it writing a part).
CHUNK = 5_000


def _chunks(periods: list, n: int = CHUNK) -> list[list]:
    return [periods[i:i + n] for i in range(0, len(periods), n)]


# The families whose rows hold markov credits: the rest count whole orders (last_touch conversions).
BY_MODEL = frozenset({CONTENT_CREDIT.name, GMV.name})


def level_statements(db: str, minutes: set[datetime], funnel_minutes: set[datetime] = frozenset(),
                     markov_minutes: set[datetime] = frozenset()) -> list[tuple[str, dict]]:
    """Everything these minutes change: the families' minute rows (from the facts), then the hours
    and days of every family; ``funnel_minutes`` (of funnel events) only those of ``funnel``;
    ``markov_minutes`` (of restated markov credits) the markov rows of the families that hold them."""
    out = minute_statements(db, minutes)
    out += [(minute_sql(CONTENT_CREDIT, "markov"), {"db": db, "minutes": chunk})
            for chunk in _chunks(sorted(set(markov_minutes) - set(minutes)))]
    for grain in ("hour", "day"):
        for f in FAMILIES:
            touched = funnel_minutes if f is FUNNEL else set(minutes) | (markov_minutes if f.name in BY_MODEL
                                                                          else set())
            periods: list = hours_of(touched) if grain == "hour" else days_of(hours_of(touched))
            out += [(coarser_sql(f, grain), {"db": db, "periods": chunk}) for chunk in _chunks(periods)]
    return out


def minute_statements(db: str, minutes: set[datetime]) -> list[tuple[str, dict]]:
    """(SQL, parameters) recomputing the families' minute rows of these minutes from the facts (the
    families whose minute table is a rollup of its own, gmv and funnel, are not recomputed here)."""
    return [(minute_sql(f), {"db": db, "minutes": chunk})
            for f in FAMILIES if f.name in _FROM_FACTS for chunk in _chunks(sorted(minutes))]


__all__ = ["CHUNK", "FAMILIES", "FUNNEL", "GMV", "coarser_sql", "days_of", "hours_of", "level_statements",
           "minute_sql", "minute_statements"]
