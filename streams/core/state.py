"""Stream state of one source partition, persisted as a batch journal in a changelog topic.

Per-event state writes cost one changelog message each, and the broker's CPU
goes with them; so state is written once per batch: one journal entry per
(partition, kind, batch) holding that batch's records. In-memory indexes are
derived from the journal, rebuilt after a restart or a rebalance, and pruned by
the partition's *event-time* watermark (never the wall clock), so a replay of
last month prunes exactly as live processing did.

Journal keys are ``<partition>|<kind>|<nonce>|<seq>`` and live in changelog
partition ``<partition>``; the value is compact JSON ``{"k": kind, "t": t_max,
"r": [record, ...]}`` where ``t_max`` is the newest event time (epoch ms) of its
records and each record is a JSON array of its type's fields, in order. Each
writer (a process owning the partition) has a random ``nonce`` and numbers its
entries ``seq`` = 1, 2, ...; a deleted key (``None`` value) removes its entry.
Kinds, each handled by one ``_Kind`` below:

``seen``     SeenRecord — de-duplication (``dedup_horizon``), for events no other record carries
``touch``    TouchRecord — touchpoints (``lookback`` before the oldest pending order, and never
             before ``dedup_horizon``: a touch record is also its event's de-duplication)
``order``    OrderRec — a paid order awaiting / done attribution (``weights_retention``)
``attr``     AttrRecord — an order's attribution path, kept for its refunds (``weights_retention``)
``refund``   RefundRec — a refund event, held until its order is attributed (``weights_retention``)
``settled``  RefundOutcome — what became of a refund: applied | orphan | over_refund (``weights_retention``)
``review``   ReviewRec — a review, held until it is judged (``weights_retention``)
``reviewed`` ReviewOutcome — what became of a review: applied | orphan_review | review_already_given |
             review_user_mismatch (``weights_retention``)
``cs``       CsMessageRec — a customer-service message; its conversation's turns are derived from all of
             them (``weights_retention``)
``mark``     ``{"k": "mark", "n": nonce, "s": seq}`` under key ``<partition>|mark``: ClickHouse holds
             every row derived from the writer's own entries up to ``seq`` and from every other
             writer's entry before the mark. Batches are pipelined (batch N+1's journal goes out
             while batch N is written to ClickHouse), so a mark can follow entries it does not
             cover yet.

Pure: no Kafka, no clock. The worker sends ``commit_batch``'s puts and deletes.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple, TypeVar

import pydantic_core

from gmv.streams.core.attribution import Touch

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
JOURNAL_CHUNK = 200  # records per journal entry: a 20-touch path is ~2 KB, so an entry stays < 0.5 MiB


R = TypeVar("R", bound=tuple)
# build(RecordType, values): a NamedTuple from its values in field order, with no Python-level
# call: it is tuple.__new__ itself (rows and journal records are built per event).
build: Callable[[type[R], tuple], R] = tuple.__new__  # type: ignore[assignment]


def to_ms(when: datetime) -> int:
    # Event times are whole milliseconds (the contract truncates them), so rounding the float
    # timestamp is exact and much cheaper than timedelta arithmetic on the hot path.
    return round(when.timestamp() * 1000)


def row_time(ms: int) -> float:
    """A time column of a ClickHouse JSON row: epoch seconds carrying exactly the milliseconds.

    The shortest repr of ``ms / 1000`` is the exact decimal with at most 3 fractional digits
    (two such decimals in our range never share a double), and ClickHouse parses that text
    into ``DateTime64(3)`` exactly, at a fraction of the cost of ISO-8601 text."""
    return ms / 1000


def from_ms(ms: int) -> datetime:
    return EPOCH + timedelta(milliseconds=ms)


def _encode(doc: dict) -> bytes:
    """A journal entry as compact JSON, in Rust; json.dumps for anything Rust refuses (a lone
    surrogate, which validated input never holds)."""
    try:
        return pydantic_core.to_json(doc)
    except ValueError:
        return json.dumps(doc, separators=(",", ":")).encode()


def _decode(raw: bytes) -> dict:
    try:
        return pydantic_core.from_json(raw)
    except ValueError:  # written by _encode's fallback (json.dumps escapes what Rust refuses)
        return json.loads(raw)


# -- records --------------------------------------------------------------------------------
class SeenRecord(NamedTuple):
    event_id: str
    src: str  # the source message of its first occurrence (a replay of it is not a duplicate)


class TouchRecord(NamedTuple):
    """A touchpoint of a user (the Touch's fields, then the user and the event's source)."""

    t_ms: int
    event_id: str
    stage: str
    account_id: str
    content_id: str
    shop_id: str
    traffic: str
    user_id: str
    src: str = ""  # journals from before the touch carried its event's de-duplication

    @property
    def touch(self) -> Touch:
        return Touch(self.t_ms, self.event_id, self.stage, self.account_id, self.content_id, self.shop_id,
                     self.traffic)


class OrderRec(NamedTuple):
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


class AttrRecord(NamedTuple):
    """An order's attribution path (its conversion touch last)."""

    order_event_id: str
    path: list[Touch]


