"""Stream state of one source partition, persisted as a batch journal in a changelog topic.

Per-event state writes cost one changelog message each, and the broker's CPU
goes with them; so state is written once per batch: one journal entry per
(partition, kind, batch) holding that batch's records. In-memory indexes are
derived from the journal, rebuilt after a restart or a rebalance, and pruned by
the partition's *event-time* watermark (never the wall clock), so a replay of
last month prunes exactly as live processing did.

Journal keys are ``<partition>|<kind>|<nonce>|<seq>`` and live in changelog
partition ``<partition>``: each worker recovers exactly the state of the source
partitions it owns. Kinds:

``seen``    [event_id, src] — de-duplication (``dedup_horizon``), for events no other record carries
``touch``   Touch + user + src — touchpoints (``lookback`` before the oldest pending order, and
            never before ``dedup_horizon``: a touch record is also its event's de-duplication)
``order``   a paid order awaiting / done attribution (``weights_retention``)
``attr``    an order's attribution path, kept for its refunds (``weights_retention``)
``refund``  a refund event, held until its order is attributed (``weights_retention``)
``settled`` what became of a refund: applied | orphan | over_refund (``weights_retention``)
``mark``    ClickHouse holds every row derived from the entries it covers (see ``unconfirmed``):
            ``{"n": nonce, "s": seq}`` covers the writer's own entries up to ``seq`` and every
            other writer's entry before the mark. Batches are pipelined (batch N+1's journal
            goes out while batch N is written to ClickHouse), so a mark can follow entries it
            does not cover yet.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pydantic_core

from streams.attribution import Touch

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
DERIVED_KINDS = ("attr", "settled")  # kinds whose records produce ClickHouse rows when they are made
JOURNAL_CHUNK = 200  # records per journal entry: a 20-touch path is ~2 KB, so an entry stays < 0.5 MiB


def to_ms(when: datetime) -> int:
    # Event times are whole milliseconds (the contract truncates them), so rounding the float
    # timestamp is exact; it is ~20x cheaper than timedelta arithmetic on the hot path.
    return round(when.timestamp() * 1000)


def _encode(doc: dict) -> bytes:
    """A journal entry as compact JSON, in Rust (json.dumps cost ~5% of the loop); json.dumps
    for anything Rust refuses (a lone surrogate, which validated input never holds)."""
    try:
        return pydantic_core.to_json(doc)
    except ValueError:
        return json.dumps(doc, separators=(",", ":")).encode()


def _decode(raw: bytes) -> dict:
    try:
        return pydantic_core.from_json(raw)
    except ValueError:  # written by _encode's fallback (json.dumps escapes what Rust refuses)
        return json.loads(raw)


def row_time(ms: int) -> float:
    """A time column of a ClickHouse JSON row: epoch seconds carrying exactly the milliseconds.

    The shortest repr of ``ms / 1000`` is the exact decimal with at most 3 fractional digits
    (two such decimals in our range never share a double), and ClickHouse parses that text
    into ``DateTime64(3)`` exactly. Encoding and parsing it cost a fraction of ISO-8601 text
    (the hot loops inline ``t_ms / 1000``)."""
    return ms / 1000


def from_ms(ms: int) -> datetime:
    return EPOCH + timedelta(milliseconds=ms)


@dataclass(slots=True)
class JournalEntry:
    kind: str
    t_max: int  # newest event time (ms) among its records: the entry expires after it
    records: list


@dataclass(slots=True)
class OrderRec:
    """A paid order as attribution and its rows need it."""

    event_id: str
    src: str
    user_id: str
    order_id: str
    shop_id: str
    sku_id: str
    seller_id: str
    channel: str
    channel_id: str
    amount_fen: int
    t_ms: int
    arrival_ms: int  # processing time it arrived (attribution_delay counts from here)
    quantity: int = 1
    produced_ms: int = 0  # the order message's Kafka timestamp: how far the other topics must be read

    def as_list(self) -> list:
        return [self.event_id, self.src, self.user_id, self.order_id, self.shop_id, self.sku_id, self.seller_id,
                self.channel, self.channel_id, self.amount_fen, self.t_ms, self.arrival_ms, self.quantity,
                self.produced_ms]

    @classmethod
    def from_list(cls, r: list) -> OrderRec:
        return cls(*r)


@dataclass(slots=True)
class RefundRec:
    """A refund event and where it came from (so it can be dead-lettered later, if it must be)."""

    event_id: str
    src: str
    topic: str
    partition: int
    offset: int
    index: int
    user_id: str
    order_id: str
    refund_fen: int
    t_ms: int
    raw: str  # the validated event as JSON

    def as_list(self) -> list:
        return [self.event_id, self.src, self.topic, self.partition, self.offset, self.index, self.user_id,
                self.order_id, self.refund_fen, self.t_ms, self.raw]

    @classmethod
    def from_list(cls, r: list) -> RefundRec:
        return cls(*r)


@dataclass
class Horizons:
    dedup_ms: int
    lookback_ms: int
    retention_ms: int


@dataclass
class PartitionState:
    """Dedup index, touchpoints, orders, attributions and refunds of one partition."""

    partition: int
    horizons: Horizons
    seen: dict[str, str] = field(default_factory=dict)  # event_id -> src of its first occurrence
    touches: dict[str, dict[str, Touch]] = field(default_factory=dict)  # user -> touch event_id -> touch
    orders: dict[str, OrderRec] = field(default_factory=dict)  # order event_id -> order
    order_ids: dict[str, str] = field(default_factory=dict)  # order_id -> its paid event_id
    attrs: dict[str, list[Touch]] = field(default_factory=dict)  # order event_id -> attribution path
    refunds: dict[str, RefundRec] = field(default_factory=dict)  # refund event_id -> refund
    settled: dict[str, str] = field(default_factory=dict)  # refund event_id -> applied | orphan | over_refund
    # Indexes kept beside the maps above, so that per-batch work follows what is pending, not
    # what is retained (orders and refunds stay for weights_retention, 90 days by default).
    unattributed: dict[str, OrderRec] = field(default_factory=dict)  # order event_id -> order without attrs
    unsettled: dict[str, RefundRec] = field(default_factory=dict)  # refund event_id -> refund not settled
    refunds_of: dict[str, set[str]] = field(default_factory=dict)  # order_id -> its refunds' event_ids
    entries: dict[str, JournalEntry] = field(default_factory=dict)
    watermark_ms: int = 0
    read_ts: dict[str, int] = field(default_factory=dict)  # topic -> newest Kafka timestamp read (not journalled)
    unconfirmed: list[tuple[str, list, str, int]] = field(default_factory=list)  # (kind, record, nonce, seq) not known to be in ClickHouse
    _pending: dict[str, list] = field(default_factory=dict)
    _pending_t: dict[str, int] = field(default_factory=dict)
    _seq: int = 0
    _expired_at_ms: int | None = None  # watermark of the last expiry pass
    carried: bool = False  # the event being applied was journalled by its own record
    _nonce: str = field(default_factory=lambda: os.urandom(4).hex())

    # -- journal ---------------------------------------------------------------
    def load(self, items: Iterable[tuple[str, bytes | None]]) -> None:
        """Rebuild from changelog records in offset order (``None`` = deleted)."""
        for key, raw in items:
            old = self.entries.pop(key, None)
            if old is not None:
                self._unapply(old)
            if raw is None:
                continue
            doc = _decode(raw)
            if doc["k"] == "mark":
                nonce, upto = doc.get("n"), doc.get("s", 0)
                # Everything before the mark is covered, but for the marking writer's own
                # entries past ``upto`` (sent ahead while this batch was being written).
                self.unconfirmed = [u for u in self.unconfirmed if nonce is not None and u[2] == nonce and u[3] > upto]
                continue
            entry = JournalEntry(doc["k"], doc["t"], doc["r"])
            self.entries[key] = entry
            self._apply(entry)
            if entry.kind in DERIVED_KINDS:
                _, _, nonce, seq = (key.split("|") + ["", "0"])[:4]
                self.unconfirmed.extend((entry.kind, rec, nonce, int(seq)) for rec in entry.records)
            self.watermark_ms = max(self.watermark_ms, entry.t_max)
        # Entries that expired while this partition was elsewhere go now.
        self._expire()

    def record(self, kind: str, rec: list, t_ms: int) -> None:
        """Stage a record for this batch's journal entry of ``kind`` (indexes are updated by the caller)."""
        self._pending.setdefault(kind, []).append(rec)
        self._pending_t[kind] = max(self._pending_t.get(kind, 0), t_ms)

    def commit_batch(self) -> tuple[list[tuple[str, bytes]], list[str]]:
        """Journal entries to put and keys to delete for this batch."""
        puts: list[tuple[str, bytes]] = []
        for kind, all_recs in self._pending.items():
            # Bounded entries: a changelog message must stay well under the broker's 1 MiB limit
            # (an end-of-input attribution can journal thousands of 20-touch paths at once).
            for i in range(0, len(all_recs), JOURNAL_CHUNK):
                recs = all_recs[i:i + JOURNAL_CHUNK]
                self._seq += 1
                key = f"{self.partition}|{kind}|{self._nonce}|{self._seq}"
                entry = JournalEntry(kind, self._pending_t[kind], recs)
                self.entries[key] = entry
                puts.append((key, _encode({"k": kind, "t": entry.t_max, "r": recs})))
        self._pending.clear()
        self._pending_t.clear()
        return puts, self._expire_due()

    @property
    def journal_seq(self) -> int:
        """Sequence number of the last journal entry this writer committed."""
        return self._seq

    def mark_key_value(self, upto_seq: int | None = None) -> tuple[str, bytes]:
        """The mark saying ClickHouse holds the rows of this writer's entries up to ``upto_seq``."""
        upto = self._seq if upto_seq is None else upto_seq
        doc = {"k": "mark", "t": 0, "r": [], "n": self._nonce, "s": upto}
        return f"{self.partition}|mark", json.dumps(doc, separators=(",", ":")).encode()

    def _expire_due(self) -> list[str]:
        """Expire once event time has moved on by a tenth of the shortest horizon (at most a
        minute): a pass reads every journal entry, too much to do on every batch."""
        h = self.horizons
        step = min(60_000, max(1, min(h.dedup_ms, h.lookback_ms, h.retention_ms) // 10))
        if self._expired_at_ms is not None and self.watermark_ms - self._expired_at_ms < step:
            return []
        return self._expire()

    def _expire(self) -> list[str]:
        self._expired_at_ms = self.watermark_ms
        dels = []
        touch_ref = min([self.watermark_ms, *(o.t_ms for o in self.unattributed.values())])
        for key, entry in list(self.entries.items()):
            if entry.kind == "seen":
                expired = entry.t_max < self.watermark_ms - self.horizons.dedup_ms
            elif entry.kind == "touch":
                expired = entry.t_max < touch_ref - self.horizons.lookback_ms and \
                    entry.t_max < self.watermark_ms - self.horizons.dedup_ms
            elif entry.kind == "order":
                expired = entry.t_max < self.watermark_ms - self.horizons.retention_ms and not any(
                    r[0] not in self.attrs for r in entry.records)
            elif entry.kind == "refund":
                expired = entry.t_max < self.watermark_ms - self.horizons.retention_ms and not any(
                    r[0] not in self.settled for r in entry.records)
            else:
                expired = entry.t_max < self.watermark_ms - self.horizons.retention_ms
            if expired:
                del self.entries[key]
                self._unapply(entry)
                dels.append(key)
        return dels

    def _apply(self, entry: JournalEntry) -> None:
        kind = entry.kind
        for rec in entry.records:
            if kind == "seen":
                self.seen.setdefault(rec[0], rec[1])
            elif kind == "touch":
                self.touches.setdefault(rec[7], {})[rec[1]] = Touch.from_list(rec[:7])
                if len(rec) > 8:
                    self.seen.setdefault(rec[1], rec[8])
            elif kind == "order":
                o = OrderRec.from_list(rec)
                self.orders[o.event_id] = o
                self.order_ids.setdefault(o.order_id, o.event_id)
                self.seen.setdefault(o.event_id, o.src)
                if o.event_id not in self.attrs:
                    self.unattributed[o.event_id] = o
            elif kind == "attr":
                self.attrs[rec[0]] = [Touch.from_list(t) for t in rec[1]]
                self.unattributed.pop(rec[0], None)
            elif kind == "refund":
                r = RefundRec.from_list(rec)
                self.refunds[r.event_id] = r
                self.refunds_of.setdefault(r.order_id, set()).add(r.event_id)
                self.seen.setdefault(r.event_id, r.src)
                if r.event_id not in self.settled:
                    self.unsettled[r.event_id] = r
            elif kind == "settled":
                self.settled[rec[0]] = rec[1]
                self.unsettled.pop(rec[0], None)

    def _unapply(self, entry: JournalEntry) -> None:
        kind = entry.kind
        for rec in entry.records:
            if kind == "seen":
                if self.seen.get(rec[0]) == rec[1]:
                    del self.seen[rec[0]]
            elif kind == "touch":
                user = self.touches.get(rec[7])
                if user is not None:
                    user.pop(rec[1], None)
                    if not user:
                        del self.touches[rec[7]]
                if len(rec) > 8 and self.seen.get(rec[1]) == rec[8]:
                    del self.seen[rec[1]]
            elif kind == "order":
                self.orders.pop(rec[0], None)
                self.unattributed.pop(rec[0], None)
                if self.order_ids.get(rec[3]) == rec[0]:
                    del self.order_ids[rec[3]]
                if self.seen.get(rec[0]) == rec[1]:
                    del self.seen[rec[0]]
            elif kind == "attr":
                self.attrs.pop(rec[0], None)
                if rec[0] in self.orders:
                    self.unattributed[rec[0]] = self.orders[rec[0]]
            elif kind == "refund":
                r = self.refunds.pop(rec[0], None)
                self.unsettled.pop(rec[0], None)
                if r is not None:
                    siblings = self.refunds_of.get(r.order_id)
                    if siblings is not None:
                        siblings.discard(r.event_id)
                        if not siblings:
                            del self.refunds_of[r.order_id]
                if self.seen.get(rec[0]) == rec[1]:
                    del self.seen[rec[0]]
            elif kind == "settled":
                self.settled.pop(rec[0], None)
                if rec[0] in self.refunds:
                    self.unsettled[rec[0]] = self.refunds[rec[0]]

    # -- de-duplication ----------------------------------------------------------
    def classify(self, event_id: str, src: str, t_ms: int) -> str:
        """'new', 'replay' (same source message seen again: re-derive its rows) or 'duplicate'."""
        first = self.seen.get(event_id)
        if first is None:
            self.seen[event_id] = src
            self.carried = False  # set if the event's own record (touch, order, refund) journals it
            return "new"
        return "replay" if first == src else "duplicate"

    def journal_seen(self, event_id: str, src: str, t_ms: int) -> None:
        """Journal a new event's de-duplication, unless a record of its own already carries it."""
        if not self.carried:
            self.record("seen", [event_id, src], t_ms)

    def advance(self, t_ms: int) -> None:
        if t_ms > self.watermark_ms:
            self.watermark_ms = t_ms

    # -- attribution state -----------------------------------------------------------
    def add_touch(self, user_id: str, touch: Touch, src: str) -> None:
        user = self.touches.setdefault(user_id, {})
        if touch.event_id not in user:
            user[touch.event_id] = touch
            self.record("touch", [*touch.as_list(), user_id, src], touch.t_ms)
            self.carried = True

    def add_order(self, order: OrderRec) -> None:
        if order.event_id not in self.orders:
            self.orders[order.event_id] = order
            self.order_ids.setdefault(order.order_id, order.event_id)
            if order.event_id not in self.attrs:
                self.unattributed[order.event_id] = order
            self.record("order", order.as_list(), order.t_ms)
            self.carried = True

    def add_attr(self, order: OrderRec, path: list[Touch]) -> None:
        self.attrs[order.event_id] = path
        self.unattributed.pop(order.event_id, None)
        self.record("attr", [order.event_id, [t.as_list() for t in path]], order.t_ms)

    def add_refund(self, refund: RefundRec) -> None:
        if refund.event_id not in self.refunds:
            self.refunds[refund.event_id] = refund
            self.refunds_of.setdefault(refund.order_id, set()).add(refund.event_id)
            if refund.event_id not in self.settled:
                self.unsettled[refund.event_id] = refund
            self.record("refund", refund.as_list(), refund.t_ms)
            self.carried = True

    def settle(self, refund: RefundRec, outcome: str) -> None:
        self.settled[refund.event_id] = outcome
        self.unsettled.pop(refund.event_id, None)
        self.record("settled", [refund.event_id, outcome], refund.t_ms)

    def refunded_fen(self, order_id: str) -> int:
        """Refunds applied so far to an order."""
        return sum(self.refunds[eid].refund_fen for eid in self.refunds_of.get(order_id, ())
                   if self.settled.get(eid) == "applied")
