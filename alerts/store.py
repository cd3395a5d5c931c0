"""What the evaluator reads from ClickHouse (per-minute series from the rollups, stored alerts)
and writes to it (alert rows). Synchronous, on a client of its own: callers use a thread."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, date, datetime

from clickhouse_connect.driver.client import Client

from gmv.alerts.baselines import History, read_history
from gmv.alerts.conditions import LiveSeries, ShopSeries, minute_start
from gmv.alerts.model import Alert, Evidence, as_utc
from gmv.schemas.catalogue import ALERTS

_LIVE_ENTERS = """
SELECT intDiv(toUInt32(minute), 60) AS m, content_id, any(account_id), any(shop_id), sum(live_enters)
FROM {db:Identifier}.funnel_minute
WHERE stage = 'live' AND minute >= {from:DateTime('UTC')} AND minute < {to:DateTime('UTC')}
GROUP BY m, content_id
"""
_LIVE_PAID = """
SELECT intDiv(toUInt32(minute), 60) AS m, content_id, any(seller_id), any(shop_id), sum(gmv_fen), sum(orders)
FROM {db:Identifier}.content_minute
WHERE channel = 'live' AND minute >= {from:DateTime('UTC')} AND minute < {to:DateTime('UTC')}
GROUP BY m, content_id
"""
_SHOP_REFUNDS = """
SELECT intDiv(toUInt32(minute), 60) AS m, shop_id, sum(gmv_fen), sum(refund_fen)
FROM {db:Identifier}.gmv_minute
WHERE model = 'last_touch' AND minute >= {from:DateTime('UTC')} AND minute < {to:DateTime('UTC')}
GROUP BY m, shop_id
"""
_SHOP_SCORES = """
SELECT day, subject_id, score FROM {db:Identifier}.trust_scores
WHERE subject_kind = 'shop' AND day >= {from:Date} AND day <= {to:Date}
"""
_COLUMNS = """
SELECT alert_id, rule, severity, subject_kind, subject_id, value, threshold, window_start, window_end, clock,
       fired_at, resolved_at, resolved_window_end, message, query
FROM {db:Identifier}.alerts
"""
_KNOWN = _COLUMNS + "WHERE clock = 'event' AND (state = 'firing' OR window_end >= {since:DateTime64(3, 'UTC')})"
_OPEN_PIPELINE = _COLUMNS + "WHERE clock = 'wall' AND state = 'firing' AND subject_id IN {subjects:Array(String)}"


class AlertStore:
    def __init__(self, client_factory: Callable[[], Client], database: str) -> None:
        self._factory = client_factory
        self._client: Client | None = None
        self.database = database
        self._lock = threading.Lock()

    @property
    def client(self) -> Client:
        if self._client is None:
            self._client = self._factory()
        return self._client

    def _rows(self, sql: str, params: dict) -> list[tuple]:
        with self._lock:
            return self.client.query(sql, parameters={"db": self.database, **params}).result_rows

    def series(self, first_minute: int, last_minute: int) -> tuple[dict[str, LiveSeries], dict[str, ShopSeries]]:
        """Live rooms and shops per minute, for minutes ``first_minute``..``last_minute`` (epoch minutes)."""
        span = {"from": minute_start(first_minute), "to": minute_start(last_minute + 1)}
        lives: dict[str, LiveSeries] = {}
        for m, live_id, account, shop, enters in self._rows(_LIVE_ENTERS, span):
            live = lives.setdefault(live_id, LiveSeries(live_id, shop, account))
            live.enters[m] = int(enters)
        for m, live_id, seller, shop, gmv, orders in self._rows(_LIVE_PAID, span):
            live = lives.setdefault(live_id, LiveSeries(live_id, shop, seller))
            live.gmv_fen[m] = int(gmv)
            live.orders[m] = int(orders)
        shops: dict[str, ShopSeries] = {}
        for m, shop_id, gmv, refund in self._rows(_SHOP_REFUNDS, span):
            shop = shops.setdefault(shop_id, ShopSeries(shop_id))
            shop.gmv_fen[m] = shop.gmv_fen.get(m, 0) + int(gmv)
            shop.refund_fen[m] = shop.refund_fen.get(m, 0) + int(refund)
        return lives, shops

    def history(self, first: int, end: int, reach: int | tuple[int, int], shifts: list[int],
                subjects: tuple[set[str], set[str]]) -> History:
        """The seasonal baselines' history for judging minutes ``first``..``end``: the same minutes (and
        ``reach`` before them) ``shifts`` minutes back, of these (anchors, shops), from the rollups
        (``gmv.alerts.baselines``)."""
        return read_history(self._rows, first, end, reach, shifts, *subjects)

    def shop_scores(self, first_day: date, last_day: date) -> dict[date, dict[str, float]]:
        """Every shop's 商号体验分 per Asia/Shanghai day, ``first_day``..``last_day``."""
        out: dict[date, dict[str, float]] = {}
        for day, shop_id, score in self._rows(_SHOP_SCORES, {"from": first_day, "to": last_day}):
            out.setdefault(day, {})[shop_id] = float(score)
        return out

    def known(self, since: datetime) -> list[Alert]:
        """Business alerts still open, or whose window ended at or after ``since``."""
        return self._alerts(_KNOWN, {"since": since})

    def open_pipeline(self, subjects: list[str]) -> list[Alert]:
        """Pipeline alerts of these subjects (a worker, its topics) left firing by an earlier run."""
        return self._alerts(_OPEN_PIPELINE, {"subjects": subjects})

    def _alerts(self, sql: str, params: dict) -> list[Alert]:
        out = []
        for (aid, rule, severity, kind, subject, value, threshold, ws, we, clock, fired, resolved, resolved_end,
             message, query) in self._rows(sql, params):
            alert = Alert(rule, severity, kind, subject, value, threshold, _utc(ws), _utc(we), clock, _utc(fired),
                          message, Evidence("", stored=query), resolved_at=_utc(resolved),
                          resolved_window_end=_utc(resolved_end))
            if alert.alert_id == aid:
                out.append(alert)
        return out

    def write(self, alerts: list[Alert]) -> None:
        now = datetime.now(UTC)
        with self._lock:
            self.client.insert(ALERTS.store, [tuple(a.row(now)) for a in alerts], database=self.database,
                               column_names=ALERTS.column_names, column_type_names=ALERTS.column_types)

    def close(self) -> None:
        with self._lock:
            if self._client is not None:
                self._client.close()
                self._client = None


def _utc(t: datetime | None) -> datetime | None:
    return None if t is None else as_utc(t)