class RefundRec(NamedTuple):
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
    reason: str = "other"  # refund_reason (journals from before SPEC §7 carried none)


class ReviewRec(NamedTuple):
    """A review event and where it came from (so it can be dead-lettered later, if it must be)."""

    event_id: str
    src: str
    topic: str
    partition: int
    offset: int
    index: int
    user_id: str
    order_id: str
    product_rating: int
    service_rating: int
    logistics_rating: int
    t_ms: int
    raw: str  # the validated event as JSON
    produced_ms: int = 0  # the review message's Kafka timestamp: how far the orders topic must be read


class ReviewOutcome(NamedTuple):
    review_event_id: str
    order_id: str
    outcome: str  # applied | orphan_review | review_already_given | review_user_mismatch


class CsMessageRec(NamedTuple):
    event_id: str
    src: str
    conversation_id: str
    shop_id: str
    user_id: str
    sender: str  # buyer | agent | bot
    t_ms: int


class RefundOutcome(NamedTuple):
    refund_event_id: str
    outcome: str  # applied | orphan | over_refund


@dataclass(slots=True)
class JournalEntry:
    kind: str
    t_max: int  # newest event time (ms) among its records: the entry expires after it
    records: list


@dataclass
class Horizons:
    dedup_ms: int
    lookback_ms: int
    retention_ms: int


# -- record kinds: everything about one kind in one place --------------------------------------
class _Kind:
    """Decoding, applying, un-applying and expiring the records of one journal kind."""

    name = ""
    derived = False  # its records produce ClickHouse rows when they are made (re-emitted if unconfirmed)

    def decode(self, raw: list) -> Any:
        raise NotImplementedError

    def encode(self, recs: list) -> list:
        """Records as their wire arrays: plain tuples (pydantic-core encodes NamedTuples several
        times slower)."""
        return [tuple(r) for r in recs]

    def apply(self, st: PartitionState, rec: Any) -> None:
        raise NotImplementedError

    def unapply(self, st: PartitionState, rec: Any) -> None:
        raise NotImplementedError

    def expired(self, st: PartitionState, entry: JournalEntry, touch_ref_ms: int) -> bool:
        return entry.t_max < st.watermark_ms - st.horizons.retention_ms


class _Seen(_Kind):
    name = "seen"

    def decode(self, raw: list) -> SeenRecord:
        return SeenRecord(*raw)

    def apply(self, st: PartitionState, rec: SeenRecord) -> None:
        st.seen.setdefault(rec.event_id, rec.src)

    def unapply(self, st: PartitionState, rec: SeenRecord) -> None:
        st.forget_seen(rec.event_id, rec.src)

    def expired(self, st: PartitionState, entry: JournalEntry, touch_ref_ms: int) -> bool:
        return entry.t_max < st.watermark_ms - st.horizons.dedup_ms


class _Touch(_Kind):
    name = "touch"

    def decode(self, raw: list) -> TouchRecord:
        return TouchRecord(*raw)

    def apply(self, st: PartitionState, rec: TouchRecord) -> None:
        st.touches.setdefault(rec.user_id, {})[rec.event_id] = rec.touch
        if rec.src:
            st.seen.setdefault(rec.event_id, rec.src)

    def unapply(self, st: PartitionState, rec: TouchRecord) -> None:
        user = st.touches.get(rec.user_id)
        if user is not None:
            user.pop(rec.event_id, None)
            if not user:
                del st.touches[rec.user_id]
        if rec.src:
            st.forget_seen(rec.event_id, rec.src)

    def expired(self, st: PartitionState, entry: JournalEntry, touch_ref_ms: int) -> bool:
        h = st.horizons
        return entry.t_max < touch_ref_ms - h.lookback_ms and entry.t_max < st.watermark_ms - h.dedup_ms


