"""Content-, SKU- and path-level rollups at three grains, each recomputed from the one below.

The dashboard and the cookbook views read these instead of the facts, so a refresh costs the
same at 10M facts as at 10k. Each family has a minute table recomputed from the de-duplicated
facts (``attributed_gmv``) for the minutes batches touched; an hour table recomputed from the minute table for the hours those minutes fall in; and a day
table (Asia/Shanghai days) recomputed from the hour table. They are refreshed with the trust
scores (every 2 s while caught up, 10 s under a backlog, and at the end of a run), not after every
batch like the minute rollups the per-minute panels read: nine statements per batch cost the bench
~15% of its throughput. Every table is a
ReplacingMergeTree on ``refreshed_at`` behind a FINAL view, keyed by its grain and the
family's keys, so each row always equals an aggregate of the facts: a replay or a crash
rewrites rows, it never adds to them.

Families (keys; measures are the same for all: ``gmv_fen``, ``refund_fen`` (positive),
``net_fen``, ``orders``, ``refunds``, ``buyers`` as a uniq state):

- ``content_credit``: GMV *credited* under each model to each touch (stage, account, content);
  orders and buyers are counted on the conversion touch, once per order and model.
- ``sku_gmv``: whole amounts per SKU, shop, seller, the channel paid in and the conversion's
  traffic (one row per order: the last-touch conversion row carries the whole amount).
- ``shop_gmv``: the same per shop only: the dashboard's KPIs merge a buyer state per shop and day
  (at 10M facts, 12 ms less than one per SKU).
- ``path_gmv``: whole amounts per path (its stages), shop, seller, channel and the sorted
  distinct accounts of the path's touches before the conversion (``touch_accounts``): what
  川流 (distributor content assisting self-broadcast sales) is measured by.
- ``gmv`` and ``funnel``: the hours and days of the minute rollups ``gmv_minute`` and
  ``funnel_minute`` (refreshed after every batch by ``gmv.sinks.rollups``).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from gmv.sinks.schema import FUNNEL_MINUTE, GMV_MINUTE, Column, StoredTable

GRAINS = ("minute", "hour", "day")
GRAIN_COLUMNS = {
    "minute": Column("minute", "DateTime('UTC')", "minute of event_time (UTC)"),
    "hour": Column("hour", "DateTime('UTC')", "hour of event_time (UTC)"),
    "day": Column("day", "Date", "day of event_time in Asia/Shanghai (the business day)"),
}
MEASURES = (
    Column("gmv_fen", "Int64", "paid GMV (fen)"),
    Column("refund_fen", "Int64", "refunds, as a positive number (fen)"),
    Column("net_fen", "Int64", "gmv_fen - refund_fen"),
    Column("orders", "UInt64", "paid orders (counted once per order)"),
    Column("refunds", "UInt64", "refund events"),
    Column("buyers", "AggregateFunction(uniq, String)", "distinct buyers of those orders: uniqMerge(buyers)"),
    Column("refreshed_at", "DateTime64(6, 'UTC')", "when this row was recomputed; the latest wins"),
)
_SUMS = "sum(gmv_fen), sum(refund_fen), sum(net_fen), sum(orders), sum(refunds), uniqMergeState(buyers), now64(6)"
# The measures of credit rows (``c``: the rows counted as orders; whole amounts or credits).
_FROM_FACTS = ("sumIf(credit_fen, kind = 'paid'), -sumIf(credit_fen, kind = 'refund'), sum(credit_fen), "
               "countIf(kind = 'paid' AND {c}), countIf(kind = 'refund' AND {c}), "
               "uniqStateIf(user_id, kind = 'paid' AND {c}), now64(6)")


@dataclass(frozen=True)
class Family:
    name: str
    comment: str
    keys: tuple[Column, ...]
    # SELECT minute, keys..., measures FROM the facts WHERE {where}: None when the minute table is
    # one of the minute rollups refreshed after every batch (``gmv.sinks.rollups``).
    minute_select: str | None
    measures: tuple[Column, ...] = MEASURES
    sums: str = _SUMS  # the measures of a coarser row from the finer rows'
    day_type: str = "Date"  # gmv_day and funnel_day keep the type they had: DateTime('Asia/Shanghai')
    # The day table's sort key when readers look rows up by key rather than by day, with small
    # granules: reading a buyers state column decodes whole granules, so the dashboard's lookup of
    # 8 live rooms' buyers took ~18 ms at 10M facts in 8,192-row granules, ~8 ms in 256-row ones.
    day_order: str = ""

    def order_by(self, grain: str) -> str:
        return self.day_order if grain == "day" and self.day_order else f"({grain}, {self.key_names})"

    def table(self, grain: str) -> str:
        return f"{self.name}_{grain}"

    def columns(self, grain: str) -> tuple[Column, ...]:
        first = GRAIN_COLUMNS[grain]
        if grain == "day" and self.day_type != "Date":
            first = Column("day", self.day_type, "day in Asia/Shanghai (the business day)")
        return (first, *self.keys, *self.measures)

    @property
    def key_names(self) -> str:
        return ", ".join(c.name for c in self.keys)

    @property
    def minute_sql(self) -> str:
        assert self.minute_select is not None
        return (f"INSERT INTO {{db:Identifier}}.{self.table('minute')}_store "
                + self.minute_select.replace("{where}", _MINUTES))

    def coarser_sql(self, grain: str, periods: bool = True) -> str:
        """Recompute ``grain`` (hour or day) rows from the grain below, for the given periods (by a
        function of the grain below's key: ClickHouse reads only their granules)."""
        below = GRAINS[GRAINS.index(grain) - 1]
        if grain == "hour":
            period, key = "toStartOfHour(minute)", "toStartOfHour(minute) IN {periods:Array(DateTime('UTC'))}"
        else:
            to_day = "toDate" if self.day_type == "Date" else "toStartOfDay"
            period = f"{to_day}(hour, 'Asia/Shanghai')"
            key = "toDate(hour, 'Asia/Shanghai') IN {periods:Array(Date)}"
        where = f"WHERE {key} " if periods else ""
        return (f"INSERT INTO {{db:Identifier}}.{self.table(grain)}_store "
                f"SELECT {period} AS p, {self.key_names}, {self.sums} FROM {{db:Identifier}}.{self.table(below)} "
                f"{where}GROUP BY p, {self.key_names}")


_KEY = {
    "model": Column("model", "LowCardinality(String)", "attribution model"),
    "stage": Column("stage", "LowCardinality(String)", "funnel stage of the touch credited"),
    "account_id": Column("account_id", "String", "account of the touch (video author / live anchor / the seller)"),
    "content_id": Column("content_id", "String", "content of the touch (video_id / live_id; '' for shelf)"),
    "is_self": Column("is_self", "UInt8", "1 = the touch account is the order's seller"),
    "shop_id": Column("shop_id", "String", "shop of the order"),
    "seller_id": Column("seller_id", "String", "account that made the sale ('' for pure shelf sales)"),
    "sku_id": Column("sku_id", "String", "SKU"),
    "channel": Column("channel", "LowCardinality(String)", "where the order was paid: short_video | live | clip | shelf"),
    "traffic": Column("traffic", "LowCardinality(String)", "public | private traffic of the conversion touch"),
    "path": Column("path", "String", "the path's stages, e.g. short_video>live"),
    "touch_accounts": Column("touch_accounts", "Array(String)",
                             "sorted distinct accounts of the path's touches before the conversion"),
}
_MINUTES = "toStartOfMinute(event_time) IN {minutes:Array(DateTime('UTC'))}"

CONTENT_CREDIT = Family(
    "content_credit", "GMV credited per attribution model to each touch: stage, account and content",
    tuple(_KEY[k] for k in ("model", "stage", "account_id", "content_id", "is_self", "shop_id")),
    "SELECT toStartOfMinute(event_time) AS m, model, stage, touch_account_id, touch_content_id, is_self, shop_id, "
    + _FROM_FACTS.format(c="is_conversion = 1") +
    " FROM {db:Identifier}.attributed_gmv WHERE {where} "
    "GROUP BY m, model, stage, touch_account_id, touch_content_id, is_self, shop_id",
    day_order="(model, stage, content_id, account_id, is_self, shop_id, day)",
)
SKU_GMV = Family(
    "sku_gmv", "Whole order amounts per SKU, shop, seller, channel paid in and traffic of the conversion",
    tuple(_KEY[k] for k in ("shop_id", "sku_id", "seller_id", "channel", "traffic")),
    "SELECT toStartOfMinute(event_time) AS m, shop_id, sku_id, seller_id, channel, traffic, "
    + _FROM_FACTS.format(c="1") +
    " FROM {db:Identifier}.attributed_gmv WHERE {where} AND model = 'last_touch' AND is_conversion = 1 "
    "GROUP BY m, shop_id, sku_id, seller_id, channel, traffic",
    day_order="(sku_id, shop_id, seller_id, channel, traffic, day)",
)
SHOP_GMV = Family(
    "shop_gmv", "Whole order amounts per shop (the dashboard's KPIs: a few buyer states to merge, not one per SKU)",
    (_KEY["shop_id"],),
    "SELECT toStartOfMinute(event_time) AS m, shop_id, " + _FROM_FACTS.format(c="1") +
    " FROM {db:Identifier}.attributed_gmv WHERE {where} AND model = 'last_touch' AND is_conversion = 1 "
    "GROUP BY m, shop_id",
)
# One row per order event first (its whole amount and the accounts of its touches), then the grain.
PATH_GMV = Family(
    "path_gmv", "Whole order amounts per path, shop, seller, channel and the accounts of the path's touches",
    tuple(_KEY[k] for k in ("path", "shop_id", "seller_id", "channel", "touch_accounts")),
    "SELECT m, path, shop_id, seller_id, channel, touch_accounts, "
    "sumIf(amount, kind = 'paid'), -sumIf(amount, kind = 'refund'), sum(amount), countIf(kind = 'paid'), "
    "countIf(kind = 'refund'), uniqStateIf(user_id, kind = 'paid'), now64(6) "
    "FROM (SELECT event_id, toStartOfMinute(any(event_time)) AS m, any(path) AS path, any(shop_id) AS shop_id, "
    "any(seller_id) AS seller_id, any(channel) AS channel, any(kind) AS kind, any(user_id) AS user_id, "
    "sum(credit_fen) AS amount, "
    "arraySort(groupUniqArrayIf(touch_account_id, is_conversion = 0 AND touch_account_id != '')) AS touch_accounts "
    "FROM {db:Identifier}.attributed_gmv WHERE {where} AND model = 'last_touch' GROUP BY event_id) "
    "GROUP BY m, path, shop_id, seller_id, channel, touch_accounts",
)
def _keys_and_measures(minute_table: StoredTable) -> tuple[tuple[Column, ...], tuple[Column, ...]]:
    """A minute rollup's columns (``gmv.sinks.schema``) as a family's keys and measures."""
    keys = minute_table.order_by.strip("()").split(", ")[1:]  # (minute, key, ...)
    columns = [c for c in minute_table.columns if c.name != "minute"]
    return tuple(c for c in columns if c.name in keys), tuple(c for c in columns if c.name not in keys)


_GMV_KEYS, _GMV_MEASURES = _keys_and_measures(GMV_MINUTE)
_FUNNEL_KEYS, _FUNNEL_MEASURES = _keys_and_measures(FUNNEL_MINUTE)
# The hour and day rollups of gmv_minute and funnel_minute (the same names, columns and grains they
# had as ClickHouse refreshable views, which recomputed the whole history every 5 s).
GMV = Family("gmv", "Attributed GMV; same columns as gmv_minute", _GMV_KEYS, None, _GMV_MEASURES,
             day_type="DateTime('Asia/Shanghai')")
FUNNEL = Family("funnel", "Funnel (views, engaged views, live enters, unique viewers); same columns as funnel_minute",
                _FUNNEL_KEYS, None, _FUNNEL_MEASURES,
                "sum(views), sum(engaged_views), sum(live_enters), uniqMergeState(viewers), now64(6)",
                day_type="DateTime('Asia/Shanghai')")
FAMILIES = (CONTENT_CREDIT, SKU_GMV, SHOP_GMV, PATH_GMV, GMV, FUNNEL)


def hours_of(minutes: Iterable[datetime]) -> list[datetime]:
    return sorted({m.replace(minute=0, second=0, microsecond=0) for m in minutes})


def days_of(hours: Iterable[datetime]) -> list[date]:
    return sorted({(h + timedelta(hours=8)).date() for h in hours})  # Asia/Shanghai: UTC+8 all year


# Periods per statement: one statement per family and grain in all but the longest catch-ups
# (each INSERT costs ~20 ms here whatever its size, most of it writing a part).
CHUNK = 5_000


def _chunks(periods: list, n: int = CHUNK) -> list[list]:
    return [periods[i:i + n] for i in range(0, len(periods), n)]


def level_statements(db: str, minutes: set[datetime], funnel_minutes: set[datetime] = frozenset()
                     ) -> list[tuple[str, dict]]:
    """Everything these minutes change: the families' minute rows (from the facts), then the hours
    and days of every family; ``funnel_minutes`` (of funnel events) only those of ``funnel``."""
    out = minute_statements(db, minutes)
    for grain in ("hour", "day"):
        for f in FAMILIES:
            touched = funnel_minutes if f is FUNNEL else minutes
            periods: list = hours_of(touched) if grain == "hour" else days_of(hours_of(touched))
            out += [(f.coarser_sql(grain), {"db": db, "periods": chunk}) for chunk in _chunks(periods)]
    return out


def minute_statements(db: str, minutes: set[datetime]) -> list[tuple[str, dict]]:
    """(SQL, parameters) recomputing the families' minute rows of these minutes from the facts."""
    return [(f.minute_sql, {"db": db, "minutes": chunk})
            for f in FAMILIES if f.minute_select is not None for chunk in _chunks(sorted(minutes))]