class _Order(_Kind):
    name = "order"

    def decode(self, raw: list) -> OrderRec:
        return OrderRec(*raw)

    def apply(self, st: PartitionState, rec: OrderRec) -> None:
        st.orders[rec.event_id] = rec
        st.order_ids.setdefault(rec.order_id, rec.event_id)
        st.seen.setdefault(rec.event_id, rec.src)
        if rec.event_id not in st.attrs:
            st.unattributed[rec.event_id] = rec

    def unapply(self, st: PartitionState, rec: OrderRec) -> None:
        st.orders.pop(rec.event_id, None)
        st.unattributed.pop(rec.event_id, None)
        if st.order_ids.get(rec.order_id) == rec.event_id:
            del st.order_ids[rec.order_id]
        st.forget_seen(rec.event_id, rec.src)

    def expired(self, st: PartitionState, entry: JournalEntry, touch_ref_ms: int) -> bool:
        return super().expired(st, entry, touch_ref_ms) and all(r.event_id in st.attrs for r in entry.records)


class _Attr(_Kind):
    name = "attr"
    derived = True

    def decode(self, raw: list) -> AttrRecord:
        order_event_id, path = raw
        return AttrRecord(order_event_id, [Touch(*t) for t in path])

    def encode(self, recs: list) -> list:
        return [(r.order_event_id, [tuple(t) for t in r.path]) for r in recs]

    def apply(self, st: PartitionState, rec: AttrRecord) -> None:
        st.attrs[rec.order_event_id] = rec.path
        st.unattributed.pop(rec.order_event_id, None)

    def unapply(self, st: PartitionState, rec: AttrRecord) -> None:
        st.attrs.pop(rec.order_event_id, None)
        order = st.orders.get(rec.order_event_id)
        if order is not None:
            st.unattributed[rec.order_event_id] = order


class _Refund(_Kind):
    name = "refund"

    def decode(self, raw: list) -> RefundRec:
        return RefundRec(*raw)

    def apply(self, st: PartitionState, rec: RefundRec) -> None:
        st.refunds[rec.event_id] = rec
        st.refunds_of.setdefault(rec.order_id, set()).add(rec.event_id)
        st.seen.setdefault(rec.event_id, rec.src)
        if rec.event_id not in st.outcomes:
            st.unsettled[rec.event_id] = rec

    def unapply(self, st: PartitionState, rec: RefundRec) -> None:
        known = st.refunds.pop(rec.event_id, None)
        st.unsettled.pop(rec.event_id, None)
        if known is not None:
            siblings = st.refunds_of.get(known.order_id)
            if siblings is not None:
                siblings.discard(known.event_id)
                if not siblings:
                    del st.refunds_of[known.order_id]
        st.forget_seen(rec.event_id, rec.src)

    def expired(self, st: PartitionState, entry: JournalEntry, touch_ref_ms: int) -> bool:
        return super().expired(st, entry, touch_ref_ms) and all(r.event_id in st.outcomes for r in entry.records)


class _Outcome(_Kind):
    name = "settled"
    derived = True

    def decode(self, raw: list) -> RefundOutcome:
        return RefundOutcome(*raw)

    def apply(self, st: PartitionState, rec: RefundOutcome) -> None:
        st.outcomes[rec.refund_event_id] = rec.outcome
        st.unsettled.pop(rec.refund_event_id, None)

    def unapply(self, st: PartitionState, rec: RefundOutcome) -> None:
        st.outcomes.pop(rec.refund_event_id, None)
        refund = st.refunds.get(rec.refund_event_id)
        if refund is not None:
            st.unsettled[rec.refund_event_id] = refund


class _Review(_Kind):
    name = "review"

    def decode(self, raw: list) -> ReviewRec:
        return ReviewRec(*raw)

    def apply(self, st: PartitionState, rec: ReviewRec) -> None:
        st.reviews[rec.event_id] = rec
        st.seen.setdefault(rec.event_id, rec.src)
        if rec.event_id not in st.review_outcomes:
            st.unjudged[rec.event_id] = rec

    def unapply(self, st: PartitionState, rec: ReviewRec) -> None:
        st.reviews.pop(rec.event_id, None)
        st.unjudged.pop(rec.event_id, None)
        st.forget_seen(rec.event_id, rec.src)

    def expired(self, st: PartitionState, entry: JournalEntry, touch_ref_ms: int) -> bool:
        return super().expired(st, entry, touch_ref_ms) and all(r.event_id in st.review_outcomes for r in entry.records)


class _ReviewOutcome(_Kind):
    name = "reviewed"
    derived = True

    def decode(self, raw: list) -> ReviewOutcome:
        return ReviewOutcome(*raw)

    def apply(self, st: PartitionState, rec: ReviewOutcome) -> None:
        st.review_outcomes[rec.review_event_id] = rec.outcome
        st.unjudged.pop(rec.review_event_id, None)
        if rec.outcome == "applied":
            st.reviewed.setdefault(rec.order_id, rec.review_event_id)

    def unapply(self, st: PartitionState, rec: ReviewOutcome) -> None:
        st.review_outcomes.pop(rec.review_event_id, None)
        if st.reviewed.get(rec.order_id) == rec.review_event_id:
            del st.reviewed[rec.order_id]
        review = st.reviews.get(rec.review_event_id)
        if review is not None:
            st.unjudged[rec.review_event_id] = review


class _CsMessage(_Kind):
    name = "cs"
    derived = True

    def decode(self, raw: list) -> CsMessageRec:
        return CsMessageRec(*raw)

    def apply(self, st: PartitionState, rec: CsMessageRec) -> None:
        st.conversations.setdefault(rec.conversation_id, {})[rec.event_id] = rec
        st.seen.setdefault(rec.event_id, rec.src)

    def unapply(self, st: PartitionState, rec: CsMessageRec) -> None:
        messages = st.conversations.get(rec.conversation_id)
        if messages is not None:
            messages.pop(rec.event_id, None)
            if not messages:
                del st.conversations[rec.conversation_id]
        st.forget_seen(rec.event_id, rec.src)


KINDS: dict[str, _Kind] = {k.name: k for k in (_Seen(), _Touch(), _Order(), _Attr(), _Refund(), _Outcome(),
                                               _Review(), _ReviewOutcome(), _CsMessage())}
SEEN, TOUCH, ORDER, ATTR, REFUND, OUTCOME, REVIEW, REVIEWED, CS = (
    KINDS[n] for n in ("seen", "touch", "order", "attr", "refund", "settled", "review", "reviewed", "cs"))


class Unconfirmed(NamedTuple):
    """A derived record whose rows ClickHouse may not hold yet (no mark covers it)."""

    kind: str
    record: Any
    nonce: str
    seq: int


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
    outcomes: dict[str, str] = field(default_factory=dict)  # refund event_id -> applied | orphan | over_refund
    # Indexes kept beside the maps above, so that per-batch work follows what is pending, not
    # what is retained (orders and refunds stay for weights_retention, 90 days by default).
    unattributed: dict[str, OrderRec] = field(default_factory=dict)  # order event_id -> order without attrs
    unsettled: dict[str, RefundRec] = field(default_factory=dict)  # refund event_id -> refund without outcome
    refunds_of: dict[str, set[str]] = field(default_factory=dict)  # order_id -> its refunds' event_ids
    reviews: dict[str, ReviewRec] = field(default_factory=dict)  # review event_id -> review
    review_outcomes: dict[str, str] = field(default_factory=dict)  # review event_id -> its outcome
    unjudged: dict[str, ReviewRec] = field(default_factory=dict)  # review event_id -> review without outcome
    reviewed: dict[str, str] = field(default_factory=dict)  # order_id -> the review event_id applied to it
    conversations: dict[str, dict[str, CsMessageRec]] = field(default_factory=dict)  # id -> event_id -> message
    entries: dict[str, JournalEntry] = field(default_factory=dict)
    watermark_ms: int = 0
    unconfirmed: list[Unconfirmed] = field(default_factory=list)
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
                self.unconfirmed = [u for u in self.unconfirmed if nonce is not None and u.nonce == nonce
                                    and u.seq > upto]
                continue
            kind = KINDS[doc["k"]]
            entry = JournalEntry(kind.name, doc["t"], [kind.decode(r) for r in doc["r"]])
            self.entries[key] = entry
            for rec in entry.records:
                kind.apply(self, rec)
            if kind.derived:
                _, _, nonce, seq = (key.split("|") + ["", "0"])[:4]
                self.unconfirmed.extend(Unconfirmed(kind.name, rec, nonce, int(seq)) for rec in entry.records)
            self.watermark_ms = max(self.watermark_ms, entry.t_max)
        # Entries that expired while this partition was elsewhere go now.
        self._expire()

    def record(self, kind: _Kind, rec: tuple, t_ms: int) -> None:
        """Stage a record for this batch's journal entry of ``kind`` (indexes are updated by the caller)."""
        name = kind.name
        pending = self._pending.get(name)
        if pending is None:
            pending = self._pending[name] = []
            self._pending_t[name] = t_ms
        pending.append(rec)
        if t_ms > self._pending_t[name]:
            self._pending_t[name] = t_ms

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
                puts.append((key, _encode({"k": kind, "t": entry.t_max, "r": KINDS[kind].encode(recs)})))
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
            if KINDS[entry.kind].expired(self, entry, touch_ref):
                del self.entries[key]
                self._unapply(entry)
                dels.append(key)
        return dels

    def _unapply(self, entry: JournalEntry) -> None:
        kind = KINDS[entry.kind]
        for rec in entry.records:
            kind.unapply(self, rec)

    def forget_seen(self, event_id: str, src: str) -> None:
        """Drop a de-duplication entry, if it is the one this source made."""
        if self.seen.get(event_id) == src:
            del self.seen[event_id]

    # -- de-duplication ----------------------------------------------------------
    def classify(self, event_id: str, src: str) -> str:
        """'new', 'replay' (same source message seen again: re-derive its rows) or 'duplicate'."""
        first = self.seen.get(event_id)
        if first is None:
            self.seen[event_id] = src
            self.carried = False  # set if the event's own record (touch, order, refund) journals it
            return "new"
        return "replay" if first == src else "duplicate"

    def advance(self, t_ms: int) -> None:
        """Move the event-time watermark (it never goes back)."""
        if t_ms > self.watermark_ms:
            self.watermark_ms = t_ms

    def journal_seen(self, event_id: str, src: str, t_ms: int) -> None:
        """Journal a new event's de-duplication, unless a record of its own already carries it."""
        if not self.carried:
            self.record(SEEN, build(SeenRecord, (event_id, src)), t_ms)

    # -- attribution state: applied by the same handlers as the journal, then journalled --------
    def add_touch(self, user_id: str, touch: Touch, src: str) -> None:
        # Per engaged view and live enter: what _Touch.apply does, without rebuilding the Touch.
        user = self.touches.setdefault(user_id, {})
        if touch.event_id not in user:
            user[touch.event_id] = touch
            self.record(TOUCH, build(TouchRecord, (*touch, user_id, src)), touch.t_ms)
            self.carried = True

    def add_order(self, order: OrderRec) -> None:
        if order.event_id not in self.orders:
            self._apply_new(ORDER, order, order.t_ms)

    def add_attr(self, order: OrderRec, path: list[Touch]) -> None:
        rec = AttrRecord(order.event_id, path)
        ATTR.apply(self, rec)
        self.record(ATTR, rec, order.t_ms)

    def add_refund(self, refund: RefundRec) -> None:
        if refund.event_id not in self.refunds:
            self._apply_new(REFUND, refund, refund.t_ms)

    def record_refund_outcome(self, refund: RefundRec, outcome: str) -> None:
        rec = RefundOutcome(refund.event_id, outcome)
        OUTCOME.apply(self, rec)
        self.record(OUTCOME, rec, refund.t_ms)

    def add_review(self, review: ReviewRec) -> None:
        if review.event_id not in self.reviews:
            self._apply_new(REVIEW, review, review.t_ms)

    def record_review_outcome(self, review: ReviewRec, outcome: str) -> None:
        rec = ReviewOutcome(review.event_id, review.order_id, outcome)
        REVIEWED.apply(self, rec)
        self.record(REVIEWED, rec, review.t_ms)

    def add_cs_message(self, message: CsMessageRec) -> None:
        known = self.conversations.get(message.conversation_id)
        if known is None or message.event_id not in known:
            self._apply_new(CS, message, message.t_ms)

    def _apply_new(self, kind: _Kind, rec: tuple, t_ms: int) -> None:
        """A new event's own record: applied, journalled, and carrying its de-duplication."""
        kind.apply(self, rec)
        self.record(kind, rec, t_ms)
        self.carried = True

    def refunded_fen(self, order_id: str) -> int:
        """Refunds applied so far to an order."""
        return sum(self.refunds[eid].refund_fen for eid in self.refunds_of.get(order_id, ())
                   if self.outcomes.get(eid) == "applied")

    def paid_order(self, order_id: str) -> OrderRec | None:
        eid = self.order_ids.get(order_id)
        return None if eid is None else self.orders.get(eid)
